/**
 * WebGPU optimiser ops (gradNorm, adamw) against the CPU backend. Every tensor is a view
 * at a nonzero offset inside a padded buffer, and the padding must come back untouched.
 *
 * @module
 */
import type { Backend } from "../src/backend/backend.ts";
import type { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { Rng } from "../src/util/rng.ts";
import { assertPlacedClose, compare, cpu, normal, place, type Placed } from "./compare.ts";
import { gpuTest } from "./gpu.ts";
import { assertAllClose, type Tolerance } from "./helpers.ts";
import { throws } from "node:assert";

/** The norm is a sum of squares over up to 300k elements: f32 tree vs f64. */
const NORM_TOL: Tolerance = { atol: 1e-6, rtol: 1e-5 };

for (
  const [n, maxNorm, scale] of [
    [1, Infinity, 1],
    [1000, Infinity, 0.01],
    [300007, Infinity, 1e-3],
    [300007, 1, 1e-2], // norm ≈ 5.5: clipped
    [1000, 5, 0.01], // norm ≈ 0.3: not clipped
  ]
) {
  gpuTest(`gradNorm() matches the CPU backend for n=${n}, maxNorm=${maxNorm}`, async (gpu) => {
    const rng = new Rng(n + 11);
    const grad = normal(rng, n, scale);
    const norm = Math.sqrt(grad.reduce((a, g) => a + g * g, 0));
    console.log(`gradNorm n=${n}: norm ${norm.toFixed(4)}, clips: ${norm > maxNorm}`);
    const errs = await compare(
      gpu,
      {
        norm: { data: new Float32Array([7]), shape: [1] },
        clipScale: { data: new Float32Array([7]), shape: [1] },
        grad: { data: grad, shape: [n] },
      },
      (be, t) => be.gradNorm({ norm: t.norm, clipScale: t.clipScale, grad: t.grad }, { maxNorm }),
      { norm: NORM_TOL, clipScale: NORM_TOL },
      `gradNorm n=${n} maxNorm=${maxNorm}`,
    );
    if (!Number.isFinite(maxNorm)) assertAllClose([errs.clipScale], [0], { atol: 0 }, "clipScale");
  });
}

/** Segments `[offsets[s], offsets[s+1])` with their `(lrScale, weightDecay)`. */
interface Segments {
  offsets: Int32Array;
  hyper: Float32Array;
}

/**
 * 3 segments with boundaries at non-multiples of 256, plus an empty one, 3 leading and
 * 5 trailing elements outside every segment (left alone).
 */
const SMALL: Segments = {
  offsets: new Int32Array([3, 300, 300, 1037, 1800]),
  hyper: new Float32Array([1, 0.05, 0.5, 0.05, 0.65, 0, 0.25, 0.1]),
};

/** A ViT-like table: 150 segments of random lengths (1..4000), layer-wise lr scales. */
function manySegments(rng: Rng, S: number): Segments {
  const offsets = new Int32Array(S + 1);
  const hyper = new Float32Array(2 * S);
  for (let s = 0; s < S; s++) {
    offsets[s + 1] = offsets[s] + 1 + Math.floor(rng.uniform() * 4000);
    hyper[2 * s] = Math.pow(0.75, Math.floor(s / 12));
    hyper[2 * s + 1] = s % 3 === 0 ? 0 : 0.05;
  }
  return { offsets, hyper };
}

/** Param, m, v: one f32 rounding step per update, three updates. */
const ADAM_TOL: Tolerance = { atol: 1e-6, rtol: 1e-5 };

async function adamwCase(
  gpu: WebGpuBackend,
  seg: Segments,
  n: number,
  steps: number,
  clip: "none" | "fixed" | "gradNorm",
  what: string,
): Promise<void> {
  const rng = new Rng(n + steps);
  const S = seg.offsets.length - 1;
  const dims = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
  const both: [Backend, Record<string, Placed>][] = [];
  const init = { param: normal(rng, n), m: new Float32Array(n), v: new Float32Array(n) };
  for (const be of [cpu, gpu] as Backend[]) {
    both.push([be, {
      param: place(be, init.param, [n]),
      grad: place(be, new Float32Array(n), [n]),
      m: place(be, init.m, [n]),
      v: place(be, init.v, [n]),
      offsets: place(be, seg.offsets, [S + 1]),
      hyper: place(be, seg.hyper, [S, 2]),
      norm: place(be, new Float32Array(1), [1]),
      clipScale: place(be, new Float32Array([0.37]), [1]),
    }]);
  }
  for (let step = 1; step <= steps; step++) {
    const grad = normal(rng, n, 0.1);
    for (const [be, p] of both) {
      be.upload(p.grad.t, grad);
      if (clip === "gradNorm") {
        be.gradNorm({ norm: p.norm.t, clipScale: p.clipScale.t, grad: p.grad.t }, { maxNorm: 1 });
      }
      be.adamw({
        param: p.param.t,
        grad: p.grad.t,
        m: p.m.t,
        v: p.v.t,
        offsets: p.offsets.t,
        hyper: p.hyper.t,
        clipScale: clip === "none" ? undefined : p.clipScale.t,
      }, { ...dims, step });
    }
  }
  const errs: Record<string, number> = {};
  for (const k of ["param", "m", "v", "clipScale"]) {
    errs[k] = await assertPlacedClose(gpu, both[1][1][k], both[0][1][k], ADAM_TOL, what, k);
  }
  // Elements outside every segment are untouched.
  const param = await gpu.download(both[1][1].param.t);
  const outside = [...param.subarray(0, seg.offsets[0]), ...param.subarray(seg.offsets[S])];
  const init0 = [...init.param.subarray(0, seg.offsets[0]), ...init.param.subarray(seg.offsets[S])];
  assertAllClose(outside, init0, { atol: 0, rtol: 0 }, `${what}: elements outside the segments`);
  console.log(`${what}: max abs error ${JSON.stringify(errs)}`);
}

gpuTest(
  "adamw() matches the CPU backend for 3 steps, 3 segments + an empty one, n=1805",
  (gpu) => adamwCase(gpu, SMALL, 1805, 3, "none", "adamw n=1805 no clip"),
);

gpuTest(
  "adamw() matches the CPU backend for 3 steps, 3 segments, n=1805, with a fixed clipScale",
  (gpu) => adamwCase(gpu, SMALL, 1805, 3, "fixed", "adamw n=1805 clipScale 0.37"),
);

gpuTest(
  "adamw() matches the CPU backend for 3 steps, 150 segments, with clipScale from gradNorm",
  (gpu) => {
    const seg = manySegments(new Rng(99), 150);
    const n = seg.offsets[150];
    return adamwCase(gpu, seg, n, 3, "gradNorm", `adamw n=${n} S=150 gradNorm clip`);
  },
);

gpuTest("adamw() rejects a hyper table that does not match the offsets", (gpu) => {
  const [param, grad, m, v] = [0, 1, 2, 3].map(() => gpu.tensor([10]));
  const offsets = gpu.tensor([3], "i32");
  const hyper = gpu.tensor([3]);
  const dims = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 };
  throws(() => gpu.adamw({ param, grad, m, v, offsets, hyper }, dims), RangeError);
  return Promise.resolve();
});
