/**
 * RandomResizedCrop straight from decoded bytes: the crop box of interleaved pixels,
 * resized with bicubic taps, without first converting the whole image to planar floats,
 * copying it and cutting the crop out (what {@link randomResizedCrop} does on a float
 * image). Every value is computed as the float path computes it (the byte through the
 * same `v · (1 / maxValue)` rounded to float32, the same taps and summation order), so the
 * result is bit-identical; `tests/data_stream_test.ts` checks it against the eager path.
 *
 * @module
 */
import { type CropBox, cubicTaps } from "./transforms.ts";
import type { Pixels } from "./types.ts";

const luts = new Map<number, Float32Array>();

/** Byte value → float32 value, as `pixelsToFloat` stores it. */
function lut(maxValue: number): Float32Array {
  let t = luts.get(maxValue);
  if (!t) {
    t = new Float32Array(maxValue + 1);
    const s = 1 / maxValue;
    for (let v = 0; v <= maxValue; v++) t[v] = v * s;
    luts.set(maxValue, t);
  }
  return t;
}

/**
 * Whether {@link resizedCrop} gives what the float path gives for `px` seen with `C`
 * channels: the same channels, or grey replicated (colour averaged to grey is left to
 * the float path).
 */
export function fastCropApplies(px: Pixels, C: number): boolean {
  return px.channels === C || (px.channels === 1 && C === 3);
}

/** The `box` of `px` resized to `S × S`, [C, S, S] floats in [0, 1]. */
export function resizedCrop(px: Pixels, C: number, box: CropBox, S: number): Float32Array {
  const { data, stride: st, width: W } = px;
  const f = lut(px.maxValue);
  const { top, left, height: h, width: w } = box;
  const out = new Float32Array(C * S * S);
  if (h === S && w === S) { // the float path's resize returns the crop itself
    for (let c = 0; c < C; c++) {
      const sc = Math.min(c, px.channels - 1);
      for (let y = 0; y < S; y++) {
        const row = ((top + y) * W + left) * st + sc;
        for (let x = 0; x < S; x++) out[(c * S + y) * S + x] = f[data[row + x * st]];
      }
    }
    return out;
  }
  const tx = cubicTaps(w, S), ty = cubicTaps(h, S);
  // source offsets of the horizontal taps, in samples from the row start
  const ox = new Int32Array(4 * S);
  for (let k = 0; k < 4 * S; k++) ox[k] = tx.idx[k] * st;
  const tmp = new Float64Array(C * h * S); // [C, h, S]
  for (let c = 0; c < C; c++) {
    const sc = Math.min(c, px.channels - 1);
    for (let y = 0; y < h; y++) {
      const row = ((top + y) * W + left) * st + sc;
      const o = (c * h + y) * S;
      for (let x = 0; x < S; x++) {
        const k = 4 * x;
        let s = 0;
        s += tx.w[k] * f[data[row + ox[k]]];
        s += tx.w[k + 1] * f[data[row + ox[k + 1]]];
        s += tx.w[k + 2] * f[data[row + ox[k + 2]]];
        s += tx.w[k + 3] * f[data[row + ox[k + 3]]];
        tmp[o + x] = s;
      }
    }
  }
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < S; y++) {
      const k = 4 * y;
      const r0 = (c * h + ty.idx[k]) * S, r1 = (c * h + ty.idx[k + 1]) * S;
      const r2 = (c * h + ty.idx[k + 2]) * S, r3 = (c * h + ty.idx[k + 3]) * S;
      const w0 = ty.w[k], w1 = ty.w[k + 1], w2 = ty.w[k + 2], w3 = ty.w[k + 3];
      const o = (c * S + y) * S;
      for (let x = 0; x < S; x++) {
        let s = 0;
        s += w0 * tmp[r0 + x];
        s += w1 * tmp[r1 + x];
        s += w2 * tmp[r2 + x];
        s += w3 * tmp[r3 + x];
        out[o + x] = s;
      }
    }
  }
  return out;
}
