/**
 * Analysis: mean attention distance, singular-value share, linear CKA (host maths and
 * through a real encoder on both backends).
 */
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import {
  analyzeEncoder,
  ckaMatrix,
  linearCka,
  meanAttentionDistance,
  singularValues,
  singularValueShare,
} from "../src/eval/analyze.ts";
import type { VitConfig } from "../src/models/vit_config.ts";
import { initValues } from "../src/nn/params.ts";
import { vitParamSpecs } from "../src/models/vit.ts";
import { Rng } from "../src/util/rng.ts";
import { assert } from "../src/util/assert.ts";
import { assertAllClose } from "./helpers.ts";
import { gpuTest } from "./gpu.ts";

/**
 * Closed form of the MAD of uniform attention (1/N on every token, cls included) on a G×G
 * grid: Σ_i Σ_j ‖g_i − g_j‖ counted by offsets (dx, dy), each occurring (G−|dx|)(G−|dy|)
 * times, so MAD = P/(N·L) · Σ_{dx,dy} (G−|dx|)(G−|dy|)·√(dx²+dy²).
 */
function uniformMad(G: number, P: number): number {
  const L = G * G;
  let s = 0;
  for (let dx = -(G - 1); dx < G; dx++) {
    for (let dy = -(G - 1); dy < G; dy++) {
      s += (G - Math.abs(dx)) * (G - Math.abs(dy)) * Math.hypot(dx, dy);
    }
  }
  return (P * s) / ((L + 1) * L);
}

Deno.test("meanAttentionDistance() of uniform attention matches the closed form for G = 2..5", () => {
  // G = 2 by hand: each patch has two neighbours at 1 and one at √2, each weighted 1/5
  assertAllClose([uniformMad(2, 4)], [(4 * (2 + Math.SQRT2)) / 5], { atol: 1e-12 });
  for (const G of [2, 3, 4, 5]) {
    const N = G * G + 1;
    const att = new Float64Array(2 * N * N).fill(1 / N);
    assertAllClose(meanAttentionDistance(att, { NH: 2, G, P: 7 }), [
      uniformMad(G, 7),
      uniformMad(G, 7),
    ], {
      atol: 1e-10,
      rtol: 1e-12,
    });
  }
});

Deno.test("meanAttentionDistance() is 0 when every patch attends to itself and ignores cls", () => {
  const G = 3, N = 10;
  const att = new Float64Array(N * N);
  for (let i = 0; i < N; i++) att[i * N + i] = 0.5;
  for (let i = 0; i < N; i++) att[i * N] += 0.5; // cls column: dropped, not renormalised
  assertAllClose(meanAttentionDistance(att, { NH: 1, G, P: 4 }), [0], { atol: 0 });
});

Deno.test("singularValueShare() of a rank-1 matrix is 1 at k = 1; orthonormal rows give k/n", () => {
  const rng = new Rng(3);
  const u = Array.from({ length: 7 }, () => rng.normal());
  const v = Array.from({ length: 5 }, () => rng.normal());
  const rank1 = new Float64Array(7 * 5).map((_, i) => u[Math.floor(i / 5)] * v[i % 5]);
  assertAllClose(singularValueShare(rank1, { rows: 7, cols: 5 }, 5), [1, 1, 1, 1, 1], {
    atol: 1e-9,
  });
  const eye = new Float64Array(4 * 6);
  for (let i = 0; i < 4; i++) eye[i * 6 + i] = 3; // rows normalised to unit length
  assertAllClose(singularValueShare(eye, { rows: 4, cols: 6 }, 5), [0.25, 0.5, 0.75, 1, 1], {
    atol: 1e-12,
  });
});

Deno.test("singularValues() matches the known spectrum of a diagonal-times-rotation matrix", () => {
  // x = R · diag(5, 2, 0.5) with R a rotation in the (0, 1) plane: σ = 5, 2, 0.5
  const c = Math.cos(0.3), s = Math.sin(0.3);
  const x = new Float64Array([c * 5, -s * 2, 0, s * 5, c * 2, 0, 0, 0, 0.5]);
  assertAllClose(singularValues(x, 3, 3), [5, 2, 0.5], { atol: 1e-10 });
  assertAllClose(singularValues(new Float64Array([3, 4]), 1, 2), [5], { atol: 1e-12 });
});

Deno.test("linearCka() is 1 for the same (rotated, scaled) features and < 1 for unrelated ones", () => {
  const rng = new Rng(1);
  const n = 40, p = 6;
  const x = new Float64Array(n * p).map(() => rng.normal());
  assertAllClose([linearCka(x, x, n)], [1], { atol: 1e-12 });
  // invariant to an orthogonal map and isotropic scaling of one side
  const c = Math.cos(1), s = Math.sin(1);
  const y = x.map((v, i) => {
    const col = i % p, row = i - col;
    if (col === 0) return 3 * (c * v - s * x[row + 1]);
    if (col === 1) return 3 * (s * x[row] + c * v);
    return 3 * v;
  });
  assertAllClose([linearCka(x, y, n)], [1], { atol: 1e-12 });
  const z = new Float64Array(n * 4).map(() => rng.normal());
  const r = linearCka(x, z, n);
  assert(r > 0 && r < 0.6, `CKA of unrelated random features should be well below 1: ${r}`);
});

const vit: VitConfig = {
  imgSize: 12,
  patchSize: 3,
  inChans: 1,
  embedDim: 16,
  depth: 2,
  numHeads: 2,
  mlpRatio: 2,
};

/** Random encoder weights; `uniformAttention` zeroes the q rows of every qkv (q = 0). */
function weights(seed: number, uniformAttention: boolean): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const w = new Map<string, Float32Array>();
  for (const s of vitParamSpecs(vit)) {
    const v = initValues(s, rng);
    if (uniformAttention && s.name.endsWith("attn.qkv.weight")) v.fill(0, 0, 16 * 16);
    if (s.name.endsWith("attn.qkv.bias")) v.fill(uniformAttention ? 0 : 0.1, 0, 16);
    w.set(s.name, v);
  }
  return w;
}

function images(seed: number): (i: number) => Float32Array {
  return (i) => new Rng(seed * 1000 + i).uniformArray(144, -1, 1);
}

async function uniformAttentionThroughEncoder(be: Backend): Promise<void> {
  const r = await analyzeEncoder(be, vit, {
    weights: weights(2, true),
    count: 5,
    image: images(1),
    batch: 2,
  });
  const want = uniformMad(4, 3);
  for (const layer of r.mad) assertAllClose(layer, [want, want], { atol: 1e-5, rtol: 1e-5 });
  for (const s of r.svShare) {
    assert(s.every((v, k) => v > 0 && v <= 1 + 1e-9 && (k === 0 || v >= s[k - 1] - 1e-9)), `${s}`);
  }
}

async function ckaOfModelWithItself(be: Backend): Promise<void> {
  const a = await analyzeEncoder(be, vit, {
    weights: weights(4, false),
    count: 12,
    image: images(2),
    batch: 5,
  });
  const b = await analyzeEncoder(be, vit, {
    weights: weights(4, false),
    count: 12,
    image: images(2),
    batch: 4,
  });
  const m = ckaMatrix(a, b);
  assertAllClose(m.map((row, i) => row[i]), [1, 1], { atol: 1e-5 });
  const other = await analyzeEncoder(be, vit, {
    weights: weights(9, false),
    count: 12,
    image: images(2),
    batch: 4,
  });
  const m2 = ckaMatrix(a, other);
  assert(m2.every((row) => row.every((v) => v < 0.999)), `unrelated models: ${m2}`);
}

Deno.test("analyzeEncoder() measures the closed-form distance of uniform attention (cpu)", async () => {
  await uniformAttentionThroughEncoder(new CpuBackend());
});
Deno.test("analyzeEncoder() gives CKA 1 for a model with itself and < 1 vs another (cpu)", async () => {
  await ckaOfModelWithItself(new CpuBackend());
});
gpuTest(
  "analyzeEncoder() measures the closed-form distance of uniform attention",
  (be) => uniformAttentionThroughEncoder(be),
);
gpuTest(
  "analyzeEncoder() gives CKA 1 for a model with itself and < 1 vs another",
  (be) => ckaOfModelWithItself(be),
);
