/**
 * AdamW (PyTorch semantics, decoupled weight decay) over flat buffers with per-segment
 * learning-rate scale and weight decay (layer-wise LR decay, no decay on norms/biases).
 *
 * @module
 */
import { checkLength } from "./check.ts";
import type { FloatArray } from "./types.ts";
import { simdKernels } from "../simd/simd.ts";

/** Scalar hyper-parameters of {@link adamw}; `step` is the 1-based step count `t`. */
export interface AdamwDims {
  /** Base learning rate (scaled per segment by `lrScale`). */
  lr: number;
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** Added to the denominator. */
  eps: number;
  /** 1-based step count for the bias corrections. */
  step: number;
}

/**
 * One AdamW step. Segment `s` covers `[offsets[s], offsets[s+1])` and uses
 * `hyper[s] = (lrScale, weightDecay)`. Per element: `g = grad·clipScale[0]` (if given);
 * `p −= lr·lrScale·wd·p`; `m = β1·m + (1−β1)·g`; `v = β2·v + (1−β2)·g²`;
 * `p −= lr·lrScale·(m/(1−β1ᵗ)) / (sqrt(v/(1−β2ᵗ)) + eps)`. Elements outside every
 * segment are left alone. With `range`, only elements `[range.lo, range.hi)` are updated
 * (the CPU pool's static shares); every element's update is the same either way.
 *
 * @example
 * ```ts
 * import { adamw } from "./adamw.ts";
 * const [param, grad, m, v] = [new Float32Array([1]), new Float32Array([1]), new Float32Array(1), new Float32Array(1)];
 * adamw(
 *   { param, grad, m, v, offsets: new Int32Array([0, 1]), hyper: new Float32Array([1, 0.05]) },
 *   { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 },
 * );
 * ```
 */
export function adamw(
  { param, grad, m, v, offsets, hyper, clipScale }: {
    param: FloatArray;
    grad: FloatArray;
    m: FloatArray;
    v: FloatArray;
    offsets: Int32Array;
    hyper: FloatArray;
    clipScale?: FloatArray;
  },
  { lr, beta1, beta2, eps, step }: AdamwDims,
  range?: { lo: number; hi: number },
): void {
  // param, grad, m, v: (n); offsets: (S+1); hyper: (S, 2); clipScale: (1)
  const op = "adamw";
  const n = param.length;
  checkLength(op, "grad", grad, n, "param's ");
  checkLength(op, "m", m, n, "param's ");
  checkLength(op, "v", v, n, "param's ");
  if (offsets.length < 1) {
    throw new RangeError(
      `Cannot run ${op}: offsets must have S+1 >= 1 elements, current value is 0`,
    );
  }
  const S = offsets.length - 1;
  checkLength(op, "hyper", hyper, 2 * S, "2·S = ");
  if (clipScale) checkLength(op, "clipScale", clipScale, 1);
  if (!Number.isInteger(step) || step < 1) {
    throw new RangeError(
      `Cannot run ${op}: step must be an integer >= 1, current value is ${step}`,
    );
  }
  for (let s = 0; s <= S; s++) {
    const lo = s === 0 ? 0 : offsets[s - 1];
    if (offsets[s] < lo || offsets[s] > n) {
      throw new RangeError(
        `Cannot run ${op}: offsets must be non-decreasing within [0, ${n}], current value of offsets[${s}] is ${
          offsets[s]
        }`,
      );
    }
  }
  const from = range ? range.lo : 0;
  const to = range ? range.hi : n;
  if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= n)) {
    throw new RangeError(
      `Cannot run ${op}: range must satisfy 0 <= lo <= hi <= ${n}, current value is [${from}, ${to})`,
    );
  }
  const clip = clipScale ? clipScale[0] : 1;
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2 = 1 - Math.pow(beta2, step);
  const simd = simdKernels();
  const f32 = param instanceof Float32Array && grad instanceof Float32Array &&
    m instanceof Float32Array && v instanceof Float32Array;
  for (let s = 0; s < S; s++) {
    const slr = lr * hyper[2 * s];
    const decay = 1 - slr * hyper[2 * s + 1];
    const end = Math.min(offsets[s + 1], to);
    if (simd && f32) {
      const start = Math.max(offsets[s], from);
      if (start < end) {
        simd.adamw({ param, grad, m, v }, start, end, {
          clip,
          beta1,
          beta2,
          step: slr / bc1,
          invBc2: 1 / bc2,
          eps,
          decay,
        });
      }
      continue;
    }
    for (let i = Math.max(offsets[s], from); i < end; i++) {
      const g = grad[i] * clip;
      const mi = beta1 * m[i] + (1 - beta1) * g;
      const vi = beta2 * v[i] + (1 - beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      param[i] = param[i] * decay - slr * (mi / bc1) / (Math.sqrt(vi / bc2) + eps);
    }
  }
}
