/**
 * Residual or broadcast add.
 *
 * @module
 */
import type { AddBufs } from "../../backend.ts";
import { checkAdd } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/**
 * `out[i] = a[i] + b[i mod b.length]`: residual add (same length) or broadcast add
 * (position embedding `[N, C]` over a batch `[B, N, C]`). `out` may alias `a`.
 *
 * @example
 * ```ts
 * import { add } from "./add.ts";
 * const out = new Float32Array(4);
 * add({ out, a: new Float32Array([1, 2, 3, 4]), b: new Float32Array([10, 20]) });
 * ```
 */
export function add(bufs: AddBufs<FloatArray>): void {
  // out, a: (n); b: (m) with m dividing n
  checkAdd(bufs);
  const { out, a, b } = bufs;
  const m = b.length;
  for (let o = 0; o < a.length; o += m) {
    for (let i = 0; i < m; i++) out[o + i] = a[o + i] + b[i];
  }
}
