/**
 * fill: `t[i] = value` for `n` elements of a view.
 *
 * Bindings: 0 params {off_t, n, value}; 1 t (rw).
 * Dispatch: linear 1-D/2-D grid of 256-wide workgroups (`linearGroups`).
 *
 * @module
 */

const fill = (ty: string): string => /* wgsl */ `
struct Params { off_t: u32, n: u32, value: ${ty} }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> t: array<${ty}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= P.n) { return; }
  t[P.off_t + i] = P.value;
}
`;

/** Fills an f32 view with a value. */
export const FILL: string = fill("f32");
/** Fills an i32 view with a value. */
export const FILL_I32: string = fill("i32");
