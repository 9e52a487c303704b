/**
 * Row ops: gather rows by index (masking, unshuffle, mask tokens) with its backward,
 * and per-sample row scaling (drop-path).
 *
 * @module
 */
import { checkDims, checkLength } from "./check.ts";
import type { FloatArray } from "./types.ts";

/** Number of rows of `arr` (length `rows·C`), or a `RangeError` when `C` does not divide it. */
function rowCount(op: string, name: string, arr: ArrayLike<number>, C: number): number {
  const n = C === 0 ? 0 : arr.length / C;
  if (!Number.isInteger(n)) {
    throw new RangeError(
      `Cannot run ${op}: ${name} must hold whole rows of C = ${C}, current length is ${arr.length}`,
    );
  }
  return n;
}

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
  { out, inp, index, fill }: {
    out: FloatArray;
    inp: FloatArray;
    index: Int32Array;
    fill?: FloatArray;
  },
  { rows, C }: { rows: number; C: number },
): void {
  // out: (rows, C); inp: (inpRows, C); index: (rows); fill: (C)
  const op = "gatherRows";
  checkDims(op, { rows, C });
  checkLength(op, "out", out, rows * C, "rows·C = ");
  checkLength(op, "index", index, rows, "rows = ");
  if (fill) checkLength(op, "fill", fill, C, "C = ");
  const inpRows = rowCount(op, "inp", inp, C);
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
  { dinp, dfill, dout, index }: {
    dinp: FloatArray;
    dfill?: FloatArray;
    dout: FloatArray;
    index: Int32Array;
  },
  { rows, C }: { rows: number; C: number },
): void {
  // dinp: (inpRows, C); dfill: (C); dout: (rows, C); index: (rows)
  const op = "gatherRowsBackward";
  checkDims(op, { rows, C });
  checkLength(op, "dout", dout, rows * C, "rows·C = ");
  checkLength(op, "index", index, rows, "rows = ");
  if (dfill) checkLength(op, "dfill", dfill, C, "C = ");
  const inpRows = rowCount(op, "dinp", dinp, C);
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
export function scaleRows(
  { out, inp, scale }: { out: FloatArray; inp: FloatArray; scale: FloatArray },
  { rows, C }: { rows: number; C: number },
): void {
  // out, inp: (rows, C); scale: (rows)
  const op = "scaleRows";
  checkDims(op, { rows, C });
  checkLength(op, "out", out, rows * C, "rows·C = ");
  checkLength(op, "inp", inp, rows * C, "rows·C = ");
  checkLength(op, "scale", scale, rows, "rows = ");
  for (let r = 0; r < rows; r++) {
    const s = scale[r];
    const o = r * C;
    for (let c = 0; c < C; c++) out[o + c] = inp[o + c] * s;
  }
}
