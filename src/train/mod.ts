/**
 * `@dbot/dbot/train`: pre-training (multi-stage dBOT), fine-tuning, the linear probe and the
 * small-scale reproduction, with their configs; and the seams they share — one optimiser
 * step ({@link TrainStep}), AdamW, schedules, and the {@link Collective} process group.
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
  type PretrainConfig,
  resolvePretrain,
} from "./config.ts";
export { pretrain, type PretrainHooks, resumeCommand } from "./pretrain.ts";
export type { MetricLine, PretrainProgress, PretrainSummary } from "./metrics.ts";
export { NonFiniteLossError, type StepOptions, type StepResult, TrainStep } from "./step.ts";
export { type Collective, SINGLE_PROCESS } from "./collective.ts";
export { MpiCollective, MpiUnavailableError } from "./mpi.ts";
export { type DistributedKind, startCollective } from "./distributed.ts";
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
  type FinetuneConfig,
  type FinetuneSummary,
  readClassifier,
  resolveFinetune,
} from "./finetune.ts";
export {
  LINPROBE_CONFIG,
  LINPROBE_DEFAULTS,
  linprobeCheckpoint,
  type LinprobeConfig,
  type LinprobeOptions,
  type LinprobeResult,
  type LinprobeRun,
  resolveLinprobe,
  trainLinearProbe,
  type TrainLinearProbeOptions,
} from "./linprobe.ts";
export {
  reproduce,
  REPRODUCE_BUDGETS,
  REPRODUCE_CONFIG,
  REPRODUCE_DEFAULTS,
  type ReproduceBudget,
  type ReproduceBudgetName,
  type ReproduceConfig,
  type ReproduceOptions,
  type ReproduceRow,
  resolveReproduce,
} from "./reproduce.ts";
export type { Check, Config, ConfigSchema, Setting, SettingValue } from "../util/config.ts";
export type { Flags, FlagSpec } from "../util/cli.ts";
