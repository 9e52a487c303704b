/**
 * Optimiser kernels: global gradient norm with the clip factor, and AdamW over
 * one flat parameter buffer with per-segment hyper-parameters.
 *
 * GRAD_NORM_PARTIALS — pass 1: workgroup `g` sums `grad²` over a grid-stride loop and
 *   writes `partials[g]`; the grid stays ≤ a few thousand groups for any `n`.
 *   Bindings: 0 params {off_partials, off_grad, n}; 1 partials [G]; 2 grad [n].
 *   Dispatch: G workgroups of 256.
 * GRAD_NORM_FINAL — pass 2: one workgroup sums the partials; `norm[0] = sqrt(Σ)`,
 *   `clipScale[0] = min(1, max_norm/(norm + 1e-6))`, or 1 when `has_max = 0` (maxNorm = ∞).
 *   Bindings: 0 params {off_norm, off_clip, off_partials, G, has_max, max_norm};
 *   1 norm [1]; 2 clipScale [1]; 3 partials [G]. Dispatch: 1 workgroup of 256.
 * ADAMW — one invocation per element of the flat buffer; the element's segment is
 *   found by binary search in `offsets`.
 *   Bindings: 0 params {off_param, off_grad, off_m, off_v, off_offsets, off_hyper, off_clip,
 *   n, S, has_clip, lr, beta1, beta2, eps, bc1, sqrt_bc2}; 1 param [n]; 2 grad [n]; 3 m [n];
 *   4 v [n]; 5 offsets i32 [S+1]; 6 hyper [S, 2] = (lrScale, weightDecay);
 *   7 clipScale [1] (a dummy when `has_clip = 0`).
 *   Dispatch: `linearGroups(n, 256)`.
 *
 * @module
 */
import { foldedTree } from "./common.ts";

/** Pass 1 of the gradient norm: per-workgroup partial sums of squares. */
export const GRAD_NORM_PARTIALS: string = /* wgsl */ `
struct Params { off_partials: u32, off_grad: u32, n: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
var<workgroup> red: array<f32, 128>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  // Grid-stride: consecutive invocations read consecutive elements (coalesced). Each
  // invocation adds ~n/(256·G) squares in f32 (a few hundred for a 100M-element model).
  let stride = nwg.x * 256u;
  var acc = 0.0;
  for (var i = wid.x * 256u + lid; i < P.n; i += stride) {
    let g = grad[P.off_grad + i];
    acc = fma(g, g, acc);
  }
  ${
  foldedTree({
    red: "red",
    lane: "lid",
    value: "acc",
    half: "128u",
    combine: (a, b) => `${a} + ${b}`,
  })
}
  if (lid == 0u) { partials[P.off_partials + wid.x] = red[0]; }
}
`;

/** Pass 2 of the gradient norm: the norm and torch's `clip_grad_norm_` factor. */
export const GRAD_NORM_FINAL: string = /* wgsl */ `
struct Params { off_norm: u32, off_clip: u32, off_partials: u32, G: u32, has_max: u32, max_norm: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> norm: array<f32>;
@group(0) @binding(2) var<storage, read_write> clip: array<f32>;
@group(0) @binding(3) var<storage, read> partials: array<f32>;
var<workgroup> red: array<f32, 128>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var g = lid; g < P.G; g += 256u) { acc += partials[P.off_partials + g]; }
  ${
  foldedTree({
    red: "red",
    lane: "lid",
    value: "acc",
    half: "128u",
    combine: (a, b) => `${a} + ${b}`,
  })
}
  if (lid == 0u) {
    let nrm = sqrt(red[0]);
    norm[P.off_norm] = nrm;
    // maxNorm = ∞ arrives as has_max = 0: an infinite f32 uniform is not portable.
    var scale = 1.0;
    if (P.has_max != 0u) { scale = min(1.0, P.max_norm / (nrm + 1e-6)); }
    clip[P.off_clip] = scale;
  }
}
`;

/** AdamW (torch semantics, decoupled decay) over a flat buffer of segments. */
export const ADAMW: string = /* wgsl */ `
struct Params {
  off_param: u32, off_grad: u32, off_m: u32, off_v: u32, off_offsets: u32, off_hyper: u32,
  off_clip: u32, n: u32, S: u32, has_clip: u32,
  lr: f32, beta1: f32, beta2: f32, eps: f32, bc1: f32, sqrt_bc2: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> offsets: array<i32>;
@group(0) @binding(6) var<storage, read> hyper: array<f32>;
@group(0) @binding(7) var<storage, read> clip: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  let ii = i32(i);
  // Largest s in [0, S] with offsets[s] <= i. With non-decreasing offsets an element of a
  // segment lands on that segment even when empty segments share its start.
  var lo = 0u;
  var hi = P.S;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (offsets[P.off_offsets + mid] <= ii) { lo = mid; } else { hi = mid - 1u; }
  }
  let s = lo;
  if (s >= P.S || ii < offsets[P.off_offsets + s] || ii >= offsets[P.off_offsets + s + 1u]) {
    return; // outside every segment: left alone
  }
  let slr = P.lr * hyper[P.off_hyper + 2u * s];
  let wd = hyper[P.off_hyper + 2u * s + 1u];
  var g = grad[P.off_grad + i];
  if (P.has_clip != 0u) { g *= clip[P.off_clip]; }
  let mi = P.beta1 * m[P.off_m + i] + (1.0 - P.beta1) * g;
  let vi = P.beta2 * v[P.off_v + i] + (1.0 - P.beta2) * g * g;
  m[P.off_m + i] = mi;
  v[P.off_v + i] = vi;
  // torch.optim.AdamW: decay first (p *= 1 − lr·wd), then
  // p −= (lr/bc1) · m / (sqrt(v)/sqrt(bc2) + eps); bc1, sqrt(bc2) come from the host in f64.
  let p = param[P.off_param + i] * (1.0 - slr * wd);
  let denom = sqrt(vi) / P.sqrt_bc2 + P.eps;
  param[P.off_param + i] = p - (slr / P.bc1) * mi / denom;
}
`;
