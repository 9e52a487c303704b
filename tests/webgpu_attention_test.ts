/**
 * WebGPU attention ops (softmax, softmaxBackward, splitHeads, splitHeadsBackward,
 * mergeHeads, mergeHeadsBackward, and attention and attentionBackward, composed from them)
 * against the CPU backend, on awkward and ViT shapes.
 * Every tensor is a view at a nonzero offset inside a padded buffer, and the padding must
 * come back untouched.
 *
 * Tolerances: softmax `atol 1e-6, rtol 1e-5`; softmaxBackward `atol 1e-5, rtol 1e-4`; the
 * head permutations move values without arithmetic, so they must match exactly.
 *
 * @module
 */
import { Rng } from "../src/util/rng.ts";
import { type Arg, compare, EXACT, normal } from "./compare.ts";
import { gpuTest } from "./gpu.ts";
import type { Tolerance } from "./helpers.ts";

const FWD: Tolerance = { atol: 1e-6, rtol: 1e-5 };
const GRAD: Tolerance = { atol: 1e-5, rtol: 1e-4 };

// ---- softmax ------------------------------------------------------------------------------

/** `[rows, C, scale, magnitude]`: attention rows are B·NH·N with C = N (197 or 50). */
const SOFTMAX_CASES: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [7, 3, 1, 1],
  [65, 197, 0.125, 50], // ±50 logits: only the max-subtraction keeps exp finite at scale 1
  [300, 50, 0.125, 3], // B=2, NH=3, N=50
  [591, 197, 0.125, 8], // B=1, NH=3, N=197 (ViT-Ti scale 64^-0.5)
  [7, 197, 1, 50],
  [5, 1000, 0.5, 3], // 256 invocations per row
];

for (const [rows, C, scale, mag] of SOFTMAX_CASES) {
  const what = `rows=${rows}, C=${C}, scale=${scale}, inputs ±${mag}`;
  gpuTest(`softmax() matches the CPU backend for ${what}`, async (be) => {
    const rng = new Rng(20);
    await compare(
      be,
      {
        out: { data: new Float32Array(rows * C), shape: [rows, C] },
        inp: { data: rng.uniformArray(rows * C, -mag, mag), shape: [rows, C] },
      },
      (b, t) => b.softmax({ out: t.out, inp: t.inp }, { rows, C, scale }),
      { out: FWD },
      `softmax ${what}`,
    );
  });

  gpuTest(`softmaxBackward() matches the CPU backend for ${what}`, async (be) => {
    const rng = new Rng(21);
    // `out` must be a softmax output: compute it on the host (f64) once for both backends.
    const x = rng.uniformArray(rows * C, -mag, mag);
    const y = new Float32Array(rows * C);
    for (let r = 0; r < rows; r++) {
      const row = x.subarray(r * C, (r + 1) * C);
      const max = Math.max(...row.map((v) => scale * v));
      let sum = 0;
      for (let c = 0; c < C; c++) sum += Math.exp(scale * row[c] - max);
      for (let c = 0; c < C; c++) y[r * C + c] = Math.exp(scale * row[c] - max) / sum;
    }
    await compare(
      be,
      {
        dinp: { data: normal(rng, rows * C), shape: [rows, C] },
        dout: { data: normal(rng, rows * C), shape: [rows, C] },
        out: { data: y, shape: [rows, C] },
      },
      (b, t) => b.softmaxBackward({ dinp: t.dinp, dout: t.dout, out: t.out }, { rows, C, scale }),
      { dinp: GRAD },
      `softmaxBackward ${what}`,
    );
  });
}

gpuTest(
  "softmax() matches the CPU backend in place (out === inp) for rows=591, C=197",
  async (be) => {
    const rng = new Rng(22);
    const [rows, C] = [591, 197];
    await compare(
      be,
      { x: { data: rng.uniformArray(rows * C, -50, 50), shape: [rows, C] } },
      (b, t) => b.softmax({ out: t.x, inp: t.x }, { rows, C, scale: 0.125 }),
      { x: FWD },
      "softmax in place rows=591 C=197",
    );
  },
);

gpuTest(
  "softmaxBackward() matches the CPU backend in place (dinp === dout) for rows=150, C=50",
  async (be) => {
    const rng = new Rng(23);
    const [rows, C] = [150, 50];
    const y = rng.uniformArray(rows * C, 0, 2 / C);
    await compare(
      be,
      { g: { data: normal(rng, rows * C), shape: [rows, C] }, out: { data: y, shape: [rows, C] } },
      (b, t) => b.softmaxBackward({ dinp: t.g, dout: t.g, out: t.out }, { rows, C, scale: 0.125 }),
      { g: GRAD },
      "softmaxBackward in place rows=150 C=50",
    );
  },
);

// ---- head permutations ---------------------------------------------------------------------

/** `[B, N, NH, HS]`: awkward, then ViT-Ti/S/B-like heads of 64. */
const HEAD_CASES: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [2, 7, 3, 5],
  [3, 65, 6, 64],
  [2, 197, 3, 64],
  [1, 50, 12, 64],
];

for (const [B, N, NH, HS] of HEAD_CASES) {
  const dims = { B, N, NH, HS };
  const what = `B=${B}, N=${N}, NH=${NH}, HS=${HS}`;
  const per = B * NH * N * HS;
  const heads = [B, NH, N, HS];
  const tokens = [B, N, NH * HS];

  gpuTest(`splitHeads() matches the CPU backend for ${what}`, async (be) => {
    const rng = new Rng(30);
    await compare(
      be,
      {
        q: { data: new Float32Array(per), shape: heads },
        k: { data: new Float32Array(per), shape: heads },
        v: { data: new Float32Array(per), shape: heads },
        qkv: { data: normal(rng, 3 * per), shape: [B, N, 3 * NH * HS] },
      },
      (b, t) => b.splitHeads({ q: t.q, k: t.k, v: t.v, qkv: t.qkv }, dims),
      { q: EXACT, k: EXACT, v: EXACT },
      `splitHeads ${what}`,
    );
  });

  gpuTest(`splitHeadsBackward() matches the CPU backend for ${what}`, async (be) => {
    const rng = new Rng(31);
    await compare(
      be,
      {
        dqkv: { data: normal(rng, 3 * per), shape: [B, N, 3 * NH * HS] },
        dq: { data: normal(rng, per), shape: heads },
        dk: { data: normal(rng, per), shape: heads },
        dv: { data: normal(rng, per), shape: heads },
      },
      (b, t) => b.splitHeadsBackward({ dqkv: t.dqkv, dq: t.dq, dk: t.dk, dv: t.dv }, dims),
      { dqkv: EXACT },
      `splitHeadsBackward ${what}`,
    );
  });

  gpuTest(`mergeHeads() matches the CPU backend for ${what}`, async (be) => {
    const rng = new Rng(32);
    await compare(
      be,
      {
        out: { data: normal(rng, per), shape: tokens },
        inp: { data: normal(rng, per), shape: heads },
      },
      (b, t) => b.mergeHeads({ out: t.out, inp: t.inp }, dims),
      { out: EXACT },
      `mergeHeads ${what}`,
    );
  });

  gpuTest(`mergeHeadsBackward() matches the CPU backend for ${what}`, async (be) => {
    const rng = new Rng(33);
    await compare(
      be,
      {
        dinp: { data: normal(rng, per), shape: heads },
        dout: { data: normal(rng, per), shape: tokens },
      },
      (b, t) => b.mergeHeadsBackward({ dinp: t.dinp, dout: t.dout }, dims),
      { dinp: EXACT },
      `mergeHeadsBackward ${what}`,
    );
  });
}

gpuTest(
  "softmax() matches the CPU backend past 65535 workgroups (2-D grid) for rows=524300, C=2",
  async (be) => {
    // C = 2 packs 8 rows per workgroup: 524300 rows need 65538 workgroups.
    const rng = new Rng(24);
    const [rows, C] = [524300, 2];
    await compare(
      be,
      {
        out: { data: new Float32Array(rows * C), shape: [rows, C] },
        inp: { data: rng.uniformArray(rows * C, -5, 5), shape: [rows, C] },
      },
      (b, t) => b.softmax({ out: t.out, inp: t.inp }, { rows, C, scale: 0.125 }),
      { out: FWD },
      "softmax 2-D grid rows=524300 C=2",
    );
  },
);

// ---- attention over the qkv projection (composed from the kernels above) -------------------

/** `[B, N, NH, HS, rel]`: awkward, vit-micro's heads, ViT-Ti's with a relative position bias. */
const ATTENTION_CASES: [number, number, number, number, boolean][] = [
  [1, 1, 1, 1, false],
  [2, 7, 3, 5, true],
  [4, 50, 3, 32, false],
  [2, 65, 3, 64, true],
];

for (const [B, N, NH, HS, rel] of ATTENTION_CASES) {
  const dims = { B, N, NH, HS, scale: 1 / Math.sqrt(HS) };
  const what = `B=${B}, N=${N}, NH=${NH}, HS=${HS}${rel ? ", relative position bias" : ""}`;
  const [tokens, qkvShape, attShape] = [[B, N, NH * HS], [B, N, 3 * NH * HS], [B, NH, N, N]];
  const R = 2 * N - 1;
  const index = Int32Array.from({ length: N * N }, (_, p) => (p % N) - Math.floor(p / N) + N - 1);
  const relArgs = (rng: Rng): Record<string, Arg> =>
    rel
      ? {
        relTable: { data: normal(rng, R * NH), shape: [R, NH] },
        relIndex: { data: index, shape: [N * N] },
      }
      : {};

  gpuTest(`attention() matches the CPU backend for ${what}`, async (be) => {
    const rng = new Rng(40);
    await compare(
      be,
      {
        out: { data: new Float32Array(B * N * NH * HS), shape: tokens },
        att: { data: new Float32Array(B * NH * N * N), shape: attShape },
        qkv: { data: normal(rng, 3 * B * N * NH * HS), shape: qkvShape },
        ...relArgs(rng),
      },
      (b, t) =>
        b.attention(
          { out: t.out, att: t.att, qkv: t.qkv, relTable: t.relTable, relIndex: t.relIndex },
          dims,
        ),
      { out: FWD, att: FWD },
      `attention ${what}`,
    );
  });

  gpuTest(`attentionBackward() matches the CPU backend for ${what}`, async (be) => {
    const rng = new Rng(41);
    // `att` must be a softmax output: rows of positive weights summing to 1
    const att = rng.uniformArray(B * NH * N * N, 0.1, 1);
    for (let r = 0; r < B * NH * N; r++) {
      const row = att.subarray(r * N, (r + 1) * N);
      const sum = row.reduce((s, x) => s + x, 0);
      for (let j = 0; j < N; j++) row[j] /= sum;
    }
    await compare(
      be,
      {
        dqkv: { data: new Float32Array(3 * B * N * NH * HS), shape: qkvShape },
        dlogits: { data: new Float32Array(B * NH * N * N), shape: attShape },
        dout: { data: normal(rng, B * N * NH * HS), shape: tokens },
        qkv: { data: normal(rng, 3 * B * N * NH * HS), shape: qkvShape },
        att: { data: att, shape: attShape },
      },
      (b, t) =>
        b.attentionBackward(
          { dqkv: t.dqkv, dlogits: t.dlogits, dout: t.dout, qkv: t.qkv, att: t.att },
          dims,
        ),
      { dqkv: GRAD, dlogits: GRAD },
      `attentionBackward ${what}`,
    );
  });
}
