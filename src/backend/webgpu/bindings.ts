/**
 * How a dispatch binds its tensors, by the WebGPU specification's rules:
 *
 * - Access comes from the WGSL: a binding declared `var<storage, read>` gets a
 *   `read-only-storage` layout entry, `var<storage, read_write>` a `storage` one
 *   ({@link storageAccess}), so the layout always matches the kernel.
 * - Each tensor is bound as the byte range of its view (its start aligned down to
 *   `minStorageBufferOffsetAlignment`); the uniform carries its element offset inside
 *   that range ({@link planBindings}).
 * - One dispatch is one usage scope: a buffer may be bound several times read-only, or
 *   several times writable at ranges that do not overlap, never read-only and writable
 *   together ("compatible usage list" and "writable storage buffer binding aliasing").
 *   {@link bindingConflicts} checks exactly that on every new bind group, so Deno's
 *   leniency (wgpu accepts some of these) can never hide a dispatch that Chromium refuses.
 * - An op whose input may be its output (`add` with `out = a`, in-place GELU, ...) lists
 *   the pair in {@link KernelSpec.inPlace}; when both tensors live in one buffer the
 *   dispatch runs the kernel's in-place variant ({@link inPlaceVariant}), where the input's
 *   binding is gone and the kernel reads it through the output's one `read_write` binding.
 *
 * @module
 */
import type { KernelSpec } from "./context.ts";

/** Access of a storage binding, as declared in WGSL. */
export type StorageAccess = "read" | "read_write";

const DECL = /@binding\((\d+)\)\s*var<storage\s*,\s*(read|read_write)\s*>\s*(\w+)\s*:/g;

/** The storage bindings `code` declares: binding number → access and variable name. */
export function storageAccess(code: string): Map<number, { access: StorageAccess; name: string }> {
  const out = new Map<number, { access: StorageAccess; name: string }>();
  for (const m of code.matchAll(DECL)) {
    const binding = Number(m[1]);
    if (out.has(binding)) throw new RangeError(`WGSL declares @binding(${binding}) twice`);
    out.set(binding, { access: m[2] as StorageAccess, name: m[3] });
  }
  if (/var<storage\s*>/.test(code)) {
    throw new RangeError(
      "WGSL declares a storage binding without an access mode; say read or read_write",
    );
  }
  return out;
}

/** A variant of a kernel with some input bindings read through an output binding. */
export interface KernelVariant {
  /** The kernel to build (the original when nothing is shared). */
  spec: KernelSpec;
  /** For each tensor position, the tensor position whose binding it is read through. */
  via: readonly number[];
}

const variants = new WeakMap<KernelSpec, Map<string, KernelSpec>>();

/**
 * The kernel to dispatch for `tensors`: `kernel` itself, or, where a pair `[out, inp]` of
 * `kernel.inPlace` puts both tensors in one buffer, its in-place variant.
 */
export function inPlaceVariant(
  kernel: KernelSpec,
  tensors: readonly { storage: unknown }[],
): KernelVariant {
  const via = tensors.map((_, i) => i);
  const merged = (kernel.inPlace ?? []).filter(([o, i]) =>
    tensors[o].storage === tensors[i].storage
  );
  if (merged.length === 0) return { spec: kernel, via };
  for (const [o, i] of merged) via[i] = o;
  const key = merged.map(([o, i]) => `${i}>${o}`).join(",");
  let cache = variants.get(kernel);
  if (!cache) variants.set(kernel, cache = new Map());
  let spec = cache.get(key);
  if (!spec) {
    spec = mergeBindings(kernel, merged);
    cache.set(key, spec);
  }
  return { spec, via };
}

/** The variant of `kernel` with all its {@link KernelSpec.inPlace} pairs merged. */
export function inPlaceSpec(kernel: KernelSpec): KernelSpec {
  return inPlaceVariant(
    kernel,
    Array.from({ length: kernel.storageBindings }, () => ({ storage: 0 })),
  )
    .spec;
}

/** `kernel` with each `[out, inp]` input binding removed and read through `out`'s binding. */
function mergeBindings(
  kernel: KernelSpec,
  pairs: readonly (readonly [number, number])[],
): KernelSpec {
  const decls = storageAccess(kernel.code);
  // comments out first, so that a word in a comment is never taken for a use
  let code = kernel.code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
  const names: string[] = [];
  for (const [o, i] of pairs) {
    const out = decls.get(o + 1);
    const inp = decls.get(i + 1);
    if (!out || !inp || out.access !== "read_write") {
      throw new RangeError(
        `Cannot make an in-place variant of "${kernel.label}": binding ${o + 1} must be a ` +
          `read_write output and binding ${i + 1} an input`,
      );
    }
    code = code
      .replace(new RegExp(`^.*@binding\\(${i + 1}\\)\\s*var<storage[^\\n]*\\n`, "m"), "")
      .replace(new RegExp(`(?<![\\w.])${inp.name}(?=\\s*\\[)`, "g"), out.name)
      .replace(new RegExp(`&${inp.name}\\b`, "g"), `&${out.name}`);
    if (new RegExp(`(?<![\\w.])${inp.name}(?!\\w)`).test(code)) {
      throw new RangeError(
        `Cannot make an in-place variant of "${kernel.label}": "${inp.name}" is used other ` +
          "than by indexing",
      );
    }
    names.push(`${inp.name}=${out.name}`);
  }
  return { ...kernel, label: `${kernel.label}[${names.join(",")}]`, code, inPlace: [] };
}

/** One storage binding of a dispatch: a byte range of one buffer, read-only or writable. */
export interface BoundRange<B> {
  /** The binding number (1..n). */
  binding: number;
  /** The buffer (any identity: a GPU buffer, or a test's stand-in). */
  buffer: B;
  /** A name for messages (the buffer's label). */
  label: string;
  /** First byte. */
  start: number;
  /** Bytes (> 0). */
  size: number;
  /** True for `read_write`. */
  writable: boolean;
}

/** A tensor view as {@link planBindings} needs it. */
export interface ViewOf<B> {
  /** Its buffer. */
  buffer: B;
  /** The buffer's label. */
  label: string;
  /** The buffer's size in bytes. */
  bufferBytes: number;
  /** First element. */
  offset: number;
  /** Elements. */
  size: number;
}

/**
 * The bindings of a dispatch: for each declared binding, the smallest range with a start
 * aligned to `align` that holds every tensor read through it; and each tensor's element
 * offset inside its binding (what the uniform carries).
 */
export function planBindings<B>(
  views: readonly ViewOf<B>[],
  via: readonly number[],
  access: ReadonlyMap<number, { access: StorageAccess }>,
  align: number,
): { ranges: BoundRange<B>[]; offsets: number[] } {
  const ranges: BoundRange<B>[] = [];
  const byTensor = new Map<number, BoundRange<B>>();
  views.forEach((v, i) => {
    const binding = via[i] + 1;
    const decl = access.get(binding);
    if (!decl) throw new RangeError(`The kernel declares no storage @binding(${binding})`);
    let end = v.offset * 4 + Math.max(4, v.size * 4);
    let start = Math.floor((v.offset * 4) / align) * align;
    const have = byTensor.get(via[i]);
    if (have) {
      end = Math.max(end, have.start + have.size);
      start = Math.min(start, have.start);
    }
    end = Math.min(end, v.bufferBytes);
    start = Math.min(start, Math.floor((end - 4) / align) * align);
    const range = have ?? {
      binding,
      buffer: v.buffer,
      label: v.label,
      start,
      size: 0,
      writable: decl.access === "read_write",
    };
    range.start = start;
    range.size = end - start;
    if (!have) {
      byTensor.set(via[i], range);
      ranges.push(range);
    }
  });
  const offsets = views.map((v, i) => v.offset - byTensor.get(via[i])!.start / 4);
  return { ranges, offsets };
}

/**
 * Why the bindings of one dispatch break the WebGPU specification's usage-scope rules, or
 * null when they do not: a buffer bound writable must not also be bound read-only (a
 * storage and a storage-read usage are not a compatible usage list), and two writable
 * bindings of one buffer must not overlap (writable storage buffer binding aliasing).
 */
export function bindingConflicts<B>(ranges: readonly BoundRange<B>[]): string | null {
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      const a = ranges[i];
      const b = ranges[j];
      if (a.buffer !== b.buffer || (!a.writable && !b.writable)) continue;
      const what = (r: BoundRange<B>) =>
        `@binding(${r.binding}) (${r.writable ? "read_write" : "read"}, bytes ${r.start}..${
          r.start + r.size
        })`;
      if (a.writable !== b.writable) {
        return `${what(a)} and ${what(b)} bind buffer "${a.label}" read-only and writable in one ` +
          "dispatch (not a compatible usage list)";
      }
      if (a.start < b.start + b.size && b.start < a.start + a.size) {
        return `${what(a)} and ${
          what(b)
        } bind overlapping writable ranges of buffer "${a.label}" ` +
          "(writable storage buffer binding aliasing)";
      }
    }
  }
  return null;
}
