/**
 * Chromium's WebGPU (Dawn) refuses a dispatch that binds one buffer to two writable
 * storage bindings ("Writable storage buffer binding aliasing"); Deno's (wgpu) allows it.
 * The WebGPU backend binds every tensor as a whole `read_write` buffer with its offset in
 * the uniform, so a dispatch aliases whenever two of its tensors share a buffer: a layer's
 * weight and bias (one flat parameter buffer), an in-place op (`add`, `scaleRows` with
 * `out = inp`), and matmul's unused bias / pre-activation slots (bound to `out`).
 *
 * Until the backend binds its inputs as read-only storage and unused slots to a dummy,
 * {@link avoidAliasedBindings} makes a backend Dawn-safe: each tensor that shares a buffer
 * with an earlier one of the same dispatch is first copied into its own scratch buffer,
 * and the copy is bound instead. Every aliased binding is an input (the backend lists
 * outputs first), so this changes no number: only copies are added.
 *
 * @module
 */
import type { Tensor } from "../src/backend/backend.ts";
import type { WebGpuBackend } from "../src/backend/webgpu/backend.ts";

/** Wraps `be.dispatch` so that no dispatch binds one buffer twice; returns `be`. */
export function avoidAliasedBindings(be: WebGpuBackend): WebGpuBackend {
  const dispatch = be.dispatch.bind(be);
  be.dispatch = (kernel, tensors, opts) => {
    const seen = new Set<unknown>();
    let bound: Tensor[] | null = null;
    tensors.forEach((t, i) => {
      if (!seen.has(t.storage)) {
        seen.add(t.storage);
        return;
      }
      // slot i shares a buffer with an earlier slot: bind a copy of its elements
      const copy = be.scratch(`alias:${i}`, t.size, t.dtype);
      be.copy(copy, t);
      bound ??= [...tensors];
      bound[i] = { ...copy, shape: t.shape };
    });
    dispatch(kernel, bound ?? tensors, opts);
  };
  return be;
}

/** Dispatches of `be` from now on that bind one buffer twice, as `label: slots` (a test seam). */
export function watchAliasing(be: WebGpuBackend): string[] {
  const found: string[] = [];
  const dispatch = be.dispatch.bind(be);
  be.dispatch = (kernel, tensors, opts) => {
    const ids = tensors.map((t) => t.storage);
    const dup = ids.flatMap((s, i) => (ids.indexOf(s) !== i ? [`${ids.indexOf(s)}=${i}`] : []));
    if (dup.length) found.push(`${kernel.label}: ${dup.join(",")}`);
    dispatch(kernel, tensors, opts);
  };
  return found;
}
