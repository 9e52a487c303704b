/**
 * `@dbot/dbot/train`: pre-training (multi-stage dBOT), fine-tuning and the linear probe, with
 * their configs; and the seams they share — one optimiser step ({@link TrainStep}), AdamW,
 * schedules, and the {@link Collective} process group they run in (`parallel/`). The
 * reproduction study is `@dbot/dbot/reproduce`.
 *
 * @example
 * ```ts
 * import { resolvePretrain, stageAt, stageBoundaries } from "@dbot/dbot/train";
 *
 * const cfg = resolvePretrain({ stages: 3, epochsPerStage: 2 });
 * const b = stageBoundaries(cfg.stages, cfg.epochsPerStage); // [0, 2, 4, 6]
 * if (stageAt(b, 4).stage !== 2) throw new Error("epoch 4 is in stage 2");
 * ```
 *
 * @module
 */
export {
  MAX_CONSECUTIVE_SKIPS,
  PRETRAIN_CONFIG,
  PRETRAIN_DEFAULTS,
  PRETRAIN_RECIPES,
  type PretrainConfig,
  resolvePretrain,
} from "./pretrain_config.ts";
export { pretrain, type PretrainHooks, resumeCommand } from "./pretrain.ts";
export type { MetricLine, PretrainProgress, PretrainSummary } from "./metrics.ts";
export { NonFiniteLossError, type StepOptions, type StepResult, TrainStep } from "./step.ts";
export { type Collective, SINGLE_PROCESS } from "../parallel/collective.ts";
export { MpiCollective, MpiUnavailableError } from "../parallel/mpi.ts";
export { type DistributedKind, startCollective } from "../parallel/launch.ts";
export { AdamW, type AdamWConfig, type AdamWOptions, PRETRAIN_ADAMW } from "./adamw.ts";
export {
  effectiveLr,
  lrAt,
  type LrSchedule,
  stageAt,
  stageBoundaries,
  type StageInfo,
} from "./schedule.ts";
export {
  finetune,
  FINETUNE_CONFIG,
  FINETUNE_DEFAULTS,
  FINETUNE_RECIPES,
  type FinetuneConfig,
  type FinetuneHooks,
  type FinetuneSummary,
  readClassifier,
  resolveFinetune,
} from "./finetune.ts";
export {
  LINPROBE_CONFIG,
  LINPROBE_DEFAULTS,
  linprobeCheckpoint,
  type LinprobeConfig,
  type LinprobeResult,
  resolveLinprobe,
  trainLinearProbe,
} from "./linprobe.ts";
export type {
  Check,
  Config,
  ConfigSchema,
  RecipeTable,
  Setting,
  SettingSource,
  SettingValue,
} from "../util/config_schema.ts";
export type { Flags, FlagSpec } from "../util/cli.ts";
