/**
 * Row ops: gather rows by index (masking, unshuffle, mask tokens) with its backward,
 * and per-sample row scaling (drop-path).
 *
 * @module
 */
import type {
  GatherRowsBackwardBufs,
  GatherRowsBufs,
  RowsDims,
  ScaleRowsBufs,
} from "../../backend.ts";
import { checkGatherRows, checkGatherRowsBackward, checkScaleRows } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/**
 * `out[r, :] = inp[index[r], :]`, or `fill[:]` (zeros without `fill`) where `index[r] < 0`.
 *
 * @example
 * ```ts
 * import { gatherRowsForward } from "./rows.ts";
 * const out = new Float32Array(4);
 * const inp = new Float32Array([1, 2, 3, 4]);
 * gatherRowsForward({ out, inp, index: new Int32Array([1, -1]) }, { rows: 2, C: 2 });
 * ```
 */
export function gatherRowsForward(
  bufs: GatherRowsBufs<FloatArray, Int32Array>,
  dims: RowsDims,
): void {
  // out: (rows, C); inp: (inpRows, C); index: (rows); fill: (C)
  const op = "gatherRows";
  const inpRows = checkGatherRows(bufs, dims);
  const { out, inp, index, fill } = bufs;
  const { rows, C } = dims;
  for (let r = 0; r < rows; r++) {
    const i = index[r];
    if (i >= inpRows) {
      throw new RangeError(
        `Cannot run ${op}: index[${r}] must be < ${inpRows} (rows of inp), current value is ${i}`,
      );
    }
    const o = r * C;
    if (i >= 0) out.set(inp.subarray(i * C, (i + 1) * C), o);
    else if (fill) out.set(fill, o);
    else out.fill(0, o, o + C);
  }
}

/**
 * Backward of {@link gatherRowsForward}: `dinp[index[r], :] = dout[r, :]` for `index[r] ≥ 0`
 * (indices unique; rows no index names are set to 0), and `dfill[:] += Σ_{index[r] < 0} dout[r, :]`.
 *
 * @example
 * ```ts
 * import { gatherRowsBackward } from "./rows.ts";
 * const dinp = new Float32Array(4);
 * const dout = new Float32Array([1, 2, 3, 4]);
 * gatherRowsBackward({ dinp, dout, index: new Int32Array([1, -1]) }, { rows: 2, C: 2 });
 * ```
 */
export function gatherRowsBackward(
  bufs: GatherRowsBackwardBufs<FloatArray, Int32Array>,
  dims: RowsDims,
): void {
  // dinp: (inpRows, C); dfill: (C); dout: (rows, C); index: (rows)
  const op = "gatherRowsBackward";
  const inpRows = checkGatherRowsBackward(bufs, dims);
  const { dinp, dfill, dout, index } = bufs;
  const { rows, C } = dims;
  dinp.fill(0);
  for (let r = 0; r < rows; r++) {
    const i = index[r];
    if (i >= inpRows) {
      throw new RangeError(
        `Cannot run ${op}: index[${r}] must be < ${inpRows} (rows of dinp), current value is ${i}`,
      );
    }
    const o = r * C;
    if (i >= 0) dinp.set(dout.subarray(o, o + C), i * C);
    else if (dfill) { for (let c = 0; c < C; c++) dfill[c] += dout[o + c]; }
  }
}

/**
 * Drop-path scaling: `out[r, :] = inp[r, :] · scale[r]`; also its own backward.
 * `out` may alias `inp`.
 *
 * @example
 * ```ts
 * import { scaleRows } from "./rows.ts";
 * const out = new Float32Array(4);
 * scaleRows({ out, inp: new Float32Array([1, 2, 3, 4]), scale: new Float32Array([0, 2]) }, { rows: 2, C: 2 });
 * ```
 */
export function scaleRows(bufs: ScaleRowsBufs<FloatArray>, dims: RowsDims): void {
  // out, inp: (rows, C); scale: (rows)
  checkScaleRows(bufs, dims);
  const { out, inp, scale } = bufs;
  const { rows, C } = dims;
  for (let r = 0; r < rows; r++) {
    const s = scale[r];
    const o = r * C;
    for (let c = 0; c < C; c++) out[o + c] = inp[o + c] * s;
  }
}
