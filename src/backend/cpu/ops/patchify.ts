/**
 * Images to patch rows (the input of the patch-embedding matmul).
 *
 * @module
 */
import { checkDims, checkLength } from "./check.ts";
import type { FloatArray } from "./types.ts";

/**
 * `inp [B, C, H, W]` → `out [B, L, C·P·P]` with `L = (H/P)·(W/P)`; patches row-major
 * (`l = h·(W/P) + w`), each patch channel-major (`c, i, j`) like a conv weight `[D, C, P, P]`.
 *
 * @example
 * ```ts
 * import { patchify } from "./patchify.ts";
 * const out = new Float32Array(16);
 * patchify({ out, inp: new Float32Array(16) }, { B: 1, C: 1, H: 4, W: 4, P: 2 });
 * ```
 */
export function patchify(
  { out, inp }: { out: FloatArray; inp: FloatArray },
  { B, C, H, W, P }: { B: number; C: number; H: number; W: number; P: number },
): void {
  // out: (B, L, C·P·P); inp: (B, C, H, W)
  const op = "patchify";
  checkDims(op, { B, C, H, W });
  checkDims(op, { P }, 1);
  if (H % P !== 0 || W % P !== 0) {
    throw new RangeError(
      `Cannot run ${op}: H and W must be divisible by P, current values are ${H}, ${W} and ${P}`,
    );
  }
  checkLength(op, "out", out, B * C * H * W, "B·C·H·W = ");
  checkLength(op, "inp", inp, B * C * H * W, "B·C·H·W = ");
  const GH = H / P;
  const GW = W / P;
  const D = C * P * P;
  for (let b = 0; b < B; b++) {
    for (let gh = 0; gh < GH; gh++) {
      for (let gw = 0; gw < GW; gw++) {
        const o = (b * GH * GW + gh * GW + gw) * D; // out[b, l, :]
        for (let c = 0; c < C; c++) {
          for (let i = 0; i < P; i++) {
            const s = ((b * C + c) * H + gh * P + i) * W + gw * P; // inp[b, c, gh·P + i, gw·P]
            const d = o + (c * P + i) * P;
            for (let j = 0; j < P; j++) out[d + j] = inp[s + j];
          }
        }
      }
    }
  }
}
