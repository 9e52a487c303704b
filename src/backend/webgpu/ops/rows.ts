/**
 * WebGPU row ops: gather rows by index (masking, unshuffle, mask tokens), its
 * backward, and patchify. WGSL in `kernels/rows.ts`.
 *
 * @module
 */
import type {
  GatherRowsBackwardBufs,
  GatherRowsBufs,
  OutInpBufs,
  PatchifyDims,
  RowsDims,
} from "../../backend.ts";
import { type Dispatcher, linearGroups, Params } from "../dispatch.ts";
import type { KernelSpec } from "../context.ts";
import {
  checkDtype,
  checkGatherRows,
  checkGatherRowsBackward,
  checkPatchify,
} from "../../checks.ts";
import {
  FILL_GRAD_FINAL,
  FILL_GRAD_PARTIALS,
  GATHER_ROWS,
  PATCHIFY,
  SCATTER_ROWS,
} from "../../../../kernels/rows.ts";

const GATHER: KernelSpec = { label: "gather_rows", code: GATHER_ROWS, storageBindings: 4 };
const SCATTER: KernelSpec = { label: "scatter_rows", code: SCATTER_ROWS, storageBindings: 3 };
const FILL_PARTIALS: KernelSpec = {
  label: "fill_grad_partials",
  code: FILL_GRAD_PARTIALS,
  storageBindings: 3,
};
const FILL_FINAL: KernelSpec = {
  label: "fill_grad_final",
  code: FILL_GRAD_FINAL,
  storageBindings: 2,
};
const PATCHIFY_KERNEL: KernelSpec = { label: "patchify", code: PATCHIFY, storageBindings: 2 };

/** Row groups of the fill-gradient column reduction (pass 1 writes `[G, C]` partials). */
const FILL_GROUPS = 256;
/** Fewest rows one pass-1 invocation sums, so small inputs do not spread thin. */
const MIN_ROWS_PER_GROUP = 16;

/** See `Backend.gatherRows`. `out [rows, C]`, `inp [inpRows, C]`, `index i32 [rows]`, `fill [C]`. */
export function gatherRows(
  be: Dispatcher,
  { out, inp, index, fill }: GatherRowsBufs,
  { rows, C }: RowsDims,
): void {
  const op = "gatherRows";
  const inpRows = checkGatherRows({ out, inp, index, fill }, { rows, C });
  checkDtype(op, "index", index, "i32");
  const fillT = fill ?? be.scratch("rows.dummy", 1);
  const p = new Params().u32(rows, C, inpRows, fill ? 1 : 0);
  be.dispatch(GATHER, [out, inp, index, fillT], { params: p, groups: linearGroups(rows * C, 256) });
}

/**
 * See `Backend.gatherRowsBackward`. `dinp [inpRows, C]` is assigned (zeros, then the
 * scattered rows); `dfill [C]` accumulates the rows with `index < 0` by a two-pass
 * column reduction (no float atomics in Deno's WebGPU).
 */
export function gatherRowsBackward(
  be: Dispatcher,
  { dinp, dfill, dout, index }: GatherRowsBackwardBufs,
  { rows, C }: RowsDims,
): void {
  const op = "gatherRowsBackward";
  const inpRows = checkGatherRowsBackward({ dinp, dfill, dout, index }, { rows, C });
  checkDtype(op, "index", index, "i32");
  be.fill(dinp, 0);
  be.dispatch(SCATTER, [dinp, dout, index], {
    params: new Params().u32(rows, C, inpRows),
    groups: linearGroups(rows * C, 256),
  });
  if (!dfill || rows === 0 || C === 0) return;
  const G = Math.max(1, Math.min(FILL_GROUPS, Math.ceil(rows / MIN_ROWS_PER_GROUP)));
  const rowsPer = Math.ceil(rows / G);
  const groups = Math.ceil(rows / rowsPer); // every group owns at least one row
  const partials = be.scratch("rows.fill_partials", groups * C);
  be.dispatch(FILL_PARTIALS, [partials, dout, index], {
    params: new Params().u32(rows, C, rowsPer),
    groups: [Math.ceil(C / 64), groups, 1],
  });
  be.dispatch(FILL_FINAL, [dfill, partials], {
    params: new Params().u32(C, groups),
    groups: linearGroups(C, 256),
  });
}

/** See `Backend.patchify`. `inp [B, C, H, W]` → `out [B, L, C·P·P]`. */
export function patchify(
  be: Dispatcher,
  { out, inp }: OutInpBufs,
  { B, C, H, W, P }: PatchifyDims,
): void {
  checkPatchify({ out, inp }, { B, C, H, W, P });
  const n = B * C * H * W;
  const GW = W / P;
  const L = (H / P) * GW;
  const p = new Params().u32(n, C, H, W, P, GW, L);
  be.dispatch(PATCHIFY_KERNEL, [out, inp], { params: p, groups: linearGroups(n, 256) });
}
