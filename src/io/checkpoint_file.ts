/**
 * Checkpoint files (Deno only): read and write atomically. The format, the ViT shape
 * inference and the weight checks are `checkpoint.ts` (re-exported here), which runs
 * in a browser too.
 *
 * @module
 */
import { readSafetensors, writeSafetensors } from "./safetensors_file.ts";
import type { ParamSet } from "../nn/params.ts";
import {
  type Checkpoint,
  type CheckpointConfig,
  checkpointFrom,
  checkpointTensors,
} from "./checkpoint.ts";

export {
  type Checkpoint,
  type CheckpointConfig,
  CheckpointError,
  checkpointFrom,
  checkpointTensors,
  decodeCheckpoint,
  encodeCheckpoint,
  type HostWeights,
  inferVitConfig,
  presetHeads,
  vitWeights,
} from "./checkpoint.ts";

/** Reads a checkpoint (F32/F16/BF16 → f32). */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  return checkpointFrom(await readSafetensors(path), path);
}

/**
 * Writes `params` (every row, frozen ones too) and `config` atomically as F32 safetensors.
 * `params` is a parameter set, or host `weights` with their `shapes` by name (as
 * {@link readCheckpoint} returns them).
 */
export async function writeCheckpoint(
  path: string,
  params: ParamSet | {
    weights: ReadonlyMap<string, Float32Array>;
    shapes: ReadonlyMap<string, readonly number[]>;
  },
  config: CheckpointConfig,
): Promise<void> {
  const host = "weights" in params ? params : {
    weights: await params.toHost(),
    shapes: new Map(params.specs.map((s) => [s.name, params.get(s.name).shape])),
  };
  const { tensors, metadata } = checkpointTensors(host, config, path);
  await writeSafetensors(path, tensors, metadata);
}
