/**
 * Decoded pixels to the float images of the {@link Dataset} contract (no file access).
 *
 * @module
 */
import type { Dataset, Pixels } from "./types.ts";

export type { Dataset, Pixels };

/**
 * Interleaved pixels → [C, H, W] floats in [0, 1] (alpha dropped): grey replicated to
 * C = 3; colour averaged to C = 1.
 */
export function pixelsToFloat(px: Pixels, C: number): Float32Array {
  const HW = px.height * px.width, st = px.stride;
  const out = new Float32Array(C * HW);
  const s = 1 / px.maxValue;
  const d = px.data;
  if (C === 1 && px.channels === 3) {
    for (let j = 0; j < HW; j++) {
      out[j] = ((d[j * st] * s + d[j * st + 1] * s) + d[j * st + 2] * s) / 3;
    }
    return out;
  }
  for (let c = 0; c < C; c++) {
    const src = Math.min(c, px.channels - 1); // grey → replicate
    for (let j = 0; j < HW; j++) out[c * HW + j] = d[j * st + src] * s;
  }
  return out;
}
