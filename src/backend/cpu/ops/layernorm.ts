/**
 * LayerNorm over the last `C` channels, forward and backward.
 *
 * @module
 */
import { checkDims, checkLength } from "./check.ts";
import type { FloatArray } from "./types.ts";
import { simdKernels } from "../simd/simd.ts";

/**
 * `out = (inp − mean)·rstd·weight + bias` per row, biased variance, `rstd = 1/sqrt(var + eps)`.
 * Mean and variance are computed in two passes (no `E[x²] − E[x]²` cancellation).
 *
 * @example
 * ```ts
 * import { layernormForward } from "./layernorm.ts";
 * const [out, mean, rstd] = [new Float32Array(2), new Float32Array(1), new Float32Array(1)];
 * const inp = new Float32Array([1, 3]);
 * const [weight, bias] = [new Float32Array([1, 1]), new Float32Array(2)];
 * layernormForward({ out, mean, rstd, inp, weight, bias }, { rows: 1, C: 2, eps: 1e-5 });
 * ```
 */
export function layernormForward(
  { out, mean, rstd, inp, weight, bias }: {
    out: FloatArray;
    mean: FloatArray;
    rstd: FloatArray;
    inp: FloatArray;
    weight: FloatArray;
    bias: FloatArray;
  },
  { rows, C, eps }: { rows: number; C: number; eps: number },
): void {
  // out, inp: (rows, C); mean, rstd: (rows); weight, bias: (C)
  const op = "layernorm";
  checkDims(op, { rows, C });
  checkLength(op, "out", out, rows * C, "rows·C = ");
  checkLength(op, "inp", inp, rows * C, "rows·C = ");
  checkLength(op, "mean", mean, rows, "rows = ");
  checkLength(op, "rstd", rstd, rows, "rows = ");
  checkLength(op, "weight", weight, C, "C = ");
  checkLength(op, "bias", bias, C, "C = ");
  const simd = simdKernels();
  if (
    simd && out instanceof Float32Array && mean instanceof Float32Array &&
    rstd instanceof Float32Array && inp instanceof Float32Array &&
    weight instanceof Float32Array && bias instanceof Float32Array
  ) {
    simd.layernorm(out, mean, rstd, inp, weight, bias, rows, C, eps);
    return;
  }
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[o + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = inp[o + c] - m;
      v += d * d;
    }
    v /= C;
    const s = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) out[o + c] = (inp[o + c] - m) * s * weight[c] + bias[c];
    mean[r] = m;
    rstd[r] = s;
  }
}

/**
 * LayerNorm backward: `dinp` (= or += with `accumulate`), `dweight +=`, `dbias +=`.
 * Uses the `mean` and `rstd` saved by {@link layernormForward}.
 *
 * @example
 * ```ts
 * import { layernormBackward } from "./layernorm.ts";
 * const [dinp, dweight, dbias] = [new Float32Array(2), new Float32Array(2), new Float32Array(2)];
 * const [dout, inp, weight] = [new Float32Array([1, 0]), new Float32Array([1, 3]), new Float32Array([1, 1])];
 * const [mean, rstd] = [new Float32Array([2]), new Float32Array([1])];
 * layernormBackward({ dinp, dweight, dbias, dout, inp, weight, mean, rstd }, { rows: 1, C: 2 });
 * ```
 */
export function layernormBackward(
  { dinp, dweight, dbias, dout, inp, weight, mean, rstd }: {
    dinp: FloatArray;
    dweight: FloatArray;
    dbias: FloatArray;
    dout: FloatArray;
    inp: FloatArray;
    weight: FloatArray;
    mean: FloatArray;
    rstd: FloatArray;
  },
  { rows, C, accumulate = false }: { rows: number; C: number; accumulate?: boolean },
): void {
  // dinp, dout, inp: (rows, C); dweight, dbias, weight: (C); mean, rstd: (rows)
  const op = "layernormBackward";
  checkDims(op, { rows, C });
  checkLength(op, "dinp", dinp, rows * C, "rows·C = ");
  checkLength(op, "dout", dout, rows * C, "rows·C = ");
  checkLength(op, "inp", inp, rows * C, "rows·C = ");
  checkLength(op, "dweight", dweight, C, "C = ");
  checkLength(op, "dbias", dbias, C, "C = ");
  checkLength(op, "weight", weight, C, "C = ");
  checkLength(op, "mean", mean, rows, "rows = ");
  checkLength(op, "rstd", rstd, rows, "rows = ");
  const simd = simdKernels();
  if (
    simd && dinp instanceof Float32Array && dout instanceof Float32Array &&
    inp instanceof Float32Array && weight instanceof Float32Array &&
    mean instanceof Float32Array && rstd instanceof Float32Array
  ) {
    simd.layernormBackward(
      dinp,
      dweight,
      dbias,
      dout,
      inp,
      weight,
      mean,
      rstd,
      rows,
      C,
      accumulate,
    );
    return;
  }
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    const m = mean[r];
    const s = rstd[r];
    // dnorm = weight ⊙ dout; dinp = rstd·(dnorm − mean(dnorm) − norm·mean(dnorm ⊙ norm))
    let dnormMean = 0;
    let dnormNormMean = 0;
    for (let c = 0; c < C; c++) {
      const norm = (inp[o + c] - m) * s;
      const dnorm = weight[c] * dout[o + c];
      dnormMean += dnorm;
      dnormNormMean += dnorm * norm;
    }
    dnormMean /= C;
    dnormNormMean /= C;
    for (let c = 0; c < C; c++) {
      const norm = (inp[o + c] - m) * s;
      const dnorm = weight[c] * dout[o + c];
      const g = (dnorm - dnormMean - norm * dnormNormMean) * s;
      dinp[o + c] = accumulate ? dinp[o + c] + g : g;
      dbias[c] += dout[o + c];
      dweight[c] += norm * dout[o + c];
    }
  }
}
