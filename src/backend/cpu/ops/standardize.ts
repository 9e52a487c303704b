/**
 * Per-row standardisation of teacher features (the distillation targets).
 *
 * @module
 */
import { checkDims, checkLength } from "./check.ts";
import type { FloatArray } from "./types.ts";

/**
 * `out = (inp − mean)/sqrt(var + eps)` per row with the UNBIASED variance (÷(C−1)),
 * two-pass mean/variance. No backward: targets are constants. `out` may alias `inp`.
 *
 * @example
 * ```ts
 * import { standardizeRows } from "./standardize.ts";
 * const out = new Float32Array(2);
 * standardizeRows({ out, inp: new Float32Array([1, 3]) }, { rows: 1, C: 2, eps: 1e-6 });
 * ```
 */
export function standardizeRows(
  { out, inp }: { out: FloatArray; inp: FloatArray },
  { rows, C, eps }: { rows: number; C: number; eps: number },
): void {
  // out, inp: (rows, C)
  const op = "standardizeRows";
  checkDims(op, { rows });
  checkDims(op, { C }, 2); // the unbiased variance needs two samples
  checkLength(op, "out", out, rows * C, "rows·C = ");
  checkLength(op, "inp", inp, rows * C, "rows·C = ");
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[o + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = inp[o + c] - m;
      v += d * d;
    }
    const s = 1 / Math.sqrt(v / (C - 1) + eps);
    for (let c = 0; c < C; c++) out[o + c] = (inp[o + c] - m) * s;
  }
}
