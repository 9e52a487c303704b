/**
 * Central finite differences in f64 for gradient checks of the CPU ops.
 *
 * @module
 */
import type { Rng } from "../src/util/rng.ts";

/**
 * `∂f/∂x` by central differences, `(f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h` for every `i`.
 * `x` is perturbed in place and restored.
 */
export function fdGrad(f: () => number, x: Float64Array, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + h;
    const fp = f();
    x[i] = x0 - h;
    const fm = f();
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** `Σ a[i]·b[i]` in f64: projects an op's output on a fixed `dout` to get a scalar loss. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** A `Float64Array` of `n` seeded uniform draws in `[lo, hi)`. */
export function randArray(rng: Rng, n: number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.uniform();
  return a;
}

/** One analytic gradient next to its finite-difference estimate. */
export interface GradPair {
  /** What is differentiated, e.g. `"dinp"`. */
  what: string;
  /** Gradient from the op's backward. */
  analytic: Float64Array;
  /** Central finite-difference gradient. */
  numeric: Float64Array;
}

/** Max `|analytic − numeric|` over all pairs. */
export function maxGradError(pairs: readonly GradPair[]): number {
  let m = 0;
  for (const { analytic, numeric } of pairs) {
    for (let i = 0; i < analytic.length; i++) {
      const e = Math.abs(analytic[i] - numeric[i]);
      if (!(e <= m)) m = e;
    }
  }
  return m;
}
