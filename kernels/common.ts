/**
 * WGSL helpers shared by several kernel files, interpolated into their shaders.
 *
 * @module
 */

/**
 * `fn linear_id(gid, nwg) -> u32`: the linear invocation id of a 1-D/2-D grid of 256-wide
 * workgroups, as laid out by `linearGroups` on the host (x first, then rows of `nwg.x`).
 */
export const LINEAR_ID: string = /* wgsl */ `
fn linear_id(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}
`;
