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
import { Rng } from "../src/util/rng.ts";
import { compare, normal } from "./compare.ts";
import { gpuTest } from "./gpu.ts";
import type { Tolerance } from "./helpers.ts";

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
