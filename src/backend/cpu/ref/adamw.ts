/**
 * AdamW (PyTorch semantics, decoupled weight decay) over flat buffers with per-segment
 * learning-rate scale and weight decay (layer-wise LR decay, no decay on norms/biases).
 *
 * @module
 */
import type { AdamwBufs, AdamwDims } from "../../backend.ts";
import { checkAdamw } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/** The arrays one AdamW update reads and writes. */
export type AdamwArrays = Pick<AdamwBufs<FloatArray>, "param" | "grad" | "m" | "v">;

/** Scalars of one segment's update: `slr = lr·lrScale`, `decay = 1 − slr·wd`, bias corrections. */
export interface AdamwScalars {
  /** Gradient scale (`clipScale[0]`, else 1). */
  clip: number;
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** Added to the denominator. */
  eps: number;
  /** This segment's learning rate. */
  slr: number;
  /** `1 − slr·weightDecay`. */
  decay: number;
  /** `1 − β1ᵗ`. */
  bc1: number;
  /** `1 − β2ᵗ`. */
  bc2: number;
}

/**
 * Updates elements `[lo, hi)` of one segment (the loop {@link adamw} runs per segment;
 * the CPU backend passes a fast kernel in its place).
 */
export type AdamwSegment = (a: AdamwArrays, lo: number, hi: number, s: AdamwScalars) => void;

/**
 * The plain loop of one segment's update.
 *
 * @example
 * ```ts
 * import { adamwSegment } from "./adamw.ts";
 * const [param, grad, m, v] = [new Float64Array([1]), new Float64Array([1]), new Float64Array(1), new Float64Array(1)];
 * const s = { clip: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, slr: 1e-3, decay: 1, bc1: 0.1, bc2: 0.001 };
 * adamwSegment({ param, grad, m, v }, 0, 1, s);
 * ```
 */
export function adamwSegment(
  { param, grad, m, v }: AdamwArrays,
  lo: number,
  hi: number,
  { clip, beta1, beta2, eps, slr, decay, bc1, bc2 }: AdamwScalars,
): void {
  for (let i = lo; i < hi; i++) {
    const g = grad[i] * clip;
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - slr * (mi / bc1) / (Math.sqrt(vi / bc2) + eps);
  }
}

/**
 * One AdamW step. Segment `s` covers `[offsets[s], offsets[s+1])` and uses
 * `hyper[s] = (lrScale, weightDecay)`. Per element: `g = grad·clipScale[0]` (if given);
 * `p −= lr·lrScale·wd·p`; `m = β1·m + (1−β1)·g`; `v = β2·v + (1−β2)·g²`;
 * `p −= lr·lrScale·(m/(1−β1ᵗ)) / (sqrt(v/(1−β2ᵗ)) + eps)`. Elements outside every
 * segment are left alone. With `opts.range`, only elements `[range.lo, range.hi)` are
 * updated (the CPU pool's static shares); every element's update is the same either way.
 * `opts.segment` runs each segment's elements (default {@link adamwSegment}).
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
  bufs: AdamwBufs<FloatArray, Int32Array>,
  dims: AdamwDims,
  opts: { range?: { lo: number; hi: number }; segment?: AdamwSegment } = {},
): void {
  // param, grad, m, v: (n); offsets: (S+1); hyper: (S, 2); clipScale: (1)
  const op = "adamw";
  const S = checkAdamw(bufs, dims);
  const { param, grad, m, v, offsets, hyper, clipScale } = bufs;
  const { lr, beta1, beta2, eps, step } = dims;
  const n = param.length;
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
  const { range, segment = adamwSegment } = opts;
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
  for (let s = 0; s < S; s++) {
    const slr = lr * hyper[2 * s];
    const decay = 1 - slr * hyper[2 * s + 1];
    const lo = Math.max(offsets[s], from);
    const hi = Math.min(offsets[s + 1], to);
    if (lo < hi) {
      segment({ param, grad, m, v }, lo, hi, { clip, beta1, beta2, eps, slr, decay, bc1, bc2 });
    }
  }
}
