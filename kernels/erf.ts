/**
 * WGSL helpers for the exact (erf) GELU, to paste into any kernel that needs
 * them: `erfc_f32`, `erf_f32`, `gelu_f32` and `gelu_grad_f32`. WGSL has no
 * `erf`, so it is built here.
 *
 * Accuracy (f32): `erfc` uses the Chebyshev-fitted rational form of Numerical
 * Recipes (2nd ed., §6.2, `erfcc`), whose fractional error is below 1.2e-7
 * for every argument, in the tail too — better than Abramowitz–Stegun 7.1.26
 * (1.5e-7 ABSOLUTE error, which is a large relative error where erfc is tiny).
 * `gelu(x) = ½·x·erfc(−x/√2)` is written with `erfc` so the negative tail
 * keeps its relative precision (no cancellation in `1 + erf`). Measured
 * against an f64 reference in the matmul tests: GELU relative error a few
 * 1e-7 plus f32 rounding.
 *
 * @module
 */

/** WGSL: `erfc_f32`, `erf_f32`, `gelu_f32`, `gelu_grad_f32` (no bindings, no entry point). */
export const ERF_WGSL: string = /* wgsl */ `
// erfc(x) = t·exp(−z² − 1.26551223 + t·P(t)), t = 1/(1 + z/2), z = |x| (Numerical Recipes
// erfcc: fractional error < 1.2e-7 everywhere); erfc(−z) = 2 − erfc(z).
fn erfc_f32(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277))))))));
  // exp of a large negative argument underflows to 0, which is the right limit.
  let r = t * exp(-z * z + p);
  return select(r, 2.0 - r, x < 0.0);
}

fn erf_f32(x: f32) -> f32 {
  return 1.0 - erfc_f32(x);
}

// Exact GELU x·Φ(x) (not the tanh approximation): the reference dBOT/timm ViT uses nn.GELU().
fn gelu_f32(x: f32) -> f32 {
  return 0.5 * x * erfc_f32(-0.70710678118654752 * x);
}

// d/dx gelu = Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π).
fn gelu_grad_f32(x: f32) -> f32 {
  let cdf = 0.5 * erfc_f32(-0.70710678118654752 * x);
  return cdf + x * 0.39894228040143268 * exp(-0.5 * x * x);
}
`;
