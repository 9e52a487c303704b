/**
 * Relative position bias (BEiT): add a shared `[R, NH]` table, gathered by a fixed pair
 * index, to the attention logits; and its backward, a scatter-add written as a gather
 * (WGSL here has no float atomics): one invocation per table entry sums the pairs that
 * use its row, listed by the host-built inverse index (`starts`, `positions`).
 *
 * Dispatch contract of `src/backend/webgpu/backend.ts` (binding 0: params with the element
 * offsets of the bound tensors first; bindings 1..n: storage buffers, inputs `read`).
 *
 * | kernel                 | bindings                        | params (after offsets) | dispatch                  |
 * | ---------------------- | ------------------------------- | ---------------------- | ------------------------- |
 * | `RELPOS_BIAS`          | out, inp, table, index (i32)    | n, NN, NH, scale       | `linearGroups(n, 256)`    |
 * | `RELPOS_BIAS_BACKWARD` | dtable, dout, starts, positions | RNH, NN, NH, B, scale  | `linearGroups(R·NH, 256)` |
 *
 * @module
 */
import { LINEAR_ID } from "./common.ts";

/** `out[b, h, p] = inp[b, h, p] + scale·table[index[p]·NH + h]`, `p = i·N + j`; `out` may be `inp`. */
export const RELPOS_BIAS: string = /* wgsl */ `
struct Params {
  off_out: u32, off_inp: u32, off_table: u32, off_index: u32,
  n: u32, NN: u32, NH: u32, scale: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
@group(0) @binding(4) var<storage, read> index: array<i32>;
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= P.n) { return; }
  let p = i % P.NN;
  let h = (i / P.NN) % P.NH;
  let r = u32(index[P.off_index + p]);
  out[P.off_out + i] = inp[P.off_inp + i] + P.scale * table[P.off_table + r * P.NH + h];
}
`;

/**
 * `dtable[r, h] += scale·Σ_b Σ_{p in positions[starts[r]..starts[r+1])} dout[b, h, p]`:
 * one invocation per table entry `(r, h)`, no atomics; the sum runs in f32 in pair order.
 */
export const RELPOS_BIAS_BACKWARD: string = /* wgsl */ `
struct Params {
  off_dtable: u32, off_dout: u32, off_starts: u32, off_positions: u32,
  RNH: u32, NN: u32, NH: u32, B: u32, scale: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dtable: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> starts: array<i32>;
@group(0) @binding(4) var<storage, read> positions: array<i32>;
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = linear_id(gid, nwg);
  if (k >= P.RNH) { return; }
  let r = k / P.NH;
  let h = k % P.NH;
  let s0 = u32(starts[P.off_starts + r]);
  let s1 = u32(starts[P.off_starts + r + 1u]);
  var acc = 0.0;
  for (var b = 0u; b < P.B; b++) {
    let base = P.off_dout + (b * P.NH + h) * P.NN;
    for (var s = s0; s < s1; s++) {
      acc += dout[base + u32(positions[P.off_positions + s])];
    }
  }
  dtable[P.off_dtable + k] += P.scale * acc;
}
`;
