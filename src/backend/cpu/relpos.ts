/**
 * Fast f32 relative position bias for the CPU backend: the bias is gathered once per head
 * into a `[NH, N·N]` plane and added to every sample with contiguous loops; the backward
 * sums the batch into such a plane first and scatters once. Tested against the reference
 * loops of `ref/relpos.ts` (tests/relpos_test.ts).
 *
 * @module
 */
import type { RelPosBiasBackwardBufs, RelPosBiasBufs, RelPosDims } from "../backend.ts";
import { checkRelPosBias, checkRelPosBiasBackward } from "../checks.ts";
import { checkRelPosIndex } from "./ref/relpos.ts";

/** Index arrays already checked against their table size (an index is fixed per model). */
const checked = new WeakMap<Int32Array, number>();

function checkIndex(op: string, index: Int32Array, R: number): void {
  if (checked.get(index) === R) return;
  checkRelPosIndex(op, index, R);
  checked.set(index, R);
}

/** See `Backend.relPosBias` (f32, one thread). */
export function relPosBiasFast(
  bufs: RelPosBiasBufs<Float32Array, Int32Array>,
  dims: RelPosDims,
): void {
  checkRelPosBias(bufs, dims);
  const { out, inp, table, index } = bufs;
  const { B, NH, N, R, scale } = dims;
  checkIndex("relPosBias", index, R);
  const NN = N * N;
  const plane = new Float32Array(NN);
  for (let h = 0; h < NH; h++) {
    for (let p = 0; p < NN; p++) plane[p] = scale * table[index[p] * NH + h];
    for (let b = 0; b < B; b++) {
      const o = (b * NH + h) * NN;
      for (let p = 0; p < NN; p++) out[o + p] = inp[o + p] + plane[p];
    }
  }
}

/** See `Backend.relPosBiasBackward` (f32 batch sums, f64 scatter, one thread). */
export function relPosBiasBackwardFast(
  bufs: RelPosBiasBackwardBufs<Float32Array, Int32Array>,
  dims: RelPosDims,
): void {
  checkRelPosBiasBackward(bufs, dims);
  const { dtable, dout, index } = bufs;
  const { B, NH, N, R, scale } = dims;
  checkIndex("relPosBiasBackward", index, R);
  const NN = N * N;
  const plane = new Float32Array(NN);
  const acc = new Float64Array(R);
  for (let h = 0; h < NH; h++) {
    plane.set(dout.subarray(h * NN, (h + 1) * NN));
    for (let b = 1; b < B; b++) {
      const o = (b * NH + h) * NN;
      for (let p = 0; p < NN; p++) plane[p] += dout[o + p];
    }
    acc.fill(0);
    for (let p = 0; p < NN; p++) acc[index[p]] += plane[p];
    for (let r = 0; r < R; r++) dtable[r * NH + h] += scale * acc[r];
  }
}
