/**
 * Bias gradient: the column sums of the output gradient.
 *
 * @module
 */
import { checkDims, checkLength } from "./check.ts";
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
export function biasGrad(
  { dbias, dout }: { dbias: FloatArray; dout: FloatArray },
  { rows, C }: { rows: number; C: number },
): void {
  // dbias: (C); dout: (rows, C)
  checkDims("biasGrad", { rows, C });
  checkLength("biasGrad", "dbias", dbias, C, "C = ");
  checkLength("biasGrad", "dout", dout, rows * C, "rows·C = ");
  const acc = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    for (let c = 0; c < C; c++) acc[c] += dout[o + c];
  }
  for (let c = 0; c < C; c++) dbias[c] += acc[c];
}
