/**
 * Row kernels: gather rows by index (masking, unshuffle, mask tokens), its
 * backward, and patchify.
 *
 * GATHER_ROWS — `out[r, :] = inp[index[r], :]`, or `fill[:]` (zeros when `has_fill = 0`)
 *   where `index[r] < 0`.
 *   Bindings: 0 params {off_out, off_inp, off_index, off_fill, rows, C, inp_rows, has_fill};
 *   1 out [rows, C]; 2 inp [inp_rows, C]; 3 index i32 [rows]; 4 fill [C] (a dummy when absent).
 *   Dispatch: linear grid over rows·C, 256 wide (`linearGroups`).
 *
 * SCATTER_ROWS — `dinp[index[r], :] = dout[r, :]` for `index[r] ≥ 0` (dinp was zeroed before).
 *   Bindings: 0 params {off_dinp, off_dout, off_index, rows, C, inp_rows};
 *   1 dinp [inp_rows, C]; 2 dout [rows, C]; 3 index i32 [rows].
 *   Dispatch: linear grid over rows·C, 256 wide.
 *
 * FILL_GRAD_PARTIALS — pass 1 of `dfill[:] += Σ_{index[r] < 0} dout[r, :]`: group `g` sums
 *   rows `[g·rows_per, (g+1)·rows_per)` into `partials[g, :]`.
 *   Bindings: 0 params {off_partials, off_dout, off_index, rows, C, rows_per};
 *   1 partials [G, C]; 2 dout [rows, C]; 3 index i32 [rows].
 *   Dispatch: (ceil(C/64), G) workgroups of 64 (one column per invocation).
 *
 * FILL_GRAD_FINAL — pass 2: `dfill[c] += Σ_g partials[g, c]`.
 *   Bindings: 0 params {off_dfill, off_partials, C, G}; 1 dfill [C]; 2 partials [G, C].
 *   Dispatch: linear grid over C, 256 wide.
 *
 * PATCHIFY — `inp [B, C, H, W]` → `out [B, L, C·P·P]`, patches row-major (`l = gh·GW + gw`),
 *   each patch channel-major (`c, i, j`).
 *   Bindings: 0 params {off_out, off_inp, n, C, H, W, P, GW, L}; 1 out; 2 inp.
 *   Dispatch: linear grid over n = B·C·H·W output elements, 256 wide.
 *
 * @module
 */

/** `out[r, :] = inp[index[r], :]` or the fill row where `index[r] < 0`. */
export const GATHER_ROWS: string = /* wgsl */ `
struct Params {
  off_out: u32, off_inp: u32, off_index: u32, off_fill: u32,
  rows: u32, C: u32, inp_rows: u32, has_fill: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> index: array<i32>;
@group(0) @binding(4) var<storage, read> fill: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.rows * P.C) { return; }
  let r = i / P.C;
  let c = i - r * P.C;
  let src = index[P.off_index + r];
  var v = 0.0;
  if (src >= 0) {
    // An index past the end of inp cannot be reported from a shader: write NaN so the
    // bug shows up in the loss instead of reading another tensor's memory.
    if (u32(src) < P.inp_rows) {
      v = inp[P.off_inp + u32(src) * P.C + c];
    } else {
      var nan_bits = 0x7fc00000u; // a var, not a constant: a NaN constant fails to compile
      v = bitcast<f32>(nan_bits);
    }
  } else if (P.has_fill != 0u) {
    v = fill[P.off_fill + c];
  }
  out[P.off_out + i] = v;
}
`;

/** `dinp[index[r], :] = dout[r, :]` for `index[r] ≥ 0` (run after zeroing dinp). */
export const SCATTER_ROWS: string = /* wgsl */ `
struct Params { off_dinp: u32, off_dout: u32, off_index: u32, rows: u32, C: u32, inp_rows: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> index: array<i32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.rows * P.C) { return; }
  let r = i / P.C;
  let c = i - r * P.C;
  let dst = index[P.off_index + r];
  // Indices are unique, so no two invocations write the same element.
  if (dst >= 0 && u32(dst) < P.inp_rows) {
    dinp[P.off_dinp + u32(dst) * P.C + c] = dout[P.off_dout + i];
  }
}
`;

/** Pass 1 of the fill-row gradient: per-group column sums of the rows with `index < 0`. */
export const FILL_GRAD_PARTIALS: string = /* wgsl */ `
struct Params { off_partials: u32, off_dout: u32, off_index: u32, rows: u32, C: u32, rows_per: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> index: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let c = gid.x;
  if (c >= P.C) { return; }
  let g = wid.y;
  let r0 = g * P.rows_per;
  let r1 = min(r0 + P.rows_per, P.rows);
  // Adjacent invocations read adjacent columns of one row: coalesced.
  var acc = 0.0;
  for (var r = r0; r < r1; r++) {
    if (index[P.off_index + r] < 0) { acc += dout[P.off_dout + r * P.C + c]; }
  }
  partials[P.off_partials + g * P.C + c] = acc;
}
`;

/** Pass 2 of the fill-row gradient: `dfill[c] += Σ_g partials[g, c]` (dfill accumulates). */
export const FILL_GRAD_FINAL: string = /* wgsl */ `
struct Params { off_dfill: u32, off_partials: u32, C: u32, G: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dfill: array<f32>;
@group(0) @binding(2) var<storage, read> partials: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x + gid.y * nwg.x * 256u;
  if (c >= P.C) { return; }
  var acc = 0.0;
  for (var g = 0u; g < P.G; g++) { acc += partials[P.off_partials + g * P.C + c]; }
  dfill[P.off_dfill + c] += acc;
}
`;

/** Images `[B, C, H, W]` to patch rows `[B, L, C·P·P]`. */
export const PATCHIFY: string = /* wgsl */ `
struct Params { off_out: u32, off_inp: u32, n: u32, C: u32, H: u32, W: u32, P: u32, GW: u32, L: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  // One invocation per OUTPUT element, so the writes are coalesced; the reads are runs of P.
  let o = gid.x + gid.y * nwg.x * 256u;
  if (o >= P.n) { return; }
  let pp = P.P * P.P;
  let D = P.C * pp;
  let bl = o / D;
  let k = o - bl * D;          // (c, i, j) inside the patch
  let b = bl / P.L;
  let l = bl - b * P.L;
  let gh = l / P.GW;
  let gw = l - gh * P.GW;
  let c = k / pp;
  let ij = k - c * pp;
  let i = ij / P.P;
  let j = ij - i * P.P;
  let src = ((b * P.C + c) * P.H + gh * P.P + i) * P.W + gw * P.P + j;
  out[P.off_out + o] = inp[P.off_inp + src];
}
`;
