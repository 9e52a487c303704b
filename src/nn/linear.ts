/**
 * Linear layer, PyTorch layout: `y[rows, out] = x[rows, in] · Wᵀ + b`, W `[out, in]`.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";

/** Sizes of a Linear applied to `rows` rows. */
export interface LinearDims {
  rows: number;
  inF: number;
  outF: number;
}

/**
 * `out [rows, outF] = inp [rows, inF] · weightᵀ (+ bias)`; with `gelu`, `out = gelu(z)` and
 * `pre = z`; with `accumulate` (not with `gelu`), `out +=` that instead (a residual added by
 * the product). No `bias`: a Linear without one (CLIP's patch embedding and projection).
 */
export function linearForward(
  be: Backend,
  { out, inp, weight, bias, pre }: {
    out: Tensor;
    inp: Tensor;
    weight: Tensor;
    bias?: Tensor;
    pre?: Tensor;
  },
  { rows, inF, outF }: LinearDims,
  gelu = false,
  accumulate = false,
): void {
  be.matmul({ out, a: inp, b: weight, bias, pre }, {
    M: rows,
    N: outF,
    K: inF,
    transB: true,
    gelu,
    accumulate,
  });
}

/**
 * `dweight += doutᵀ · inp`, `dbias += Σ_rows dout` (skipped when `dbias` is null: no bias),
 * and `dinp = dout · weight` (skipped when `dinp` is null, e.g. the patch embedding).
 */
export function linearBackward(
  be: Backend,
  { dinp, dweight, dbias, dout, inp, weight }: {
    dinp: Tensor | null;
    dweight: Tensor;
    dbias: Tensor | null;
    dout: Tensor;
    inp: Tensor;
    weight: Tensor;
  },
  { rows, inF, outF }: LinearDims,
): void {
  // dweight [outF, inF] += dout[rows, outF]ᵀ · inp[rows, inF]
  be.matmul({ out: dweight, a: dout, b: inp }, {
    M: outF,
    N: inF,
    K: rows,
    transA: true,
    accumulate: true,
  });
  if (dbias) be.biasGrad({ dbias, dout }, { rows, C: outF });
  // dinp [rows, inF] = dout[rows, outF] · weight[outF, inF]
  if (dinp) be.matmul({ out: dinp, a: dout, b: weight }, { M: rows, N: inF, K: outF });
}
