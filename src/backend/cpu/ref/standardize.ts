/**
 * Per-row standardisation of teacher features (the distillation targets).
 *
 * @module
 */
import type { NormDims, OutInpBufs } from "../../backend.ts";
import { checkStandardizeRows } from "../../checks.ts";
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
export function standardizeRows(bufs: OutInpBufs<FloatArray>, dims: NormDims): void {
  // out, inp: (rows, C)
  checkStandardizeRows(bufs, dims);
  const { out, inp } = bufs;
  const { rows, C, eps } = dims;
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
