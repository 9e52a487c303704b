/**
 * Loss kernels: weighted SmoothL1, weighted cosine distance and soft-target
 * cross-entropy, each value AND gradient, the loss kept on the device.
 *
 * Every loss is a chain of small passes (no float atomics in Deno's WebGPU):
 * 1. a ROWS pass, one 64-wide workgroup per row, writes the row loss `rowv[r]` (and for
 *    cosine the per-row gradient coefficients; for cross-entropy the gradient itself);
 * 2. WEIGHTED_PARTIALS: `G` workgroups stride over the rows and write `(Σ w, Σ w·rowv)`;
 * 3. WEIGHTED_FINAL: one workgroup sums the partials into `stats = (Σw, Σ w·rowv)` and
 *    writes `loss[0] = Σ w·rowv / Σ w`;
 * 4. a GRAD pass (SmoothL1, cosine), one invocation per element, reads `Σw` from `stats`.
 *
 * Row passes: dispatch `linearGroups(rows, 1)` workgroups of 64 (row id =
 * `wid.x + wid.y·nwg.x`). Element passes: `linearGroups(rows·C, 256)` workgroups of 256.
 *
 * SMOOTH_L1_ROWS — bindings 0 params {off_rowv, off_inp, off_tgt, rows, C, beta};
 *   1 rowv [rows]; 2 inp [rows, C]; 3 tgt [rows, C]. `rowv[r] = mean_c e(inp − tgt)`.
 * SMOOTH_L1_GRAD — bindings 0 params {off_dinp, off_inp, off_tgt, off_weight, off_stats, rows, C,
 *   beta}; 1 dinp; 2 inp; 3 tgt; 4 weight [rows]; 5 stats [2].
 * COSINE_ROWS — bindings 0 params {off_rowv, off_coef, off_inp, off_tgt, rows, C, eps};
 *   1 rowv [rows]; 2 coef [rows, 2]; 3 inp; 4 tgt. `rowv = 1 − cos`, `coef = (a, b)` below.
 * COSINE_GRAD — bindings 0 params {off_dinp, off_inp, off_tgt, off_weight, off_coef, off_stats,
 *   rows, C}; 1 dinp; 2 inp; 3 tgt; 4 weight; 5 coef; 6 stats.
 * CROSS_ENTROPY_ROWS — bindings 0 params {off_dlogits, off_rowv, off_logits, off_tgt, rows, C,
 *   inv_rows}; 1 dlogits; 2 rowv; 3 logits; 4 tgt. Writes `dlogits` (Σw = rows is known).
 * WEIGHTED_PARTIALS — bindings 0 params {off_partials, off_rowv, off_weight, rows, has_weight};
 *   1 partials [G, 2]; 2 rowv [rows]; 3 weight [rows] (a dummy when `has_weight = 0`: w = 1).
 *   Dispatch: G workgroups of 256 (G ≤ 256).
 * WEIGHTED_FINAL — bindings 0 params {off_stats, off_loss, off_partials, G};
 *   1 stats [2]; 2 loss [1]; 3 partials [G, 2]. Dispatch: 1 workgroup of 256.
 *
 * @module
 */
import { foldedTree } from "./common.ts";

/** Row id of a one-workgroup-per-row pass over a 2-D grid. */
const ROW_ID = /* wgsl */ `
  let r = wid.x + wid.y * nwg.x;
  // r is workgroup-uniform, so returning here keeps the barriers below in uniform control flow.
  if (r >= P.rows) { return; }
`;

/** Tree sum of `v` over the 64 invocations into `red[0]` (32 slots, see `foldedTree`). */
function sum64(v: string): string {
  return foldedTree({ red: "red", lane: "lid", value: v, half: "32u", combine: plus });
}

/** `a + b` in WGSL. */
function plus(a: string, b: string): string {
  return `${a} + ${b}`;
}

/** `max(a, b)` in WGSL. */
function max(a: string, b: string): string {
  return `max(${a}, ${b})`;
}

/** Per-row mean of the SmoothL1 elements. */
export const SMOOTH_L1_ROWS: string = /* wgsl */ `
struct Params { off_rowv: u32, off_inp: u32, off_tgt: u32, rows: u32, C: u32, beta: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> rowv: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> tgt: array<f32>;
var<workgroup> red: array<f32, 32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  ${ROW_ID}
  let base = r * P.C;
  var acc = 0.0;
  for (var c = lid; c < P.C; c += 64u) {
    let d = inp[P.off_inp + base + c] - tgt[P.off_tgt + base + c];
    let ad = abs(d);
    // PyTorch smooth_l1_loss: quadratic inside |d| < beta, linear outside, continuous at beta.
    acc += select(ad - 0.5 * P.beta, 0.5 * d * d / P.beta, ad < P.beta);
  }
  ${sum64("acc")}
  if (lid == 0u) { rowv[P.off_rowv + r] = red[0] / f32(P.C); }
}
`;

/** `dinp = w_r/(Σw·C) · (d/beta if |d| < beta else sign(d))`. */
export const SMOOTH_L1_GRAD: string = /* wgsl */ `
struct Params {
  off_dinp: u32, off_inp: u32, off_tgt: u32, off_weight: u32, off_stats: u32,
  rows: u32, C: u32, beta: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> tgt: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.rows * P.C) { return; }
  let r = i / P.C;
  // ∂loss/∂e for every element of row r; a zero weight gives a zero gradient.
  let g = weight[P.off_weight + r] / (stats[P.off_stats] * f32(P.C));
  let d = inp[P.off_inp + i] - tgt[P.off_tgt + i];
  // ∂e/∂d: d/beta inside the quadratic zone, sign(d) outside (sign(0) = 0, as in torch).
  let de = select(sign(d), d / P.beta, abs(d) < P.beta);
  dinp[P.off_dinp + i] = g * de;
}
`;

/**
 * Per-row `1 − cos` and the gradient coefficients `a = 1/(nx·ny)`, `b = cos/‖x‖²`
 * (b = 0 where the norm clamp is active), so that `∂cos/∂x = a·y − b·x`.
 */
export const COSINE_ROWS: string = /* wgsl */ `
struct Params {
  off_rowv: u32, off_coef: u32, off_inp: u32, off_tgt: u32, rows: u32, C: u32, eps: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> rowv: array<f32>;
@group(0) @binding(2) var<storage, read_write> coef: array<f32>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;
@group(0) @binding(4) var<storage, read> tgt: array<f32>;
var<workgroup> red: array<vec3f, 32>;


@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  ${ROW_ID}
  let base = r * P.C;
  var acc = vec3f(0.0); // (x·x, y·y, x·y)
  for (var c = lid; c < P.C; c += 64u) {
    let x = inp[P.off_inp + base + c];
    let y = tgt[P.off_tgt + base + c];
    acc += vec3f(x * x, y * y, x * y);
  }
  ${sum64("acc")}
  if (lid == 0u) {
    let s = red[0];
    // norms clamped to eps as torch 1.13 F.cosine_similarity; its gradient keeps the
    // −cos·x/nx² term with the clamped norm (torch clamps under no_grad)
    let nx = max(sqrt(s.x), P.eps);
    let ny = max(sqrt(s.y), P.eps);
    let cs = s.z / (nx * ny);
    rowv[P.off_rowv + r] = 1.0 - cs;
    coef[P.off_coef + 2u * r] = 1.0 / (nx * ny);
    coef[P.off_coef + 2u * r + 1u] = cs / (nx * nx);
  }
}
`;

/** `dinp = −w_r/Σw · (a_r·y − b_r·x)`. */
export const COSINE_GRAD: string = /* wgsl */ `
struct Params {
  off_dinp: u32, off_inp: u32, off_tgt: u32, off_weight: u32, off_coef: u32, off_stats: u32,
  rows: u32, C: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> tgt: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> coef: array<f32>;
@group(0) @binding(6) var<storage, read> stats: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.rows * P.C) { return; }
  let r = i / P.C;
  let g = -weight[P.off_weight + r] / stats[P.off_stats];
  let a = coef[P.off_coef + 2u * r];
  let b = coef[P.off_coef + 2u * r + 1u];
  dinp[P.off_dinp + i] = g * (tgt[P.off_tgt + i] * a - inp[P.off_inp + i] * b);
}
`;

/** Per-row soft-target cross-entropy and `dlogits = (softmax − target)/rows`. */
export const CROSS_ENTROPY_ROWS: string = /* wgsl */ `
struct Params {
  off_dlogits: u32, off_rowv: u32, off_logits: u32, off_tgt: u32, rows: u32, C: u32, inv_rows: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(2) var<storage, read_write> rowv: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> tgt: array<f32>;
var<workgroup> red: array<f32, 32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  ${ROW_ID}
  let base = r * P.C;
  // Stable log-sum-exp: subtract the row max before exp.
  // -FLT_MAX as bits: Tint (Chrome) rejects the decimal literal -3.40282347e38, naga accepts it
  var mx = bitcast<f32>(0xff7fffffu);
  for (var c = lid; c < P.C; c += 64u) { mx = max(mx, logits[P.off_logits + base + c]); }
  ${foldedTree({ red: "red", lane: "lid", value: "mx", half: "32u", combine: max })}
  mx = red[0];
  workgroupBarrier();
  var se = 0.0;
  for (var c = lid; c < P.C; c += 64u) { se += exp(logits[P.off_logits + base + c] - mx); }
  ${sum64("se")}
  let lse = mx + log(red[0]);
  workgroupBarrier();
  var acc = 0.0;
  for (var c = lid; c < P.C; c += 64u) {
    let t = tgt[P.off_tgt + base + c];
    let logp = logits[P.off_logits + base + c] - lse;
    // Skip 0·(−∞) where a probability underflows.
    if (t != 0.0) { acc -= t * logp; }
    dlogits[P.off_dlogits + base + c] = (exp(logp) - t) * P.inv_rows;
  }
  ${sum64("acc")}
  if (lid == 0u) { rowv[P.off_rowv + r] = red[0]; }
}
`;

/** Per-workgroup partial `(Σ w, Σ w·rowv)` over a grid-stride of rows. */
export const WEIGHTED_PARTIALS: string = /* wgsl */ `
struct Params { off_partials: u32, off_rowv: u32, off_weight: u32, rows: u32, has_weight: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read> rowv: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
var<workgroup> red: array<vec2f, 128>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  var acc = vec2f(0.0);
  for (var r = wid.x * 256u + lid; r < P.rows; r += nwg.x * 256u) {
    var w = 1.0;
    if (P.has_weight != 0u) { w = weight[P.off_weight + r]; }
    acc += vec2f(w, w * rowv[P.off_rowv + r]);
  }
  ${foldedTree({ red: "red", lane: "lid", value: "acc", half: "128u", combine: plus })}
  if (lid == 0u) {
    partials[P.off_partials + 2u * wid.x] = red[0].x;
    partials[P.off_partials + 2u * wid.x + 1u] = red[0].y;
  }
}
`;

/** Sums the partials: `stats = (Σw, Σ w·rowv)`, `loss[0] = Σ w·rowv / Σw`. */
export const WEIGHTED_FINAL: string = /* wgsl */ `
struct Params { off_stats: u32, off_loss: u32, off_partials: u32, G: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read> partials: array<f32>;
var<workgroup> red: array<vec2f, 128>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc = vec2f(0.0);
  for (var g = lid; g < P.G; g += 256u) {
    acc += vec2f(partials[P.off_partials + 2u * g], partials[P.off_partials + 2u * g + 1u]);
  }
  ${foldedTree({ red: "red", lane: "lid", value: "acc", half: "128u", combine: plus })}
  if (lid == 0u) {
    stats[P.off_stats] = red[0].x;
    stats[P.off_stats + 1u] = red[0].y;
    loss[P.off_loss] = red[0].y / red[0].x;
  }
}
`;
