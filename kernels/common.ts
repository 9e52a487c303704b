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

/** What {@link foldedTree} reduces. */
export interface FoldedTree {
  /** The workgroup array: `half` slots from `base` on are this reduction's. */
  red: string;
  /** The invocation's index among the `2·half` reducing invocations (u32). */
  lane: string;
  /** The invocation's own value. */
  value: string;
  /** Half the number of reducing invocations: a power of two (u32 expression). */
  half: string;
  /** First slot of this reduction in `red` (u32 expression). */
  base?: string;
  /** WGSL combining two values, e.g. `(a, b) => \`${a} + ${b}\``. */
  combine: (a: string, b: string) => string;
}

/**
 * WGSL statements: a workgroup tree reduction of `value` over `2·half` invocations into
 * `red[base]`, with the tree's first round folded into the writes, so that `red` needs
 * `half` slots instead of `2·half`. The upper half stores its values, the lower half combines
 * them with its own (`red[i] = v_i ⊕ v_{i+half}`, the plain tree's first round, operands in
 * the same order), then the tree goes on over `half` slots: the same result, bit for bit, as
 * the plain tree, with the same number of barriers and half the workgroup memory.
 *
 * Why smaller matters: wgpu's GL backend zero-fills workgroup memory one element at a time,
 * and Mesa's llvmpipe turns each element into a loop over the SIMD lanes inside an LLVM
 * coroutine (a kernel with barriers), whose compile time grows with the square of its size:
 * halving a 256-slot array makes such a pipeline ~2× cheaper to compile there.
 *
 * Every invocation of the workgroup runs it from uniform control flow; it ends with a
 * barrier, after which `red[base]` holds the result until `red` is written again.
 */
export function foldedTree(t: FoldedTree): string {
  const { red, lane, value, half, combine } = t;
  const at = (i: string) => `${red}[${t.base ?? "0u"} + ${i}]`;
  return /* wgsl */ `
  if (${lane} >= ${half}) { ${at(`${lane} - ${half}`)} = ${value}; }
  workgroupBarrier();
  if (${lane} < ${half}) { ${at(lane)} = ${combine(value, at(lane))}; }
  workgroupBarrier();
  for (var s = ${half} / 2u; s > 0u; s >>= 1u) {
    if (${lane} < s) { ${at(lane)} = ${combine(at(lane), at(`${lane} + s`))}; }
    workgroupBarrier();
  }`;
}
