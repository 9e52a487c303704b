/**
 * Row softmax with a pre-scale (attention scores), forward and backward.
 *
 * Dispatch contract as in `src/backend/webgpu/backend.ts`. Workgroups are 256 invocations
 * split into `256 / TPR` row segments of `TPR` invocations (override, a power of two 32…256,
 * chosen by the host so each invocation handles ~4 of the `C` columns): attention rows are
 * short (C = N = 197 or 50) and very many (B·NH·N), so one row per 256-wide workgroup would
 * leave most lanes idle. Segment reductions go through workgroup memory (no subgroups in
 * Deno's WebGPU).
 *
 * | kernel             | bindings         | params (after offsets) | dispatch                              |
 * | ------------------ | ---------------- | ---------------------- | ------------------------------------- |
 * | `SOFTMAX`          | out, inp         | rows, C, scale         | `linearGroups(ceil(rows/RPW)·256, 256)` |
 * | `SOFTMAX_BACKWARD` | dinp, dout, out  | rows, C, scale         | same                                  |
 *
 * @module
 */
import { foldedTree } from "./common.ts";

/** The segment's slots of `red` (the names `seg_max` and `seg_sum` use). */
const SEGMENT = { red: "red", lane: "lane", half: "(TPR / 2u)", base: "base" };

/**
 * Segmented (per-row) max and sum over `TPR` consecutive invocations: segment `tid / TPR`
 * reduces in its `TPR / 2` slots of `red` (see `foldedTree`).
 */
const SEGMENT_REDUCE = /* wgsl */ `
override TPR: u32 = 64u;
var<workgroup> red: array<f32, 128>;

// Every invocation of the workgroup calls these from uniform control flow (rows past the
// end take part with empty loops). The result is read from the segment's first slot.
fn seg_max(v: f32, tid: u32) -> f32 {
  let lane = tid % TPR;
  let base = (tid / TPR) * (TPR / 2u);
  ${foldedTree({ ...SEGMENT, value: "v", combine: (a, b) => `max(${a}, ${b})` })}
  let r = red[base];
  workgroupBarrier();
  return r;
}

fn seg_sum(v: f32, tid: u32) -> f32 {
  let lane = tid % TPR;
  let base = (tid / TPR) * (TPR / 2u);
  ${foldedTree({ ...SEGMENT, value: "v", combine: (a, b) => `${a} + ${b}` })}
  let r = red[base];
  workgroupBarrier();
  return r;
}
`;

/**
 * `out[r, :] = softmax(scale·inp[r, :])`. The row max of `scale·x` is subtracted before
 * `exp` (every exponent ≤ 0: no overflow, and the largest term is exactly 1 so the sum is
 * ≥ 1). `exp` is recomputed in the last pass rather than stored and re-read: cheaper than
 * the extra write + read on a memory-bound kernel. `out` may alias `inp`.
 */
export const SOFTMAX: string = /* wgsl */ `
struct Params { off_out: u32, off_inp: u32, rows: u32, C: u32, scale: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
${SEGMENT_REDUCE}
@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let row = (wid.x + wid.y * nwg.x) * (256u / TPR) + tid / TPR;
  let lane = tid % TPR;
  let n = select(0u, P.C, row < P.rows); // rows past the end: empty loops, still at barriers
  let x0 = P.off_inp + row * P.C;
  let o0 = P.off_out + row * P.C;
  // -FLT_MAX as bits: Tint (Chrome) rejects the decimal literal -3.40282347e38, naga accepts it
  var mx = bitcast<f32>(0xff7fffffu);
  for (var c = lane; c < n; c += TPR) { mx = max(mx, P.scale * inp[x0 + c]); }
  mx = seg_max(mx, tid);
  var sum = 0.0;
  for (var c = lane; c < n; c += TPR) { sum += exp(P.scale * inp[x0 + c] - mx); }
  let inv = 1.0 / seg_sum(sum, tid);
  for (var c = lane; c < n; c += TPR) { out[o0 + c] = exp(P.scale * inp[x0 + c] - mx) * inv; }
}
`;

/**
 * `dinp[r, :] = scale·out ⊙ (dout − Σ_c dout⊙out)`: the gradient w.r.t. the pre-scale input.
 * `dinp` may alias `dout` (each invocation reads its own columns before writing them).
 */
export const SOFTMAX_BACKWARD: string = /* wgsl */ `
struct Params { off_dinp: u32, off_dout: u32, off_out: u32, rows: u32, C: u32, scale: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> out: array<f32>;
${SEGMENT_REDUCE}
@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let row = (wid.x + wid.y * nwg.x) * (256u / TPR) + tid / TPR;
  let lane = tid % TPR;
  let n = select(0u, P.C, row < P.rows);
  let g0 = P.off_dout + row * P.C;
  let y0 = P.off_out + row * P.C;
  let i0 = P.off_dinp + row * P.C;
  var dot = 0.0;
  for (var c = lane; c < n; c += TPR) { dot += dout[g0 + c] * out[y0 + c]; }
  dot = seg_sum(dot, tid);
  for (var c = lane; c < n; c += TPR) {
    let y = out[y0 + c];
    dinp[i0 + c] = P.scale * y * (dout[g0 + c] - dot);
  }
}
`;
