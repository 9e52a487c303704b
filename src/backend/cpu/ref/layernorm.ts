/**
 * LayerNorm over the last `C` channels, forward and backward.
 *
 * @module
 */
import type {
  LayernormBackwardBufs,
  LayernormBackwardDims,
  LayernormBufs,
  NormDims,
} from "../../backend.ts";
import { checkLayernorm, checkLayernormBackward } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

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
export function layernormForward(bufs: LayernormBufs<FloatArray>, dims: NormDims): void {
  // out, inp: (rows, C); mean, rstd: (rows); weight, bias: (C)
  checkLayernorm(bufs, dims);
  const { out, mean, rstd, inp, weight, bias } = bufs;
  const { rows, C, eps } = dims;
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
  bufs: LayernormBackwardBufs<FloatArray>,
  dims: LayernormBackwardDims,
): void {
  // dinp, dout, inp: (rows, C); dweight, dbias, weight: (C); mean, rstd: (rows)
  checkLayernormBackward(bufs, dims);
  const { dinp, dweight, dbias, dout, inp, weight, mean, rstd } = bufs;
  const { rows, C, accumulate = false } = dims;
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
