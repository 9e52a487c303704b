/**
 * WebGPU elementwise ops (add, gelu, geluBackward, scaleRows, biasGrad) against the CPU
 * backend, on awkward and ViT shapes. Every tensor is a view at a nonzero offset inside a
 * padded buffer, and the padding must come back untouched.
 *
 * Tolerances: forward values `atol 1e-6, rtol 1e-5`; gradients and column sums
 * `atol 1e-5, rtol 1e-4` (f32 sums in a different order than the CPU's f64).
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { type Backend, type Tensor, view } from "../src/backend/backend.ts";
import type { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { Rng } from "../src/util/rng.ts";
import { gpuTest } from "./gpu.ts";
import { assertAllClose, maxAbsDiff, type Tolerance } from "./helpers.ts";

const cpu = new CpuBackend({ gemm: "ts" });
/** Elements of padding before and after every view. */
const PAD = 5;
const SENTINEL = 12345;

/** Places `data` in a view at offset PAD of a padded tensor on `be`. */
function place(be: Backend, data: Float32Array, shape: number[]): { t: Tensor; base: Tensor } {
  const base = be.tensor([data.length + 2 * PAD]);
  const full = new Float32Array(base.size).fill(SENTINEL);
  full.set(data, PAD);
  be.upload(base, full);
  return { t: view(base, PAD, shape), base };
}

/**
 * Runs `run` on both backends over the same inputs (views at offset PAD of padded
 * buffers) and compares the tensors named in `check` within their tolerances; the
 * padding must come back untouched. Returns the max abs error of each.
 */
async function compare(
  gpu: WebGpuBackend,
  args: Record<string, { data: Float32Array; shape: number[] }>,
  run: (be: Backend, t: Record<string, Tensor>) => void,
  check: Record<string, Tolerance>,
  what: string,
): Promise<Record<string, number>> {
  const placed = new Map<Backend, Record<string, { t: Tensor; base: Tensor }>>();
  for (const be of [cpu, gpu] as Backend[]) {
    const p: Record<string, { t: Tensor; base: Tensor }> = {};
    for (const [k, a] of Object.entries(args)) p[k] = place(be, a.data, a.shape);
    placed.set(be, p);
    run(be, Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.t])));
  }
  const errs: Record<string, number> = {};
  for (const [k, tol] of Object.entries(check)) {
    const want = await cpu.download(placed.get(cpu)![k].t);
    const full = await gpu.download(placed.get(gpu)![k].base);
    const got = full.subarray(PAD, PAD + want.length);
    const pad = [...full.subarray(0, PAD), ...full.subarray(PAD + want.length)];
    assertAllClose(pad, pad.map(() => SENTINEL), { atol: 0, rtol: 0 }, `${what}: padding of ${k}`);
    assertAllClose(got, want, tol, `${what}: ${k}`);
    errs[k] = maxAbsDiff(got, want);
  }
  console.log(`${what}: max abs error ${JSON.stringify(errs)}`);
  return errs;
}

function normal(rng: Rng, n: number, scale = 1, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = shift + scale * rng.normal();
  return a;
}

const FWD: Tolerance = { atol: 1e-6, rtol: 1e-5 };
const GRAD: Tolerance = { atol: 1e-5, rtol: 1e-4 };

// ---- add ----------------------------------------------------------------------------

for (const shape of [[1], [7], [65, 197], [2, 197, 192]]) {
  gpuTest(`add() matches the CPU backend for [${shape}]`, async (be) => {
    const rng = new Rng(1);
    const n = shape.reduce((x, y) => x * y, 1);
    await compare(
      be,
      {
        out: { data: normal(rng, n), shape },
        a: { data: normal(rng, n), shape },
        b: { data: normal(rng, n), shape },
      },
      (b, t) => b.add({ out: t.out, a: t.a, b: t.b }),
      { out: FWD },
      `add [${shape}]`,
    );
  });
}

gpuTest("add() matches the CPU backend in place (out === a) for [197, 384]", async (be) => {
  const rng = new Rng(2);
  const shape = [197, 384];
  const n = 197 * 384;
  await compare(
    be,
    { a: { data: normal(rng, n), shape }, b: { data: normal(rng, n), shape } },
    (b, t) => b.add({ out: t.a, a: t.a, b: t.b }),
    { a: FWD },
    "add in place [197, 384]",
  );
});

for (const [shape, bShape] of [[[7, 3], [3]], [[3, 65, 192], [65, 192]], [[5, 7], [7]]]) {
  gpuTest(`add() matches the CPU backend for broadcast [${shape}] + [${bShape}]`, async (be) => {
    const rng = new Rng(3);
    const n = shape.reduce((x, y) => x * y, 1);
    const m = bShape.reduce((x, y) => x * y, 1);
    await compare(
      be,
      {
        out: { data: normal(rng, n), shape },
        a: { data: normal(rng, n), shape },
        b: { data: normal(rng, m), shape: bShape },
      },
      (b, t) => b.add({ out: t.out, a: t.a, b: t.b }),
      { out: FWD },
      `add broadcast [${shape}] + [${bShape}]`,
    );
  });
}

// ---- gelu -----------------------------------------------------------------------------

/** Normal draws scaled by 3 plus the edge points: 0, ±tails where erfc underflows. */
function geluInputs(rng: Rng, n: number): Float32Array {
  const x = normal(rng, n, 3);
  const edges = [0, -0, 1e-8, -1e-8, 6, -6, 10, -10, 12, -12, 40, -40];
  for (let i = 0; i < Math.min(n, edges.length); i++) x[i] = edges[i];
  return x;
}

for (const shape of [[1], [7], [1000], [130, 768]]) {
  gpuTest(`gelu() matches the CPU backend for [${shape}]`, async (be) => {
    const rng = new Rng(4);
    const n = shape.reduce((x, y) => x * y, 1);
    await compare(
      be,
      { out: { data: new Float32Array(n), shape }, inp: { data: geluInputs(rng, n), shape } },
      (b, t) => b.gelu({ out: t.out, inp: t.inp }),
      { out: FWD },
      `gelu [${shape}]`,
    );
  });

  gpuTest(`geluBackward() matches the CPU backend for [${shape}]`, async (be) => {
    const rng = new Rng(5);
    const n = shape.reduce((x, y) => x * y, 1);
    await compare(
      be,
      {
        dinp: { data: normal(rng, n), shape },
        dout: { data: normal(rng, n), shape },
        inp: { data: geluInputs(rng, n), shape },
      },
      (b, t) => b.geluBackward({ dinp: t.dinp, dout: t.dout, inp: t.inp }),
      { dinp: GRAD },
      `geluBackward [${shape}]`,
    );
  });
}

gpuTest("gelu() matches the CPU backend in place (out === inp) for [197, 192]", async (be) => {
  const rng = new Rng(6);
  const shape = [197, 192];
  await compare(
    be,
    { x: { data: geluInputs(rng, 197 * 192), shape } },
    (b, t) => b.gelu({ out: t.x, inp: t.x }),
    { x: FWD },
    "gelu in place [197, 192]",
  );
});

// ---- scaleRows --------------------------------------------------------------------------

for (const [rows, C] of [[1, 1], [7, 65], [3, 197 * 192], [8, 65 * 384]]) {
  gpuTest(`scaleRows() matches the CPU backend for rows=${rows}, C=${C}`, async (be) => {
    const rng = new Rng(7);
    // Drop path with keep 0.9: scale is 0 (dropped) or 1/0.9.
    const scale = new Float32Array(rows).map(() => rng.uniform() < 0.3 ? 0 : 1 / 0.9);
    await compare(
      be,
      {
        out: { data: normal(rng, rows * C), shape: [rows, C] },
        inp: { data: normal(rng, rows * C), shape: [rows, C] },
        scale: { data: scale, shape: [rows] },
      },
      (b, t) => b.scaleRows({ out: t.out, inp: t.inp, scale: t.scale }, { rows, C }),
      { out: FWD },
      `scaleRows rows=${rows} C=${C}`,
    );
  });
}

// ---- biasGrad -----------------------------------------------------------------------------

for (const [rows, C] of [[1, 1], [7, 3], [197, 65], [394, 768], [4100, 192], [33, 3072]]) {
  gpuTest(`biasGrad() matches the CPU backend for rows=${rows}, C=${C}`, async (be) => {
    const rng = new Rng(8);
    await compare(
      be,
      {
        // Pre-filled: biasGrad accumulates (+=).
        dbias: { data: normal(rng, C), shape: [C] },
        dout: { data: normal(rng, rows * C), shape: [rows, C] },
      },
      (b, t) => b.biasGrad({ dbias: t.dbias, dout: t.dout }, { rows, C }),
      { dbias: GRAD },
      `biasGrad rows=${rows} C=${C}`,
    );
  });
}

gpuTest(
  "add() matches the CPU backend past 65535 workgroups (2-D grid) for [65536·256 + 7]",
  async (be) => {
    const rng = new Rng(9);
    const n = 65536 * 256 + 7;
    const shape = [n];
    await compare(
      be,
      {
        a: { data: rng.uniformArray(n, -1, 1), shape },
        b: { data: rng.uniformArray(n, -1, 1), shape },
      },
      (b, t) => b.add({ out: t.a, a: t.a, b: t.b }),
      { a: FWD },
      "add 2-D grid",
    );
  },
);
