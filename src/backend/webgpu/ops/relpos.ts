/**
 * WebGPU ops of the relative position bias (the symmetric student and the CLIP teacher):
 * the forward add and the scatter-free backward. WGSL in `kernels/relpos.ts`.
 *
 * @module
 */
import type { RelPosBiasBackwardBufs, RelPosBiasBufs, RelPosDims } from "../../backend.ts";
import { type Dispatcher, linearGroups, Params } from "../dispatch.ts";
import type { KernelSpec } from "../context.ts";
import { checkDtype, checkF32, checkRelPosBias, checkRelPosBiasBackward } from "../../checks.ts";
import { RELPOS_BIAS, RELPOS_BIAS_BACKWARD } from "../../../../kernels/relpos.ts";
import { biasGrad } from "./elementwise.ts";

const RELPOS_KERNEL: KernelSpec = {
  label: "relpos_bias",
  code: RELPOS_BIAS,
  storageBindings: 4,
  inPlace: [[0, 1]],
};
const RELPOS_BACKWARD_KERNEL: KernelSpec = {
  label: "relpos_bias_backward",
  code: RELPOS_BIAS_BACKWARD,
  storageBindings: 4,
};

/** See `Backend.relPosBias`: `out = inp + scale·table[index, h]` over `[B, NH, N, N]`. */
export function relPosBias(
  be: Dispatcher,
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
  be: Dispatcher,
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
    src = be.scratch("relpos.batch_sum", NH * N * N);
    be.fill(src, 0);
    biasGrad(be, { dbias: src, dout }, { rows: B, C: NH * N * N });
  }
  // pass 2: one invocation per table entry gathers its pairs
  be.dispatch(RELPOS_BACKWARD_KERNEL, [dtable, src, starts, positions], {
    params: new Params().u32(R * NH, N * N, NH, 1).f32(scale),
    groups: linearGroups(R * NH, 256),
  });
}
