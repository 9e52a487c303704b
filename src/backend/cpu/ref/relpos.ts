/**
 * Relative position bias (BEiT): one `[R, NH]` table whose rows are gathered by a fixed
 * `[N, N]` index and added to every sample's attention logits `[B, NH, N, N]`; the
 * backward scatter-adds the logits' gradient into the table.
 *
 * @module
 */
import type { RelPosBiasBackwardBufs, RelPosBiasBufs, RelPosDims } from "../../backend.ts";
import { checkRelPosBias, checkRelPosBiasBackward } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/** Throws unless every `index` entry is a table row in `[0, R)`. */
export function checkRelPosIndex(op: string, index: Int32Array, R: number): void {
  for (let p = 0; p < index.length; p++) {
    if (!(index[p] >= 0 && index[p] < R)) {
      throw new RangeError(
        `Cannot run ${op}: index[${p}] must be in [0, ${R}) (rows of table), current value is ${
          index[p]
        }`,
      );
    }
  }
}

/**
 * `out[b, h, i, j] = inp[b, h, i, j] + scale·table[index[i·N + j], h]`; `out` may alias `inp`.
 *
 * @example
 * ```ts
 * import { relPosBiasForward } from "./relpos.ts";
 * const x = new Float32Array(4);
 * const table = new Float32Array([1, 2]);
 * const index = new Int32Array([0, 1, 1, 0]);
 * relPosBiasForward({ out: x, inp: x, table, index }, { B: 1, NH: 1, N: 2, R: 2, scale: 1 });
 * ```
 */
export function relPosBiasForward(
  bufs: RelPosBiasBufs<FloatArray, Int32Array>,
  dims: RelPosDims,
): void {
  // out, inp: (B, NH, N, N); table: (R, NH); index: (N·N)
  const op = "relPosBias";
  checkRelPosBias(bufs, dims);
  const { out, inp, table, index } = bufs;
  const { B, NH, N, R, scale } = dims;
  checkRelPosIndex(op, index, R);
  const NN = N * N;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const o = (b * NH + h) * NN;
      for (let p = 0; p < NN; p++) out[o + p] = inp[o + p] + scale * table[index[p] * NH + h];
    }
  }
}

/**
 * `dtable[index[p], h] += scale·Σ_b dout[b, h, p]` for every pair `p = i·N + j`. Reads
 * `index` only; `starts`/`positions` (the same map, inverted) are checked for size and
 * used by the kernels that cannot scatter.
 *
 * @example
 * ```ts
 * import { relPosBiasBackward } from "./relpos.ts";
 * const dtable = new Float32Array(2);
 * const index = new Int32Array([0, 1, 1, 0]);
 * relPosBiasBackward({
 *   dtable,
 *   dout: new Float32Array([1, 2, 3, 4]),
 *   index,
 *   starts: new Int32Array([0, 2, 4]),
 *   positions: new Int32Array([0, 3, 1, 2]),
 * }, { B: 1, NH: 1, N: 2, R: 2, scale: 1 }); // dtable = [5, 5]
 * ```
 */
export function relPosBiasBackward(
  bufs: RelPosBiasBackwardBufs<FloatArray, Int32Array>,
  dims: RelPosDims,
): void {
  // dtable: (R, NH); dout: (B, NH, N, N); index: (N·N)
  const op = "relPosBiasBackward";
  checkRelPosBiasBackward(bufs, dims);
  const { dtable, dout, index } = bufs;
  const { B, NH, N, R, scale } = dims;
  checkRelPosIndex(op, index, R);
  const NN = N * N;
  const acc = new Float64Array(R * NH);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const o = (b * NH + h) * NN;
      for (let p = 0; p < NN; p++) acc[index[p] * NH + h] += dout[o + p];
    }
  }
  for (let k = 0; k < R * NH; k++) dtable[k] += scale * acc[k];
}
