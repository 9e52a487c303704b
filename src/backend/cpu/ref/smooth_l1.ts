/**
 * Weighted SmoothL1 loss (the dBOT distillation loss) and its gradient.
 *
 * @module
 */
import type { RowLossBufs, SmoothL1Dims } from "../../backend.ts";
import { checkRowLoss } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/**
 * `d = inp − target`; `e = 0.5·d²/beta` if `|d| < beta` else `|d| − 0.5·beta` (PyTorch
 * `smooth_l1_loss`); row loss = mean over `C`; `loss[0] = Σ_r w_r·row_r / Σ_r w_r`;
 * `dinp = ∂loss/∂inp` (assign). Rows with weight 0 (visible patches) get a zero gradient.
 *
 * @example
 * ```ts
 * import { smoothL1Loss } from "./smooth_l1.ts";
 * const [loss, dinp] = [new Float32Array(1), new Float32Array(2)];
 * const [inp, target, weight] = [new Float32Array([0, 3]), new Float32Array(2), new Float32Array([1])];
 * smoothL1Loss({ loss, dinp, inp, target, weight }, { rows: 1, C: 2, beta: 2 });
 * ```
 */
export function smoothL1Loss(bufs: RowLossBufs<FloatArray>, dims: SmoothL1Dims): void {
  // loss: (1); dinp, inp, target: (rows, C); weight: (rows)
  checkRowLoss("smoothL1Loss", bufs, dims);
  const { loss, dinp, inp, target, weight } = bufs;
  const { rows, C, beta } = dims;
  let wsum = 0;
  for (let r = 0; r < rows; r++) wsum += weight[r];
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    const w = weight[r];
    const g = w / (wsum * C); // ∂loss/∂e for each element of row r
    let row = 0;
    for (let c = 0; c < C; c++) {
      const d = inp[o + c] - target[o + c];
      const ad = Math.abs(d);
      if (ad < beta) {
        row += 0.5 * d * d / beta;
        dinp[o + c] = g * d / beta;
      } else {
        row += ad - 0.5 * beta;
        dinp[o + c] = g * Math.sign(d);
      }
    }
    total += w * row;
  }
  loss[0] = total / (wsum * C);
}
