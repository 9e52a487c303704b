/**
 * Row softmax with a pre-scale (attention), forward and backward.
 *
 * @module
 */
import type { OutInpBufs, SoftmaxBackwardBufs, SoftmaxDims } from "../../backend.ts";
import { checkSoftmax, checkSoftmaxBackward } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/**
 * `out[r, :] = softmax(scale · inp[r, :])`, subtracting the row max first so `exp` cannot
 * overflow. `out` may alias `inp`.
 *
 * @example
 * ```ts
 * import { softmaxForward } from "./softmax.ts";
 * const out = new Float32Array(2);
 * softmaxForward({ out, inp: new Float32Array([0, 1]) }, { rows: 1, C: 2, scale: 1 });
 * ```
 */
export function softmaxForward(bufs: OutInpBufs<FloatArray>, dims: SoftmaxDims): void {
  // out, inp: (rows, C)
  checkSoftmax(bufs, dims);
  const { out, inp } = bufs;
  const { rows, C, scale } = dims;
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, scale * inp[o + c]);
    let sum = 0;
    for (let c = 0; c < C; c++) {
      const e = Math.exp(scale * inp[o + c] - max);
      out[o + c] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let c = 0; c < C; c++) out[o + c] *= inv;
  }
}

/**
 * Gradient w.r.t. the pre-scale input: `dinp = scale · out ⊙ (dout − Σ dout⊙out)` (assign).
 * `dinp` may alias `dout`.
 *
 * @example
 * ```ts
 * import { softmaxBackward } from "./softmax.ts";
 * const dinp = new Float32Array(2);
 * const out = new Float32Array([0.5, 0.5]);
 * softmaxBackward({ dinp, dout: new Float32Array([1, 0]), out }, { rows: 1, C: 2, scale: 1 });
 * ```
 */
export function softmaxBackward(
  bufs: SoftmaxBackwardBufs<FloatArray>,
  dims: SoftmaxDims,
): void {
  // dinp, dout, out: (rows, C)
  checkSoftmaxBackward(bufs, dims);
  const { dinp, dout, out } = bufs;
  const { rows, C, scale } = dims;
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let dot = 0;
    for (let c = 0; c < C; c++) dot += dout[o + c] * out[o + c];
    for (let c = 0; c < C; c++) dinp[o + c] = scale * out[o + c] * (dout[o + c] - dot);
  }
}
