/**
 * `Backend.attention` and its backward composed from a backend's head, matmul, softmax
 * and relative-position ops, for a backend without a fused attention (the WebGPU one):
 * `splitHeads` copies q, k, v out of the qkv projection into per-head tensors, the
 * batched matmuls and the softmax run on those, and `mergeHeads` writes the output back
 * as tokens. The backward splits q, k, v again from the kept qkv (the forward keeps only
 * `att`), so nothing but the workspace is shared between blocks.
 *
 * @module
 */
import type {
  AttentionBackwardBufs,
  AttentionBufs,
  AttentionDims,
  Backend,
  Tensor,
} from "./backend.ts";

/** A workspace tensor named `name` of exactly `size` f32 elements (reused between calls). */
export type Workspace = (name: string, size: number) => Tensor;

/** See `Backend.attention`: the same result by `splitHeads`, `matmul`, `softmax`, `mergeHeads`. */
export function composedAttention(
  be: Backend,
  { out, att, qkv, relTable, relIndex }: AttentionBufs,
  dims: AttentionDims,
  work: Workspace,
): void {
  const { B, N, NH, HS, scale } = dims;
  const heads = B * NH * N * HS;
  const [q, k, v, o] = ["q", "k", "v", "o"].map((n) => work(n, heads));
  const logits = work("logits", B * NH * N * N);
  be.splitHeads({ q, k, v, qkv }, { B, N, NH, HS });
  // logits [B·NH, N, N] = q · kᵀ (+ bias/scale) ; att = softmax(scale · logits) ; o = att · v
  be.matmul({ out: logits, a: q, b: k }, { M: N, N, K: HS, transB: true, batch: B * NH });
  if (relTable && relIndex) {
    const R = relTable.size / NH;
    be.relPosBias(
      { out: logits, inp: logits, table: relTable, index: relIndex },
      { B, NH, N, R, scale: 1 / scale },
    );
  }
  be.softmax({ out: att, inp: logits }, { rows: B * NH * N, C: N, scale });
  be.matmul({ out: o, a: att, b: v }, { M: N, N: HS, K: N, batch: B * NH });
  be.mergeHeads({ out, inp: o }, { B, N, NH, HS });
}

/** See `Backend.attentionBackward`, composed as {@link composedAttention} is. */
export function composedAttentionBackward(
  be: Backend,
  { dqkv, dlogits, dout, qkv, att }: AttentionBackwardBufs,
  dims: AttentionDims,
  work: Workspace,
): void {
  const { B, N, NH, HS, scale } = dims;
  const heads = B * NH * N * HS;
  const [q, k, v, dO, dq, dk, dv] = ["q", "k", "v", "dO", "dq", "dk", "dv"].map((n) =>
    work(n, heads)
  );
  const datt = work("datt", B * NH * N * N);
  be.splitHeads({ q, k, v, qkv }, { B, N, NH, HS });
  be.mergeHeadsBackward({ dinp: dO, dout }, { B, N, NH, HS });
  // o = att · v:  datt = dO · vᵀ ; dv = attᵀ · dO
  be.matmul({ out: datt, a: dO, b: v }, { M: N, N, K: HS, transB: true, batch: B * NH });
  be.matmul({ out: dv, a: att, b: dO }, { M: N, N: HS, K: N, transA: true, batch: B * NH });
  be.softmaxBackward({ dinp: dlogits, dout: datt, out: att }, { rows: B * NH * N, C: N, scale });
  // logits = q · kᵀ:  dq = dlogits · k ; dk = dlogitsᵀ · q
  be.matmul({ out: dq, a: dlogits, b: k }, { M: N, N: HS, K: N, batch: B * NH });
  be.matmul({ out: dk, a: dlogits, b: q }, { M: N, N: HS, K: N, transA: true, batch: B * NH });
  be.splitHeadsBackward({ dqkv, dq, dk, dv }, { B, N, NH, HS });
}
