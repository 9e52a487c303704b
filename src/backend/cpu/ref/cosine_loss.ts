/**
 * Weighted cosine-distance loss and its gradient.
 *
 * @module
 */
import type { RowLossBufs, RowsDims } from "../../backend.ts";
import { checkRowLoss } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/** Norm clamp, as in `torch.nn.functional.cosine_similarity`. */
const EPS = 1e-8;

/**
 * `loss[0] = Σ_r w_r·(1 − cos_r) / Σ_r w_r` with
 * `cos_r = inp_r·target_r / (max(‖inp_r‖, 1e-8)·max(‖target_r‖, 1e-8))`; `dinp = ∂loss/∂inp` (assign).
 *
 * @example
 * ```ts
 * import { cosineLoss } from "./cosine_loss.ts";
 * const [loss, dinp] = [new Float32Array(1), new Float32Array(2)];
 * const [inp, target, weight] = [new Float32Array([1, 0]), new Float32Array([1, 1]), new Float32Array([1])];
 * cosineLoss({ loss, dinp, inp, target, weight }, { rows: 1, C: 2 });
 * ```
 */
export function cosineLoss(bufs: RowLossBufs<FloatArray>, dims: RowsDims): void {
  // loss: (1); dinp, inp, target: (rows, C); weight: (rows)
  checkRowLoss("cosineLoss", bufs, dims);
  const { loss, dinp, inp, target, weight } = bufs;
  const { rows, C } = dims;
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
    const xn = Math.sqrt(xx);
    const nx = Math.max(xn, EPS);
    const ny = Math.max(Math.sqrt(yy), EPS);
    const cos = xy / (nx * ny);
    const w = weight[r];
    total += w * (1 - cos);
    // ∂cos/∂x = y/(nx·ny) − cos·x/‖x‖² (the second term only where the clamp is inactive)
    const g = -w / wsum;
    const a = 1 / (nx * ny);
    const b = xn > EPS ? cos / (xn * xn) : 0;
    for (let c = 0; c < C; c++) dinp[o + c] = g * (target[o + c] * a - inp[o + c] * b);
  }
  loss[0] = total / wsum;
}
