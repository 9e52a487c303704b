/**
 * The elementwise ops the symmetric student and the CLIP teacher add: QuickGELU (forward
 * vs its formula, backward vs finite differences on the CPU reference, WebGPU vs CPU incl.
 * the saturating tails) and layer scale (`scaleCols` and its backward: finite differences,
 * WebGPU vs CPU on awkward shapes).
 *
 * @module
 */
import { quickGeluBackward, quickGeluForward } from "../src/backend/cpu/ref/quickgelu.ts";
import { scaleColsBackward, scaleColsForward } from "../src/backend/cpu/ref/scale_cols.ts";
import { cosineLoss } from "../src/backend/cpu/ref/cosine_loss.ts";
import { assert } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { compare, normal } from "./compare.ts";
import { dot, fdGrad, randArray } from "./fd.ts";
import { gpuTest } from "./gpu.ts";
import { assertAllClose } from "./helpers.ts";

Deno.test("quickGeluForward() is x·σ(1.702x) at known points", () => {
  const x = new Float64Array([0, 1, -1, 3, -30, 30, -1000]);
  const out = new Float64Array(x.length);
  quickGeluForward({ out, inp: x });
  const want = [
    0,
    1 / (1 + Math.exp(-1.702)),
    -1 / (1 + Math.exp(1.702)),
    3 / (1 + Math.exp(-5.106)),
  ];
  assertAllClose(out.subarray(0, 4), want, { atol: 1e-15, rtol: 1e-14 }, "quickgelu");
  assert(
    Math.abs(out[4]) < 1e-20 && out[5] === 30 && Object.is(out[6], -0),
    `tails ${out.subarray(4)}`,
  );
});

Deno.test("quickGeluBackward() matches finite differences for n=37", () => {
  const rng = new Rng(3);
  const inp = randArray(rng, 37, -5, 5);
  const dout = randArray(rng, 37);
  const out = new Float64Array(37);
  const loss = (): number => {
    quickGeluForward({ out, inp });
    return dot(out, dout);
  };
  const dinp = new Float64Array(37);
  quickGeluBackward({ dinp, dout, inp });
  assertAllClose(dinp, fdGrad(loss, inp), { atol: 1e-8, rtol: 1e-6 }, "dinp");
});

Deno.test("scaleColsBackward() matches finite differences for rows=5, C=7", () => {
  const rng = new Rng(4);
  const rows = 5, C = 7;
  const inp = randArray(rng, rows * C);
  const scale = randArray(rng, C);
  const dout = randArray(rng, rows * C);
  const out = new Float64Array(rows * C);
  const loss = (): number => {
    scaleColsForward({ out, inp, scale }, { rows, C });
    return dot(out, dout);
  };
  const dscale0 = randArray(rng, C);
  const dscale = dscale0.slice();
  const dinp = randArray(rng, rows * C); // assigned, whatever it held
  scaleColsBackward({ dinp, dscale, dout, inp, scale }, { rows, C });
  for (let c = 0; c < C; c++) dscale[c] -= dscale0[c];
  assertAllClose(dinp, fdGrad(loss, inp), { atol: 1e-8, rtol: 1e-6 }, "dinp");
  assertAllClose(dscale, fdGrad(loss, scale), { atol: 1e-8, rtol: 1e-6 }, "dscale");
});

/** Normal draws scaled by 4 plus the tails where σ saturates. */
function quickInputs(rng: Rng, n: number): Float32Array {
  const x = normal(rng, n, 4);
  const edges = [0, -0, 1e-8, -1e-8, 30, -30, 60, -60, 100, -100, 1e4, -1e4];
  for (let i = 0; i < Math.min(n, edges.length); i++) x[i] = edges[i];
  return x;
}

for (const n of [1, 7, 65 * 197, 2 * 197 * 384 + 3]) {
  gpuTest(`quickGelu() and quickGeluBackward() match the CPU backend for n=${n}`, async (be) => {
    const rng = new Rng(n);
    const inp = quickInputs(rng, n);
    await compare(
      be,
      { out: { data: normal(rng, n), shape: [n] }, inp: { data: inp, shape: [n] } },
      (b, t) => b.quickGelu({ out: t.out, inp: t.inp }),
      { out: { atol: 1e-6, rtol: 1e-5 } },
      `quickGelu n=${n}`,
    );
    await compare(
      be,
      {
        dinp: { data: normal(rng, n), shape: [n] },
        dout: { data: normal(rng, n), shape: [n] },
        inp: { data: inp, shape: [n] },
      },
      (b, t) => b.quickGeluBackward({ dinp: t.dinp, dout: t.dout, inp: t.inp }),
      { dinp: { atol: 1e-6, rtol: 1e-5 } },
      `quickGeluBackward n=${n}`,
    );
  });
}

gpuTest("gelu() still runs exact GELU next to the QuickGELU variant of its kernel", async (be) => {
  const rng = new Rng(9);
  const n = 300;
  await compare(
    be,
    { out: { data: normal(rng, n), shape: [n] }, inp: { data: normal(rng, n, 3), shape: [n] } },
    (b, t) => {
      b.quickGelu({ out: t.out, inp: t.inp });
      b.gelu({ out: t.out, inp: t.inp });
    },
    { out: { atol: 1e-6, rtol: 1e-5 } },
    "gelu after quickGelu",
  );
});

for (const [rows, C] of [[1, 1], [7, 3], [65, 197], [2 * 197, 384], [4099, 5]]) {
  gpuTest(
    `scaleCols() and scaleColsBackward() match the CPU backend for [${rows}, ${C}]`,
    async (be) => {
      const rng = new Rng(rows + C);
      const n = rows * C;
      await compare(
        be,
        {
          out: { data: normal(rng, n), shape: [rows, C] },
          inp: { data: normal(rng, n), shape: [rows, C] },
          scale: { data: normal(rng, C), shape: [C] },
        },
        (b, t) => b.scaleCols({ out: t.out, inp: t.inp, scale: t.scale }, { rows, C }),
        { out: { atol: 1e-6, rtol: 1e-5 } },
        `scaleCols [${rows}, ${C}]`,
      );
      await compare(
        be,
        {
          d: { data: normal(rng, n), shape: [rows, C] },
          dscale: { data: normal(rng, C), shape: [C] },
          inp: { data: normal(rng, n), shape: [rows, C] },
          scale: { data: normal(rng, C), shape: [C] },
        },
        // in place (dinp = dout), as the block runs it
        (b, t) =>
          b.scaleColsBackward(
            { dinp: t.d, dscale: t.dscale, dout: t.d, inp: t.inp, scale: t.scale },
            { rows, C },
          ),
        { d: { atol: 1e-6, rtol: 1e-5 }, dscale: { atol: 1e-4, rtol: 1e-4 } },
        `scaleColsBackward [${rows}, ${C}]`,
      );
    },
  );
}

Deno.test("cosineLoss() clamps norms to eps and keeps torch 1.13's gradient in the clamped regime", () => {
  // x = [1e-7, 0], y = [1, 0], eps 1e-6: cos = 1e-7 / (1e-6·1) = 0.1;
  // ∂cos/∂x0 = y0/(nx·ny) − cos·x0/nx² = 1e6 − 0.1·1e-7/1e-12 = 990000 (measured in torch 1.13)
  const loss = new Float64Array(1);
  const dinp = new Float64Array(2);
  cosineLoss({
    loss,
    dinp,
    inp: new Float64Array([1e-7, 0]),
    target: new Float64Array([1, 0]),
    weight: new Float64Array([1]),
  }, { rows: 1, C: 2, eps: 1e-6 });
  assertAllClose(loss, [0.9], { atol: 1e-12, rtol: 1e-12 }, "loss");
  assertAllClose(dinp, [-990000, 0], { atol: 1e-6, rtol: 1e-12 }, "dinp");
});

for (const [rows, C] of [[1, 2], [7, 16], [130, 33]]) {
  gpuTest(
    `cosineLoss() with eps 1e-6 matches the CPU backend on rows with tiny norms [${rows}, ${C}]`,
    async (be) => {
      const rng = new Rng(rows * C);
      const inp = normal(rng, rows * C);
      const target = normal(rng, rows * C);
      for (let r = 0; r < rows; r += 3) {
        for (let c = 0; c < C; c++) inp[r * C + c] *= 1e-7; // clamped rows
      }
      const weight = new Float32Array(rows).map((_, r) => (r % 2 === 0 ? 1 : 0.5));
      await compare(
        be,
        {
          loss: { data: new Float32Array(1), shape: [1] },
          dinp: { data: normal(rng, rows * C), shape: [rows, C] },
          inp: { data: inp, shape: [rows, C] },
          target: { data: target, shape: [rows, C] },
          weight: { data: weight, shape: [rows] },
        },
        (b, t) =>
          b.cosineLoss(
            { loss: t.loss, dinp: t.dinp, inp: t.inp, target: t.target, weight: t.weight },
            { rows, C, eps: 1e-6 },
          ),
        { loss: { atol: 1e-6, rtol: 1e-5 }, dinp: { atol: 1e-3, rtol: 1e-4 } },
        `cosineLoss eps 1e-6 [${rows}, ${C}]`,
      );
    },
  );
}
