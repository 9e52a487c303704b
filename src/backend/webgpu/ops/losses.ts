/**
 * WebGPU losses: weighted SmoothL1, weighted cosine distance, soft-target
 * cross-entropy. Each op records a row pass, a two-pass weighted reduction that
 * leaves `loss[0]` on the device, and (SmoothL1, cosine) an elementwise gradient
 * pass that needs `Σw`. WGSL in `kernels/losses.ts`.
 *
 * @module
 */
import type {
  CosineDims,
  CrossEntropyBufs,
  RowLossBufs,
  RowsDims,
  SmoothL1Dims,
  Tensor,
} from "../../backend.ts";
import { type Dispatcher, linearGroups, Params } from "../dispatch.ts";
import type { KernelSpec } from "../context.ts";
import { checkCrossEntropy, checkRowLoss } from "../../checks.ts";
import {
  COSINE_GRAD,
  COSINE_ROWS,
  CROSS_ENTROPY_ROWS,
  SMOOTH_L1_GRAD,
  SMOOTH_L1_ROWS,
  WEIGHTED_FINAL,
  WEIGHTED_PARTIALS,
} from "../../../../kernels/losses.ts";

const SL1_ROWS: KernelSpec = { label: "smooth_l1_rows", code: SMOOTH_L1_ROWS, storageBindings: 3 };
const SL1_GRAD: KernelSpec = { label: "smooth_l1_grad", code: SMOOTH_L1_GRAD, storageBindings: 5 };
const COS_ROWS: KernelSpec = { label: "cosine_rows", code: COSINE_ROWS, storageBindings: 4 };
const COS_GRAD: KernelSpec = { label: "cosine_grad", code: COSINE_GRAD, storageBindings: 6 };
const CE_ROWS: KernelSpec = {
  label: "cross_entropy_rows",
  code: CROSS_ENTROPY_ROWS,
  storageBindings: 4,
};
const PARTIALS: KernelSpec = {
  label: "loss_weighted_partials",
  code: WEIGHTED_PARTIALS,
  storageBindings: 3,
};
const FINAL: KernelSpec = {
  label: "loss_weighted_final",
  code: WEIGHTED_FINAL,
  storageBindings: 3,
};

/** Most workgroups of the weighted row reduction (the final pass is one workgroup of 256). */
const MAX_PARTIALS = 256;

/**
 * Records passes 2 and 3: `stats = (Σ w, Σ w·rowv)` and `loss[0] = stats[1]/stats[0]`
 * (w = 1 without `weight`). Returns `stats` (scratch, valid until the next loss op).
 */
function weightedMean(
  be: Dispatcher,
  loss: Tensor,
  rowv: Tensor,
  weight: Tensor | undefined,
  rows: number,
): Tensor {
  const G = Math.max(1, Math.min(MAX_PARTIALS, Math.ceil(rows / 256)));
  const partials = be.scratch("loss.partials", 2 * G);
  const stats = be.scratch("loss.stats", 2);
  const w = weight ?? be.scratch("loss.dummy", 1);
  be.dispatch(PARTIALS, [partials, rowv, w], {
    params: new Params().u32(rows, weight ? 1 : 0),
    groups: [G, 1, 1],
  });
  be.dispatch(FINAL, [stats, loss, partials], { params: new Params().u32(G), groups: [1, 1, 1] });
  return stats;
}

/** See `Backend.smoothL1Loss`. `inp, target, dinp [rows, C]`, `weight [rows]`, `loss [1]`. */
export function smoothL1Loss(
  be: Dispatcher,
  { loss, dinp, inp, target, weight }: RowLossBufs,
  { rows, C, beta }: SmoothL1Dims,
): void {
  const op = "smoothL1Loss";
  checkRowLoss(op, { loss, dinp, inp, target, weight }, { rows, C, beta });
  const rowv = be.scratch("loss.rowv", Math.max(1, rows));
  be.dispatch(SL1_ROWS, [rowv, inp, target], {
    params: new Params().u32(rows, C).f32(beta),
    groups: linearGroups(rows, 1),
  });
  const stats = weightedMean(be, loss, rowv, weight, rows);
  be.dispatch(SL1_GRAD, [dinp, inp, target, weight, stats], {
    params: new Params().u32(rows, C).f32(beta),
    groups: linearGroups(rows * C, 256),
  });
}

/** See `Backend.cosineLoss`. `inp, target, dinp [rows, C]`, `weight [rows]`, `loss [1]`. */
export function cosineLoss(
  be: Dispatcher,
  { loss, dinp, inp, target, weight }: RowLossBufs,
  { rows, C, eps = 1e-8 }: CosineDims,
): void {
  const op = "cosineLoss";
  checkRowLoss(op, { loss, dinp, inp, target, weight }, { rows, C });
  const rowv = be.scratch("loss.rowv", Math.max(1, rows));
  const coef = be.scratch("loss.coef", Math.max(1, 2 * rows));
  be.dispatch(COS_ROWS, [rowv, coef, inp, target], {
    params: new Params().u32(rows, C).f32(eps),
    groups: linearGroups(rows, 1),
  });
  const stats = weightedMean(be, loss, rowv, weight, rows);
  be.dispatch(COS_GRAD, [dinp, inp, target, weight, coef, stats], {
    params: new Params().u32(rows, C),
    groups: linearGroups(rows * C, 256),
  });
}

/** See `Backend.crossEntropyLoss`. `logits, target, dlogits [rows, C]`, `loss [1]`. */
export function crossEntropyLoss(
  be: Dispatcher,
  { loss, dlogits, logits, target }: CrossEntropyBufs,
  { rows, C }: RowsDims,
): void {
  checkCrossEntropy({ loss, dlogits, logits, target }, { rows, C });
  const rowv = be.scratch("loss.rowv", Math.max(1, rows));
  be.dispatch(CE_ROWS, [dlogits, rowv, logits, target], {
    params: new Params().u32(rows, C).f32(1 / rows),
    groups: linearGroups(rows, 1),
  });
  weightedMean(be, loss, rowv, undefined, rows);
}
