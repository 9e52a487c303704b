/**
 * WebGPU LayerNorm (forward, backward) and per-row standardisation. WGSL in
 * `kernels/layernorm.ts`; the parameter-gradient column sums finish with
 * `COLSUM_FINAL` from `kernels/elementwise.ts`.
 *
 * @module
 */
import type { Tensor } from "../../backend.ts";
import { linearGroups, Params, type WebGpuBackend } from "../backend.ts";
import type { KernelSpec } from "../context.ts";
import { checkDims, checkF32, checkSize } from "./checks.ts";
import { LAYERNORM, LAYERNORM_BACKWARD, STANDARDIZE_ROWS } from "../../../../kernels/layernorm.ts";
import { COLSUM_FINAL_KERNEL } from "./elementwise.ts";

const LAYERNORM_KERNEL: KernelSpec = { label: "layernorm", code: LAYERNORM, storageBindings: 6 };
const LAYERNORM_BACKWARD_KERNEL: KernelSpec = {
  label: "layernorm_backward",
  code: LAYERNORM_BACKWARD,
  storageBindings: 7,
};
const STANDARDIZE_KERNEL: KernelSpec = {
  label: "standardize_rows",
  code: STANDARDIZE_ROWS,
  storageBindings: 2,
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
  be: WebGpuBackend,
  { out, mean, rstd, inp, weight, bias }: {
    out: Tensor;
    mean: Tensor;
    rstd: Tensor;
    inp: Tensor;
    weight: Tensor;
    bias: Tensor;
  },
  { rows, C, eps }: { rows: number; C: number; eps: number },
): void {
  const op = "layernorm";
  checkDims(op, { rows, C });
  checkSize(op, "out", out, rows * C, "rows·C = ");
  checkSize(op, "inp", inp, rows * C, "rows·C = ");
  checkSize(op, "mean", mean, rows, "rows = ");
  checkSize(op, "rstd", rstd, rows, "rows = ");
  checkSize(op, "weight", weight, C, "C = ");
  checkSize(op, "bias", bias, C, "C = ");
  checkF32(op, { out, mean, rstd, inp, weight, bias });
  if (rows === 0) return;
  const WG = rowWorkgroup(C, 4);
  be.dispatch(
    LAYERNORM_KERNEL,
    [out, mean, rstd, inp, weight, bias],
    new Params().u32(rows, C).f32(eps),
    linearGroups(rows, 1),
    { WG },
  );
}

/**
 * See `Backend.layernormBackward`. `dinp (=|+=)`, `dweight += `, `dbias += `, from the saved
 * `mean, rstd [rows]`. Pass 1 writes `dinp` and per-row-group partials `[G, 2C]` of
 * `Σ norm·dout` and `Σ dout`; pass 2 adds the partial columns into `dweight` and `dbias`.
 * `dinp` must not alias `dout` or `inp`.
 */
export function layernormBackward(
  be: WebGpuBackend,
  { dinp, dweight, dbias, dout, inp, weight, mean, rstd }: {
    dinp: Tensor;
    dweight: Tensor;
    dbias: Tensor;
    dout: Tensor;
    inp: Tensor;
    weight: Tensor;
    mean: Tensor;
    rstd: Tensor;
  },
  { rows, C, accumulate = false }: { rows: number; C: number; accumulate?: boolean },
): void {
  const op = "layernormBackward";
  checkDims(op, { rows, C });
  checkSize(op, "dinp", dinp, rows * C, "rows·C = ");
  checkSize(op, "dout", dout, rows * C, "rows·C = ");
  checkSize(op, "inp", inp, rows * C, "rows·C = ");
  checkSize(op, "dweight", dweight, C, "C = ");
  checkSize(op, "dbias", dbias, C, "C = ");
  checkSize(op, "weight", weight, C, "C = ");
  checkSize(op, "mean", mean, rows, "rows = ");
  checkSize(op, "rstd", rstd, rows, "rows = ");
  checkF32(op, { dinp, dweight, dbias, dout, inp, weight, mean, rstd });
  if (rows === 0 || C === 0) return;
  const WG = rowWorkgroup(C, COLS_PER_THREAD);
  const G0 = Math.max(1, Math.min(BACKWARD_GROUPS, Math.ceil(rows / MIN_ROWS_PER_GROUP)));
  const rowsPer = Math.ceil(rows / G0);
  const G = Math.ceil(rows / rowsPer); // every group owns at least one row
  const part = be.scratch("layernorm.backward_partials", G * 2 * C);
  be.dispatch(
    LAYERNORM_BACKWARD_KERNEL,
    [dinp, part, dout, inp, weight, mean, rstd],
    new Params().u32(rows, C, rowsPer, accumulate ? 1 : 0),
    [G, Math.ceil(C / (WG * COLS_PER_THREAD)), 1],
    { WG },
  );
  const colBlocks: [number, number, number] = [Math.ceil(C / 64), 1, 1];
  const partDb = { ...part, offset: part.offset + C, shape: [part.size - C], size: part.size - C };
  be.dispatch(COLSUM_FINAL_KERNEL, [dweight, part], new Params().u32(C, G, 2 * C), colBlocks);
  be.dispatch(COLSUM_FINAL_KERNEL, [dbias, partDb], new Params().u32(C, G, 2 * C), colBlocks);
}

/**
 * See `Backend.standardizeRows`: unbiased variance ÷(C−1), eps inside the sqrt; C must be
 * at least 2 (one sample has no unbiased variance). `out` may be `inp`.
 */
export function standardizeRows(
  be: WebGpuBackend,
  { out, inp }: { out: Tensor; inp: Tensor },
  { rows, C, eps }: { rows: number; C: number; eps: number },
): void {
  const op = "standardizeRows";
  checkDims(op, { rows });
  checkDims(op, { C }, 2);
  checkSize(op, "out", out, rows * C, "rows·C = ");
  checkSize(op, "inp", inp, rows * C, "rows·C = ");
  checkF32(op, { out, inp });
  if (rows === 0) return;
  be.dispatch(
    STANDARDIZE_KERNEL,
    [out, inp],
    new Params().u32(rows, C).f32(eps),
    linearGroups(rows, 1),
    { WG: rowWorkgroup(C, 4) },
  );
}
