/**
 * Attention head layout permutations (pure index maps, no arithmetic):
 * `qkv [B, N, 3, NH, HS]` ↔ `q, k, v [B, NH, N, HS]` and `[B, NH, N, HS]` ↔ `[B, N, NH·HS]`.
 *
 * Dispatch contract as in `src/backend/webgpu/backend.ts`. Each kernel walks the elements
 * of its OUTPUT in storage order (one invocation each, `linearGroups(n, 256)`), so writes
 * are fully coalesced; reads are contiguous in runs of HS (64 in a ViT).
 *
 * | kernel                 | bindings           | params (after offsets)       |
 * | ---------------------- | ------------------ | ---------------------------- |
 * | `SPLIT_HEADS`          | q, k, v, qkv       | per (= B·NH·N·HS), N, NH, HS |
 * | `SPLIT_HEADS_BACKWARD` | dqkv, dq, dk, dv   | per, N, NH, HS               |
 * | `MERGE_HEADS`          | out, inp           | n, N, NH, HS                 |
 * | `MERGE_HEADS_BACKWARD` | dinp, dout         | n, N, NH, HS                 |
 *
 * @module
 */
import { LINEAR_ID } from "./common.ts";

/** `q|k|v[b, h, n, d] = qkv[b, n, p, h, d]`; invocation i walks q, then k, then v. */
export const SPLIT_HEADS: string = /* wgsl */ `
struct Params { off_q: u32, off_k: u32, off_v: u32, off_qkv: u32, per: u32, N: u32, NH: u32, HS: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> k: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> qkv: array<f32>;
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= 3u * P.per) { return; }
  let p = i / P.per; // 0 q, 1 k, 2 v
  let j = i - p * P.per; // index into [B, NH, N, HS]
  let d = j % P.HS;
  let t = j / P.HS;
  let n = t % P.N;
  let bh = t / P.N;
  let h = bh % P.NH;
  let b = bh / P.NH;
  let C = P.NH * P.HS;
  let x = qkv[P.off_qkv + ((b * P.N + n) * 3u + p) * C + h * P.HS + d];
  if (p == 0u) {
    q[P.off_q + j] = x;
  } else if (p == 1u) {
    k[P.off_k + j] = x;
  } else {
    v[P.off_v + j] = x;
  }
}
`;

/** `dqkv[b, n, p, h, d] = dq|dk|dv[b, h, n, d]` (assign); invocation i walks dqkv. */
export const SPLIT_HEADS_BACKWARD: string = /* wgsl */ `
struct Params { off_dqkv: u32, off_dq: u32, off_dk: u32, off_dv: u32, per: u32, N: u32, NH: u32, HS: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(2) var<storage, read> dq: array<f32>;
@group(0) @binding(3) var<storage, read> dk: array<f32>;
@group(0) @binding(4) var<storage, read> dv: array<f32>;
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= 3u * P.per) { return; }
  let d = i % P.HS;
  let t = i / P.HS;
  let h = t % P.NH;
  let t2 = t / P.NH;
  let p = t2 % 3u;
  let bn = t2 / 3u;
  let n = bn % P.N;
  let b = bn / P.N;
  let j = ((b * P.NH + h) * P.N + n) * P.HS + d;
  var x: f32;
  if (p == 0u) {
    x = dq[P.off_dq + j];
  } else if (p == 1u) {
    x = dk[P.off_dk + j];
  } else {
    x = dv[P.off_dv + j];
  }
  dqkv[P.off_dqkv + i] = x;
}
`;

/** `out[b, n, h·HS + d] = inp[b, h, n, d]`; invocation i walks out. */
export const MERGE_HEADS: string = /* wgsl */ `
struct Params { off_out: u32, off_inp: u32, n: u32, N: u32, NH: u32, HS: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= P.n) { return; }
  let d = i % P.HS;
  let t = i / P.HS;
  let h = t % P.NH;
  let bn = t / P.NH;
  let n = bn % P.N;
  let b = bn / P.N;
  out[P.off_out + i] = inp[P.off_inp + ((b * P.NH + h) * P.N + n) * P.HS + d];
}
`;

/** `dinp[b, h, n, d] = dout[b, n, h·HS + d]`; invocation i walks dinp. */
export const MERGE_HEADS_BACKWARD: string = /* wgsl */ `
struct Params { off_dinp: u32, off_dout: u32, n: u32, N: u32, NH: u32, HS: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
${LINEAR_ID}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_id(gid, nwg);
  if (i >= P.n) { return; }
  let d = i % P.HS;
  let t = i / P.HS;
  let n = t % P.N;
  let bh = t / P.N;
  let h = bh % P.NH;
  let b = bh / P.NH;
  let C = P.NH * P.HS;
  dinp[P.off_dinp + i] = dout[P.off_dout + (b * P.N + n) * C + h * P.HS + d];
}
`;
