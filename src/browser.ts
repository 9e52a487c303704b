/**
 * The browser-safe core: everything here runs in a web page as well as in Deno, with no
 * file, FFI, process or worker access (`tests/browser_core_test.ts` walks this module's
 * imports and fails on any `Deno.*` use or Deno-only module, and type-checks it against the
 * DOM lib and `@webgpu/types`). Imported as `@dbot/dbot/browser`; the page in `web/` is built
 * from it.
 *
 * - backend contract, the WebGPU backend (WGSL kernels of `kernels/`) and
 *   {@link selectBrowserBackend} over `navigator.gpu`
 * - the dBOT model, masking, AdamW, LR schedule, the training step, stage boundaries
 * - the `shapes` dataset and its transforms
 * - safetensors and checkpoints as bytes, frozen-encoder features, k-NN
 * - {@link PretrainSession}: pre-training one step at a time, the same numbers as
 *   `deno task pretrain` for the same seed
 *
 * @module
 */
export type * from "./backend/backend.ts";
export { freeTensors, shapeSize, view } from "./backend/backend.ts";
export {
  type Access,
  type AdapterFacts,
  GpuContext,
  GpuError,
  GpuUnavailableError,
  type KernelSpec,
} from "./backend/webgpu/context.ts";
export { WebGpuBackend } from "./backend/webgpu/backend.ts";
export type { StorageAccess } from "./backend/webgpu/bindings.ts";
export { type BrowserBackend, selectBrowserBackend } from "./backend/select_browser.ts";
export { openShapes, SHAPE_CLASSES } from "./data/shapes.ts";
export { type AugmentOptions, channelStats, deriveSeed, ImagePipeline } from "./data/pipeline.ts";
export { type DbotConfig, DbotModel } from "./models/dbot.ts";
export { PRESETS, type VitConfig, vitFromPreset } from "./models/vit_config.ts";
export { randomMasking } from "./models/masking.ts";
export { AdamW } from "./train/adamw.ts";
export { effectiveLr, lrAt, stageAt } from "./train/schedule.ts";
export { TrainStep } from "./train/step.ts";
export {
  PRETRAIN_DEFAULTS,
  type PretrainConfig,
  resolvePretrain,
} from "./train/pretrain_config.ts";
export {
  PretrainSession,
  type SampleView,
  type SessionData,
  type SessionStep,
} from "./train/session.ts";
export { type LabelledImage, MemoryDataset, splitHeldOut } from "./data/memory.ts";
export { decodeSafetensors, encodeSafetensors, toFloat32 } from "./io/safetensors.ts";
export {
  type Checkpoint,
  CheckpointError,
  decodeCheckpoint,
  encodeCheckpoint,
  type HostWeights,
  inferVitConfig,
  vitWeights,
} from "./io/checkpoint.ts";
export { Embedder } from "./eval/embed.ts";
export { knnClassify, type KnnResult } from "./eval/knn.ts";
