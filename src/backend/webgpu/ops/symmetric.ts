/**
 * WebGPU ops of the symmetric (BEiT) student and the CLIP teacher: QuickGELU (a variant of
 * the GELU kernels), layer scale (column scaling and its backward) and the relative position
 * bias (forward and scatter-free backward). WGSL in `kernels/elementwise.ts` and
 * `kernels/relpos.ts`.
 *
 * @module
 */
import type {
  GeluBackwardBufs,
  OutInpBufs,
  RelPosBiasBackwardBufs,
  RelPosBiasBufs,
  RelPosDims,
  RowsDims,
  ScaleColsBackwardBufs,
  ScaleColsBufs,
} from "../../backend.ts";
import { linearGroups, Params, type WebGpuBackend } from "../backend.ts";
import type { KernelSpec } from "../context.ts";
import {
  checkDtype,
  checkF32,
  checkQuickGelu,
  checkQuickGeluBackward,
  checkRelPosBias,
  checkRelPosBiasBackward,
  checkScaleCols,
  checkScaleColsBackward,
} from "../../checks.ts";
import { COLSUM_PROD_PARTIAL, SCALE_COLS } from "../../../../kernels/elementwise.ts";
import { RELPOS_BIAS, RELPOS_BIAS_BACKWARD } from "../../../../kernels/relpos.ts";
import { biasGrad, columnSum, GELU_BACKWARD_KERNEL, GELU_KERNEL } from "./elementwise.ts";

// The GELU kernels' QuickGELU variant: same WGSL and spec, override QUICK = 1 (its own pipeline).
const QUICK = { QUICK: 1 };
const SCALE_COLS_KERNEL: KernelSpec = { label: "scale_cols", code: SCALE_COLS, storageBindings: 3 };
const COLSUM_PROD_KERNEL: KernelSpec = {
  label: "colsum_prod_partial",
  code: COLSUM_PROD_PARTIAL,
  storageBindings: 3,
};
const RELPOS_KERNEL: KernelSpec = { label: "relpos_bias", code: RELPOS_BIAS, storageBindings: 4 };
const RELPOS_BACKWARD_KERNEL: KernelSpec = {
  label: "relpos_bias_backward",
  code: RELPOS_BIAS_BACKWARD,
  storageBindings: 4,
};

/** See `Backend.quickGelu`: `out = inp·σ(1.702·inp)`; `out` may be `inp`. */
export function quickGelu(be: WebGpuBackend, { out, inp }: OutInpBufs): void {
  checkQuickGelu({ out, inp });
  checkF32("quickGelu", { out, inp });
  const n = inp.size;
  be.dispatch(GELU_KERNEL, [out, inp], {
    params: new Params().u32(n),
    groups: linearGroups(n, 256),
    constants: QUICK,
  });
}

/** See `Backend.quickGeluBackward`: `dinp = dout·quickgelu'(inp)` (assign). */
export function quickGeluBackward(be: WebGpuBackend, { dinp, dout, inp }: GeluBackwardBufs): void {
  checkQuickGeluBackward({ dinp, dout, inp });
  checkF32("quickGeluBackward", { dinp, dout, inp });
  const n = inp.size;
  be.dispatch(GELU_BACKWARD_KERNEL, [dinp, dout, inp], {
    params: new Params().u32(n),
    groups: linearGroups(n, 256),
    constants: QUICK,
  });
}

/** See `Backend.scaleCols`: `out[r, c] = inp[r, c]·scale[c]`; `out` may be `inp`. */
export function scaleCols(
  be: WebGpuBackend,
  { out, inp, scale }: ScaleColsBufs,
  { rows, C }: RowsDims,
): void {
  checkScaleCols({ out, inp, scale }, { rows, C });
  checkF32("scaleCols", { out, inp, scale });
  const n = rows * C;
  be.dispatch(SCALE_COLS_KERNEL, [out, inp, scale], {
    params: new Params().u32(n, C),
    groups: linearGroups(n, 256),
  });
}

/**
 * See `Backend.scaleColsBackward`: `dscale += Σ_r dout⊙inp` (two-pass column sum), then
 * `dinp = dout·scale` (so `dinp` may be `dout`).
 */
export function scaleColsBackward(
  be: WebGpuBackend,
  { dinp, dscale, dout, inp, scale }: ScaleColsBackwardBufs,
  { rows, C }: RowsDims,
): void {
  checkScaleColsBackward({ dinp, dscale, dout, inp, scale }, { rows, C });
  checkF32("scaleColsBackward", { dinp, dscale, dout, inp, scale });
  if (rows === 0 || C === 0) return;
  const dims = { rows, C };
  columnSum(be, COLSUM_PROD_KERNEL, [dout, inp], dscale, dims, "symmetric.scale_cols_partials");
  be.dispatch(SCALE_COLS_KERNEL, [dinp, dout, scale], {
    params: new Params().u32(rows * C, C),
    groups: linearGroups(rows * C, 256),
  });
}

/** See `Backend.relPosBias`: `out = inp + scale·table[index, h]` over `[B, NH, N, N]`. */
export function relPosBias(
  be: WebGpuBackend,
  { out, inp, table, index }: RelPosBiasBufs,
  dims: RelPosDims,
): void {
  const op = "relPosBias";
  checkRelPosBias({ out, inp, table, index }, dims);
  checkF32(op, { out, inp, table });
  checkDtype(op, "index", index, "i32");
  const { B, NH, N, scale } = dims;
  const n = B * NH * N * N;
  be.dispatch(RELPOS_KERNEL, [out, inp, table, index], {
    params: new Params().u32(n, N * N, NH).f32(scale),
    groups: linearGroups(n, 256),
  });
}

/**
 * See `Backend.relPosBiasBackward`: the batch summed first (a column sum over `B` rows), then
 * one invocation per table entry sums its pairs (no atomics).
 */
export function relPosBiasBackward(
  be: WebGpuBackend,
  { dtable, dout, index, starts, positions }: RelPosBiasBackwardBufs,
  dims: RelPosDims,
): void {
  const op = "relPosBiasBackward";
  checkRelPosBiasBackward({ dtable, dout, index, starts, positions }, dims);
  checkF32(op, { dtable, dout });
  for (const [k, t] of Object.entries({ index, starts, positions })) checkDtype(op, k, t, "i32");
  const { B, NH, N, R, scale } = dims;
  // pass 1 (B > 1): sum over the batch, fully parallel: sum [NH·N·N] = Σ_b dout[b] (biasGrad)
  let src = dout;
  if (B > 1) {
    src = be.scratch("symmetric.relpos_batch_sum", NH * N * N);
    be.fill(src, 0);
    biasGrad(be, { dbias: src, dout }, { rows: B, C: NH * N * N });
  }
  // pass 2: one invocation per table entry gathers its pairs
  be.dispatch(RELPOS_BACKWARD_KERNEL, [dtable, src, starts, positions], {
    params: new Params().u32(R * NH, N * N, NH, 1).f32(scale),
    groups: linearGroups(R * NH, 256),
  });
}
