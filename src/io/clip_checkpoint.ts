/**
 * CLIP checkpoint files (Deno only): the teacher config from a safetensors header alone, and
 * the timm-named weights. The format rules and the renaming are `models/teachers/clip.ts`.
 *
 * @example
 * ```ts ignore
 * const cfg = await clipTeacherConfig("ViT-L-14.safetensors", { student });
 * const weights = await loadClipWeights("ViT-L-14.safetensors", cfg);
 * ```
 *
 * @module
 */
import {
  ClipCheckpointError,
  clipConfigFromHeader,
  type ClipConfigOptions,
  clipPrefix,
  type ClipTeacherConfig,
  clipWeights,
  type StoredTensorInfo,
} from "../models/teachers/clip.ts";
import { toFloat32 } from "./safetensors.ts";
import { readSafetensors, readSafetensorsHeader } from "./safetensors_file.ts";

/**
 * The CLIP teacher config of the checkpoint at `path`, from its header (names, dtypes,
 * shapes; the data is not read). Pass `student` so that the teacher runs at its token grid.
 *
 * @throws {ClipCheckpointError} listing every problem of the file.
 */
export async function clipTeacherConfig(
  path: string,
  opts: Omit<ClipConfigOptions, "file"> = {},
): Promise<ClipTeacherConfig> {
  const { entries, metadata } = await readHeader(path);
  return clipConfigFromHeader(entries, metadata, { ...opts, file: path });
}

/**
 * The weights of the CLIP teacher `cfg` from `path` (F16/BF16/F32 → f32), under the timm
 * names of `cfg.vit`, position embeddings interpolated to its grid.
 *
 * @throws {ClipCheckpointError} when the file is no longer the tower `cfg` describes.
 */
export async function loadClipWeights(
  path: string,
  cfg: ClipTeacherConfig,
): Promise<Map<string, Float32Array>> {
  const { tensors, metadata } = await readSafetensors(path);
  const entries = new Map<string, StoredTensorInfo>();
  for (const [n, t] of tensors) entries.set(n, t);
  const again = clipConfigFromHeader(entries, metadata, {
    heads: cfg.vit.numHeads,
    act: cfg.vit.act,
    file: path,
  });
  const v = again.vit;
  const c = cfg.vit;
  if (
    v.embedDim !== c.embedDim || v.depth !== c.depth || v.patchSize !== c.patchSize ||
    v.projDim !== c.projDim || v.mlpRatio !== c.mlpRatio || again.imgSize !== cfg.imgSize
  ) {
    throw new ClipCheckpointError(
      `Cannot load the CLIP teacher from "${path}": the file holds width ${v.embedDim}, depth ${v.depth}, ` +
        `patch ${v.patchSize}, proj ${v.projDim}, ${again.imgSize} px but the config says width ${c.embedDim}, ` +
        `depth ${c.depth}, patch ${c.patchSize}, proj ${c.projDim}, ${cfg.imgSize} px: rebuild the config from this file`,
    );
  }
  // only the image tower's tensors become f32 (a full CLIP file also holds the text tower)
  const prefix = clipPrefix(tensors.keys()) ?? "";
  const values = new Map<string, Float32Array>();
  for (const [n, t] of tensors) if (n.startsWith(prefix)) values.set(n, toFloat32(t));
  return clipWeights(values, cfg);
}

/** A safetensors header: names with dtypes and shapes, and `__metadata__`. */
async function readHeader(
  path: string,
): Promise<{ entries: Map<string, StoredTensorInfo>; metadata: Record<string, string> }> {
  const bad = (why: string): never => {
    throw new ClipCheckpointError(
      `Cannot read "${path}" as a CLIP checkpoint: ${why}; it must be a safetensors file`,
    );
  };
  let header: Record<string, unknown>;
  try {
    header = await readSafetensorsHeader(path);
  } catch (e) {
    return bad((e as Error).message);
  }
  const entries = new Map<string, StoredTensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const t = v as { dtype?: unknown; shape?: unknown };
    if (typeof t?.dtype !== "string" || !Array.isArray(t.shape)) {
      return bad(`header entry "${name}" has no dtype/shape`);
    }
    entries.set(name, { dtype: t.dtype, shape: t.shape as number[] });
  }
  return { entries, metadata };
}
