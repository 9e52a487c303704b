/**
 * The CPU backend's worker pool: every parallel op with `threads: 2` (split at any size)
 * matches `threads: 1` on awkward shapes and views at nonzero offsets — bit for bit for
 * elementwise and row ops, within 1e-6 relative for column reductions — and whole dBOT
 * training steps are bit-identical run to run and still match the PyTorch golden values.
 */
import type { Tensor } from "../src/backend/backend.ts";
import { view } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { POOL_OP_LIST, POOL_OPS } from "../src/backend/cpu/pool_ops.ts";
import { type DbotConfig, DbotModel } from "../src/models/dbot.ts";
import { AdamW, PRETRAIN_ADAMW } from "../src/train/adamw.ts";
import { golden, goldenConfig } from "./golden.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { assertAllClose } from "./helpers.ts";
import { requires } from "./requires.ts";

function assertMatch(s: string, re: RegExp): void {
  assert(re.test(s), `expected "${s}" to match ${re}`);
}

const ROWS = [1, 3, 7, 65, 197 * 2];
const CS = [1, 7, 96, 768];

/** A backend pair: the single-threaded reference and a 2-thread one that splits every op. */
function pair(): { one: CpuBackend; two: CpuBackend; dispose: () => void } {
  const one = new CpuBackend({ gemm: "ts", threads: 1 });
  const two = new CpuBackend({ gemm: "ts", threads: 2, minParallelWork: 1 });
  return { one, two, dispose: () => (one.dispose(), two.dispose()) };
}

/**
 * A tensor of `shape` at a nonzero offset inside a larger storage, filled with the
 * same seeded values on both backends.
 */
function twin(
  be: [CpuBackend, CpuBackend],
  shape: number[],
  seed: number,
  opts: { lo?: number; hi?: number; dtype?: "i32"; data?: Int32Array | Float32Array } = {},
): [Tensor, Tensor] {
  const size = shape.reduce((a, b) => a * b, 1);
  const pad = 3 + (seed % 5);
  const data = opts.data ??
    new Rng(seed).uniformArray(size + 2 * pad, opts.lo ?? -3, opts.hi ?? 3);
  return be.map((b) => {
    const whole = b.tensor([size + 2 * pad], opts.dtype ?? "f32");
    if (opts.data) {
      const full = opts.dtype === "i32"
        ? new Int32Array(size + 2 * pad)
        : new Float32Array(size + 2 * pad);
      full.set(opts.data, pad);
      b.upload(whole, full);
    } else b.upload(whole, data as Float32Array);
    return view(whole, pad, shape);
  }) as [Tensor, Tensor];
}

/** Downloads `[ref, par]` of each listed output pair and compares them. */
async function same(
  be: [CpuBackend, CpuBackend],
  outs: [Tensor, Tensor][],
  what: string,
  rtol = 0,
): Promise<void> {
  for (const [i, [a, b]] of outs.entries()) {
    const [x, y] = [await be[0].download(a), await be[1].download(b)];
    if (rtol === 0) assertEquals(y, x, `${what} output ${i}`);
    else {
      let scale = 0;
      for (const v of x) scale = Math.max(scale, Math.abs(v));
      assertAllClose(y, x, { atol: rtol * scale, rtol }, `${what} output ${i}`);
    }
  }
}

Deno.test("CpuBackend({ threads: 2 }) describes its op threads", () => {
  const { one, two, dispose } = pair();
  assertMatch(two.description, /, 2 threads,/);
  assertMatch(one.description, /, 1 thread,/);
  assertEquals(two.threads, 2);
  dispose();
});

Deno.test("elementwise ops with threads=2 match threads=1 exactly", async () => {
  const { one, two, dispose } = pair();
  const be: [CpuBackend, CpuBackend] = [one, two];
  for (const rows of ROWS) {
    for (const C of CS) {
      const s = rows * 31 + C;
      const inp = twin(be, [rows, C], s);
      const dout = twin(be, [rows, C], s + 1);
      const out = twin(be, [rows, C], s + 2);
      const out2 = twin(be, [rows, C], s + 3);
      const pos = twin(be, [C], s + 4);
      const scale = twin(be, [rows], s + 5, { lo: 0, hi: 2 });
      be.forEach((b, i) => {
        b.gelu({ out: out[i], inp: inp[i] });
        b.geluBackward({ dinp: out2[i], dout: dout[i], inp: inp[i] });
      });
      await same(be, [out, out2], `gelu/geluBackward rows=${rows} C=${C}`);
      be.forEach((b, i) => {
        b.add({ out: out[i], a: inp[i], b: dout[i] });
        b.add({ out: out2[i], a: inp[i], b: pos[i] });
      });
      await same(be, [out, out2], `add rows=${rows} C=${C}`);
      be.forEach((b, i) => {
        b.scaleRows({ out: out[i], inp: inp[i], scale: scale[i] }, { rows, C });
        b.add({ out: out2[i], a: out2[i], b: inp[i] }); // in place
      });
      await same(be, [out, out2], `scaleRows/add in place rows=${rows} C=${C}`);
    }
  }
  dispose();
});

Deno.test("row ops (softmax, layernorm, standardize, gather) with threads=2 match threads=1 exactly", async () => {
  const { one, two, dispose } = pair();
  const be: [CpuBackend, CpuBackend] = [one, two];
  for (const rows of ROWS) {
    for (const C of CS) {
      const s = rows * 17 + C;
      const inp = twin(be, [rows, C], s);
      const dout = twin(be, [rows, C], s + 1);
      const out = twin(be, [rows, C], s + 2);
      const dinp = twin(be, [rows, C], s + 3);
      const [w, bias] = [twin(be, [C], s + 4), twin(be, [C], s + 5)];
      const [mean, rstd] = [twin(be, [rows], s + 6), twin(be, [rows], s + 7)];
      be.forEach((b, i) => {
        b.softmax({ out: out[i], inp: inp[i] }, { rows, C, scale: 0.37 });
        b.softmaxBackward({ dinp: dinp[i], dout: dout[i], out: out[i] }, { rows, C, scale: 0.37 });
      });
      await same(be, [out, dinp], `softmax rows=${rows} C=${C}`);
      be.forEach((b, i) => {
        b.layernorm(
          { out: out[i], mean: mean[i], rstd: rstd[i], inp: inp[i], weight: w[i], bias: bias[i] },
          { rows, C, eps: 1e-6 },
        );
      });
      await same(be, [out, mean, rstd], `layernorm rows=${rows} C=${C}`);
      if (C >= 2) {
        be.forEach((b, i) =>
          b.standardizeRows({ out: dinp[i], inp: inp[i] }, { rows, C, eps: 1e-6 })
        );
        await same(be, [dinp], `standardizeRows rows=${rows} C=${C}`);
      }
      // gather: a permutation of 2·rows source rows with some fill rows
      const index = new Int32Array(rows);
      for (let r = 0; r < rows; r++) index[r] = r % 3 === 1 ? -1 : (r * 7 + 3) % (2 * rows);
      const src = twin(be, [2 * rows, C], s + 8);
      const idx = twin(be, [rows], 0, { dtype: "i32", data: index });
      be.forEach((b, i) => b.gatherRows({ out: out[i], inp: src[i], index: idx[i] }, { rows, C }));
      await same(be, [out], `gatherRows rows=${rows} C=${C}`);
      be.forEach((b, i) =>
        b.gatherRows({ out: out[i], inp: src[i], index: idx[i], fill: w[i] }, { rows, C })
      );
      await same(be, [out], `gatherRows with fill rows=${rows} C=${C}`);
    }
  }
  dispose();
});

Deno.test("column reductions with threads=2 match threads=1 within 1e-6 relative", async () => {
  const { one, two, dispose } = pair();
  const be: [CpuBackend, CpuBackend] = [one, two];
  for (const rows of ROWS) {
    for (const C of CS) {
      const s = rows * 13 + C;
      const inp = twin(be, [rows, C], s);
      const dout = twin(be, [rows, C], s + 1);
      const out = twin(be, [rows, C], s + 2);
      const dinp = twin(be, [rows, C], s + 3);
      const [w, bias] = [twin(be, [C], s + 4), twin(be, [C], s + 5)];
      const [dw, db] = [twin(be, [C], s + 6), twin(be, [C], s + 7)];
      const [mean, rstd] = [twin(be, [rows], s + 8), twin(be, [rows], s + 9)];
      be.forEach((b, i) => {
        b.layernorm(
          { out: out[i], mean: mean[i], rstd: rstd[i], inp: inp[i], weight: w[i], bias: bias[i] },
          { rows, C, eps: 1e-6 },
        );
        for (const accumulate of [false, true]) {
          b.layernormBackward({
            dinp: dinp[i],
            dweight: dw[i],
            dbias: db[i],
            dout: dout[i],
            inp: inp[i],
            weight: w[i],
            mean: mean[i],
            rstd: rstd[i],
          }, { rows, C, accumulate });
        }
      });
      await same(be, [dinp], `layernormBackward dinp rows=${rows} C=${C}`);
      await same(be, [dw, db], `layernormBackward dweight/dbias rows=${rows} C=${C}`, 1e-6);
      be.forEach((b, i) => b.biasGrad({ dbias: db[i], dout: dout[i] }, { rows, C }));
      await same(be, [db], `biasGrad rows=${rows} C=${C}`, 1e-6);
      const [norm, clip] = [twin(be, [1], 1), twin(be, [1], 2)];
      be.forEach((b, i) =>
        b.gradNorm({ norm: norm[i], clipScale: clip[i], grad: inp[i] }, { maxNorm: 1 })
      );
      await same(be, [norm, clip], `gradNorm rows=${rows} C=${C}`, 1e-6);
    }
  }
  dispose();
});

Deno.test("head permutations and patchify with threads=2 match threads=1 exactly", async () => {
  const { one, two, dispose } = pair();
  const be: [CpuBackend, CpuBackend] = [one, two];
  for (const [B, N, NH, HS] of [[1, 1, 1, 1], [3, 7, 2, 5], [7, 65, 3, 64], [2, 197, 12, 64]]) {
    const n = B * N * NH * HS;
    const s = B + N + NH + HS;
    const qkv = twin(be, [B, N, 3 * NH * HS], s);
    const [q, k, v] = [twin(be, [n], s + 1), twin(be, [n], s + 2), twin(be, [n], s + 3)];
    const tok = twin(be, [n], s + 4);
    const dims = { B, N, NH, HS };
    be.forEach((b, i) => {
      b.splitHeads({ q: q[i], k: k[i], v: v[i], qkv: qkv[i] }, dims);
      b.mergeHeads({ out: tok[i], inp: v[i] }, dims);
    });
    await same(be, [q, k, v, tok], `splitHeads/mergeHeads ${[B, N, NH, HS]}`);
    be.forEach((b, i) => {
      b.mergeHeadsBackward({ dinp: k[i], dout: tok[i] }, dims);
      b.splitHeadsBackward({ dqkv: qkv[i], dq: q[i], dk: k[i], dv: tok[i] }, dims);
    });
    await same(be, [k, qkv], `mergeHeadsBackward/splitHeadsBackward ${[B, N, NH, HS]}`);
  }
  for (const [B, C, H, W, P] of [[1, 1, 4, 4, 2], [3, 3, 12, 8, 4], [7, 3, 32, 32, 4]]) {
    const img = twin(be, [B, C, H, W], B + H);
    const out = twin(be, [B * C * H * W], B + W + 1);
    be.forEach((b, i) => b.patchify({ out: out[i], inp: img[i] }, { B, C, H, W, P }));
    await same(be, [out], `patchify ${[B, C, H, W, P]}`);
  }
  dispose();
});

Deno.test("matmul epilogue and adamw with threads=2 match threads=1 exactly", async () => {
  const { one, two, dispose } = pair();
  const be: [CpuBackend, CpuBackend] = [one, two];
  for (const M of [1, 3, 65, 394]) {
    for (const N of [1, 7, 96]) {
      const K = 5;
      const s = M + N;
      const a = twin(be, [M, K], s);
      const w = twin(be, [N, K], s + 1);
      const bias = twin(be, [N], s + 2);
      const [out, pre, out2] = [
        twin(be, [M, N], s + 3),
        twin(be, [M, N], s + 4),
        twin(be, [M, N], s + 5),
      ];
      be.forEach((b, i) => {
        b.matmul(
          { out: out[i], a: a[i], b: w[i], bias: bias[i], pre: pre[i] },
          { M, N, K, transB: true, gelu: true },
        );
        b.matmul({ out: out2[i], a: a[i], b: w[i], bias: bias[i] }, { M, N, K, transB: true });
      });
      await same(be, [out, pre, out2], `matmul epilogue M=${M} N=${N}`);
    }
  }
  for (const n of [1, 7, 1000, 70001]) {
    const cuts = [0, Math.floor(n / 3), Math.floor(n / 2), n];
    const [p, g, m, v] = [
      twin(be, [n], 1),
      twin(be, [n], 2),
      twin(be, [n], 3),
      twin(be, [n], 4, { lo: 0 }),
    ];
    const off = twin(be, [4], 0, { dtype: "i32", data: new Int32Array(cuts) });
    const hyp = twin(be, [6], 0, { data: new Float32Array([1, 0.05, 0.5, 0, 0.25, 0.1]) });
    const clip = twin(be, [1], 0, { data: new Float32Array([0.7]) });
    for (let step = 1; step <= 3; step++) {
      be.forEach((b, i) =>
        b.adamw(
          {
            param: p[i],
            grad: g[i],
            m: m[i],
            v: v[i],
            offsets: off[i],
            hyper: hyp[i],
            clipScale: clip[i],
          },
          { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, step },
        )
      );
    }
    await same(be, [p, m, v], `adamw n=${n}`);
  }
  dispose();
});

// Skipped (reason printed) where OpenBLAS is missing, unless DBOT_REQUIRE_OPENBLAS=1.
const openblas = await requires("openblas");
openblas.test("with OpenBLAS: matmul split over the pool (batched, rows, columns, epilogues) and biasGrad as sgemv match the TS reference", async () => {
  // Attention's products: each thread calls OpenBLAS on its share of the batch. Needs
  // OpenBLAS (CI installs it); the reference is the pure-TS GEMM on one thread.
  const one = new CpuBackend({ gemm: "ts", threads: 1 });
  const two = new CpuBackend({ gemm: "openblas", threads: 2, minParallelWork: 1 });
  const be: [CpuBackend, CpuBackend] = [one, two];
  const cases: [number, number, number, number, boolean, boolean, boolean][] = [
    // M, N, K, batch, transA, transB, accumulate
    [65, 65, 64, 6, false, true, false],
    [65, 64, 65, 5, false, false, true],
    [17, 64, 17, 3, true, false, false],
    [3, 1, 2, 2, true, true, true],
    [1, 1, 1, 7, false, false, false],
  ];
  for (const [M, N, K, batch, transA, transB, accumulate] of cases) {
    const s = M * 7 + N + batch;
    const a = twin(be, [batch, M, K], s);
    const b = twin(be, [batch, K, N], s + 1);
    const out = twin(be, [batch, M, N], s + 2);
    be.forEach((x, i) =>
      x.matmul({ out: out[i], a: a[i], b: b[i] }, { M, N, K, batch, transA, transB, accumulate })
    );
    await same(be, [out], `batched ${M}x${N}x${K} b${batch}`, 1e-6);
  }
  // Large single products: one OpenBLAS call per thread on a slab of rows (epilogue fused)
  // or, with few rows, of columns (epilogue after).
  const single: [number, number, number, boolean, boolean][] = [
    // M, N, K, transA, transB
    [130, 96, 40, false, true], // rows
    [129, 33, 17, true, false], // rows, odd split
    [130, 2049, 8, false, true], // rows, each slab in blocks of 31 rows (EPILOGUE_BLOCK)
    [131, 2049, 9, true, false], // the same with A transposed
    [20, 300, 64, false, false], // columns
    [8, 257, 40, true, true], // columns, odd split
  ];
  for (const [M, N, K, transA, transB] of single) {
    for (const mode of ["plain", "bias", "gelu", "accumulate"] as const) {
      const s = M + N + K;
      const a = twin(be, [M, K], s);
      const b = twin(be, [K, N], s + 1);
      const bias = twin(be, [N], s + 2);
      const [out, pre] = [twin(be, [M, N], s + 3), twin(be, [M, N], s + 4)];
      const dims = {
        M,
        N,
        K,
        transA,
        transB,
        accumulate: mode === "accumulate",
        gelu: mode === "gelu",
      };
      be.forEach((x, i) =>
        x.matmul({
          out: out[i],
          a: a[i],
          b: b[i],
          bias: mode === "bias" || mode === "gelu" ? bias[i] : undefined,
          pre: mode === "gelu" ? pre[i] : undefined,
        }, dims)
      );
      const outs = mode === "gelu" ? [out, pre] : [out];
      await same(
        be,
        outs,
        `split ${M}x${N}x${K} ${transA ? "T" : "N"}${transB ? "T" : "N"} ${mode}`,
        1e-6,
      );
    }
  }
  // The bias gradient runs as OpenBLAS's sgemv (doutᵀ·1, accumulated) there.
  for (const [rows, C] of [[1, 7], [65, 1], [4160, 768], [3, 96]]) {
    const dout = twin(be, [rows, C], rows + C);
    const dbias = twin(be, [C], rows + C + 1);
    be.forEach((x, i) => x.biasGrad({ dbias: dbias[i], dout: dout[i] }, { rows, C }));
    await same(be, [dbias], `biasGrad ${rows}x${C}`, 1e-6);
  }
  one.dispose();
  two.dispose();
});

Deno.test("an error in a worker's share surfaces on the calling thread", () => {
  const be = new CpuBackend({ gemm: "ts", threads: 2, minParallelWork: 1 });
  const out = be.tensor([8, 2]);
  const inp = be.tensor([4, 2]);
  const index = be.tensor([8], "i32");
  be.upload(index, new Int32Array([0, 1, 2, 3, 0, 1, 2, 99])); // the last share's row is bad
  let message = "";
  try {
    be.gatherRows({ out, inp, index }, { rows: 8, C: 2 });
  } catch (e) {
    message = (e as Error).message;
  }
  assertMatch(message, /index\[\d\] must be < 4/);
  // the pool keeps working after the error
  be.upload(index, new Int32Array([0, 1, 2, 3, 0, 1, 2, 3]));
  be.gatherRows({ out, inp, index }, { rows: 8, C: 2 });
  be.dispose();
});

// ---- whole model ---------------------------------------------------------------------------

const g = golden;
const cfg: DbotConfig = goldenConfig(0.1);

/** Three forward/backward + AdamW steps (drop-path on) from the golden weights. */
async function train(be: CpuBackend): Promise<Float32Array[]> {
  const model = new DbotModel(be, cfg, 2);
  model.student.load(new Map(model.student.specs.map((s) => [s.name, g(s.name)])));
  model.teacher.params!.load(
    new Map(model.teacher.params!.specs.map((s) => [s.name, g(`teacher.${s.name}`)])),
  );
  const opt = new AdamW(be, model.student, PRETRAIN_ADAMW);
  const rng = new Rng(7);
  const losses: number[] = [];
  for (let step = 0; step < 3; step++) {
    model.setBatch(g("images"), g("noise"), rng);
    be.fill(model.student.grads!, 0);
    model.forwardBackward();
    opt.update(1e-3);
    losses.push((await be.download(model.loss))[0]);
  }
  return [
    new Float32Array(losses),
    (await be.download(model.student.params)) as Float32Array,
    (await be.download(model.student.grads!)) as Float32Array,
  ];
}

Deno.test("DbotModel training steps with threads=2 are bit-identical run to run", async () => {
  const runs: Float32Array[][] = [];
  for (let i = 0; i < 2; i++) {
    const be = new CpuBackend({ threads: 2, minParallelWork: 1 });
    runs.push(await train(be));
    be.dispose();
  }
  assertEquals(runs[1], runs[0]);
  const ref = new CpuBackend({ threads: 1 });
  const base = await train(ref);
  ref.dispose();
  assertAllClose(runs[0][0], base[0], { atol: 0, rtol: 1e-5 }, "loss vs threads=1");
  // AdamW turns rounding-level gradient differences near g = 0 into up to ~lr steps
  assertAllClose(runs[0][1], base[1], { atol: 1e-4, rtol: 1e-4 }, "params vs threads=1");
});

Deno.test("DbotModel.forwardBackward() with threads=2 matches PyTorch loss and gradients", async () => {
  const be = new CpuBackend({ threads: 2, minParallelWork: 1 });
  const model = new DbotModel(be, { ...cfg, dropPath: 0 }, 2);
  model.student.load(new Map(model.student.specs.map((s) => [s.name, g(s.name)])));
  model.teacher.params!.load(
    new Map(model.teacher.params!.specs.map((s) => [s.name, g(`teacher.${s.name}`)])),
  );
  model.setBatch(g("images"), g("noise"));
  be.fill(model.student.grads!, 0);
  model.forwardBackward();
  assertAllClose(await be.download(model.loss), g("loss"), { atol: 0, rtol: 1e-5 }, "loss");
  assertAllClose(await be.download(model.pred), g("pred"), { atol: 1e-5, rtol: 1e-4 }, "pred");
  for (const [name, grad] of await model.student.gradsToHost()) {
    assertAllClose(grad, g(`grad.${name}`), { atol: 1e-6, rtol: 1e-3 }, `grad.${name}`);
  }
  be.dispose();
});

Deno.test("the pool's workers run their backend's kernels: threads=2 matches threads=1 for js and wasm", async () => {
  const got: Record<string, Float32Array> = {};
  for (const kernels of ["js", "wasm"] as const) {
    const one = new CpuBackend({ gemm: "ts", threads: 1, kernels });
    const two = new CpuBackend({ gemm: "ts", threads: 2, minParallelWork: 1, kernels });
    const be: [CpuBackend, CpuBackend] = [one, two];
    const inp = twin(be, [197, 96], 11);
    const out = twin(be, [197, 96], 12);
    be.forEach((b, i) => b.gelu({ out: out[i], inp: inp[i] }));
    await same(be, [out], `gelu with ${kernels} kernels`);
    got[kernels] = (await two.download(out[1])) as Float32Array;
    one.dispose();
    two.dispose();
  }
  // the two kernel sets round differently, so a worker running the other set shows
  let differ = 0;
  for (let i = 0; i < got.js.length; i++) if (got.js[i] !== got.wasm[i]) differ++;
  assert(differ > 0, "JS and WebAssembly GELU give different bits somewhere");
});

Deno.test("POOL_OPS: one named record per op; static shares only for reductions and split GEMMs", () => {
  const names = Object.keys(POOL_OPS);
  assertEquals(POOL_OP_LIST.length, names.length);
  const statics = names.filter((n) => POOL_OPS[n as keyof typeof POOL_OPS].shares === "static");
  assertEquals(statics.sort(), ["biasGrad", "gemmSlab", "gradNorm", "layernormBackward"]);
  for (const [i, op] of POOL_OP_LIST.entries()) {
    assert(op === POOL_OPS[names[i] as keyof typeof POOL_OPS], `wire code ${i} is ${names[i]}`);
  }
});
