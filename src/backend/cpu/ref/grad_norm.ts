/**
 * Global gradient norm and the clipping factor (torch `clip_grad_norm_`).
 *
 * @module
 */
import type { GradNormBufs, GradNormDims } from "../../backend.ts";
import { checkGradNorm } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/**
 * `norm[0] = sqrt(Σ grad²)` (summed in f64) and `clipScale[0] = min(1, maxNorm/(norm + 1e-6))`;
 * `maxNorm = Infinity` gives no clipping.
 *
 * @example
 * ```ts
 * import { gradNorm } from "./grad_norm.ts";
 * const [norm, clipScale] = [new Float32Array(1), new Float32Array(1)];
 * gradNorm({ norm, clipScale, grad: new Float32Array([3, 4]) }, { maxNorm: 1 });
 * ```
 */
export function gradNorm(bufs: GradNormBufs<FloatArray>, dims: GradNormDims): void {
  // norm, clipScale: (1); grad: (n)
  checkGradNorm(bufs, dims);
  const { norm, clipScale, grad } = bufs;
  const { maxNorm } = dims;
  const n = Math.sqrt(sumOfSquares(grad));
  norm[0] = n;
  clipScale[0] = clipFactor(n, maxNorm);
}

/**
 * `Σ grad²` summed in f64, in index order (the CPU pool sums per-share partials of it).
 *
 * @example
 * ```ts
 * import { sumOfSquares } from "./grad_norm.ts";
 * sumOfSquares(new Float32Array([3, 4])); // 25
 * ```
 */
export function sumOfSquares(grad: FloatArray): number {
  let ss = 0;
  for (let i = 0; i < grad.length; i++) ss += grad[i] * grad[i];
  return ss;
}

/**
 * The clipping factor `min(1, maxNorm/(norm + 1e-6))` of torch `clip_grad_norm_`.
 *
 * @example
 * ```ts
 * import { clipFactor } from "./grad_norm.ts";
 * clipFactor(5, 1); // ≈ 0.2
 * ```
 */
export function clipFactor(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}
