/**
 * Softmax cross-entropy with soft targets (classification heads) and its gradient.
 *
 * @module
 */
import type { CrossEntropyBufs, RowsDims } from "../../backend.ts";
import { checkCrossEntropy } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/**
 * `loss[0] = mean_r −Σ_c target[r,c]·log softmax(logits[r])_c` (stable log-sum-exp);
 * `dlogits = (softmax − target)/rows` (assign). Targets are distributions (rows sum to 1:
 * one-hot, label smoothing, mixup); the gradient formula assumes it.
 *
 * @example
 * ```ts
 * import { crossEntropyLoss } from "./cross_entropy.ts";
 * const [loss, dlogits] = [new Float32Array(1), new Float32Array(2)];
 * const [logits, target] = [new Float32Array([2, 0]), new Float32Array([1, 0])];
 * crossEntropyLoss({ loss, dlogits, logits, target }, { rows: 1, C: 2 });
 * ```
 */
export function crossEntropyLoss(bufs: CrossEntropyBufs<FloatArray>, dims: RowsDims): void {
  // loss: (1); dlogits, logits, target: (rows, C)
  checkCrossEntropy(bufs, dims);
  const { loss, dlogits, logits, target } = bufs;
  const { rows, C } = dims;
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, logits[o + c]);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(logits[o + c] - max);
    const lse = max + Math.log(sum);
    for (let c = 0; c < C; c++) {
      const t = target[o + c];
      const logp = logits[o + c] - lse;
      if (t !== 0) total -= t * logp; // skip 0·(−∞) where a probability underflows
      dlogits[o + c] = (Math.exp(logp) - t) / rows;
    }
  }
  loss[0] = total / rows;
}
