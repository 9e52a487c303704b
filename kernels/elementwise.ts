/**
 * Elementwise kernels: residual/broadcast add, exact GELU and its backward, drop-path row
 * scaling, and the two-pass column sum behind `biasGrad` (and the LayerNorm parameter
 * gradients).
 *
 * Every kernel follows the dispatch contract of `src/backend/webgpu/backend.ts`: binding 0
 * is the uniform params struct whose first fields are the element offsets of the bound
 * tensors in binding order; bindings 1..n are storage buffers, `read` for inputs and
 * `read_write` for outputs (an op that may run in place gets a one-binding variant).
 *
 * | kernel         | bindings                  | params (after offsets)     | dispatch                          |
 * | -------------- | ------------------------- | -------------------------- | --------------------------------- |
 * | `ADD`          | out, a, b                 | n, m (= b.size)            | `linearGroups(n, 256)`            |
 * | `GELU`         | out, inp                  | n                          | `linearGroups(n, 256)`            |
 * | `GELU_BACKWARD`| dinp, dout, inp           | n                          | `linearGroups(n, 256)`            |
 * | `SCALE_COLS`   | out, inp, scale           | n (= rows·C), C            | `linearGroups(n, 256)`            |
 * | `COLSUM_PROD_PARTIAL`| part, a, b          | rows, C, rowsPer           | `[ceil(C/64), G, 1]`, wg (64, 4)  |
 *
 * Override `QUICK` (GELU, GELU_BACKWARD): the QuickGELU variant `x·σ(1.702x)` (OpenAI CLIP).
 * | `SCALE_ROWS`   | out, inp, scale           | n (= rows·C), C            | `linearGroups(n, 256)`            |
 * | `COLSUM_PARTIAL`| part, src                | rows, C, rowsPer           | `[ceil(C/64), G, 1]`, wg (64, 4)  |
 * | `COLSUM_FINAL` | dst, part                 | C, G, stride               | `[ceil(C/64), 1, 1]`, wg (64, 4)  |
 *
 * @module
 */
import { LINEAR_ID } from "./common.ts";
import { ERF_WGSL } from "./erf.ts";

/** `out[i] = a[i] + b[i mod m]`; `out` may alias `a` (each invocation reads then writes index i). */
export const ADD: string = /* wgsl */ `
struct Params { off_out: u32, off_a: u32, off_b: u32, n: u32, m: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= P.n) { return; }
  // m == n is the residual add; m < n broadcasts b (position embedding over a batch).
  let j = select(i % P.m, i, P.m == P.n);
  out[P.off_out + i] = a[P.off_a + i] + b[P.off_b + j];
}
`;

/**
 * QuickGELU helpers (OpenAI CLIP's `x·σ(1.702x)`) and the `QUICK` override that turns the
 * GELU kernels into their QuickGELU variant (one pipeline per value).
 */
const QUICK_GELU_WGSL = /* wgsl */ `
override QUICK: bool = false;
const QUICK_ALPHA: f32 = 1.702;
// σ(z) from exp of a non-positive argument only: exp never overflows, both tails saturate.
fn sigmoid_f32(z: f32) -> f32 {
  let e = exp(-abs(z));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
}
`;

/** `out[i] = gelu(inp[i])`, exact erf GELU (`erf.ts`); with `QUICK`, `inp·σ(1.702·inp)`. */
export const GELU: string = /* wgsl */ `
struct Params { off_out: u32, off_inp: u32, n: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
${ERF_WGSL}
${QUICK_GELU_WGSL}
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= P.n) { return; }
  let x = inp[P.off_inp + i];
  // QUICK is a pipeline constant: each pipeline runs one branch
  if (QUICK) {
    out[P.off_out + i] = x * sigmoid_f32(QUICK_ALPHA * x);
  } else {
    out[P.off_out + i] = gelu_f32(x);
  }
}
`;

/**
 * `dinp[i] = dout[i]·gelu'(inp[i])` with `gelu'(x) = Φ(x) + x·φ(x)`; with `QUICK`,
 * `quickgelu'(x) = σ(ax) + a·x·σ(ax)(1 − σ(ax))`, `a = 1.702`.
 */
export const GELU_BACKWARD: string = /* wgsl */ `
struct Params { off_dinp: u32, off_dout: u32, off_inp: u32, n: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;
${ERF_WGSL}
${QUICK_GELU_WGSL}
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= P.n) { return; }
  let x = inp[P.off_inp + i];
  var g: f32;
  if (QUICK) {
    let s = sigmoid_f32(QUICK_ALPHA * x);
    g = s + QUICK_ALPHA * x * s * (1.0 - s);
  } else {
    g = gelu_grad_f32(x);
  }
  dinp[P.off_dinp + i] = dout[P.off_dout + i] * g;
}
`;

/** `out[r, c] = inp[r, c]·scale[r]` (drop path; also its own backward). */
export const SCALE_ROWS: string = /* wgsl */ `
struct Params { off_out: u32, off_inp: u32, off_scale: u32, n: u32, C: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= P.n) { return; }
  out[P.off_out + i] = inp[P.off_inp + i] * scale[P.off_scale + i / P.C];
}
`;

/**
 * Column sum, pass 1: `part[g, c] = Σ_{r in group g} src[r, c]` for row groups of `rowsPer`
 * rows. Workgroup (64, 4): 64 consecutive columns (coalesced loads) × 4 row lanes that
 * stride the group's rows; the 4 lane sums are added in workgroup memory.
 * Grid: x = column blocks of 64, y = row group g. Every group owns at least one row.
 */
export const COLSUM_PARTIAL: string = colsumPartial(["src"], "src[P.off_src + r * P.C + c]");

/**
 * Pass 1 of a column sum of `term` (a WGSL expression in row `r`, column `c`) over the
 * storage arrays `inputs` (each with an offset `off_<name>` in Params, bindings 2…).
 */
function colsumPartial(inputs: string[], term: string): string {
  const offs = inputs.map((x) => `off_${x}: u32, `).join("");
  const binds = inputs.map((x, i) =>
    `@group(0) @binding(${i + 2}) var<storage, read> ${x}: array<f32>;`
  ).join("\n");
  return /* wgsl */ `
struct Params { off_part: u32, ${offs}rows: u32, C: u32, rowsPer: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> part: array<f32>;
${binds}
// Row lanes 1..3 only: lane 0 keeps its sum in a register (less workgroup memory, which
// wgpu's GL backend zero-fills at a compile-time cost: see foldedTree in common.ts).
var<workgroup> lanes: array<f32, 192>;

@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * 64u + lid.x;
  let g = wid.y;
  let r0 = g * P.rowsPer;
  let r1 = min(r0 + P.rowsPer, P.rows);
  var acc = 0.0;
  if (c < P.C) {
    for (var r = r0 + lid.y; r < r1; r += 4u) {
      acc += ${term};
    }
  }
  // Row lanes 1..3 hand their sums to lane 0, which keeps its own in a register.
  if (lid.y > 0u) { lanes[(lid.y - 1u) * 64u + lid.x] = acc; }
  workgroupBarrier();
  if (lid.y == 0u && c < P.C) {
    let s = (acc + lanes[lid.x]) + (lanes[64u + lid.x] + lanes[128u + lid.x]);
    part[P.off_part + g * P.C + c] = s;
  }
}
`;
}

/**
 * Column sum, pass 2: `dst[c] += Σ_g part[g·stride + c]` over `G` partial rows (parameter
 * gradients accumulate). `stride` lets one partials buffer hold several interleaved
 * outputs (LayerNorm writes `[G, 2C]`: dweight partials then dbias partials).
 * Workgroup (64, 4): 64 columns × 4 lanes striding g, lanes added in workgroup memory.
 */
export const COLSUM_FINAL: string = /* wgsl */ `
struct Params { off_dst: u32, off_part: u32, C: u32, G: u32, stride: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> part: array<f32>;
// Row lanes 1..3 only: lane 0 keeps its sum in a register (less workgroup memory, which
// wgpu's GL backend zero-fills at a compile-time cost: see foldedTree in common.ts).
var<workgroup> lanes: array<f32, 192>;

@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * 64u + lid.x;
  var acc = 0.0;
  if (c < P.C) {
    for (var g = lid.y; g < P.G; g += 4u) {
      acc += part[P.off_part + g * P.stride + c];
    }
  }
  // Row lanes 1..3 hand their sums to lane 0, which keeps its own in a register.
  if (lid.y > 0u) { lanes[(lid.y - 1u) * 64u + lid.x] = acc; }
  workgroupBarrier();
  if (lid.y == 0u && c < P.C) {
    let s = (acc + lanes[lid.x]) + (lanes[64u + lid.x] + lanes[128u + lid.x]);
    dst[P.off_dst + c] += s;
  }
}
`;

/** `out[r, c] = inp[r, c]·scale[c]` (layer scale; `dinp = dout·scale` in its backward). */
export const SCALE_COLS: string = /* wgsl */ `
struct Params { off_out: u32, off_inp: u32, off_scale: u32, n: u32, C: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= P.n) { return; }
  out[P.off_out + i] = inp[P.off_inp + i] * scale[P.off_scale + i % P.C];
}
`;

/**
 * Column sum of a product, pass 1 (layer-scale gradient): `part[g, c] = Σ_{r in group g}
 * a[r, c]·b[r, c]`. Same layout as {@link COLSUM_PARTIAL}; pass 2 is `COLSUM_FINAL`.
 */
export const COLSUM_PROD_PARTIAL: string = colsumPartial(
  ["a", "b"],
  "a[P.off_a + r * P.C + c] * b[P.off_b + r * P.C + c]",
);
