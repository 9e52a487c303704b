/**
 * Pre-training configuration: a typed object with commented defaults; unknown
 * overrides are rejected; derived values are computed in {@link resolvePretrain}.
 *
 * @module
 */
import { PRESETS } from "../models/config.ts";
import { checkBoundaries, stageBoundaries } from "./schedule.ts";

/** Everything a pre-training run needs (saved as `runs/<name>/config.json`). */
export interface PretrainConfig {
  /** Run name: outputs go to `<runsDir>/<name>/`. */
  name: string;
  /** Parent directory of runs. */
  runsDir: string;
  /** Dataset: `shapes`, `fashion-mnist[:DIR]` or a directory of class folders. */
  data: string;
  /** Model preset (vit-micro … vit-huge). */
  model: string;
  /** Image size (0: the dataset's native size). */
  imgSize: number;
  /** Patch size. */
  patchSize: number;
  /** Images per optimiser step (per micro-batch when accumulating). */
  batch: number;
  /** Micro-batches per optimiser step (gradient accumulation). */
  accum: number;
  /** Number of stages (when `boundaries` is empty). */
  stages: number;
  /** Epochs per stage (when `boundaries` is empty). */
  epochsPerStage: number;
  /** Explicit stage boundaries in epochs, e.g. [0, 800, 1600]; empty: from stages × epochsPerStage. */
  boundaries: number[];
  /** Linear warmup epochs at the start of each stage. */
  warmupEpochs: number;
  /** Base LR; the effective LR is baseLr × batch·accum / 256. */
  baseLr: number;
  /** LR at the end of each cosine. */
  minLr: number;
  /** AdamW weight decay (not on 1-D params and biases). */
  weightDecay: number;
  /** AdamW betas. */
  beta1: number;
  /** AdamW betas. */
  beta2: number;
  /** Gradient-norm clip (0: none). */
  clipGrad: number;
  /** Stochastic depth rate (linear over blocks). */
  dropPath: number;
  /** Fraction of patches removed. */
  maskRatio: number;
  /** Stage-0 teacher: `random` (copy of the student's init), `random0` (zero depth), `pixels`, or a checkpoint path. */
  teacher: string;
  /** Heads of a checkpoint teacher whose file does not say (0: D/64). */
  teacherHeads: number;
  /** Seed of everything (init, data order, augmentation, masking, drop path). */
  seed: number;
  /** Train on the first N training images only (0: all). */
  trainLimit: number;
  /** k-NN: training images embedded (first N of the train split). */
  knnTrain: number;
  /** k-NN: test images embedded (first N of the test split). */
  knnTest: number;
  /** k-NN neighbours. */
  knnK: number;
  /** Feature for k-NN: cls token or mean of patch tokens. */
  knnPool: "cls" | "mean";
  /** Normalisation mean per channel (empty: measured on the training images). */
  mean: number[];
  /** Normalisation std per channel (empty: measured on the training images). */
  std: number[];
  /** Steps between metric lines. */
  logEvery: number;
  /** Backend: auto | cpu | webgpu. */
  backend: string;
  /**
   * A step whose loss or gradient norm is not finite: `stop` the run (naming the step, the LR
   * and the last good state) or `skip` its optimiser update (the run stops after
   * {@link MAX_CONSECUTIVE_SKIPS} skips in a row). `skip` reads the loss and gradient norm
   * back every step: one extra GPU sync per step on WebGPU.
   */
  onNan: "stop" | "skip";
  /** Folder datasets: a corrupt image file is an error instead of a skipped file. */
  strict: boolean;
}

/** `onNan: "skip"` stops the run after this many skipped steps in a row. */
export const MAX_CONSECUTIVE_SKIPS = 10;

/**
 * The defaults: `deno task pretrain` with no flags (shapes, vit-micro, two stages × 4 epochs of
 * 5000 images, k-NN on the cls token; ≈3 min on 2 CPU cores).
 */
export const PRETRAIN_DEFAULTS: Readonly<PretrainConfig> = Object.freeze({
  name: "default",
  runsDir: "runs",
  data: "shapes",
  model: "vit-micro",
  imgSize: 0,
  patchSize: 4,
  batch: 64,
  accum: 1,
  stages: 2,
  epochsPerStage: 4,
  boundaries: [],
  warmupEpochs: 1,
  baseLr: 1.5e-3,
  minLr: 0,
  weightDecay: 0.05,
  beta1: 0.9,
  beta2: 0.95,
  clipGrad: 3.0,
  dropPath: 0.1,
  maskRatio: 0.75,
  teacher: "random",
  teacherHeads: 0,
  seed: 0,
  trainLimit: 0,
  knnTrain: 2000,
  knnTest: 1000,
  knnK: 20,
  knnPool: "cls",
  mean: [],
  std: [],
  logEvery: 10,
  backend: "auto",
  onNan: "stop",
  strict: false,
});

/** A config with overrides applied and checked; throws a TypeError/RangeError naming the bad key. */
export function resolvePretrain(overrides: Partial<Record<string, unknown>>): PretrainConfig {
  const cfg: Record<string, unknown> = { ...PRETRAIN_DEFAULTS };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) continue;
    if (!(k in PRETRAIN_DEFAULTS)) {
      throw new TypeError(`Cannot configure pre-training: unknown setting "${k}"`);
    }
    const want = PRETRAIN_DEFAULTS[k as keyof PretrainConfig];
    const ok = Array.isArray(want) ? Array.isArray(v) : typeof v === typeof want;
    if (!ok) {
      throw new TypeError(
        `Cannot configure pre-training: "${k}" must be a ${
          Array.isArray(want) ? "list" : typeof want
        }, got ${JSON.stringify(v)}`,
      );
    }
    cfg[k] = v;
  }
  const c = cfg as unknown as PretrainConfig;
  if (!PRESETS[c.model]) {
    throw new TypeError(
      `Cannot use model "${c.model}": use one of ${Object.keys(PRESETS).join(", ")}`,
    );
  }
  for (const k of ["batch", "accum", "patchSize", "logEvery", "knnK"] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) {
      throw new RangeError(`Cannot use ${k} ${c[k]}: give a positive integer`);
    }
  }
  for (
    const k of ["imgSize", "trainLimit", "knnTrain", "knnTest", "seed", "teacherHeads"] as const
  ) {
    if (!Number.isInteger(c[k]) || c[k] < 0) {
      throw new RangeError(
        `Cannot use ${k} ${c[k]}: give an integer >= 0`,
      );
    }
  }
  for (const k of ["baseLr", "minLr", "weightDecay", "clipGrad", "warmupEpochs"] as const) {
    if (!(c[k] >= 0) || !Number.isFinite(c[k])) {
      throw new RangeError(`Cannot use ${k} ${c[k]}: give a finite number >= 0`);
    }
  }
  if (!(c.dropPath >= 0 && c.dropPath < 1)) {
    throw new RangeError(`Cannot use dropPath ${c.dropPath}: give a value in [0, 1)`);
  }
  if (!(c.maskRatio >= 0 && c.maskRatio < 1)) {
    throw new RangeError(`Cannot use maskRatio ${c.maskRatio}: give a value in [0, 1)`);
  }
  if (c.knnPool !== "cls" && c.knnPool !== "mean") {
    throw new TypeError(`Cannot use knnPool "${c.knnPool}": give cls or mean`);
  }
  if (c.onNan !== "stop" && c.onNan !== "skip") {
    throw new TypeError(`Cannot use onNan "${c.onNan}": give stop or skip`);
  }
  if (c.mean.length !== c.std.length) {
    throw new RangeError(
      `Cannot normalise with ${c.mean.length} means and ${c.std.length} stds: give as many of each`,
    );
  }
  if (!/^[A-Za-z0-9._-]+$/.test(c.name)) {
    throw new TypeError(`Cannot use run name "${c.name}": use letters, digits, '.', '_' and '-'`);
  }
  planBoundaries(c);
  return Object.freeze(c);
}

/** The stage boundaries of `c` (explicit, or stages × epochsPerStage). */
export function planBoundaries(c: PretrainConfig): number[] {
  return c.boundaries.length
    ? checkBoundaries(c.boundaries)
    : stageBoundaries(c.stages, c.epochsPerStage);
}
