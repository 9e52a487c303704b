/**
 * The fast CPU kernels — WebAssembly SIMD (src/backend/cpu/simd/) and native
 * (src/backend/cpu/native.ts) — against the reference ops of src/backend/cpu/ref/ in f64,
 * on lengths around the SIMD width and the copy block, views at odd offsets of shared
 * memory, aliasing, and NaN; and CPU backends built on each kernel set against the
 * reference backend.
 */
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { BLOCK, wasmKernels } from "../src/backend/cpu/simd/simd.ts";
import { loadNativeKernels } from "../src/backend/cpu/native.ts";
import { type CpuKernels, kernelOps, REF_OPS } from "../src/backend/cpu/kernels.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import {
  KERNELS_WASM_FLAGS,
  KERNELS_WASM_SOURCE_SHA256,
} from "../src/backend/cpu/simd/kernels_wasm.ts";
import { gelu, geluGrad } from "../src/backend/cpu/ref/gelu.ts";
import { adamw } from "../src/backend/cpu/ref/adamw.ts";
import { biasGrad } from "../src/backend/cpu/ref/bias_grad.ts";
import { smoothL1Loss } from "../src/backend/cpu/ref/smooth_l1.ts";
import { standardizeRows } from "../src/backend/cpu/ref/standardize.ts";
import { patchify } from "../src/backend/cpu/ref/patchify.ts";
import { layernormBackward, layernormForward } from "../src/backend/cpu/ref/layernorm.ts";
import { softmaxBackward, softmaxForward } from "../src/backend/cpu/ref/softmax.ts";
import { assertAllClose } from "./helpers.ts";

const wasm = wasmKernels();
const native = loadNativeKernels();
/** CI builds the native library and sets DBOT_REQUIRE_NATIVE=1 so that a missing one fails. */
const requireNative = (() => {
  try {
    return Deno.env.get("DBOT_REQUIRE_NATIVE") === "1";
  } catch {
    return false;
  }
})();

/** Registers `fn` for both implementations: `[wasm] name` and `[native] name`. */
function kernelTest(name: string, fn: (k: CpuKernels) => void): void {
  Deno.test(`[wasm] ${name}`, () => {
    assert(wasm, "WebAssembly SIMD kernels did not instantiate (Deno always supports SIMD)");
    fn(wasm);
  });
  nativeTest(name, fn);
}

/** Registers `fn` for the native kernels only: `[native] name`. */
function nativeTest(name: string, fn: (k: CpuKernels) => void): void {
  Deno.test({
    name: `[native] ${name}`,
    ignore: "reason" in native && !requireNative,
    fn: () => {
      if ("reason" in native) {
        throw new Error(
          `DBOT_REQUIRE_NATIVE=1 but the native kernels did not load: ${native.reason}`,
        );
      }
      fn(native);
    },
  });
}

/** Seeded uniform [lo, hi). */
function uniform(n: number, lo: number, hi: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + (hi - lo) * (s / 2 ** 32);
  }
  return out;
}

/** `n` floats at an odd offset of a shared buffer, holding `values`. */
function sharedView(values: ArrayLike<number>, offset = 3): Float32Array {
  const sab = new SharedArrayBuffer(4 * (values.length + offset + 5));
  const v = new Float32Array(sab, 4 * offset, values.length);
  v.set(values);
  return v;
}

const LENGTHS = [0, 1, 3, 4, 5, 7, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 5];

kernelTest(
  "simd gelu/geluBackward match the f64 path on every length, in place and on views",
  (k) => {
    for (const n of LENGTHS) {
      const x = sharedView(uniform(n, -8, 8, n + 1));
      const dout = sharedView(uniform(n, -2, 2, n + 2));
      const want = Array.from(x, gelu);
      const out = new Float32Array(n);
      k.gelu(out, x);
      assertAllClose(out, want, { atol: 1e-6, rtol: 1e-6 }, `gelu n=${n}`);
      const wantGrad = Array.from(x, (v, i) => dout[i] * geluGrad(v));
      k.geluBackward(dout, dout, x); // dinp aliases dout
      assertAllClose(dout, wantGrad, { atol: 2e-6, rtol: 1e-6 }, `gelu' n=${n}`);
      k.gelu(x, x); // in place
      assertAllClose(x, want, { atol: 1e-6, rtol: 1e-6 }, `gelu in place n=${n}`);
    }
  },
);

kernelTest("simd gelu keeps NaN and saturates at ±large", (k) => {
  const x = new Float32Array([NaN, 100, -100, 1e30, 0, -0]);
  const out = new Float32Array(x.length);
  k.gelu(out, x);
  assert(Number.isNaN(out[0]), "gelu(NaN) must be NaN");
  assertEquals(Array.from(out.subarray(1)), [100, -0, 1e30, 0, -0].map(Math.fround));
  const g = new Float32Array(x.length);
  k.geluBackward(g, new Float32Array(x.length).fill(1), x);
  assert(Number.isNaN(g[0]), "gelu'(NaN) must be NaN");
  assertAllClose(g.subarray(1, 3), [1, 0], { atol: 1e-30, rtol: 0 }, "gelu'(±100)");
});

kernelTest("simd biasGelu (matmul epilogue) matches bias + gelu with and without pre", (k) => {
  for (const [M, N] of [[1, 1], [3, 5], [7, 130], [70, 3], [2, BLOCK + 3]]) {
    const c0 = uniform(M * N, -4, 4, M * 31 + N);
    const bias = sharedView(uniform(N, -1, 1, N));
    const z = Array.from(c0, (v, i) => Math.fround(v) + bias[i % N]);
    for (
      const [withBias, withGelu, withPre] of [[true, true, true], [true, true, false], [
        false,
        true,
        true,
      ], [true, false, false]]
    ) {
      const c = sharedView(c0, 1);
      const pre = withPre ? new Float32Array(M * N) : undefined;
      k.biasGelu(c, withBias ? bias : undefined, pre, M, N, withGelu);
      const zz = withBias ? z : Array.from(c0, Math.fround);
      const what = `M=${M} N=${N} bias=${withBias} gelu=${withGelu} pre=${withPre}`;
      assertAllClose(c, withGelu ? zz.map(gelu) : zz, { atol: 1e-6, rtol: 1e-6 }, what);
      if (pre) assertAllClose(pre, zz, { atol: 1e-6, rtol: 1e-7 }, `pre ${what}`);
    }
  }
});

kernelTest("simd softmax matches the f64 row softmax (scale, ±50 inputs, wide rows)", (k) => {
  for (const [rows, C] of [[1, 1], [3, 2], [5, 7], [40, 65], [591, 197], [2, BLOCK + 9]]) {
    const x = uniform(rows * C, -50, 50, rows + C);
    const want = new Float64Array(rows * C);
    softmaxForward({ out: want, inp: Float64Array.from(x, Math.fround) }, {
      rows,
      C,
      scale: 0.125,
    });
    const v = sharedView(x, 2);
    k.softmax(v, v, rows, C, 0.125); // in place
    assertAllClose(v, want, { atol: 1e-7, rtol: 2e-6 }, `softmax ${rows}x${C}`);
  }
  const nanRow = new Float32Array([1, NaN, 2, 3, 4, 5]);
  k.softmax(nanRow, nanRow, 2, 3, 1);
  assert(Array.from(nanRow.subarray(0, 3)).every(Number.isNaN), "a NaN row stays NaN");
  assertAllClose(nanRow.subarray(3), [0.09003057, 0.24472847, 0.66524096], { atol: 1e-7 });
});

kernelTest("simd layernorm matches the f64 layernorm (awkward widths, offset rows)", (k) => {
  for (const [rows, C] of [[1, 1], [3, 3], [7, 5], [65, 192], [4, 770], [2, BLOCK + 2]]) {
    const x = uniform(rows * C, -3, 5, rows * 7 + C);
    const w = uniform(C, 0.5, 1.5, C + 1);
    const b = uniform(C, -0.5, 0.5, C + 2);
    const f = (a: Float64Array) => Float64Array.from(a, Math.fround);
    const want = {
      out: new Float64Array(rows * C),
      mean: new Float64Array(rows),
      rstd: new Float64Array(rows),
    };
    layernormForward({ ...want, inp: f(x), weight: f(w), bias: f(b) }, { rows, C, eps: 1e-6 });
    const got = {
      out: sharedView(new Float32Array(rows * C), 1),
      mean: new Float32Array(rows),
      rstd: new Float32Array(rows),
    };
    k.layernorm(
      got.out,
      got.mean,
      got.rstd,
      sharedView(x),
      sharedView(w),
      sharedView(b),
      rows,
      C,
      1e-6,
    );
    const what = `layernorm ${rows}x${C}`;
    assertAllClose(got.out, want.out, { atol: 2e-6, rtol: 2e-6 }, what);
    assertAllClose(got.mean, want.mean, { atol: 1e-6, rtol: 1e-6 }, `${what} mean`);
    assertAllClose(got.rstd, want.rstd, { atol: 1e-6, rtol: 2e-6 }, `${what} rstd`);
  }
});

kernelTest("simd softmaxBackward matches the f64 op (in place, awkward widths)", (k) => {
  for (const [rows, C] of [[1, 1], [3, 5], [40, 65], [2, BLOCK + 3]]) {
    const y0 = uniform(rows * C, 0, 1, rows + C);
    const g0 = uniform(rows * C, -2, 2, rows * C);
    const f = (a: Float64Array) => Float64Array.from(a, Math.fround);
    const want = new Float64Array(rows * C);
    softmaxBackward({ dinp: want, dout: f(g0), out: f(y0) }, { rows, C, scale: 0.125 });
    const g = sharedView(g0);
    k.softmaxBackward(g, g, sharedView(y0, 1), rows, C, 0.125);
    assertAllClose(g, want, { atol: 1e-6, rtol: 1e-5 }, `softmaxBackward ${rows}x${C}`);
  }
});

kernelTest(
  "simd layernormBackward matches the f64 op (assign and accumulate, column sums added)",
  (k) => {
    for (const [rows, C] of [[1, 1], [3, 3], [7, 5], [65, 192], [2, BLOCK + 2]]) {
      for (const accumulate of [false, true]) {
        const f = (a: Float64Array) => Float64Array.from(a, Math.fround);
        const x = f(uniform(rows * C, -3, 5, rows + C));
        const g = f(uniform(rows * C, -1, 1, rows * 3 + C));
        const w = f(uniform(C, 0.5, 1.5, C));
        const d0 = f(uniform(rows * C, -1, 1, C + 9));
        const mean = new Float64Array(rows);
        const rstd = new Float64Array(rows);
        layernormForward(
          {
            out: new Float64Array(rows * C),
            mean,
            rstd,
            inp: x,
            weight: w,
            bias: new Float64Array(C),
          },
          { rows, C, eps: 1e-6 },
        );
        const want = {
          dinp: Float64Array.from(d0),
          dweight: new Float64Array(C).fill(0.5),
          dbias: new Float64Array(C).fill(-0.5),
        };
        layernormBackward(
          { ...want, dout: g, inp: x, weight: w, mean: f(mean), rstd: f(rstd) },
          { rows, C, accumulate },
        );
        const got = {
          dinp: sharedView(d0),
          dweight: new Float32Array(C).fill(0.5),
          dbias: new Float64Array(C).fill(-0.5),
        };
        k.layernormBackward(
          got.dinp,
          got.dweight,
          got.dbias,
          sharedView(g),
          sharedView(x),
          sharedView(w),
          Float32Array.from(mean),
          Float32Array.from(rstd),
          rows,
          C,
          accumulate,
        );
        const what = `layernormBackward ${rows}x${C} accumulate=${accumulate}`;
        assertAllClose(got.dinp, want.dinp, { atol: 2e-5, rtol: 1e-5 }, what);
        assertAllClose(got.dweight, want.dweight, { atol: 1e-4, rtol: 1e-5 }, `${what} dweight`);
        assertAllClose(got.dbias, want.dbias, { atol: 1e-4, rtol: 1e-5 }, `${what} dbias`);
      }
    }
  },
);

kernelTest("simd adamw matches the f64 op over segments, a sub-range and clipping", (k) => {
  const n = 2 * BLOCK + 37;
  const offsets = new Int32Array([0, 5, 5, BLOCK + 3, n]);
  const hyper = [1, 0.05, 2, 0, 0.5, 0.1, 1, 0];
  const f = (a: Float64Array) => Float64Array.from(a, Math.fround);
  const init = [
    uniform(n, -1, 1, 1),
    uniform(n, -1, 1, 2),
    uniform(n, -0.1, 0.1, 3),
    uniform(n, 0, 0.01, 4),
  ].map(f);
  const want = init.map((a) => Float64Array.from(a));
  const got = init.map((a) => sharedView(a));
  const range = { lo: 3, hi: n - 2 };
  const [beta1, beta2, eps, lr, clip] = [0.9, 0.95, 1e-8, 1e-2, 0.7];
  for (let step = 1; step <= 3; step++) {
    adamw(
      {
        param: want[0],
        grad: want[1],
        m: want[2],
        v: want[3],
        offsets,
        hyper: Float64Array.from(hyper),
        clipScale: new Float64Array([clip]),
      },
      { lr, beta1, beta2, eps, step },
      { range },
    );
    const [bc1, bc2] = [1 - beta1 ** step, 1 - beta2 ** step];
    for (let sg = 0; sg + 1 < offsets.length; sg++) {
      const lo = Math.max(offsets[sg], range.lo);
      const hi = Math.min(offsets[sg + 1], range.hi);
      if (lo >= hi) continue;
      const slr = lr * hyper[2 * sg];
      k.adamw({ param: got[0], grad: got[1], m: got[2], v: got[3] }, lo, hi, {
        clip,
        beta1,
        beta2,
        step: slr / bc1,
        invBc2: 1 / bc2,
        eps,
        decay: 1 - slr * hyper[2 * sg + 1],
      });
    }
  }
  for (const [i, name] of ["param", "grad", "m", "v"].entries()) {
    assertAllClose(got[i], want[i], { atol: 1e-6, rtol: 1e-5 }, `adamw ${name}`);
  }
  assertEquals(got[0][0], Math.fround(init[0][0]), "outside the range stays untouched");
});

kernelTest("kernelOps() runs the kernels after the reference's argument checks", (k) => {
  const n = 3 * 65 + 1;
  const x = Float32Array.from(uniform(n, -6, 6, 5));
  const run = (ops: typeof REF_OPS) => {
    const g = new Float32Array(n);
    ops.geluForward({ out: g, inp: x });
    const p = new Float32Array(n - 1);
    ops.softmaxForward({ out: p, inp: x.subarray(1) }, { rows: 3, C: 65, scale: 0.5 });
    return [g, p];
  };
  const fast = kernelOps(k);
  assertEquals(fast.name, k.name);
  const [ref, got] = [run(REF_OPS), run(fast)];
  assertAllClose(got[0], ref[0], { atol: 1e-6, rtol: 1e-6 }, "gelu");
  assertAllClose(got[1], ref[1], { atol: 1e-7, rtol: 1e-5 }, "softmax");
  assertThrows(
    () => fast.softmaxForward({ out: new Float32Array(5), inp: x }, { rows: 3, C: 65, scale: 1 }),
    RangeError,
    "Cannot run softmax: out must have rows·C = 195 elements, current value is 5",
  );
  // f64 arrays (the finite-difference tests) take the reference loop
  const x64 = Float64Array.from(x);
  const o64 = new Float64Array(n);
  fast.geluForward({ out: o64, inp: x64 });
  const r64 = new Float64Array(n);
  REF_OPS.geluForward({ out: r64, inp: x64 });
  assertEquals(o64, r64, "f64 gelu is the reference");
});

/** Every op of `be` on one set of inputs, each output downloaded. */
async function runOps(be: CpuBackend): Promise<Record<string, Float32Array>> {
  const [rows, C] = [67, 130];
  const t = (n: number, seed: number, lo = -3, hi = 3) => {
    const x = be.tensor([n]);
    be.upload(x, Float32Array.from(uniform(n, lo, hi, seed)));
    return x;
  };
  const inp = t(rows * C, 1);
  const dout = t(rows * C, 2);
  const [w, b] = [t(C, 3, 0.5, 1.5), t(C, 4)];
  const outs: Record<string, ReturnType<CpuBackend["tensor"]>> = {};
  const o = (name: string, n: number) => (outs[name] = be.tensor([n]));
  be.gelu({ out: o("gelu", rows * C), inp });
  be.geluBackward({ dinp: o("geluBackward", rows * C), dout, inp });
  be.softmax({ out: o("softmax", rows * C), inp }, { rows, C, scale: 0.3 });
  be.softmaxBackward({ dinp: o("softmaxBackward", rows * C), dout, out: outs.softmax }, {
    rows,
    C,
    scale: 0.3,
  });
  const [mean, rstd] = [o("mean", rows), o("rstd", rows)];
  be.layernorm({ out: o("layernorm", rows * C), mean, rstd, inp, weight: w, bias: b }, {
    rows,
    C,
    eps: 1e-6,
  });
  const [dw, db] = [o("dweight", C), o("dbias", C)];
  be.layernormBackward(
    {
      dinp: o("layernormBackward", rows * C),
      dweight: dw,
      dbias: db,
      dout,
      inp,
      weight: w,
      mean,
      rstd,
    },
    { rows, C },
  );
  const pre = o("pre", rows * C);
  be.matmul({ out: o("matmul", rows * C), a: inp, b: t(C * C, 5), bias: b, pre }, {
    M: rows,
    N: C,
    K: C,
    transB: true,
    gelu: true,
  });
  const param = t(rows * C, 6);
  const [m, v] = [o("m", rows * C), o("v", rows * C)];
  const offsets = be.tensor([3], "i32");
  be.upload(offsets, new Int32Array([0, 100, rows * C]));
  const hyper = be.tensor([4]);
  be.upload(hyper, new Float32Array([1, 0.05, 0.5, 0]));
  be.adamw({ param, grad: dout, m, v, offsets, hyper }, {
    lr: 1e-2,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    step: 3,
  });
  outs.param = param;
  const got: Record<string, Float32Array> = {};
  for (const [k, x] of Object.entries(outs)) got[k] = (await be.download(x)) as Float32Array;
  return got;
}

kernelTest("a CpuBackend on these kernels matches the reference backend, op by op", async (k) => {
  const be = new CpuBackend({ kernels: k, threads: 1, gemm: "ts" });
  const ref = CpuBackend.reference();
  assertEquals(be.kernels, k.name);
  assertEquals(ref.kernels, "js");
  assertEquals(ref.threads, 1);
  assert(
    ref.description.startsWith("cpu: reference GEMM, 1 thread, JS kernels"),
    ref.description,
  );
  const [got, want] = [await runOps(be), await runOps(ref)];
  for (const name of Object.keys(want)) {
    assertAllClose(got[name], want[name], { atol: 2e-5, rtol: 2e-5 }, name);
  }
  be.dispose();
  ref.dispose();
});

Deno.test("CpuBackend({ kernels }) takes a choice: js, wasm, native (or an error), auto", () => {
  const js = new CpuBackend({ kernels: "js", threads: 1, gemm: "ts" });
  assertEquals(js.kernels, "js");
  assert(js.description.includes("JS kernels"), js.description);
  const w = new CpuBackend({ kernels: "wasm", threads: 1, gemm: "ts" });
  assertEquals(w.kernels, "wasm");
  assert(w.description.includes("WebAssembly kernels"), w.description);
  const auto = new CpuBackend({ threads: 1, gemm: "ts" });
  // inside native/build, which the test task may load from, so the load (not the permission) fails
  const absent = new URL("../native/build/absent_libdbot_cpu.so", import.meta.url).pathname;
  assertEquals(auto.kernels, "reason" in native ? "wasm" : "native");
  assertThrows(
    () => new CpuBackend({ kernels: "native", nativeLibrary: absent }),
    Error,
    `Cannot load the native kernels: ${absent} did not load`,
  );
  const missing = new CpuBackend({ nativeLibrary: absent, threads: 1 });
  assertEquals(missing.kernels, "wasm", "auto falls back to WebAssembly");
  // one short line with the fix; the path and the loader error are in the details
  assert(
    missing.description.includes("native kernels not built (deno task build-native"),
    missing.description,
  );
  assert(!missing.description.includes(absent), missing.description);
  assert(missing.facts.details.some((d) => d.includes(absent)), missing.facts.details.join("\n"));
  for (const be of [js, w, auto, missing]) be.dispose();
});

Deno.test("kernels_wasm.ts is not stale: its hash matches kernels.c and build.sh's flags", async () => {
  const dir = new URL("../src/backend/cpu/simd/", import.meta.url);
  const source = await Deno.readTextFile(new URL("kernels.c", dir));
  const script = await Deno.readTextFile(new URL("build.sh", dir));
  const fix = "kernels_wasm.ts is stale: run `bash src/backend/cpu/simd/build.sh`";
  assert(script.includes(`FLAGS="${KERNELS_WASM_FLAGS}"`), `${fix} (build.sh flags changed)`);
  const bytes = new TextEncoder().encode(`${KERNELS_WASM_FLAGS}\n${source}`);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
  assertEquals(hex, KERNELS_WASM_SOURCE_SHA256, `${fix} (kernels.c changed)`);
});

nativeTest("add and scaleRows match the f32 loops exactly, broadcast and in place", (native) => {
  assert(native.add && native.scaleRows, "the native kernels have add and scaleRows");
  for (const [rows, C] of [[1, 1], [3, 5], [7, 130], [70, 3], [2, BLOCK + 3]]) {
    const a = sharedView(uniform(rows * C, -4, 4, rows + C));
    const b = sharedView(uniform(rows * C, -4, 4, rows * C + 1), 1);
    const row = sharedView(uniform(C, -1, 1, C), 2);
    const scale = sharedView(uniform(rows, 0, 2, rows));
    const sum = Float32Array.from(a, (v, i) => v + b[i]);
    const bcast = Float32Array.from(a, (v, i) => v + row[i % C]);
    const scaled = Float32Array.from(a, (v, i) => v * scale[Math.floor(i / C)]);
    const out = new Float32Array(rows * C);
    native.add(out, a, b);
    assertEquals(out, sum, `add rows=${rows} C=${C}`);
    native.add(out, a, row);
    assertEquals(out, bcast, `add broadcast rows=${rows} C=${C}`);
    native.scaleRows(out, a, scale, rows, C);
    assertEquals(out, scaled, `scaleRows rows=${rows} C=${C}`);
    native.scaleRows(a, a, scale, rows, C); // in place
    assertEquals(Float32Array.from(a), scaled, `scaleRows in place rows=${rows} C=${C}`);
    const b0 = Float32Array.from(b);
    native.add(b, a, b); // out aliases b
    assertEquals(Float32Array.from(b), Float32Array.from(a, (v, i) => v + b0[i]), "add in place");
  }
});

nativeTest("the bias gradient's f64 column sums equal the JS reference bit for bit", (native) => {
  assert(native.biasGradF64, "the native kernels have biasGradF64");
  const ops = kernelOps(native);
  for (const [rows, C] of [[1, 1], [3, 5], [7, 130], [70, 3], [257, 96]]) {
    const dout = sharedView(uniform(rows * C, -4, 4, rows + C));
    const start = Float64Array.from(uniform(C, -1, 1, C)); // accumulates onto what is there
    const want = Float64Array.from(start);
    biasGrad({ dbias: want, dout }, { rows, C });
    const got = Float64Array.from(start);
    ops.biasGrad({ dbias: got, dout }, { rows, C });
    assertEquals(got, want, `rows=${rows} C=${C}`);
    // an f32 dbias (the one-thread path): the same f64 sums, added to f32
    const f = Float32Array.from(start);
    const fWant = Float32Array.from(start);
    ops.biasGrad({ dbias: f, dout }, { rows, C });
    biasGrad({ dbias: fWant, dout }, { rows, C });
    assertEquals(f, fWant, `f32 rows=${rows} C=${C}`);
  }
});

nativeTest("the SmoothL1 loss and its gradient equal the JS reference bit for bit", (native) => {
  assert(native.smoothL1, "the native kernels have smoothL1");
  const ops = kernelOps(native);
  for (
    const [rows, C, beta] of [[1, 1, 2], [3, 5, 2], [50, 96, 2], [7, 130, 0.5], [9, 33, 0.7]]
  ) {
    const inp = sharedView(uniform(rows * C, -6, 6, rows + C));
    const target = sharedView(uniform(rows * C, -3, 3, rows * C), 1);
    const weight = sharedView(uniform(rows, 0, 1, rows).map((w) => (w < 0.3 ? 0 : 1)), 2);
    weight[0] = 1; // some row counts
    if (rows * C > 4) {
      inp[1] = target[1]; // d = 0
      inp[2] = -0;
      target[2] = 0; // d = −0
    }
    if (C === 130) inp[3] = NaN; // propagates into the loss and its element's gradient
    const run = (f: typeof smoothL1Loss) => {
      const loss = new Float32Array(1);
      const dinp = new Float32Array(rows * C);
      f({ loss, dinp, inp, target, weight }, { rows, C, beta });
      return { loss, dinp };
    };
    const want = run(smoothL1Loss);
    const got = run((b, d) => ops.smoothL1Loss(b, d));
    assertEquals(got, want, `rows=${rows} C=${C} beta=${beta}`);
  }
});

nativeTest("the target standardisation equals the JS reference bit for bit", (native) => {
  assert(native.standardizeRows, "the native kernels have standardizeRows");
  const ops = kernelOps(native);
  for (const [rows, C] of [[1, 2], [3, 5], [50, 96], [7, 130], [4, 768]]) {
    // an offset (+3) so that the mean matters, as in a transformer's hidden states
    const inp = sharedView(uniform(rows * C, -2, 4, rows + C));
    const want = new Float32Array(rows * C);
    standardizeRows({ out: want, inp }, { rows, C, eps: 1e-6 });
    const got = new Float32Array(rows * C);
    ops.standardizeRows({ out: got, inp }, { rows, C, eps: 1e-6 });
    assertEquals(got, want, `rows=${rows} C=${C}`);
    const same = Float32Array.from(inp); // in place
    ops.standardizeRows({ out: same, inp: same }, { rows, C, eps: 1e-6 });
    assertEquals(same, want, `in place rows=${rows} C=${C}`);
  }
});

nativeTest("patchify equals the JS reference", (native) => {
  assert(native.patchify, "the native kernels have patchify");
  const ops = kernelOps(native);
  for (
    const [B, C, H, W, P] of [[1, 1, 4, 4, 4], [2, 3, 6, 4, 2], [3, 1, 28, 28, 4], [
      1,
      3,
      32,
      16,
      16,
    ]]
  ) {
    const inp = sharedView(uniform(B * C * H * W, -1, 1, B + C + H + W + P));
    const want = new Float32Array(B * C * H * W);
    patchify({ out: want, inp }, { B, C, H, W, P });
    const got = new Float32Array(B * C * H * W);
    ops.patchify({ out: got, inp }, { B, C, H, W, P });
    assertEquals(got, want, `B=${B} C=${C} H=${H} W=${W} P=${P}`);
  }
});
