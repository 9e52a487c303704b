/**
 * WebGPU LayerNorm (forward, backward) and standardizeRows against the CPU backend, on
 * awkward and ViT shapes, plus one chain of ops recorded back to back without a sync
 * (ordering inside one command encoder). Every tensor is a view at a nonzero offset inside a
 * padded buffer, and the padding must come back untouched.
 *
 * Tolerances: forward values `atol 1e-5, rtol 1e-5` (outputs are O(1) after normalising;
 * the statistics are f32 tree sums against the CPU's f64); gradients `atol 1e-4, rtol 1e-4`.
 *
 * @module
 */
import { throws } from "node:assert";
import { Rng } from "../src/util/rng.ts";
import { compare, normal } from "./compare.ts";
import { gpuTest } from "./gpu.ts";
import type { Tolerance } from "./helpers.ts";

const FWD: Tolerance = { atol: 1e-5, rtol: 1e-5 };
const GRAD: Tolerance = { atol: 1e-4, rtol: 1e-4 };
const EPS = 1e-6;

/** Rows with a nonzero mean (a residual stream): exercises the two-pass variance. */
function lnInputs(rng: Rng, rows: number, C: number): Float32Array {
  const x = new Float32Array(rows * C);
  for (let r = 0; r < rows; r++) {
    const shift = 4 * rng.normal();
    const scale = 0.5 + 2 * rng.uniform();
    for (let c = 0; c < C; c++) x[r * C + c] = shift + scale * rng.normal();
  }
  return x;
}

// ---- layernorm ---------------------------------------------------------------------

const LN_SHAPES = [[1, 1], [3, 7], [65, 197], [394, 192], [197, 768], [5, 3000]];

for (const [rows, C] of LN_SHAPES) {
  gpuTest(`layernorm() matches the CPU backend for rows=${rows}, C=${C}`, async (be) => {
    const rng = new Rng(10);
    await compare(
      be,
      {
        out: { data: new Float32Array(rows * C), shape: [rows, C] },
        mean: { data: new Float32Array(rows), shape: [rows] },
        rstd: { data: new Float32Array(rows), shape: [rows] },
        inp: { data: lnInputs(rng, rows, C), shape: [rows, C] },
        weight: { data: normal(rng, C, 0.5, 1), shape: [C] },
        bias: { data: normal(rng, C, 0.5), shape: [C] },
      },
      (b, t) =>
        b.layernorm(
          { out: t.out, mean: t.mean, rstd: t.rstd, inp: t.inp, weight: t.weight, bias: t.bias },
          { rows, C, eps: EPS },
        ),
      { out: FWD, mean: FWD, rstd: FWD },
      `layernorm rows=${rows} C=${C}`,
    );
  });
}

gpuTest(
  "layernorm() matches the CPU backend in place (out === inp) for rows=197, C=384",
  async (be) => {
    const rng = new Rng(11);
    const [rows, C] = [197, 384];
    await compare(
      be,
      {
        x: { data: lnInputs(rng, rows, C), shape: [rows, C] },
        mean: { data: new Float32Array(rows), shape: [rows] },
        rstd: { data: new Float32Array(rows), shape: [rows] },
        weight: { data: normal(rng, C, 0.5, 1), shape: [C] },
        bias: { data: normal(rng, C, 0.5), shape: [C] },
      },
      (b, t) =>
        b.layernorm(
          { out: t.x, mean: t.mean, rstd: t.rstd, inp: t.x, weight: t.weight, bias: t.bias },
          { rows, C, eps: EPS },
        ),
      { x: FWD, mean: FWD, rstd: FWD },
      "layernorm in place rows=197 C=384",
    );
  },
);

// ---- layernormBackward ------------------------------------------------------------------

/** The saved statistics of `x` (f64, then f32), uploaded identically to both backends. */
function stats(
  x: Float32Array,
  rows: number,
  C: number,
): { mean: Float32Array; rstd: Float32Array } {
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < C; c++) m += x[r * C + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c] - m) ** 2;
    mean[r] = m;
    rstd[r] = 1 / Math.sqrt(v / C + EPS);
  }
  return { mean, rstd };
}

const LN_BWD_SHAPES = [[1, 7], [65, 197], [394, 384], [7, 3000], [2100, 64], [130, 768]];

for (const accumulate of [false, true]) {
  for (const [rows, C] of LN_BWD_SHAPES) {
    gpuTest(
      `layernormBackward() matches the CPU backend for rows=${rows}, C=${C}, accumulate=${accumulate}`,
      async (be) => {
        const rng = new Rng(12);
        const x = lnInputs(rng, rows, C);
        const { mean, rstd } = stats(x, rows, C);
        await compare(
          be,
          {
            // dinp pre-filled: kept and added to with accumulate, overwritten without.
            dinp: { data: normal(rng, rows * C), shape: [rows, C] },
            // dweight, dbias pre-filled: parameter gradients always accumulate.
            dweight: { data: normal(rng, C), shape: [C] },
            dbias: { data: normal(rng, C), shape: [C] },
            dout: { data: normal(rng, rows * C), shape: [rows, C] },
            inp: { data: x, shape: [rows, C] },
            weight: { data: normal(rng, C, 0.5, 1), shape: [C] },
            mean: { data: mean, shape: [rows] },
            rstd: { data: rstd, shape: [rows] },
          },
          (b, t) =>
            b.layernormBackward(
              {
                dinp: t.dinp,
                dweight: t.dweight,
                dbias: t.dbias,
                dout: t.dout,
                inp: t.inp,
                weight: t.weight,
                mean: t.mean,
                rstd: t.rstd,
              },
              { rows, C, accumulate },
            ),
          { dinp: GRAD, dweight: GRAD, dbias: GRAD },
          `layernormBackward rows=${rows} C=${C} accumulate=${accumulate}`,
        );
      },
    );
  }
}

// ---- standardizeRows ----------------------------------------------------------------------

for (const [rows, C] of [[3, 2], [7, 3], [65, 197], [130, 768], [4, 2500]]) {
  gpuTest(`standardizeRows() matches the CPU backend for rows=${rows}, C=${C}`, async (be) => {
    const rng = new Rng(13);
    await compare(
      be,
      {
        out: { data: new Float32Array(rows * C), shape: [rows, C] },
        inp: { data: lnInputs(rng, rows, C), shape: [rows, C] },
      },
      (b, t) => b.standardizeRows({ out: t.out, inp: t.inp }, { rows, C, eps: EPS }),
      { out: FWD },
      `standardizeRows rows=${rows} C=${C}`,
    );
  });
}

gpuTest(
  "standardizeRows() matches the CPU backend in place (out === inp) for rows=197, C=192",
  async (be) => {
    const rng = new Rng(14);
    const [rows, C] = [197, 192];
    await compare(
      be,
      { x: { data: lnInputs(rng, rows, C), shape: [rows, C] } },
      (b, t) => b.standardizeRows({ out: t.x, inp: t.x }, { rows, C, eps: EPS }),
      { x: FWD },
      "standardizeRows in place rows=197 C=192",
    );
  },
);

gpuTest("standardizeRows() rejects C=1 (no unbiased variance)", async (be) => {
  const t = be.tensor([4, 1]);
  throws(
    () => be.standardizeRows({ out: t, inp: t }, { rows: 4, C: 1, eps: EPS }),
    RangeError,
  );
  await Promise.resolve();
});

// ---- a chain recorded without a sync --------------------------------------------------------

gpuTest(
  "layernorm() → softmax() → gelu() → layernormBackward() recorded without a sync matches the CPU backend for rows=197, C=192",
  async (be) => {
    // Each op reads what the previous one wrote, in place where the contract allows, so any
    // reordering or missing barrier inside the one command encoder changes the result.
    const rng = new Rng(15);
    const [rows, C] = [197, 192];
    await compare(
      be,
      {
        x: { data: lnInputs(rng, rows, C), shape: [rows, C] },
        y: { data: new Float32Array(rows * C), shape: [rows, C] },
        mean: { data: new Float32Array(rows), shape: [rows] },
        rstd: { data: new Float32Array(rows), shape: [rows] },
        weight: { data: normal(rng, C, 0.5, 1), shape: [C] },
        bias: { data: normal(rng, C, 0.5), shape: [C] },
        dinp: { data: normal(rng, rows * C), shape: [rows, C] },
        dweight: { data: normal(rng, C), shape: [C] },
        dbias: { data: normal(rng, C), shape: [C] },
      },
      (b, t) => {
        const { x, y, mean, rstd, weight, bias, dinp, dweight, dbias } = t;
        b.layernorm({ out: y, mean, rstd, inp: x, weight, bias }, { rows, C, eps: EPS });
        b.softmax({ out: y, inp: y }, { rows, C, scale: 4 });
        b.gelu({ out: y, inp: y });
        b.layernormBackward(
          { dinp, dweight, dbias, dout: y, inp: x, weight, mean, rstd },
          { rows, C, accumulate: true },
        );
        // A second backward on the same scratch partials: reuse must be ordered too.
        b.layernormBackward(
          { dinp, dweight, dbias, dout: y, inp: x, weight, mean, rstd },
          { rows, C, accumulate: true },
        );
      },
      { dinp: GRAD, dweight: GRAD, dbias: GRAD, y: FWD },
      "chain rows=197 C=192",
    );
  },
);

gpuTest(
  "layernorm() matches the CPU backend past 65535 workgroups (2-D grid) for rows=70001, C=8",
  async (be) => {
    const rng = new Rng(16);
    const [rows, C] = [70001, 8];
    // Zero-mean rows of 8: a row with a tiny variance (likely among 70k rows of 3 values)
    // gets a large rstd that amplifies the f32-vs-f64 mean gap: conditioning, not the grid.
    await compare(
      be,
      {
        out: { data: new Float32Array(rows * C), shape: [rows, C] },
        mean: { data: new Float32Array(rows), shape: [rows] },
        rstd: { data: new Float32Array(rows), shape: [rows] },
        inp: { data: normal(rng, rows * C), shape: [rows, C] },
        weight: { data: normal(rng, C, 0.5, 1), shape: [C] },
        bias: { data: normal(rng, C, 0.5), shape: [C] },
      },
      (b, t) =>
        b.layernorm(
          { out: t.out, mean: t.mean, rstd: t.rstd, inp: t.inp, weight: t.weight, bias: t.bias },
          { rows, C, eps: EPS },
        ),
      { out: FWD, mean: FWD, rstd: FWD },
      "layernorm 2-D grid rows=70001 C=8",
    );
  },
);
