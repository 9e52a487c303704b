/**
 * WebGPU elementwise ops: residual/broadcast add, exact GELU and its backward, drop-path
 * row scaling, and the bias-gradient column sum. WGSL in `kernels/elementwise.ts`.
 *
 * @module
 */
import type { Tensor } from "../../backend.ts";
import { linearGroups, Params, type WebGpuBackend } from "../backend.ts";
import type { KernelSpec } from "../context.ts";
import { check, checkDims, checkF32, checkSize } from "./checks.ts";
import {
  ADD,
  COLSUM_FINAL,
  COLSUM_PARTIAL,
  GELU,
  GELU_BACKWARD,
  SCALE_ROWS,
} from "../../../../kernels/elementwise.ts";

const ADD_KERNEL: KernelSpec = { label: "add", code: ADD, storageBindings: 3 };
const GELU_KERNEL: KernelSpec = { label: "gelu", code: GELU, storageBindings: 2 };
const GELU_BACKWARD_KERNEL: KernelSpec = {
  label: "gelu_backward",
  code: GELU_BACKWARD,
  storageBindings: 3,
};
const SCALE_ROWS_KERNEL: KernelSpec = { label: "scale_rows", code: SCALE_ROWS, storageBindings: 3 };
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

/** Most row groups pass 1 of `biasGrad` splits the rows into (pass 2 sums this many). */
const BIAS_GROUPS = 256;
/** Fewest rows one row group sums, so small inputs do not spread thin. */
const MIN_ROWS_PER_GROUP = 16;

/** See `Backend.biasGrad`: `dbias [C] += Σ_r dout [rows, C]`, two-pass column sum. */
export function biasGrad(
  be: WebGpuBackend,
  { dbias, dout }: { dbias: Tensor; dout: Tensor },
  { rows, C }: { rows: number; C: number },
): void {
  const op = "biasGrad";
  checkDims(op, { rows, C });
  checkSize(op, "dbias", dbias, C, "C = ");
  checkSize(op, "dout", dout, rows * C, "rows·C = ");
  checkF32(op, { dbias, dout });
  if (rows === 0 || C === 0) return;
  const G0 = Math.max(1, Math.min(BIAS_GROUPS, Math.ceil(rows / MIN_ROWS_PER_GROUP)));
  const rowsPer = Math.ceil(rows / G0);
  const G = Math.ceil(rows / rowsPer); // every group owns at least one row
  const part = be.scratch("elementwise.colsum_partials", G * C);
  be.dispatch(
    COLSUM_PARTIAL_KERNEL,
    [part, dout],
    new Params().u32(rows, C, rowsPer),
    [Math.ceil(C / 64), G, 1],
  );
  be.dispatch(COLSUM_FINAL_KERNEL, [dbias, part], new Params().u32(C, G, C), [
    Math.ceil(C / 64),
    1,
    1,
  ]);
}

/** See `Backend.add`: `out[i] = a[i] + b[i mod b.size]`; `out` may be `a` (in place). */
export function add(be: WebGpuBackend, { out, a, b }: { out: Tensor; a: Tensor; b: Tensor }): void {
  const op = "add";
  checkSize(op, "out", out, a.size, "a's ");
  checkF32(op, { out, a, b });
  check(
    b.size === 0 ? a.size === 0 : a.size % b.size === 0,
    () =>
      `Cannot run ${op}: the size of b must divide the size of a, current values are ${b.size} and ${a.size}`,
  );
  const n = a.size;
  be.dispatch(ADD_KERNEL, [out, a, b], new Params().u32(n, b.size), linearGroups(n, 256));
}

/** See `Backend.gelu`: `out = gelu(inp)` (exact erf GELU); `out` may be `inp`. */
export function gelu(be: WebGpuBackend, { out, inp }: { out: Tensor; inp: Tensor }): void {
  const op = "gelu";
  checkSize(op, "out", out, inp.size, "inp's ");
  checkF32(op, { out, inp });
  const n = inp.size;
  be.dispatch(GELU_KERNEL, [out, inp], new Params().u32(n), linearGroups(n, 256));
}

/** See `Backend.geluBackward`: `dinp = dout · gelu'(inp)` (assign); `dinp` may be `dout`. */
export function geluBackward(
  be: WebGpuBackend,
  { dinp, dout, inp }: { dinp: Tensor; dout: Tensor; inp: Tensor },
): void {
  const op = "geluBackward";
  checkSize(op, "dinp", dinp, inp.size, "inp's ");
  checkSize(op, "dout", dout, inp.size, "inp's ");
  checkF32(op, { dinp, dout, inp });
  const n = inp.size;
  be.dispatch(
    GELU_BACKWARD_KERNEL,
    [dinp, dout, inp],
    new Params().u32(n),
    linearGroups(n, 256),
  );
}

/** See `Backend.scaleRows`: `out[r, :] = inp[r, :] · scale[r]`; `out` may be `inp`. */
export function scaleRows(
  be: WebGpuBackend,
  { out, inp, scale }: { out: Tensor; inp: Tensor; scale: Tensor },
  { rows, C }: { rows: number; C: number },
): void {
  const op = "scaleRows";
  checkDims(op, { rows, C });
  checkSize(op, "out", out, rows * C, "rows·C = ");
  checkSize(op, "inp", inp, rows * C, "rows·C = ");
  checkSize(op, "scale", scale, rows, "rows = ");
  checkF32(op, { out, inp, scale });
  const n = rows * C;
  be.dispatch(
    SCALE_ROWS_KERNEL,
    [out, inp, scale],
    new Params().u32(n, C),
    linearGroups(n, 256),
  );
}
