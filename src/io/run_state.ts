/**
 * The resume state of a run: one safetensors file holding named groups of flat f32 tensors
 * (`<group>/<name>`, e.g. `student/blocks.0.attn.qkv.weight`, `adamw/m`) and a JSON `state`
 * entry in the metadata (counters, schedule position, teacher description). Written
 * atomically; its position can be read from the header alone.
 *
 * @module
 */
import { toFloat32 } from "./safetensors.ts";
import { readSafetensors, readSafetensorsMetadata, writeSafetensors } from "./safetensors_file.ts";

/** Tensor groups by name, each a map of flat f32 arrays. */
export type StateGroups = Record<string, Map<string, Float32Array>>;

/** Writes `groups` and `meta` to `path` atomically. */
export async function writeRunState(
  path: string,
  groups: StateGroups,
  meta: Record<string, unknown>,
): Promise<void> {
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const [g, map] of Object.entries(groups)) {
    for (const [n, d] of map) tensors[`${g}/${n}`] = { dtype: "F32", shape: [d.length], data: d };
  }
  await writeSafetensors(path, tensors, { state: JSON.stringify(meta) });
}

/** Reads a state written by {@link writeRunState}; null when `path` does not exist. */
export async function readRunState(
  path: string,
): Promise<{ groups: StateGroups; meta: Record<string, unknown> } | null> {
  try {
    await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const { tensors, metadata } = await readSafetensors(path);
  const groups: StateGroups = {};
  for (const [full, t] of tensors) {
    const cut = full.indexOf("/");
    const g = full.slice(0, cut);
    (groups[g] ??= new Map()).set(full.slice(cut + 1), toFloat32(t));
  }
  return { groups, meta: JSON.parse(metadata.state) };
}

/** The `state` metadata of `path` from its header alone; null when there is none. */
export async function readRunStateMeta(path: string): Promise<Record<string, unknown> | null> {
  const md = await readSafetensorsMetadata(path);
  try {
    return md?.state ? JSON.parse(md.state) : null;
  } catch {
    return null;
  }
}
