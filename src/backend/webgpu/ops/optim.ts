/**
 * WebGPU optimiser ops: global gradient norm (+ clip factor) and AdamW over flat
 * buffers. Both keep everything on the device. WGSL in `kernels/optim.ts`.
 *
 * @module
 */
import type { Tensor } from "../../backend.ts";
import { linearGroups, Params, type WebGpuBackend } from "../backend.ts";
import type { KernelSpec } from "../context.ts";
import { check, checkDims, checkDtype, checkSize } from "./checks.ts";
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
  be: WebGpuBackend,
  { norm, clipScale, grad }: { norm: Tensor; clipScale: Tensor; grad: Tensor },
  { maxNorm }: { maxNorm: number },
): void {
  const op = "gradNorm";
  checkSize(op, "norm", norm, 1);
  checkSize(op, "clipScale", clipScale, 1);
  if (!(maxNorm > 0)) {
    throw new RangeError(`Cannot run ${op}: maxNorm must be > 0, current value is ${maxNorm}`);
  }
  const n = grad.size;
  const G = Math.max(1, Math.min(NORM_GROUPS, Math.ceil(n / 256)));
  const partials = be.scratch("optim.norm_partials", G);
  be.dispatch(NORM_PARTIALS, [partials, grad], new Params().u32(n), [G, 1, 1]);
  const finite = Number.isFinite(maxNorm);
  be.dispatch(
    NORM_FINAL,
    [norm, clipScale, partials],
    new Params().u32(G, finite ? 1 : 0).f32(finite ? maxNorm : 0),
    [1, 1, 1],
  );
}

/**
 * See `Backend.adamw`. `param, grad, m, v [n]`; `offsets` i32 `[S+1]` (element offsets
 * relative to `param`'s view, non-decreasing); `hyper [S, 2]`; optional `clipScale [1]`.
 * One dispatch over all `n` elements; the bias corrections are computed here in f64.
 */
export function adamw(
  be: WebGpuBackend,
  { param, grad, m, v, offsets, hyper, clipScale }: {
    param: Tensor;
    grad: Tensor;
    m: Tensor;
    v: Tensor;
    offsets: Tensor;
    hyper: Tensor;
    clipScale?: Tensor;
  },
  { lr, beta1, beta2, eps, step }: {
    lr: number;
    beta1: number;
    beta2: number;
    eps: number;
    step: number;
  },
): void {
  const op = "adamw";
  const n = param.size;
  for (const [name, t] of Object.entries({ grad, m, v })) checkSize(op, name, t, n, "param's ");
  checkDtype(op, "offsets", offsets, "i32");
  check(
    offsets.size >= 1,
    () => `Cannot run ${op}: offsets must have S+1 >= 1 elements, current value is 0`,
  );
  const S = offsets.size - 1;
  checkSize(op, "hyper", hyper, 2 * S, "2·S = ");
  if (clipScale) checkSize(op, "clipScale", clipScale, 1);
  checkDims(op, { step }, 1);
  const bc1 = 1 - Math.pow(beta1, step);
  const sqrtBc2 = Math.sqrt(1 - Math.pow(beta2, step));
  const clip = clipScale ?? be.scratch("optim.dummy_clip", 1);
  const p = new Params()
    .u32(n, S, clipScale ? 1 : 0)
    .f32(lr, beta1, beta2, eps, bc1, sqrtBc2);
  be.dispatch(
    ADAMW_KERNEL,
    [param, grad, m, v, offsets, hyper, clip],
    p,
    linearGroups(n, 256),
  );
}
