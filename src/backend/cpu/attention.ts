/**
 * The CPU backend's attention (see `Backend.attention`; the plain loops are in
 * `ref/attention.ts`): per (sample, head) unit, the thread's GEMM reads `q`, `k`, `v`
 * straight out of `qkv [B, N, 3, NH, HS]` with a row stride of `3·D`, writes the scores
 * into that unit's `att [N, N]` block, and writes `att·v` straight into the merged
 * `out [B, N, NH, HS]` with a row stride of `D`: no head copies, and a unit's `N×N`
 * scores stay in cache between the product, the softmax and the next product. Units
 * `[lo, hi)` write disjoint outputs, so the pool can hand them out in any order. Where the
 * kernels have fused units (`CpuKernels.attentionUnits`: native C, WebAssembly) and there
 * is no relative position bias, a share of units is one kernel call instead.
 *
 * @module
 */
import type { AttentionDims } from "../backend.ts";
import type { GemmArgs } from "./gemm_types.ts";
import type { KernelOps } from "./kernels.ts";

/** The f32 buffers of the forward (`relTable`/`relIndex`: the BEiT bias, optional). */
export interface AttentionArrays {
  out: Float32Array;
  att: Float32Array;
  qkv: Float32Array;
  relTable?: Float32Array;
  relIndex?: Int32Array;
}

/** The f32 buffers of the backward. */
export interface AttentionBackwardArrays {
  dqkv: Float32Array;
  dlogits: Float32Array;
  dout: Float32Array;
  qkv: Float32Array;
  att: Float32Array;
}

/** A GEMM call with `alpha = 1` on arrays that start at the given element offsets. */
function mm(
  ops: KernelOps,
  [transA, transB]: [boolean, boolean],
  [M, N, K]: [number, number, number],
  [a, ao, lda]: [Float32Array, number, number],
  [b, bo, ldb]: [Float32Array, number, number],
  [c, co, ldc]: [Float32Array, number, number],
): void {
  const args: GemmArgs = {
    transA,
    transB,
    M,
    N,
    K,
    alpha: 1,
    a: a.subarray(ao),
    lda,
    b: b.subarray(bo),
    ldb,
    beta: 0,
    c: c.subarray(co),
    ldc,
  };
  ops.gemm!.sgemm(args);
}

/** Units `[lo, hi)` (unit `u` = sample `⌊u/NH⌋`, head `u mod NH`) of the forward. */
export function attentionUnits(
  { out, att, qkv, relTable, relIndex }: AttentionArrays,
  dims: AttentionDims,
  lo: number,
  hi: number,
  ops: KernelOps,
): void {
  // the native kernels' fused units (no relative position bias), else GEMM calls per unit
  if (ops.attentionUnits && !relTable) return ops.attentionUnits({ out, att, qkv }, dims, lo, hi);
  const { N, NH, HS, scale } = dims;
  const D = NH * HS;
  const NN = N * N;
  for (let u = lo; u < hi; u++) {
    const b = (u / NH) | 0;
    const h = u - b * NH;
    const q = b * N * 3 * D + h * HS; // q[b, 0, h]; k at + D, v at + 2D
    const s = u * NN; // att[b, h]
    // scores [N, N] = q · kᵀ
    mm(ops, [false, true], [N, N, HS], [qkv, q, 3 * D], [qkv, q + D, 3 * D], [att, s, N]);
    if (relTable && relIndex) {
      // + table[index, h] / scale, so that the softmax's scale leaves the bias unscaled
      const inv = 1 / scale;
      for (let p = 0; p < NN; p++) att[s + p] += inv * relTable[relIndex[p] * NH + h];
    }
    const block = att.subarray(s, s + NN);
    ops.softmaxForward({ out: block, inp: block }, { rows: N, C: N, scale });
    // out[b, :, h] [N, HS] (row stride D) = att · v
    mm(ops, [false, false], [N, HS, N], [att, s, N], [qkv, q + 2 * D, 3 * D], [
      out,
      b * N * D + h * HS,
      D,
    ]);
  }
}

/** Units `[lo, hi)` of the backward (see {@link attentionUnits}). */
export function attentionBackwardUnits(
  { dqkv, dlogits, dout, qkv, att }: AttentionBackwardArrays,
  dims: AttentionDims,
  lo: number,
  hi: number,
  ops: KernelOps,
): void {
  if (ops.attentionBackwardUnits) {
    return ops.attentionBackwardUnits({ dqkv, dlogits, dout, qkv, att }, dims, lo, hi);
  }
  const { N, NH, HS, scale } = dims;
  const D = NH * HS;
  const NN = N * N;
  for (let u = lo; u < hi; u++) {
    const b = (u / NH) | 0;
    const h = u - b * NH;
    const q = b * N * 3 * D + h * HS;
    const o = b * N * D + h * HS; // dout[b, 0, h]
    const s = u * NN;
    // datt [N, N] = dout · vᵀ (into dlogits, turned into the logits' gradient below)
    mm(ops, [false, true], [N, N, HS], [dout, o, D], [qkv, q + 2 * D, 3 * D], [dlogits, s, N]);
    // dv [N, HS] = attᵀ · dout
    mm(ops, [true, false], [N, HS, N], [att, s, N], [dout, o, D], [dqkv, q + 2 * D, 3 * D]);
    const block = dlogits.subarray(s, s + NN);
    ops.softmaxBackward(
      { dinp: block, dout: block, out: att.subarray(s, s + NN) },
      { rows: N, C: N, scale },
    );
    // dq = dlogits · k ; dk = dlogitsᵀ · q
    mm(ops, [false, false], [N, HS, N], [dlogits, s, N], [qkv, q + D, 3 * D], [dqkv, q, 3 * D]);
    mm(ops, [true, false], [N, HS, N], [dlogits, s, N], [qkv, q, 3 * D], [dqkv, q + D, 3 * D]);
  }
}
