/**
 * Row softmax with a pre-scale (attention), forward and backward.
 *
 * @module
 */
import { checkDims, checkLength } from "./check.ts";
import type { FloatArray } from "./types.ts";
import { simdKernels } from "../simd/simd.ts";

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
export function softmaxForward(
  { out, inp }: { out: FloatArray; inp: FloatArray },
  { rows, C, scale }: { rows: number; C: number; scale: number },
): void {
  // out, inp: (rows, C)
  checkDims("softmax", { rows, C });
  checkLength("softmax", "out", out, rows * C, "rows·C = ");
  checkLength("softmax", "inp", inp, rows * C, "rows·C = ");
  const simd = simdKernels();
  if (simd && out instanceof Float32Array && inp instanceof Float32Array) {
    simd.softmax(out, inp, rows, C, scale);
    return;
  }
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
  { dinp, dout, out }: { dinp: FloatArray; dout: FloatArray; out: FloatArray },
  { rows, C, scale }: { rows: number; C: number; scale: number },
): void {
  // dinp, dout, out: (rows, C)
  checkDims("softmaxBackward", { rows, C });
  checkLength("softmaxBackward", "dinp", dinp, rows * C, "rows·C = ");
  checkLength("softmaxBackward", "dout", dout, rows * C, "rows·C = ");
  checkLength("softmaxBackward", "out", out, rows * C, "rows·C = ");
  const simd = simdKernels();
  if (
    simd && dinp instanceof Float32Array && dout instanceof Float32Array &&
    out instanceof Float32Array
  ) {
    simd.softmaxBackward(dinp, dout, out, rows, C, scale);
    return;
  }
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let dot = 0;
    for (let c = 0; c < C; c++) dot += dout[o + c] * out[o + c];
    for (let c = 0; c < C; c++) dinp[o + c] = scale * out[o + c] * (dout[o + c] - dot);
  }
}
