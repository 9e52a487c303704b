/**
 * Pre-training configuration: a typed object with commented defaults; unknown
 * overrides are rejected; {@link PRETRAIN_CONFIG} gives the resolver, the task's flags and
 * its `--help`.
 *
 * @module
 */
import { PRESETS } from "../models/config.ts";
import { LOSSES, type LossName } from "../models/losses.ts";
import {
  check,
  type Config,
  defineConfig,
  fraction,
  nonNegative,
  nonNegativeInt,
  oneOf,
  positiveInt,
} from "../util/config.ts";
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
  /** Distillation loss: `smoothl1` (reference dBOT), `cosine` (CLIP branch) or `mse` (MAE). */
  loss: LossName;
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
  loss: "smoothl1",
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

/** Help and checks of every pre-training setting: the resolver, `--flags` and `--help`. */
export const PRETRAIN_CONFIG: Config<PretrainConfig> = defineConfig<PretrainConfig>({
  what: "pre-training",
  defaults: PRETRAIN_DEFAULTS,
  settings: {
    name: {
      help: "run name: outputs in runs/<name>/",
      check: check(
        (v) => /^[A-Za-z0-9._-]+$/.test(v),
        "give a run name of letters, digits, '.', '_' and '-'",
        "type",
      ),
    },
    runsDir: { help: "parent directory of runs (tasks may write only under runs/)" },
    data: { help: "shapes | fashion-mnist[:DIR] | DIR of class folders" },
    model: {
      help: "vit-micro | vit-tiny | vit-small | vit-base | vit-large | vit-huge",
      check: check(
        (v) => Object.hasOwn(PRESETS, v),
        `use one of ${Object.keys(PRESETS).join(", ")}`,
        "type",
      ),
    },
    imgSize: { help: "image size (0: the dataset's)", check: nonNegativeInt },
    patchSize: { help: "patch size", check: positiveInt },
    batch: { help: "images per optimiser step (per micro-batch with --accum)", check: positiveInt },
    accum: { help: "micro-batches per optimiser step", check: positiveInt },
    stages: { help: "number of stages (without --boundaries)", check: positiveInt },
    epochsPerStage: { help: "epochs per stage (without --boundaries)", check: positiveInt },
    boundaries: {
      help: "stage boundaries in epochs, e.g. 0,800,1600 (overrides --stages/--epochs-per-stage)",
    },
    warmupEpochs: { help: "linear warmup epochs at the start of each stage", check: nonNegative },
    baseLr: { help: "base LR; effective = base × batch·accum / 256", check: nonNegative },
    minLr: { help: "LR at the end of each cosine", check: nonNegative },
    weightDecay: { help: "AdamW weight decay", check: nonNegative },
    beta1: { help: "AdamW beta1", check: fraction },
    beta2: { help: "AdamW beta2", check: fraction },
    clipGrad: { help: "gradient-norm clip (0: none)", check: nonNegative },
    dropPath: { help: "stochastic depth rate", check: fraction },
    maskRatio: { help: "fraction of patches removed", check: fraction },
    teacher: { help: "random | random0 | pixels | PATH.safetensors" },
    loss: {
      help: "smoothl1 (reference) | cosine | mse (MAE: masked patches only)",
      check: oneOf(...Object.keys(LOSSES) as LossName[]),
    },
    teacherHeads: {
      help: "heads of a checkpoint teacher whose file does not say (0: D/64)",
      check: nonNegativeInt,
    },
    seed: { help: "seed of everything", check: nonNegativeInt },
    trainLimit: { help: "train on the first N images (0: all)", check: nonNegativeInt },
    knnTrain: { help: "k-NN: training images embedded", check: nonNegativeInt },
    knnTest: { help: "k-NN: test images embedded", check: nonNegativeInt },
    knnK: { help: "k-NN neighbours", check: positiveInt },
    knnPool: { help: "k-NN feature: cls | mean", check: oneOf("cls", "mean") },
    mean: { help: "normalisation mean a,b,c (default: measured)" },
    std: { help: "normalisation std a,b,c (default: measured)" },
    logEvery: { help: "steps between metric lines", check: positiveInt },
    backend: { help: "auto | cpu | webgpu", check: oneOf("auto", "cpu", "webgpu") },
    onNan: {
      help: "stop | skip: a step with a non-finite loss or gradient stops the run, or is skipped",
      check: oneOf("stop", "skip"),
    },
    strict: {
      help: "a corrupt image in a folder dataset is an error (default: skipped with a warning)",
    },
  },
  checkAll(c) {
    if (c.mean.length !== c.std.length) {
      throw new RangeError(
        `Cannot normalise with ${c.mean.length} means and ${c.std.length} stds: give as many of each`,
      );
    }
    planBoundaries(c);
  },
});

/** A config with overrides applied and checked; throws a TypeError/RangeError naming the bad key. */
export function resolvePretrain(overrides: Partial<Record<string, unknown>>): PretrainConfig {
  return PRETRAIN_CONFIG.resolve(overrides);
}

/** The stage boundaries of `c` (explicit, or stages × epochsPerStage). */
export function planBoundaries(c: PretrainConfig): number[] {
  return c.boundaries.length
    ? checkBoundaries(c.boundaries)
    : stageBoundaries(c.stages, c.epochsPerStage);
}
