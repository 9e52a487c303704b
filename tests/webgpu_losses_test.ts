/**
 * WebGPU losses (smoothL1Loss, cosineLoss, crossEntropyLoss) against the CPU backend:
 * the loss value left on the device and the input gradient. Every tensor is a view at a
 * nonzero offset inside a padded buffer, and the padding must come back untouched.
 *
 * @module
 */
import { Rng } from "../src/util/rng.ts";
import { compare, normal } from "./compare.ts";
import { gpuTest } from "./gpu.ts";
import type { Tolerance } from "./helpers.ts";

/**
 * dBOT loss weights for `B` images of `1 + L` rows: the cls row 1, a random `masked` of
 * the `L` patch rows 1 (the loss is on masked patches), the visible rows 0.
 */
function maskWeights(rng: Rng, B: number, L: number, masked: number): Float32Array {
  const w = new Float32Array(B * (1 + L));
  for (let b = 0; b < B; b++) {
    w[b * (1 + L)] = 1;
    const p = [...Array(L).keys()];
    for (let i = L - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [p[i], p[j]] = [p[j], p[i]];
    }
    for (let k = 0; k < masked; k++) w[b * (1 + L) + 1 + p[k]] = 1;
  }
  return w;
}

/** The loss is a reduction over rows (f32 tree on the GPU, f64 on the CPU). */
const LOSS_TOL: Tolerance = { atol: 1e-6, rtol: 1e-4 };
/** Gradients: one formula per element, but built on row reductions and Σw. */
const GRAD_TOL: Tolerance = { atol: 1e-9, rtol: 1e-4 };

/** Realistic (2·197 rows, C=192, cls + 75% of patches weighted) and awkward weighted cases. */
const WEIGHTED_CASES: {
  name: string;
  rows: number;
  C: number;
  weight: (rng: Rng) => Float32Array;
}[] = [
  {
    name: "rows=2·197, C=192, cls + 75% masked weighted",
    rows: 2 * 197,
    C: 192,
    weight: (rng) => maskWeights(rng, 2, 196, 147),
  },
  {
    name: "rows=7, C=3, random weights with a zero",
    rows: 7,
    C: 3,
    weight: (rng) => {
      const w = rng.uniformArray(7, 0, 2);
      w[2] = 0;
      return w;
    },
  },
  { name: "rows=1, C=1", rows: 1, C: 1, weight: () => new Float32Array([0.5]) },
  {
    // More rows than one grid dimension holds: the row passes use a 2-D grid, and the
    // weighted reduction hits its 256-partials cap.
    name: "rows=70001, C=3, uniform weights",
    rows: 70001,
    C: 3,
    weight: (rng) => rng.uniformArray(70001, 0, 1),
  },
];

for (const { name, rows, C, weight } of WEIGHTED_CASES) {
  for (const beta of [2, 0.5]) {
    gpuTest(`smoothL1Loss() matches the CPU backend for ${name}, beta=${beta}`, async (gpu) => {
      const rng = new Rng(rows * 31 + C + beta);
      await compare(
        gpu,
        {
          loss: { data: new Float32Array([7]), shape: [1] },
          dinp: { data: normal(rng, rows * C), shape: [rows, C] },
          inp: { data: normal(rng, rows * C), shape: [rows, C] },
          // scale 1.5: elements fall on both sides of |d| = beta
          target: { data: normal(rng, rows * C, 1.5), shape: [rows, C] },
          weight: { data: weight(rng), shape: [rows] },
        },
        (be, t) =>
          be.smoothL1Loss(
            { loss: t.loss, dinp: t.dinp, inp: t.inp, target: t.target, weight: t.weight },
            { rows, C, beta },
          ),
        { loss: LOSS_TOL, dinp: GRAD_TOL },
        `smoothL1Loss ${name} beta=${beta}`,
      );
    });
  }

  gpuTest(`cosineLoss() matches the CPU backend for ${name}`, async (gpu) => {
    const rng = new Rng(rows * 17 + C);
    const inp = normal(rng, rows * C);
    const target = normal(rng, rows * C);
    if (rows > 3) {
      inp.fill(0, C, 2 * C); // a zero input row: the 1e-8 norm clamp is active
      target.fill(0, 3 * C, 4 * C); // a zero target row
    }
    await compare(
      gpu,
      {
        loss: { data: new Float32Array([7]), shape: [1] },
        dinp: { data: normal(rng, rows * C), shape: [rows, C] },
        inp: { data: inp, shape: [rows, C] },
        target: { data: target, shape: [rows, C] },
        weight: { data: weight(rng), shape: [rows] },
      },
      (be, t) =>
        be.cosineLoss(
          { loss: t.loss, dinp: t.dinp, inp: t.inp, target: t.target, weight: t.weight },
          { rows, C },
        ),
      // At C=1 the gradient a·y − b·x is exactly 0 and f32 leaves ~1e-7 of the cancelling terms.
      { loss: LOSS_TOL, dinp: C === 1 ? { atol: 1e-6, rtol: 1e-4 } : GRAD_TOL },
      `cosineLoss ${name}`,
    );
  });
}

/** Soft targets: one-hot, label smoothing `eps`, mixup of two labels with `lam`. */
function softTargets(rng: Rng, rows: number, C: number, eps: number, mixup: boolean): Float32Array {
  const t = new Float32Array(rows * C).fill(eps / C);
  for (let r = 0; r < rows; r++) {
    const lam = mixup ? rng.uniform() : 1;
    t[r * C + Math.floor(rng.uniform() * C)] += (1 - eps) * lam;
    t[r * C + Math.floor(rng.uniform() * C)] += (1 - eps) * (1 - lam);
  }
  return t;
}

const CE_CASES: {
  name: string;
  rows: number;
  C: number;
  eps: number;
  mixup: boolean;
  scale: number;
}[] = [
  {
    name: "rows=65, C=1000, label smoothing 0.1",
    rows: 65,
    C: 1000,
    eps: 0.1,
    mixup: false,
    scale: 3,
  },
  { name: "rows=197, C=10, mixup + smoothing", rows: 197, C: 10, eps: 0.1, mixup: true, scale: 2 },
  { name: "rows=3, C=7, one-hot, logits ±80", rows: 3, C: 7, eps: 0, mixup: false, scale: 80 },
  { name: "rows=1, C=1", rows: 1, C: 1, eps: 0, mixup: false, scale: 1 },
];

for (const { name, rows, C, eps, mixup, scale } of CE_CASES) {
  gpuTest(`crossEntropyLoss() matches the CPU backend for ${name}`, async (gpu) => {
    const rng = new Rng(rows * 7 + C);
    await compare(
      gpu,
      {
        loss: { data: new Float32Array([7]), shape: [1] },
        dlogits: { data: normal(rng, rows * C), shape: [rows, C] },
        logits: { data: normal(rng, rows * C, scale), shape: [rows, C] },
        target: { data: softTargets(rng, rows, C, eps, mixup), shape: [rows, C] },
      },
      (be, t) =>
        be.crossEntropyLoss(
          { loss: t.loss, dlogits: t.dlogits, logits: t.logits, target: t.target },
          { rows, C },
        ),
      { loss: LOSS_TOL, dlogits: GRAD_TOL },
      `crossEntropyLoss ${name}`,
    );
  });
}
