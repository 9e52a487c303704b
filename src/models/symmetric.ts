/**
 * Pieces of the symmetric (BEiT-style) student that are not a layer: the relative
 * position index of BEiT's shared relative position bias, and its inverse (for the
 * scatter-free backward on WebGPU).
 *
 * @module
 */

/** BEiT's relative position index for a `gh × gw` patch grid plus cls. */
export interface RelPosIndex {
  /** Tokens N = 1 + gh·gw. */
  N: number;
  /** Table rows R = (2gh − 1)(2gw − 1) + 3. */
  R: number;
  /** `[N·N]`: the table row of (query i, key j) at `i·N + j`. */
  index: Int32Array;
  /** `[R + 1]`: pairs of row r are `positions[starts[r] .. starts[r+1])`. */
  starts: Int32Array;
  /** `[N·N]`: pair ids `i·N + j` grouped by table row (ascending within a row). */
  positions: Int32Array;
}

/** Table rows of BEiT's relative position bias for a `gh × gw` grid: `(2gh−1)(2gw−1) + 3`. */
export function relPosRows(gh: number, gw: number): number {
  return (2 * gh - 1) * (2 * gw - 1) + 3;
}

/**
 * BEiT's `relative_position_index` (timm `gen_relative_position_index`): patch tokens
 * `i = 1 + yi·gw + xi`, `j = 1 + yj·gw + xj` use row `(yi − yj + gh − 1)(2gw − 1) + (xi − xj + gw − 1)`;
 * cls→token (row 0) uses `R − 3`, token→cls (column 0) `R − 2`, cls→cls `R − 1`.
 *
 * @example
 * ```ts
 * import { relPosIndex } from "./symmetric.ts";
 * const { N, R, index } = relPosIndex(2, 2); // N = 5, R = 12, index[0] = 11
 * ```
 */
export function relPosIndex(gh: number, gw: number): RelPosIndex {
  if (!Number.isInteger(gh) || !Number.isInteger(gw) || gh < 1 || gw < 1) {
    throw new RangeError(
      `Cannot build a relative position index: the grid must be positive integers, current values are ${gh} and ${gw}`,
    );
  }
  const L = gh * gw;
  const N = 1 + L;
  const R = relPosRows(gh, gw);
  const index = new Int32Array(N * N);
  for (let i = 0; i < L; i++) {
    const yi = Math.floor(i / gw);
    const xi = i % gw;
    for (let j = 0; j < L; j++) {
      const yj = Math.floor(j / gw);
      const xj = j % gw;
      index[(1 + i) * N + 1 + j] = (yi - yj + gh - 1) * (2 * gw - 1) + (xi - xj + gw - 1);
    }
  }
  for (let j = 0; j < N; j++) index[j] = R - 3; // cls → token
  for (let i = 0; i < N; i++) index[i * N] = R - 2; // token → cls
  index[0] = R - 1; // cls → cls
  // inverse: counting sort of pair ids by row
  const starts = new Int32Array(R + 1);
  for (let p = 0; p < N * N; p++) starts[index[p] + 1]++;
  for (let r = 0; r < R; r++) starts[r + 1] += starts[r];
  const fillAt = starts.slice(0, R);
  const positions = new Int32Array(N * N);
  for (let p = 0; p < N * N; p++) positions[fillAt[index[p]]++] = p;
  return { N, R, index, starts, positions };
}
