/**
 * Images to patch rows (the input of the patch-embedding matmul).
 *
 * @module
 */
import type { OutInpBufs, PatchifyDims } from "../../backend.ts";
import { checkPatchify } from "../../checks.ts";
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
export function patchify(bufs: OutInpBufs<FloatArray>, dims: PatchifyDims): void {
  // out: (B, L, C·P·P); inp: (B, C, H, W)
  checkPatchify(bufs, dims);
  const { out, inp } = bufs;
  const { B, C, H, W, P } = dims;
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
