/**
 * dbot: pre-train Vision Transformers with dBOT — masked knowledge distillation from
 * bootstrapped teachers (Liu et al., ICLR 2024) — on Deno's native WebGPU with hand-written
 * WGSL kernels, or on the CPU (plain TypeScript reference ops, WebAssembly SIMD or native
 * kernels, OpenBLAS). A randomly initialised teacher gives the first targets; each stage's
 * student becomes the next stage's teacher.
 *
 * This module is the common path: pick a backend, build a model, pre-train, embed, k-NN,
 * checkpoints. The rest lives in subpath exports: `@dbot/dbot/backend` (the op contract and
 * both backends), `/model` (ViT, dBOT, teachers, losses), `/train` (pre-training,
 * fine-tuning, linear probe, the training step and process group), `/eval` (features, k-NN,
 * analyses) and `/io` (safetensors, checkpoints, plots).
 *
 * @example
 * ```ts
 * import { pretrain, resolvePretrain, selectBackend } from "@dbot/dbot";
 *
 * const { backend, reason } = await selectBackend("cpu");
 * console.log(reason);
 * const runsDir = await Deno.makeTempDir();
 * // two stages of one epoch each on 32 built-in `shapes` images at 16 px
 * const cfg = resolvePretrain({
 *   runsDir,
 *   imgSize: 16,
 *   batch: 8,
 *   trainLimit: 32,
 *   stages: 2,
 *   epochsPerStage: 1,
 *   knnTrain: 40,
 *   knnTest: 20,
 * });
 * const summary = await pretrain(backend, cfg, { log: () => {} });
 * if (!summary || summary.steps !== 8) throw new Error(`expected 8 steps: ${summary?.steps}`);
 * backend.dispose();
 * await Deno.remove(runsDir, { recursive: true });
 * ```
 *
 * @module
 */
export type { Backend, Tensor } from "./src/backend/backend.ts";
export {
  type BackendKind,
  selectBackend,
  type SelectBackendOptions,
  type SelectedBackend,
} from "./src/backend/select.ts";
export { type Preset, PRESETS, type VitConfig, vitFromPreset } from "./src/models/vit_config.ts";
export { type DbotConfig, DbotModel } from "./src/models/dbot.ts";
export type { TeacherConfig } from "./src/models/teacher.ts";
export type { LossName } from "./src/models/losses.ts";
export {
  PRETRAIN_DEFAULTS,
  type PretrainConfig,
  resolvePretrain,
} from "./src/train/pretrain_config.ts";
export { pretrain, type PretrainHooks } from "./src/train/pretrain.ts";
export type { PretrainProgress, PretrainSummary } from "./src/train/metrics.ts";
export {
  DataError,
  type Dataset,
  type ImageRead,
  openDataset,
  type OpenOptions,
  type Pixels,
  type Split,
} from "./src/data/dataset.ts";
export {
  embedDataset,
  type EmbedOptions,
  type EmbedResult,
  type TokenPooling,
} from "./src/eval/embed_file.ts";
export {
  knnClassify,
  type KnnClassifyOptions,
  type KnnOptions,
  type KnnResult,
  type LabeledFeatures,
} from "./src/eval/knn.ts";
export {
  type Checkpoint,
  type CheckpointConfig,
  CheckpointError,
  readCheckpoint,
  writeCheckpoint,
} from "./src/io/checkpoint_file.ts";
