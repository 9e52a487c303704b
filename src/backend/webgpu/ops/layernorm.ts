/**
 * WebGPU LayerNorm (forward, backward) and per-row standardisation. WGSL in
 * `kernels/layernorm.ts`; the parameter-gradient column sums finish with
 * `COLSUM_FINAL` from `kernels/elementwise.ts`.
 *
 * @module
 */
import type {
  LayernormBackwardBufs,
  LayernormBackwardDims,
  LayernormBufs,
  NormDims,
  OutInpBufs,
} from "../../backend.ts";
import { type Dispatcher, linearGroups, Params } from "../dispatch.ts";
import type { KernelSpec } from "../context.ts";
import {
  checkF32,
  checkLayernorm,
  checkLayernormBackward,
  checkStandardizeRows,
} from "../../checks.ts";
import { LAYERNORM, LAYERNORM_BACKWARD, STANDARDIZE_ROWS } from "../../../../kernels/layernorm.ts";
import { COLSUM_FINAL_KERNEL } from "./elementwise.ts";

const LAYERNORM_KERNEL: KernelSpec = {
  label: "layernorm",
  code: LAYERNORM,
  storageBindings: 6,
  inPlace: [[0, 3]],
};
const LAYERNORM_BACKWARD_KERNEL: KernelSpec = {
  label: "layernorm_backward",
  code: LAYERNORM_BACKWARD,
  storageBindings: 7,
};
const STANDARDIZE_KERNEL: KernelSpec = {
  label: "standardize_rows",
  code: STANDARDIZE_ROWS,
  storageBindings: 2,
  inPlace: [[0, 1]],
};

/** Columns one backward invocation owns inside a column block (`CPT` in the WGSL). */
const COLS_PER_THREAD = 8;
/** Most row groups the backward splits the rows into (the partials pass sums this many). */
const BACKWARD_GROUPS = 512;
/** Fewest rows one backward row group handles. */
const MIN_ROWS_PER_GROUP = 4;

/**
 * Workgroup size for a row of `C`: the smallest of 64/128/256 giving each invocation at most
 * `perThread` columns (ViT: C = 192 → 64, 384 → 64, 768 → 128 with 8 per thread).
 */
function rowWorkgroup(C: number, perThread: number): number {
  const want = Math.ceil(C / perThread);
  return want <= 64 ? 64 : want <= 128 ? 128 : 256;
}

/**
 * See `Backend.layernorm`. `out, inp [rows, C]`, `mean, rstd [rows]`, `weight, bias [C]`.
 * One workgroup per row; `out` may be `inp`.
 */
export function layernorm(
  be: Dispatcher,
  { out, mean, rstd, inp, weight, bias }: LayernormBufs,
  { rows, C, eps }: NormDims,
): void {
  const op = "layernorm";
  checkLayernorm({ out, mean, rstd, inp, weight, bias }, { rows, C, eps });
  checkF32(op, { out, mean, rstd, inp, weight, bias });
  if (rows === 0) return;
  const WG = rowWorkgroup(C, 4);
  be.dispatch(LAYERNORM_KERNEL, [out, mean, rstd, inp, weight, bias], {
    params: new Params().u32(rows, C).f32(eps),
    groups: linearGroups(rows, 1),
    constants: { WG },
  });
}

/**
 * See `Backend.layernormBackward`. `dinp (=|+=)`, `dweight += `, `dbias += `, from the saved
 * `mean, rstd [rows]`. Pass 1 writes `dinp` and per-row-group partials `[G, 2C]` of
 * `Σ norm·dout` and `Σ dout`; pass 2 adds the partial columns into `dweight` and `dbias`.
 * `dinp` must not alias `dout` or `inp`.
 */
export function layernormBackward(
  be: Dispatcher,
  { dinp, dweight, dbias, dout, inp, weight, mean, rstd }: LayernormBackwardBufs,
  { rows, C, accumulate = false }: LayernormBackwardDims,
): void {
  const op = "layernormBackward";
  checkLayernormBackward({ dinp, dweight, dbias, dout, inp, weight, mean, rstd }, { rows, C });
  checkF32(op, { dinp, dweight, dbias, dout, inp, weight, mean, rstd });
  if (rows === 0 || C === 0) return;
  const WG = rowWorkgroup(C, COLS_PER_THREAD);
  const G0 = Math.max(1, Math.min(BACKWARD_GROUPS, Math.ceil(rows / MIN_ROWS_PER_GROUP)));
  const rowsPer = Math.ceil(rows / G0);
  const G = Math.ceil(rows / rowsPer); // every group owns at least one row
  const part = be.scratch("layernorm.backward_partials", G * 2 * C);
  be.dispatch(LAYERNORM_BACKWARD_KERNEL, [dinp, part, dout, inp, weight, mean, rstd], {
    params: new Params().u32(rows, C, rowsPer, accumulate ? 1 : 0),
    groups: [G, Math.ceil(C / (WG * COLS_PER_THREAD)), 1],
    constants: { WG },
  });
  const colBlocks: [number, number, number] = [Math.ceil(C / 64), 1, 1];
  const partDb = { ...part, offset: part.offset + C, shape: [part.size - C], size: part.size - C };
  be.dispatch(COLSUM_FINAL_KERNEL, [dweight, part], {
    params: new Params().u32(C, G, 2 * C),
    groups: colBlocks,
  });
  be.dispatch(COLSUM_FINAL_KERNEL, [dbias, partDb], {
    params: new Params().u32(C, G, 2 * C),
    groups: colBlocks,
  });
}

/**
 * See `Backend.standardizeRows`: unbiased variance ÷(C−1), eps inside the sqrt; C must be
 * at least 2 (one sample has no unbiased variance). `out` may be `inp`.
 */
export function standardizeRows(
  be: Dispatcher,
  { out, inp }: OutInpBufs,
  { rows, C, eps }: NormDims,
): void {
  const op = "standardizeRows";
  checkStandardizeRows({ out, inp }, { rows, C, eps });
  checkF32(op, { out, inp });
  if (rows === 0) return;
  be.dispatch(STANDARDIZE_KERNEL, [out, inp], {
    params: new Params().u32(rows, C).f32(eps),
    groups: linearGroups(rows, 1),
    constants: { WG: rowWorkgroup(C, 4) },
  });
}
