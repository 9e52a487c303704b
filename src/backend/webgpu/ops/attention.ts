/**
 * WebGPU attention ops: scaled row softmax (forward, backward) and the head layout
 * permutations. WGSL in `kernels/softmax.ts` and `kernels/heads.ts`.
 *
 * @module
 */
import type {
  HeadDims,
  MergeHeadsBackwardBufs,
  OutInpBufs,
  SoftmaxBackwardBufs,
  SoftmaxDims,
  SplitHeadsBackwardBufs,
  SplitHeadsBufs,
} from "../../backend.ts";
import { type Dispatcher, linearGroups, Params } from "../dispatch.ts";
import type { KernelSpec } from "../context.ts";
import {
  checkF32,
  checkMergeHeads,
  checkMergeHeadsBackward,
  checkSoftmax,
  checkSoftmaxBackward,
  checkSplitHeads,
  checkSplitHeadsBackward,
} from "../../checks.ts";
import { SOFTMAX, SOFTMAX_BACKWARD } from "../../../../kernels/softmax.ts";
import {
  MERGE_HEADS,
  MERGE_HEADS_BACKWARD,
  SPLIT_HEADS,
  SPLIT_HEADS_BACKWARD,
} from "../../../../kernels/heads.ts";

const SOFTMAX_KERNEL: KernelSpec = {
  label: "softmax",
  code: SOFTMAX,
  storageBindings: 2,
  inPlace: [[0, 1]],
};
const SOFTMAX_BACKWARD_KERNEL: KernelSpec = {
  label: "softmax_backward",
  code: SOFTMAX_BACKWARD,
  storageBindings: 3,
  inPlace: [[0, 1]],
};
const SPLIT_KERNEL: KernelSpec = { label: "split_heads", code: SPLIT_HEADS, storageBindings: 4 };
const SPLIT_BACKWARD_KERNEL: KernelSpec = {
  label: "split_heads_backward",
  code: SPLIT_HEADS_BACKWARD,
  storageBindings: 4,
};
const MERGE_KERNEL: KernelSpec = { label: "merge_heads", code: MERGE_HEADS, storageBindings: 2 };
const MERGE_BACKWARD_KERNEL: KernelSpec = {
  label: "merge_heads_backward",
  code: MERGE_HEADS_BACKWARD,
  storageBindings: 2,
};

/**
 * Invocations per row for the softmax kernels (`TPR`): a power of two 32…256 giving each
 * about 4 columns (C = 197 → 64, C = 50 → 32). A 256-wide workgroup holds `256 / TPR` rows.
 */
function threadsPerRow(C: number): number {
  let t = 32;
  while (t < 256 && t * 4 < C) t *= 2;
  return t;
}

function softmaxGroups(rows: number, TPR: number): [number, number, number] {
  return linearGroups(Math.ceil(rows / (256 / TPR)), 1);
}

/** See `Backend.softmax`: `out [rows, C] = softmax(scale · inp)` per row; `out` may be `inp`. */
export function softmax(
  be: Dispatcher,
  { out, inp }: OutInpBufs,
  { rows, C, scale }: SoftmaxDims,
): void {
  const op = "softmax";
  checkSoftmax({ out, inp }, { rows, C });
  checkF32(op, { out, inp });
  if (rows === 0 || C === 0) return;
  const TPR = threadsPerRow(C);
  be.dispatch(SOFTMAX_KERNEL, [out, inp], {
    params: new Params().u32(rows, C).f32(scale),
    groups: softmaxGroups(rows, TPR),
    constants: { TPR },
  });
}

/** See `Backend.softmaxBackward`: `dinp = scale · out ⊙ (dout − Σ dout⊙out)`; `dinp` may be `dout`. */
export function softmaxBackward(
  be: Dispatcher,
  { dinp, dout, out }: SoftmaxBackwardBufs,
  { rows, C, scale }: SoftmaxDims,
): void {
  const op = "softmaxBackward";
  checkSoftmaxBackward({ dinp, dout, out }, { rows, C });
  checkF32(op, { dinp, dout, out });
  if (rows === 0 || C === 0) return;
  const TPR = threadsPerRow(C);
  be.dispatch(SOFTMAX_BACKWARD_KERNEL, [dinp, dout, out], {
    params: new Params().u32(rows, C).f32(scale),
    groups: softmaxGroups(rows, TPR),
    constants: { TPR },
  });
}

/** See `Backend.splitHeads`: `qkv [B, N, 3·NH·HS]` → `q, k, v [B, NH, N, HS]`. */
export function splitHeads(
  be: Dispatcher,
  { q, k, v, qkv }: SplitHeadsBufs,
  { B, N, NH, HS }: HeadDims,
): void {
  const op = "splitHeads";
  checkSplitHeads({ q, k, v, qkv }, { B, N, NH, HS });
  const per = B * NH * N * HS;
  checkF32(op, { q, k, v, qkv });
  be.dispatch(SPLIT_KERNEL, [q, k, v, qkv], {
    params: new Params().u32(per, N, NH, HS),
    groups: linearGroups(3 * per, 256),
  });
}

/** See `Backend.splitHeadsBackward`: `dqkv [B, N, 3·NH·HS] = join(dq, dk, dv)` (assign). */
export function splitHeadsBackward(
  be: Dispatcher,
  { dqkv, dq, dk, dv }: SplitHeadsBackwardBufs,
  { B, N, NH, HS }: HeadDims,
): void {
  const op = "splitHeadsBackward";
  checkSplitHeadsBackward({ dqkv, dq, dk, dv }, { B, N, NH, HS });
  const per = B * NH * N * HS;
  checkF32(op, { dqkv, dq, dk, dv });
  be.dispatch(SPLIT_BACKWARD_KERNEL, [dqkv, dq, dk, dv], {
    params: new Params().u32(per, N, NH, HS),
    groups: linearGroups(3 * per, 256),
  });
}

/** See `Backend.mergeHeads`: `inp [B, NH, N, HS]` → `out [B, N, NH·HS]`. */
export function mergeHeads(
  be: Dispatcher,
  { out, inp }: OutInpBufs,
  { B, N, NH, HS }: HeadDims,
): void {
  const op = "mergeHeads";
  checkMergeHeads({ out, inp }, { B, N, NH, HS });
  const n = B * N * NH * HS;
  checkF32(op, { out, inp });
  be.dispatch(MERGE_KERNEL, [out, inp], {
    params: new Params().u32(n, N, NH, HS),
    groups: linearGroups(n, 256),
  });
}

/** See `Backend.mergeHeadsBackward`: `dinp [B, NH, N, HS] = split(dout [B, N, NH·HS])`. */
export function mergeHeadsBackward(
  be: Dispatcher,
  { dinp, dout }: MergeHeadsBackwardBufs,
  { B, N, NH, HS }: HeadDims,
): void {
  const op = "mergeHeadsBackward";
  checkMergeHeadsBackward({ dinp, dout }, { B, N, NH, HS });
  const n = B * N * NH * HS;
  checkF32(op, { dinp, dout });
  be.dispatch(MERGE_BACKWARD_KERNEL, [dinp, dout], {
    params: new Params().u32(n, N, NH, HS),
    groups: linearGroups(n, 256),
  });
}
