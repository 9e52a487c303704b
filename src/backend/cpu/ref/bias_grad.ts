/**
 * Bias gradient: the column sums of the output gradient.
 *
 * @module
 */
import type { BiasGradBufs, RowsDims } from "../../backend.ts";
import { checkBiasGrad } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/**
 * `dbias[C] += Σ_r dout[r, C]` (parameter gradient: accumulates). Sums in f64.
 *
 * @example
 * ```ts
 * import { biasGrad } from "./bias_grad.ts";
 * const dbias = new Float32Array(2);
 * biasGrad({ dbias, dout: new Float32Array([1, 2, 3, 4]) }, { rows: 2, C: 2 });
 * ```
 */
export function biasGrad(bufs: BiasGradBufs<FloatArray>, dims: RowsDims): void {
  // dbias: (C); dout: (rows, C)
  checkBiasGrad(bufs, dims);
  const { dbias, dout } = bufs;
  const { rows, C } = dims;
  const acc = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    for (let c = 0; c < C; c++) acc[c] += dout[o + c];
  }
  for (let c = 0; c < C; c++) dbias[c] += acc[c];
}
