/**
 * Column scaling (layer scale `γ ⊙ x`, BEiT / CaiT) and its backward.
 *
 * @module
 */
import type { RowsDims, ScaleColsBackwardBufs, ScaleColsBufs } from "../../backend.ts";
import { checkScaleCols, checkScaleColsBackward } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/**
 * `out[r, c] = inp[r, c]·scale[c]`; `out` may alias `inp`.
 *
 * @example
 * ```ts
 * import { scaleColsForward } from "./scale_cols.ts";
 * const x = new Float32Array([1, 2, 3, 4]);
 * scaleColsForward({ out: x, inp: x, scale: new Float32Array([0.1, 10]) }, { rows: 2, C: 2 });
 * ```
 */
export function scaleColsForward(bufs: ScaleColsBufs<FloatArray>, dims: RowsDims): void {
  // out, inp: (rows, C); scale: (C)
  checkScaleCols(bufs, dims);
  const { out, inp, scale } = bufs;
  const { rows, C } = dims;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < C; c++) out[r * C + c] = inp[r * C + c] * scale[c];
  }
}

/**
 * `dscale[c] += Σ_r dout[r, c]·inp[r, c]` (summed in f64), then `dinp = dout·scale`
 * (assign; `dinp` may alias `dout`).
 *
 * @example
 * ```ts
 * import { scaleColsBackward } from "./scale_cols.ts";
 * const dinp = new Float32Array(2);
 * const dscale = new Float32Array(2);
 * const one = new Float32Array([1, 1]);
 * scaleColsBackward({ dinp, dscale, dout: one, inp: one, scale: one }, { rows: 1, C: 2 });
 * ```
 */
export function scaleColsBackward(bufs: ScaleColsBackwardBufs<FloatArray>, dims: RowsDims): void {
  // dinp, dout, inp: (rows, C); dscale, scale: (C)
  checkScaleColsBackward(bufs, dims);
  const { dinp, dscale, dout, inp, scale } = bufs;
  const { rows, C } = dims;
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += dout[r * C + c] * inp[r * C + c];
    dscale[c] += s;
  }
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < C; c++) dinp[r * C + c] = dout[r * C + c] * scale[c];
  }
}
