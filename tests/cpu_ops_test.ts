/**
 * CPU ops: backward vs central finite differences (f64, tiny shapes), forward vs naive
 * loops, `erf` vs reference values, AdamW vs a scalar re-implementation.
 */
import { add } from "../src/backend/cpu/ref/add.ts";
import { adamw } from "../src/backend/cpu/ref/adamw.ts";
import { cosineLoss } from "../src/backend/cpu/ref/cosine_loss.ts";
import { crossEntropyLoss } from "../src/backend/cpu/ref/cross_entropy.ts";
import { erf, erfc, gelu, geluGrad } from "../src/backend/cpu/ref/gelu.ts";
import { gradNorm } from "../src/backend/cpu/ref/grad_norm.ts";
import { mergeHeadsForward, splitHeadsForward } from "../src/backend/cpu/ref/heads.ts";
import { layernormForward } from "../src/backend/cpu/ref/layernorm.ts";
import { matmulForward } from "../src/backend/cpu/ref/matmul.ts";
import { patchify } from "../src/backend/cpu/ref/patchify.ts";
import { gatherRowsForward } from "../src/backend/cpu/ref/rows.ts";
import { smoothL1Loss } from "../src/backend/cpu/ref/smooth_l1.ts";
import { softmaxForward } from "../src/backend/cpu/ref/softmax.ts";
import { standardizeRows } from "../src/backend/cpu/ref/standardize.ts";
import { assert, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { GRAD_CASES } from "./cpu_gradchecks.ts";
import { maxGradError, randArray } from "./fd.ts";
import { assertAllClose } from "./helpers.ts";

const F64 = Float64Array;

// ---- gradient checks ----------------------------------------------------------

for (const c of GRAD_CASES) {
  Deno.test(`${c.symbol}() matches finite differences for ${c.shape}`, () => {
    for (const { what, analytic, numeric } of c.run()) {
      assertAllClose(analytic, numeric, { atol: 1e-7, rtol: 1e-6 }, `${c.op} ${what}`);
    }
  });
}

Deno.test("gradient-check report: max abs error per op", () => {
  const worst = new Map<string, number>();
  for (const c of GRAD_CASES) {
    const e = maxGradError(c.run());
    worst.set(c.op, Math.max(worst.get(c.op) ?? 0, e));
  }
  const width = Math.max(...[...worst.keys()].map((k) => k.length));
  const lines = [`${"op".padEnd(width)} | max abs error`, `${"-".repeat(width)}-|--------------`];
  for (const [op, e] of worst) lines.push(`${op.padEnd(width)} | ${e.toExponential(2)}`);
  console.log(`\n${lines.join("\n")}`);
  for (const [op, e] of worst) assert(e < 1e-6, `${op}: max gradient error ${e}`);
});

// ---- erf / GELU -----------------------------------------------------------------

Deno.test("erf() matches reference values to 1e-15 relative", () => {
  const ref: [number, number][] = [
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [-3, -0.9999779095030014],
    [0.1, 0.1124629160182849],
    [1e-10, 1.1283791670955126e-10],
    [0, 0],
  ];
  for (const [x, e] of ref) {
    assert(Math.abs(erf(x) - e) <= 1e-15 * Math.abs(e), `erf(${x}) = ${erf(x)}, expected ${e}`);
  }
});

Deno.test("erfc() keeps its relative precision in the tail", () => {
  const ref: [number, number][] = [
    [3, 2.209049699858544e-5],
    [5, 1.5374597944280349e-12],
    [10, 2.088487583762545e-45],
    [-1, 1.8427007929497148],
  ];
  for (const [x, e] of ref) {
    assert(Math.abs(erfc(x) - e) <= 2e-15 * e, `erfc(${x}) = ${erfc(x)}, expected ${e}`);
  }
});

Deno.test("gelu() and geluGrad() match the erf definition", () => {
  assertAllClose([gelu(1), gelu(-1), gelu(0)], [0.8413447460685429, -0.15865525393145707, 0], {
    atol: 1e-16,
    rtol: 1e-15,
  });
  // deep negative tail: 0.5·x·erfc(−x/√2) is tiny but not 0
  assert(gelu(-10) < 0 && gelu(-10) > -1e-20, `gelu(-10) = ${gelu(-10)}`);
  for (const x of [-3, -0.7, 0, 0.3, 2.5]) {
    const h = 1e-5;
    const fd = (gelu(x + h) - gelu(x - h)) / (2 * h);
    assert(Math.abs(geluGrad(x) - fd) < 1e-9, `geluGrad(${x}) = ${geluGrad(x)} vs ${fd}`);
  }
});

// ---- forward values vs naive loops -------------------------------------------------

Deno.test("layernormForward() matches the formula for rows=3, C=7", () => {
  const rng = new Rng(1);
  const [rows, C, eps] = [3, 7, 1e-5];
  const inp = randArray(rng, rows * C, 5, 6); // large mean: two-pass variance matters
  const weight = randArray(rng, C);
  const bias = randArray(rng, C);
  const out = new F64(rows * C);
  const mean = new F64(rows);
  const rstd = new F64(rows);
  layernormForward({ out, mean, rstd, inp, weight, bias }, { rows, C, eps });
  const expected = new F64(rows * C);
  for (let r = 0; r < rows; r++) {
    const x = [...inp.subarray(r * C, (r + 1) * C)];
    const m = x.reduce((a, b) => a + b) / C;
    const v = x.reduce((a, b) => a + (b - m) ** 2, 0) / C;
    x.forEach((
      xi,
      c,
    ) => (expected[r * C + c] = ((xi - m) / Math.sqrt(v + eps)) * weight[c] + bias[c]));
    assertAllClose([mean[r], rstd[r]], [m, 1 / Math.sqrt(v + eps)], { atol: 1e-12, rtol: 1e-12 });
  }
  assertAllClose(out, expected, { atol: 1e-12, rtol: 1e-12 });
});

Deno.test("softmaxForward() matches naive softmax and survives large inputs", () => {
  const rng = new Rng(2);
  const [rows, C, scale] = [3, 7, 0.5];
  const inp = randArray(rng, rows * C, -3, 3);
  inp[0] = 2000; // exp(1000) would overflow without the max subtraction
  const out = new F64(rows * C);
  softmaxForward({ out, inp }, { rows, C, scale });
  for (let r = 0; r < rows; r++) {
    const z = [...inp.subarray(r * C, (r + 1) * C)].map((x) => scale * x);
    const m = Math.max(...z);
    const e = z.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b);
    assertAllClose(out.subarray(r * C, (r + 1) * C), e.map((x) => x / s), {
      atol: 1e-15,
      rtol: 1e-12,
    });
  }
});

Deno.test("splitHeadsForward() and mergeHeadsForward() follow the [B, NH, N, HS] layout", () => {
  const [B, N, NH, HS] = [2, 3, 2, 3];
  const C = NH * HS;
  const qkv = new F64(B * N * 3 * C).map((_, i) => i);
  const n = B * NH * N * HS;
  const [q, k, v] = [new F64(n), new F64(n), new F64(n)];
  splitHeadsForward({ q, k, v, qkv }, { B, N, NH, HS });
  const merged = new F64(n);
  mergeHeadsForward({ out: merged, inp: k }, { B, N, NH, HS });
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < N; t++) {
        for (let d = 0; d < HS; d++) {
          const i = ((b * NH + h) * N + t) * HS + d;
          const src = (b * N + t) * 3 * C + h * HS + d;
          assert(
            q[i] === qkv[src] && k[i] === qkv[src + C] && v[i] === qkv[src + 2 * C],
            `at ${i}`,
          );
          assert(merged[(b * N + t) * C + h * HS + d] === qkv[src + C], `merge at ${i}`);
        }
      }
    }
  }
});

Deno.test("gatherRowsForward() picks rows, fills mask tokens and rejects bad indices", () => {
  const inp = new F64([1, 2, 3, 4, 5, 6]);
  const out = new F64(8).fill(NaN);
  const index = new Int32Array([2, -1, 0, -1]);
  gatherRowsForward({ out, inp, index, fill: new F64([9, 8]) }, { rows: 4, C: 2 });
  assertAllClose(out, [5, 6, 9, 8, 1, 2, 9, 8], { atol: 0, rtol: 0 });
  gatherRowsForward({ out, inp, index }, { rows: 4, C: 2 });
  assertAllClose(out, [5, 6, 0, 0, 1, 2, 0, 0], { atol: 0, rtol: 0 });
  assertThrows(
    () => gatherRowsForward({ out, inp, index: new Int32Array([0, 3, 0, 0]) }, { rows: 4, C: 2 }),
    RangeError,
    "index[1] must be < 3",
  );
});

Deno.test("patchify() matches a naive [B, C, H, W] → [B, L, C·P·P] loop for B=2, C=3, P=2", () => {
  const [B, C, H, W, P] = [2, 3, 4, 6, 2];
  const inp = new F64(B * C * H * W).map((_, i) => i);
  const out = new F64(inp.length);
  patchify({ out, inp }, { B, C, H, W, P });
  const GW = W / P;
  const L = (H / P) * GW;
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      for (let c = 0; c < C; c++) {
        for (let i = 0; i < P; i++) {
          for (let j = 0; j < P; j++) {
            const y = Math.floor(l / GW) * P + i;
            const x = (l % GW) * P + j;
            const got = out[(b * L + l) * C * P * P + (c * P + i) * P + j];
            assert(
              got === inp[((b * C + c) * H + y) * W + x],
              `b ${b} l ${l} c ${c} i ${i} j ${j}`,
            );
          }
        }
      }
    }
  }
  assertThrows(() => patchify({ out, inp }, { B, C, H: 4, W: 6, P: 4 }), RangeError, "divisible");
});

Deno.test("standardizeRows() uses the unbiased variance for rows=3, C=7", () => {
  const rng = new Rng(3);
  const [rows, C, eps] = [3, 7, 1e-6];
  const inp = randArray(rng, rows * C, 100, 101);
  const out = new F64(rows * C);
  standardizeRows({ out, inp }, { rows, C, eps });
  for (let r = 0; r < rows; r++) {
    const x = [...inp.subarray(r * C, (r + 1) * C)];
    const m = x.reduce((a, b) => a + b) / C;
    const v = x.reduce((a, b) => a + (b - m) ** 2, 0) / (C - 1);
    assertAllClose(out.subarray(r * C, (r + 1) * C), x.map((xi) => (xi - m) / Math.sqrt(v + eps)), {
      atol: 1e-10,
      rtol: 1e-10,
    });
  }
  assertThrows(
    () => standardizeRows({ out, inp }, { rows: 21, C: 1, eps }),
    RangeError,
    "C must be",
  );
});

Deno.test("add() does residual and broadcast adds", () => {
  const out = new F64(6);
  add({ out, a: new F64([1, 2, 3, 4, 5, 6]), b: new F64([10, 20, 30]) });
  assertAllClose(out, [11, 22, 33, 14, 25, 36], { atol: 0, rtol: 0 });
  add({ out, a: out, b: out });
  assertAllClose(out, [22, 44, 66, 28, 50, 72], { atol: 0, rtol: 0 });
  assertThrows(() => add({ out, a: out, b: new F64(4) }), RangeError, "must divide");
});

/** Naive `op(a)·op(b)` for one matrix, indices spelled out. */
function naiveMatmul(
  a: Float64Array,
  b: Float64Array,
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
): Float64Array {
  const c = new F64(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        s += (transA ? a[k * M + i] : a[i * K + k]) * (transB ? b[j * K + k] : b[k * N + j]);
      }
      c[i * N + j] = s;
    }
  }
  return c;
}

Deno.test("matmulForward() matches naive loops for every transpose, batch, bias, gelu and accumulate", () => {
  const rng = new Rng(4);
  const [M, N, K, batch] = [3, 7, 5, 2];
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      for (const mode of ["plain", "bias", "gelu", "accumulate"] as const) {
        const a = randArray(rng, batch * M * K);
        const b = randArray(rng, batch * K * N);
        const bias = randArray(rng, N);
        const out0 = randArray(rng, batch * M * N);
        const out = out0.slice();
        const pre = new F64(batch * M * N);
        const gelu_ = mode === "gelu";
        matmulForward(
          {
            out,
            a,
            b,
            bias: mode === "plain" || mode === "accumulate" ? undefined : bias,
            pre: gelu_ ? pre : undefined,
          },
          { M, N, K, transA, transB, batch, accumulate: mode === "accumulate", gelu: gelu_ },
        );
        const expected = new F64(batch * M * N);
        const z = new F64(batch * M * N);
        for (let t = 0; t < batch; t++) {
          const c = naiveMatmul(
            a.subarray(t * M * K, (t + 1) * M * K),
            b.subarray(t * K * N, (t + 1) * K * N),
            M,
            N,
            K,
            transA,
            transB,
          );
          for (let i = 0; i < M * N; i++) {
            const j = t * M * N + i;
            z[j] = c[i] + (mode === "bias" || gelu_ ? bias[i % N] : 0);
            expected[j] = gelu_ ? gelu(z[j]) : mode === "accumulate" ? out0[j] + z[j] : z[j];
          }
        }
        const what = `transA ${transA} transB ${transB} ${mode}`;
        assertAllClose(out, expected, { atol: 1e-12, rtol: 1e-12 }, what);
        if (gelu_) assertAllClose(pre, z, { atol: 1e-12, rtol: 1e-12 }, `${what} pre`);
      }
    }
  }
  assertThrows(
    () =>
      matmulForward({ out: new F64(1), a: new F64(1), b: new F64(1) }, {
        M: 1,
        N: 1,
        K: 1,
        gelu: true,
        accumulate: true,
      }),
    RangeError,
    "Cannot run matmul: gelu and accumulate cannot be combined",
  );
});

Deno.test("smoothL1Loss() value matches a naive weighted mean for beta=2", () => {
  const rng = new Rng(5);
  const [rows, C, beta] = [5, 3, 2];
  const inp = randArray(rng, rows * C, -4, 4);
  const target = randArray(rng, rows * C, -4, 4);
  const weight = new F64([0, 1, 0, 1, 1]);
  const loss = new F64(1);
  smoothL1Loss({ loss, dinp: new F64(rows * C), inp, target, weight }, { rows, C, beta });
  let num = 0;
  for (let r = 0; r < rows; r++) {
    let row = 0;
    for (let c = 0; c < C; c++) {
      const d = Math.abs(inp[r * C + c] - target[r * C + c]);
      row += d < beta ? (0.5 * d * d) / beta : d - 0.5 * beta;
    }
    num += weight[r] * (row / C);
  }
  assertAllClose(loss, [num / 3], { atol: 1e-14, rtol: 1e-14 });
});

Deno.test("cosineLoss() value matches 1 − cos averaged over weighted rows", () => {
  const inp = new F64([1, 0, 0, 1, 1, 0, 3, 4, 0]);
  const target = new F64([0, 1, 0, 2, 2, 0, -3, -4, 0]);
  const loss = new F64(1);
  cosineLoss({ loss, dinp: new F64(9), inp, target, weight: new F64([1, 1, 2]) }, {
    rows: 3,
    C: 3,
  });
  assertAllClose(loss, [(1 + 0 + 2 * 2) / 4], { atol: 1e-15, rtol: 1e-15 });
});

Deno.test("crossEntropyLoss() value matches −Σ t·log softmax with one-hot targets", () => {
  const logits = new F64([2, 1, 0, 0, 0, 0]);
  const target = new F64([1, 0, 0, 0, 0, 1]);
  const loss = new F64(1);
  crossEntropyLoss({ loss, dlogits: new F64(6), logits, target }, { rows: 2, C: 3 });
  const l0 = -(2 - Math.log(Math.exp(2) + Math.exp(1) + 1));
  assertAllClose(loss, [(l0 + Math.log(3)) / 2], { atol: 1e-15, rtol: 1e-14 });
});

Deno.test("gradNorm() computes the global norm and the clip factor", () => {
  const norm = new F64(1);
  const clipScale = new F64(1);
  gradNorm({ norm, clipScale, grad: new F64([3, 4]) }, { maxNorm: 1 });
  assertAllClose([norm[0], clipScale[0]], [5, 1 / (5 + 1e-6)], { atol: 0, rtol: 1e-15 });
  gradNorm({ norm, clipScale, grad: new F64([3, 4]) }, { maxNorm: Infinity });
  assertAllClose(clipScale, [1], { atol: 0, rtol: 0 });
});

// ---- AdamW ------------------------------------------------------------------------------------

Deno.test("adamw() matches a scalar torch-style AdamW for 3 steps, 2 segments and clipping", () => {
  const rng = new Rng(6);
  const n = 10;
  const offsets = new Int32Array([0, 4, 9]); // element 9 belongs to no segment
  const hyper = new F64([1, 0.05, 0.3, 0]); // (lrScale, wd) per segment
  const [lr, beta1, beta2, eps] = [0.01, 0.9, 0.95, 1e-8];
  const param = randArray(rng, n);
  const m = new F64(n);
  const v = new F64(n);
  const ref = { p: [...param], m: new Array(n).fill(0), v: new Array(n).fill(0) };
  for (let step = 1; step <= 3; step++) {
    const grad = randArray(rng, n, -2, 2);
    const clip = step === 2 ? 0.25 : 1;
    adamw(
      { param, grad, m, v, offsets, hyper, clipScale: step === 2 ? new F64([clip]) : undefined },
      { lr, beta1, beta2, eps, step },
    );
    for (let i = 0; i < 9; i++) {
      const s = i < 4 ? 0 : 1;
      const groupLr = lr * hyper[2 * s];
      const g = grad[i] * clip;
      ref.p[i] -= groupLr * hyper[2 * s + 1] * ref.p[i]; // torch: p.mul_(1 − lr·wd)
      ref.m[i] = beta1 * ref.m[i] + (1 - beta1) * g;
      ref.v[i] = beta2 * ref.v[i] + (1 - beta2) * g * g;
      const denom = Math.sqrt(ref.v[i]) / Math.sqrt(1 - beta2 ** step) + eps;
      ref.p[i] -= (groupLr / (1 - beta1 ** step)) * (ref.m[i] / denom);
    }
    assertAllClose(param, ref.p, { atol: 1e-15, rtol: 1e-13 }, `param after step ${step}`);
    assertAllClose(m, ref.m, { atol: 1e-15, rtol: 1e-13 }, `m after step ${step}`);
    assertAllClose(v, ref.v, { atol: 1e-15, rtol: 1e-13 }, `v after step ${step}`);
  }
  assertThrows(
    () => adamw({ param, grad: param, m, v, offsets, hyper }, { lr, beta1, beta2, eps, step: 0 }),
    RangeError,
    "step must be an integer >= 1",
  );
});

// ---- bad input ------------------------------------------------------------------------------

Deno.test("layernormForward() rejects a wrong-sized buffer naming it", () => {
  const b = (n: number): Float64Array => new F64(n);
  assertThrows(
    () =>
      layernormForward(
        { out: b(20), mean: b(3), rstd: b(3), inp: b(21), weight: b(7), bias: b(7) },
        { rows: 3, C: 7, eps: 1e-5 },
      ),
    RangeError,
    "Cannot run layernorm: out must have rows·C = 21 elements, current value is 20",
  );
});
