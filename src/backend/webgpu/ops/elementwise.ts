/**
 * WebGPU elementwise ops: residual/broadcast add, exact GELU and QuickGELU and their
 * backwards, drop-path row scaling, column scaling (layer scale) and its backward, and the
 * bias-gradient column sum. WGSL in `kernels/elementwise.ts`.
 *
 * @module
 */
import type {
  AddBufs,
  BiasGradBufs,
  GeluBackwardBufs,
  OutInpBufs,
  RowsDims,
  ScaleColsBackwardBufs,
  ScaleColsBufs,
  ScaleRowsBufs,
  Tensor,
} from "../../backend.ts";
import { type Dispatcher, linearGroups, Params } from "../dispatch.ts";
import type { KernelSpec } from "../context.ts";
import {
  checkAdd,
  checkBiasGrad,
  checkF32,
  checkGelu,
  checkGeluBackward,
  checkQuickGelu,
  checkQuickGeluBackward,
  checkScaleCols,
  checkScaleColsBackward,
  checkScaleRows,
} from "../../checks.ts";
import {
  ADD,
  COLSUM_FINAL,
  COLSUM_PARTIAL,
  COLSUM_PROD_PARTIAL,
  GELU,
  GELU_BACKWARD,
  SCALE_COLS,
  SCALE_ROWS,
} from "../../../../kernels/elementwise.ts";

const ADD_KERNEL: KernelSpec = {
  label: "add",
  code: ADD,
  storageBindings: 3,
  inPlace: [[0, 1]],
};
/** Exact GELU with `QUICK = 0`; `symmetric.ts` runs it with `QUICK = 1` (QuickGELU). */
export const GELU_KERNEL: KernelSpec = {
  label: "gelu",
  code: GELU,
  storageBindings: 2,
  inPlace: [[0, 1]],
};
/** The backward of {@link GELU_KERNEL}, with the same `QUICK` override. */
export const GELU_BACKWARD_KERNEL: KernelSpec = {
  label: "gelu_backward",
  code: GELU_BACKWARD,
  storageBindings: 3,
  inPlace: [[0, 1]],
};
/** The GELU kernels' exact-erf variant (`QUICK = false`; `symmetric.ts` runs `QUICK = true`). */
const EXACT = { QUICK: 0 };
const SCALE_ROWS_KERNEL: KernelSpec = {
  label: "scale_rows",
  code: SCALE_ROWS,
  storageBindings: 3,
  inPlace: [[0, 1]],
};
const COLSUM_PARTIAL_KERNEL: KernelSpec = {
  label: "colsum_partial",
  code: COLSUM_PARTIAL,
  storageBindings: 2,
};
/**
 * `dst[c] += Σ_g part[g·stride + c]`: pass 2 of every column reduction (bias and LayerNorm
 * parameter gradients). Params: `C, G, stride`; grid `[ceil(C/64), 1, 1]`.
 */
export const COLSUM_FINAL_KERNEL: KernelSpec = {
  label: "colsum_final",
  code: COLSUM_FINAL,
  storageBindings: 2,
};

/** Most row groups pass 1 of a `columnSum` splits the rows into (pass 2 sums this many). */
const BIAS_GROUPS = 256;
/** Fewest rows one row group sums, so small inputs do not spread thin. */
const MIN_ROWS_PER_GROUP = 16;

/** See `Backend.biasGrad`: `dbias [C] += Σ_r dout [rows, C]`, two-pass column sum. */
export function biasGrad(
  be: Dispatcher,
  { dbias, dout }: BiasGradBufs,
  { rows, C }: RowsDims,
): void {
  const op = "biasGrad";
  checkBiasGrad({ dbias, dout }, { rows, C });
  checkF32(op, { dbias, dout });
  columnSum(be, COLSUM_PARTIAL_KERNEL, [dout], dbias, { rows, C }, "elementwise.colsum_partials");
}

/**
 * `dst [C] += Σ_r term[r, c]` in two passes: `partial` (a `colsumPartial` kernel of
 * `kernels/elementwise.ts`: Params `rows, C, rowsPer`, bindings `part, ...inputs`) sums row
 * groups into the scratch `[G, C]`, then `COLSUM_FINAL` adds the groups into `dst`.
 */
export function columnSum(
  be: Dispatcher,
  partial: KernelSpec,
  inputs: Tensor[],
  dst: Tensor,
  { rows, C }: RowsDims,
  scratch: string,
): void {
  if (rows === 0 || C === 0) return;
  const G0 = Math.max(1, Math.min(BIAS_GROUPS, Math.ceil(rows / MIN_ROWS_PER_GROUP)));
  const rowsPer = Math.ceil(rows / G0);
  const G = Math.ceil(rows / rowsPer); // every group owns at least one row
  const part = be.scratch(scratch, G * C);
  be.dispatch(partial, [part, ...inputs], {
    params: new Params().u32(rows, C, rowsPer),
    groups: [Math.ceil(C / 64), G, 1],
  });
  be.dispatch(COLSUM_FINAL_KERNEL, [dst, part], {
    params: new Params().u32(C, G, C),
    groups: [Math.ceil(C / 64), 1, 1],
  });
}

/** See `Backend.add`: `out[i] = a[i] + b[i mod b.size]`; `out` may be `a` (in place). */
export function add(be: Dispatcher, { out, a, b }: AddBufs): void {
  const op = "add";
  checkAdd({ out, a, b });
  checkF32(op, { out, a, b });
  const n = a.size;
  be.dispatch(ADD_KERNEL, [out, a, b], {
    params: new Params().u32(n, b.size),
    groups: linearGroups(n, 256),
  });
}

/** See `Backend.gelu`: `out = gelu(inp)` (exact erf GELU); `out` may be `inp`. */
export function gelu(be: Dispatcher, { out, inp }: OutInpBufs): void {
  const op = "gelu";
  checkGelu({ out, inp });
  checkF32(op, { out, inp });
  const n = inp.size;
  be.dispatch(GELU_KERNEL, [out, inp], {
    params: new Params().u32(n),
    groups: linearGroups(n, 256),
    constants: EXACT,
  });
}

/** See `Backend.geluBackward`: `dinp = dout · gelu'(inp)` (assign); `dinp` may be `dout`. */
export function geluBackward(
  be: Dispatcher,
  { dinp, dout, inp }: GeluBackwardBufs,
): void {
  const op = "geluBackward";
  checkGeluBackward({ dinp, dout, inp });
  checkF32(op, { dinp, dout, inp });
  const n = inp.size;
  be.dispatch(GELU_BACKWARD_KERNEL, [dinp, dout, inp], {
    params: new Params().u32(n),
    groups: linearGroups(n, 256),
    constants: EXACT,
  });
}

/** See `Backend.scaleRows`: `out[r, :] = inp[r, :] · scale[r]`; `out` may be `inp`. */
export function scaleRows(
  be: Dispatcher,
  { out, inp, scale }: ScaleRowsBufs,
  { rows, C }: RowsDims,
): void {
  const op = "scaleRows";
  checkScaleRows({ out, inp, scale }, { rows, C });
  checkF32(op, { out, inp, scale });
  const n = rows * C;
  be.dispatch(SCALE_ROWS_KERNEL, [out, inp, scale], {
    params: new Params().u32(n, C),
    groups: linearGroups(n, 256),
  });
}

// The GELU kernels' QuickGELU variant: same WGSL and spec, override QUICK = 1 (its own pipeline).
const QUICK = { QUICK: 1 };
const SCALE_COLS_KERNEL: KernelSpec = {
  label: "scale_cols",
  code: SCALE_COLS,
  storageBindings: 3,
  inPlace: [[0, 1]],
};
const COLSUM_PROD_KERNEL: KernelSpec = {
  label: "colsum_prod_partial",
  code: COLSUM_PROD_PARTIAL,
  storageBindings: 3,
};

/** See `Backend.quickGelu`: `out = inp·σ(1.702·inp)`; `out` may be `inp`. */
export function quickGelu(be: Dispatcher, { out, inp }: OutInpBufs): void {
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
export function quickGeluBackward(be: Dispatcher, { dinp, dout, inp }: GeluBackwardBufs): void {
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
  be: Dispatcher,
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
  be: Dispatcher,
  { dinp, dscale, dout, inp, scale }: ScaleColsBackwardBufs,
  { rows, C }: RowsDims,
): void {
  checkScaleColsBackward({ dinp, dscale, dout, inp, scale }, { rows, C });
  checkF32("scaleColsBackward", { dinp, dscale, dout, inp, scale });
  if (rows === 0 || C === 0) return;
  const dims = { rows, C };
  columnSum(be, COLSUM_PROD_KERNEL, [dout, inp], dscale, dims, "elementwise.scale_cols_partials");
  be.dispatch(SCALE_COLS_KERNEL, [dinp, dout, scale], {
    params: new Params().u32(rows * C, C),
    groups: linearGroups(rows * C, 256),
  });
}
