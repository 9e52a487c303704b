/**
 * Weighted cosine-distance loss and its gradient.
 *
 * @module
 */
import type { CosineDims, RowLossBufs } from "../../backend.ts";
import { checkRowLoss } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/** Default norm clamp, as in `torch.nn.functional.cosine_similarity`. */
const EPS = 1e-8;

/**
 * `loss[0] = Σ_r w_r·(1 − cos_r) / Σ_r w_r` with
 * `cos_r = inp_r·target_r / (max(‖inp_r‖, eps)·max(‖target_r‖, eps))` (eps default 1e-8);
 * `dinp = ∂loss/∂inp` (assign) with torch 1.13's gradient `y/(nx·ny) − cos·x/nx²`, whose
 * second term stays where the clamp is active (torch clamps the norms under no_grad).
 *
 * @example
 * ```ts
 * import { cosineLoss } from "./cosine_loss.ts";
 * const [loss, dinp] = [new Float32Array(1), new Float32Array(2)];
 * const [inp, target, weight] = [new Float32Array([1, 0]), new Float32Array([1, 1]), new Float32Array([1])];
 * cosineLoss({ loss, dinp, inp, target, weight }, { rows: 1, C: 2 });
 * ```
 */
export function cosineLoss(bufs: RowLossBufs<FloatArray>, dims: CosineDims): void {
  // loss: (1); dinp, inp, target: (rows, C); weight: (rows)
  checkRowLoss("cosineLoss", bufs, dims);
  const { loss, dinp, inp, target, weight } = bufs;
  const { rows, C } = dims;
  const eps = dims.eps ?? EPS;
  let wsum = 0;
  for (let r = 0; r < rows; r++) wsum += weight[r];
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let xx = 0;
    let yy = 0;
    let xy = 0;
    for (let c = 0; c < C; c++) {
      const x = inp[o + c];
      const y = target[o + c];
      xx += x * x;
      yy += y * y;
      xy += x * y;
    }
    const nx = Math.max(Math.sqrt(xx), eps);
    const ny = Math.max(Math.sqrt(yy), eps);
    const cos = xy / (nx * ny);
    const w = weight[r];
    total += w * (1 - cos);
    // ∂cos/∂x = y/(nx·ny) − cos·x/nx² (nx clamped; torch 1.13)
    const g = -w / wsum;
    const a = 1 / (nx * ny);
    const b = cos / (nx * nx);
    for (let c = 0; c < C; c++) dinp[o + c] = g * (target[o + c] * a - inp[o + c] * b);
  }
  loss[0] = total / wsum;
}
