/**
 * WebGPU optimiser ops: global gradient norm (+ clip factor) and AdamW over flat
 * buffers. Both keep everything on the device. WGSL in `kernels/optim.ts`.
 *
 * @module
 */
import type { AdamwBufs, AdamwDims, GradNormBufs, GradNormDims } from "../../backend.ts";
import { type Dispatcher, linearGroups, Params } from "../dispatch.ts";
import type { KernelSpec } from "../context.ts";
import { checkAdamw, checkDtype, checkGradNorm } from "../../checks.ts";
import { ADAMW, GRAD_NORM_FINAL, GRAD_NORM_PARTIALS } from "../../../../kernels/optim.ts";

const NORM_PARTIALS: KernelSpec = {
  label: "grad_norm_partials",
  code: GRAD_NORM_PARTIALS,
  storageBindings: 2,
};
const NORM_FINAL: KernelSpec = {
  label: "grad_norm_final",
  code: GRAD_NORM_FINAL,
  storageBindings: 3,
};
const ADAMW_KERNEL: KernelSpec = { label: "adamw", code: ADAMW, storageBindings: 7 };

/**
 * Workgroups of the gradient-norm pass 1: enough to fill a large GPU (1024 × 256
 * invocations), few enough that one workgroup sums the partials quickly.
 */
const NORM_GROUPS = 1024;

/**
 * See `Backend.gradNorm`. `grad [n]` (a whole flat gradient buffer, any `n`);
 * writes `norm [1]` and `clipScale [1]` on the device.
 */
export function gradNorm(
  be: Dispatcher,
  { norm, clipScale, grad }: GradNormBufs,
  { maxNorm }: GradNormDims,
): void {
  const op = "gradNorm";
  checkGradNorm({ norm, clipScale, grad }, { maxNorm });
  if (!(maxNorm > 0)) {
    throw new RangeError(`Cannot run ${op}: maxNorm must be > 0, current value is ${maxNorm}`);
  }
  const n = grad.size;
  const G = Math.max(1, Math.min(NORM_GROUPS, Math.ceil(n / 256)));
  const partials = be.scratch("optim.norm_partials", G);
  be.dispatch(NORM_PARTIALS, [partials, grad], { params: new Params().u32(n), groups: [G, 1, 1] });
  const finite = Number.isFinite(maxNorm);
  be.dispatch(NORM_FINAL, [norm, clipScale, partials], {
    params: new Params().u32(G, finite ? 1 : 0).f32(finite ? maxNorm : 0),
    groups: [1, 1, 1],
  });
}

/**
 * See `Backend.adamw`. `param, grad, m, v [n]`; `offsets` i32 `[S+1]` (element offsets
 * relative to `param`'s view, non-decreasing); `hyper [S, 2]`; optional `clipScale [1]`.
 * One dispatch over all `n` elements; the bias corrections are computed here in f64.
 */
export function adamw(
  be: Dispatcher,
  { param, grad, m, v, offsets, hyper, clipScale }: AdamwBufs,
  { lr, beta1, beta2, eps, step }: AdamwDims,
): void {
  const op = "adamw";
  const S = checkAdamw({ param, grad, m, v, offsets, hyper, clipScale }, {
    lr,
    beta1,
    beta2,
    eps,
    step,
  });
  checkDtype(op, "offsets", offsets, "i32");
  const n = param.size;
  const bc1 = 1 - Math.pow(beta1, step);
  const sqrtBc2 = Math.sqrt(1 - Math.pow(beta2, step));
  const clip = clipScale ?? be.scratch("optim.dummy_clip", 1);
  const p = new Params()
    .u32(n, S, clipScale ? 1 : 0)
    .f32(lr, beta1, beta2, eps, bc1, sqrtBc2);
  be.dispatch(ADAMW_KERNEL, [param, grad, m, v, offsets, hyper, clip], {
    params: p,
    groups: linearGroups(n, 256),
  });
}
