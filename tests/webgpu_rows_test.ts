/**
 * WebGPU row ops (gatherRows, gatherRowsBackward, patchify) against the CPU backend.
 * Every tensor is a view at a nonzero offset inside a padded buffer, and the padding
 * must come back untouched.
 *
 * @module
 */
import { Rng } from "../src/util/rng.ts";
import { compare, EXACT, normal } from "./compare.ts";
import { gpuTest } from "./gpu.ts";
import type { Tolerance } from "./helpers.ts";
import { throws } from "node:assert";

/** A random permutation of `0..n-1`. */
function perm(rng: Rng, n: number): number[] {
  const p = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** MAE masking: keep `keep` of `L` patches per image → row ids into `[B·L, C]`. */
function keepIndex(rng: Rng, B: number, L: number, keep: number): Int32Array {
  const idx = new Int32Array(B * keep);
  for (let b = 0; b < B; b++) {
    const p = perm(rng, L);
    for (let k = 0; k < keep; k++) idx[b * keep + k] = b * L + p[k];
  }
  return idx;
}

/**
 * Decoder unshuffle: per image, row 0 is the cls row of the encoder output
 * `[B, 1 + keep, C]`; patch rows are kept rows or −1 (mask token).
 */
function unshuffleIndex(rng: Rng, B: number, L: number, keep: number): Int32Array {
  const N = 1 + L;
  const idx = new Int32Array(B * N);
  for (let b = 0; b < B; b++) {
    const p = perm(rng, L);
    idx[b * N] = b * (1 + keep);
    for (let l = 0; l < L; l++) idx[b * N + 1 + l] = -1;
    for (let k = 0; k < keep; k++) idx[b * N + 1 + p[k]] = b * (1 + keep) + 1 + k;
  }
  return idx;
}

/** dfill is a sum of up to hundreds of rows in a different order than the CPU's. */
const SUM_TOL: Tolerance = { atol: 1e-5, rtol: 1e-5 };

gpuTest("gatherRows() matches the CPU backend for B=3 keeping 4 of L=16 rows, C=7", async (gpu) => {
  const rng = new Rng(1);
  const [B, L, keep, C] = [3, 16, 4, 7];
  const rows = B * keep;
  await compare(
    gpu,
    {
      out: { data: normal(rng, rows * C), shape: [rows, C] },
      inp: { data: normal(rng, B * L * C), shape: [B * L, C] },
      index: { data: keepIndex(rng, B, L, keep), shape: [rows] },
    },
    (be, t) => be.gatherRows({ out: t.out, inp: t.inp, index: t.index }, { rows, C }),
    { out: EXACT },
    "gatherRows keep 4/16 C=7",
  );
});

gpuTest(
  "gatherRows() matches the CPU backend for a decoder unshuffle of 2·197 rows, C=64",
  async (gpu) => {
    const rng = new Rng(2);
    const [B, L, keep, C] = [2, 196, 49, 64];
    const rows = B * (1 + L);
    await compare(
      gpu,
      {
        out: { data: normal(rng, rows * C), shape: [rows, C] },
        inp: { data: normal(rng, B * (1 + keep) * C), shape: [B * (1 + keep), C] },
        index: { data: unshuffleIndex(rng, B, L, keep), shape: [rows] },
        fill: { data: normal(rng, C), shape: [C] },
      },
      (be, t) =>
        be.gatherRows({ out: t.out, inp: t.inp, index: t.index, fill: t.fill }, { rows, C }),
      { out: EXACT },
      "gatherRows unshuffle 2·197 C=64",
    );
  },
);

gpuTest(
  "gatherRows() matches the CPU backend for -1 rows without a fill row, rows=7, C=3",
  async (gpu) => {
    const rng = new Rng(3);
    const [rows, C] = [7, 3];
    await compare(
      gpu,
      {
        out: { data: normal(rng, rows * C), shape: [rows, C] },
        inp: { data: normal(rng, 5 * C), shape: [5, C] },
        index: { data: new Int32Array([4, -1, 0, -1, -1, 2, 1]), shape: [rows] },
      },
      (be, t) => be.gatherRows({ out: t.out, inp: t.inp, index: t.index }, { rows, C }),
      { out: EXACT },
      "gatherRows -1 no fill 7×3",
    );
  },
);

gpuTest(
  "gatherRowsBackward() matches the CPU backend for B=3 keeping 4 of L=16 rows, C=7",
  async (gpu) => {
    const rng = new Rng(4);
    const [B, L, keep, C] = [3, 16, 4, 7];
    const rows = B * keep;
    await compare(
      gpu,
      {
        // dinp starts as garbage: the op assigns every row (unnamed rows become 0).
        dinp: { data: normal(rng, B * L * C), shape: [B * L, C] },
        dout: { data: normal(rng, rows * C), shape: [rows, C] },
        index: { data: keepIndex(rng, B, L, keep), shape: [rows] },
      },
      (be, t) => be.gatherRowsBackward({ dinp: t.dinp, dout: t.dout, index: t.index }, { rows, C }),
      { dinp: EXACT },
      "gatherRowsBackward keep 4/16 C=7",
    );
  },
);

gpuTest(
  "gatherRowsBackward() matches the CPU backend for a decoder unshuffle of 2·197 rows, C=64, with dfill",
  async (gpu) => {
    const rng = new Rng(5);
    const [B, L, keep, C] = [2, 196, 49, 64];
    const rows = B * (1 + L);
    await compare(
      gpu,
      {
        dinp: { data: normal(rng, B * (1 + keep) * C), shape: [B * (1 + keep), C] },
        // dfill starts nonzero: it accumulates.
        dfill: { data: normal(rng, C), shape: [C] },
        dout: { data: normal(rng, rows * C), shape: [rows, C] },
        index: { data: unshuffleIndex(rng, B, L, keep), shape: [rows] },
      },
      (be, t) =>
        be.gatherRowsBackward(
          { dinp: t.dinp, dfill: t.dfill, dout: t.dout, index: t.index },
          { rows, C },
        ),
      { dinp: EXACT, dfill: SUM_TOL },
      "gatherRowsBackward unshuffle 2·197 C=64",
    );
  },
);

gpuTest(
  "gatherRowsBackward() matches the CPU backend for 8·197 rows, C=65, mostly -1, with dfill",
  async (gpu) => {
    // C=65 spans two 64-column groups; 1576 rows give ~99 row groups in pass 1.
    const rng = new Rng(6);
    const [B, L, keep, C] = [8, 196, 19, 65];
    const rows = B * (1 + L);
    await compare(
      gpu,
      {
        dinp: { data: normal(rng, B * (1 + keep) * C), shape: [B * (1 + keep), C] },
        dfill: { data: normal(rng, C), shape: [C] },
        dout: { data: normal(rng, rows * C), shape: [rows, C] },
        index: { data: unshuffleIndex(rng, B, L, keep), shape: [rows] },
      },
      (be, t) =>
        be.gatherRowsBackward(
          { dinp: t.dinp, dfill: t.dfill, dout: t.dout, index: t.index },
          { rows, C },
        ),
      { dinp: EXACT, dfill: { atol: 1e-4, rtol: 1e-4 } },
      "gatherRowsBackward unshuffle 8·197 C=65",
    );
  },
);

for (
  const [B, C, H, W, P] of [
    [1, 1, 6, 9, 3], // non-square, one channel
    [3, 1, 28, 28, 7], // Fashion-MNIST
    [2, 3, 224, 224, 16], // ViT-B/16 input, L=196
  ]
) {
  gpuTest(
    `patchify() matches the CPU backend for B=${B}, C=${C}, H=${H}, W=${W}, P=${P}`,
    async (gpu) => {
      const rng = new Rng(7 + H);
      const n = B * C * H * W;
      const L = (H / P) * (W / P);
      await compare(
        gpu,
        {
          out: { data: normal(rng, n), shape: [B, L, C * P * P] },
          inp: { data: normal(rng, n), shape: [B, C, H, W] },
        },
        (be, t) => be.patchify({ out: t.out, inp: t.inp }, { B, C, H, W, P }),
        { out: EXACT },
        `patchify ${B}×${C}×${H}×${W} P=${P}`,
      );
    },
  );
}

gpuTest("gatherRows() rejects an index of the wrong length or dtype", (gpu) => {
  const out = gpu.tensor([4, 3]);
  const inp = gpu.tensor([5, 3]);
  throws(
    () => gpu.gatherRows({ out, inp, index: gpu.tensor([3], "i32") }, { rows: 4, C: 3 }),
    RangeError,
  );
  throws(() => gpu.gatherRows({ out, inp, index: gpu.tensor([4]) }, { rows: 4, C: 3 }), TypeError);
  return Promise.resolve();
});
