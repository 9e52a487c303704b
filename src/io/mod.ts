/**
 * `@dbot/dbot/io`: safetensors (read/write, F32/F16/BF16/…), checkpoints with timm/PyTorch
 * names and the resolved config in their metadata, atomic writes and the run-directory lock.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors, toFloat32 } from "@dbot/dbot/io";
 *
 * const bytes = encodeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
 * const back = toFloat32(decodeSafetensors(bytes).tensors.get("w")!);
 * if (back.join() !== "1,2") throw new Error(`round trip gave ${back}`);
 * ```
 *
 * @module
 */
export {
  decodeSafetensors,
  encodeSafetensors,
  type NamedTensor,
  type SafetensorsContents,
  type SafetensorsDType,
  SafetensorsError,
  toFloat32,
} from "./safetensors.ts";
export {
  readSafetensors,
  readSafetensorsHeader,
  readSafetensorsMetadata,
  writeSafetensors,
} from "./safetensors_file.ts";
export {
  type Checkpoint,
  type CheckpointConfig,
  CheckpointError,
  inferVitConfig,
  readCheckpoint,
  vitWeights,
  writeCheckpoint,
} from "./checkpoint_file.ts";
export { clipTeacherConfig, loadClipWeights } from "./clip_checkpoint.ts";
export { presetHeads } from "./checkpoint_file.ts";
export { writeFileAtomic, writeJsonAtomic, writeTextAtomic } from "../util/atomic.ts";
export { acquireRunLock, type RunLock, RunLockedError } from "./lock.ts";
