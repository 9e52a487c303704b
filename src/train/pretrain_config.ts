/**
 * Pre-training configuration: a typed object with commented defaults; unknown
 * overrides are rejected; {@link PRETRAIN_CONFIG} gives the resolver, the task's flags and
 * its `--help`.
 *
 * @module
 */
import { IMAGENET_MEAN, IMAGENET_STD } from "../data/pipeline.ts";
import { PRESETS } from "../models/vit_config.ts";
import { LOSSES, type LossName } from "../models/losses.ts";
import {
  check,
  type Config,
  defineConfig,
  fraction,
  nonNegative,
  nonNegativeInt,
  oneOf,
  positive,
  positiveInt,
  type RecipeTable,
} from "../util/config_schema.ts";
import { checkBoundaries, effectiveLr, stageBoundaries } from "./schedule.ts";

/** Everything a pre-training run needs (saved as `runs/<name>/config.json`). */
export interface PretrainConfig {
  /**
   * A named recipe ({@link PRETRAIN_RECIPES}): its values replace the defaults and explicit
   * settings override it; `""`: none.
   */
  recipe: string;
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
  /** AdamW denominator epsilon. */
  eps: number;
  /** Gradient-norm clip (0: none). */
  clipGrad: number;
  /** Stochastic depth rate (linear over blocks). */
  dropPath: number;
  /** Fraction of patches removed (random masking; block masking removes 78/196 of them). */
  maskRatio: number;
  /**
   * Student kind: `asymmetric` (MAE-style encoder on visible patches + decoder, the
   * reference dBOT) or `symmetric` (BEiT-style: the encoder sees every token, masked ones
   * replaced by a mask token; the CLIP-teacher branch).
   */
  student: "asymmetric" | "symmetric";
  /** Masking: `random` (per-sample shuffle, reference dBOT) or `block` (BEiT blocks; symmetric student only). */
  mask: "random" | "block";
  /**
   * Stage-0 teacher: `random` (copy of the student's init), `random0` (zero depth),
   * `pixels`, a ViT checkpoint path, or `clip:PATH` (a CLIP image tower in safetensors).
   */
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
  /** RandomResizedCrop area range [min, max] (reference dBOT 0.2–1; CLIP branch 0.4–1). */
  cropScale: number[];
  /**
   * ColorJitter strength s: brightness, contrast and saturation factors uniform in
   * [1−s, 1+s], applied in random order before the crop (CLIP branch 0.4; 0: off).
   */
  colorJitter: number;
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
  /** Folder and shard datasets: a corrupt image file is an error instead of a skipped file. */
  strictData: boolean;
  /**
   * Data workers rendering training batches ahead (0: inline on the training thread; -1:
   * as many as the machine can spare, see `defaultDataWorkers` in `src/data/prefetch.ts`).
   */
  dataWorkers: number;
}

/** `onNan: "skip"` stops the run after this many skipped steps in a row. */
export const MAX_CONSECUTIVE_SKIPS = 10;

/**
 * The defaults: `deno task pretrain` with no flags (shapes, vit-micro, two stages × 4 epochs of
 * 5000 images, k-NN on the cls token; ≈3 min on 2 CPU cores).
 */
export const PRETRAIN_DEFAULTS: Readonly<PretrainConfig> = Object.freeze({
  recipe: "",
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
  eps: 1e-8,
  clipGrad: 3.0,
  dropPath: 0.1,
  maskRatio: 0.75,
  student: "asymmetric",
  mask: "random",
  teacher: "random",
  loss: "smoothl1",
  teacherHeads: 0,
  seed: 0,
  trainLimit: 0,
  knnTrain: 2000,
  knnTest: 1000,
  knnK: 20,
  knnPool: "cls",
  cropScale: [0.2, 1],
  colorJitter: 0,
  mean: [],
  std: [],
  logEvery: 10,
  backend: "auto",
  onNan: "stop",
  strictData: false,
  dataWorkers: -1,
});

/** What every ImageNet-scale recipe shares: 224 px, ImageNet mean/std, 4096 images a step. */
const IMAGENET_SCALE: Readonly<Partial<PretrainConfig>> = {
  imgSize: 224,
  batch: 64,
  accum: 64, // 64 × 64 = 4096 images per step in one process; with N ranks give --accum 64/N
  mean: [...IMAGENET_MEAN],
  std: [...IMAGENET_STD],
  weightDecay: 0.05,
  beta1: 0.9,
  boundaries: [],
};

/** The reference dBOT recipe (PRETRAIN.md, `main` branch): 2 × 800 epochs, base LR 1.5e-4. */
const DBOT_RECIPE: Readonly<Partial<PretrainConfig>> = {
  ...IMAGENET_SCALE,
  patchSize: 16,
  stages: 2,
  epochsPerStage: 800,
  warmupEpochs: 40,
  baseLr: 1.5e-4,
  minLr: 0,
  beta2: 0.95,
  eps: 1e-8,
  maskRatio: 0.75,
  student: "asymmetric",
  mask: "random",
  loss: "smoothl1",
  cropScale: [0.2, 1],
  colorJitter: 0,
};

/**
 * The CLIP-teacher branch (`beit` branch PRETRAIN.md and run.sh): one stage of 1600 epochs,
 * lr 3e-3 at batch 4096 (base LR 3e-3 × 256/4096 = 1.875e-4, so other batches scale
 * linearly), AdamW betas 0.9/0.98, eps 1e-6, clip 3, 10 warmup epochs, cosine to 1e-5,
 * drop path 0.1, symmetric student, block masking, cosine loss, ColorJitter 0.4 + crop 0.4–1.
 */
const CLIP_RECIPE: Readonly<Partial<PretrainConfig>> = {
  ...IMAGENET_SCALE,
  patchSize: 16,
  stages: 1,
  epochsPerStage: 1600,
  warmupEpochs: 10,
  baseLr: 3e-3 * 256 / 4096,
  minLr: 1e-5,
  beta2: 0.98,
  eps: 1e-6,
  clipGrad: 3,
  dropPath: 0.1,
  student: "symmetric",
  mask: "block",
  loss: "cosine",
  cropScale: [0.4, 1],
  colorJitter: 0.4,
};

/**
 * `--recipe`: the reference's per-size settings. The dBOT recipes set drop path 0.2/0.2/0.3,
 * clip 3 for ViT-B only, a zero-depth stage-0 teacher for ViT-L/H; the CLIP recipes need
 * `--teacher clip:PATH` (CLIP ViT-B/16 or ViT-L/14 image tower).
 */
export const PRETRAIN_RECIPES: RecipeTable<PretrainConfig> = Object.freeze({
  key: "recipe",
  table: Object.freeze({
    "vit-base": {
      ...DBOT_RECIPE,
      model: "vit-base",
      dropPath: 0.2,
      clipGrad: 3,
      teacher: "random",
    },
    "vit-large": {
      ...DBOT_RECIPE,
      model: "vit-large",
      dropPath: 0.2,
      clipGrad: 0,
      teacher: "random0",
    },
    "vit-huge": {
      ...DBOT_RECIPE,
      model: "vit-huge",
      patchSize: 14,
      dropPath: 0.3,
      clipGrad: 0,
      teacher: "random0",
    },
    "clip-b16": { ...CLIP_RECIPE, model: "vit-base" },
    "clip-l14": { ...CLIP_RECIPE, model: "vit-large" },
  }),
});

/** The teachers a CLIP recipe cannot use (it needs a pre-trained one). */
const BUILT_IN_TEACHERS = ["random", "random0", "pixels"];

/** Help and checks of every pre-training setting: the resolver, `--flags` and `--help`. */
export const PRETRAIN_CONFIG: Config<PretrainConfig> = defineConfig<PretrainConfig>({
  what: "pre-training",
  defaults: PRETRAIN_DEFAULTS,
  recipes: PRETRAIN_RECIPES,
  settings: {
    recipe: {
      help: `${Object.keys(PRETRAIN_RECIPES.table).join(" | ")}: the reference's per-size ` +
        "settings (vit-*: dBOT 2 × 800 epochs, base LR 1.5e-4, 40 warmup epochs a stage, drop " +
        "path 0.2/0.2/0.3, clip 3 for B only, zero-depth stage-0 teacher for L/H; clip-*: the " +
        "CLIP-teacher branch, lr 3e-3 at batch 4096 scaled linearly = base LR 1.875e-4, betas " +
        "0.9/0.98, eps 1e-6, wd 0.05, clip 3, 10 warmup epochs, cosine to min LR 1e-5, drop path " +
        "0.1, symmetric student, block masking, cosine loss, ColorJitter 0.4, crop 0.4-1); " +
        "flags given override it; --print-config shows the result",
      check: oneOf("", ...Object.keys(PRETRAIN_RECIPES.table)),
    },
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
    baseLr: {
      help: "base LR; effective = base × batch·accum / 256 (the CLIP branch's lr 3e-3 at batch " +
        "4096 is base 1.875e-4, scaled linearly for other batches)",
      check: nonNegative,
    },
    minLr: { help: "LR at the end of each cosine", check: nonNegative },
    weightDecay: { help: "AdamW weight decay", check: nonNegative },
    beta1: { help: "AdamW beta1", check: fraction },
    beta2: { help: "AdamW beta2", check: fraction },
    eps: { help: "AdamW epsilon", check: positive },
    clipGrad: { help: "gradient-norm clip (0: none)", check: nonNegative },
    dropPath: { help: "stochastic depth rate", check: fraction },
    maskRatio: { help: "fraction of patches removed (random masking)", check: fraction },
    student: {
      help: "asymmetric (reference dBOT: encoder on visible patches + decoder) | symmetric " +
        "(BEiT-style: mask tokens in the encoder, the CLIP-teacher branch)",
      check: oneOf("asymmetric", "symmetric"),
    },
    mask: {
      help: "random | block (BEiT blocks, 78/196 of the patches; needs --student symmetric)",
      check: oneOf("random", "block"),
    },
    teacher: {
      help: "random | random0 | pixels | PATH.safetensors (a ViT, timm names) | " +
        "clip:PATH.safetensors (a CLIP image tower, OpenAI/OpenCLIP names)",
      check: check(
        (v) => !v.startsWith("clip:") || v.length > "clip:".length,
        "give clip:PATH.safetensors, the CLIP checkpoint after the colon",
        "type",
      ),
    },
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
    cropScale: {
      help: "RandomResizedCrop area range min,max (reference 0.2,1; CLIP branch 0.4,1)",
      check: check(
        (v) => v.length === 2 && v[0] > 0 && v[0] <= v[1] && v[1] <= 1,
        "give two fractions min,max with 0 < min <= max <= 1, e.g. 0.2,1",
      ),
    },
    colorJitter: {
      help: "ColorJitter brightness/contrast/saturation strength (CLIP branch 0.4; 0: off)",
      check: check((v) => v >= 0 && v < 1, "give a value in [0, 1), e.g. 0.4"),
    },
    mean: { help: "normalisation mean a,b,c (default: measured)" },
    std: { help: "normalisation std a,b,c (default: measured)" },
    logEvery: { help: "steps between metric lines", check: positiveInt },
    backend: { help: "auto | cpu | webgpu", check: oneOf("auto", "cpu", "webgpu") },
    onNan: {
      help: "stop | skip: a step with a non-finite loss or gradient stops the run, or is skipped",
      check: oneOf("stop", "skip"),
    },
    strictData: {
      help: "a corrupt image in a folder or shard dataset is an error (default: skipped with a " +
        "warning and counted; --strict is the same)",
    },
    dataWorkers: {
      help: "data workers that decode and augment batches ahead (0: inline; -1: what the " +
        "machine can spare, cores − training threads, 1 … 8; the batches are the same for any " +
        "number)",
      check: check((v) => Number.isInteger(v) && v >= -1 && v <= 64, "give -1 (auto) or 0 … 64"),
    },
  },
  checkAll(c) {
    if (c.mask === "block" && c.student !== "symmetric") {
      throw new RangeError(
        "Cannot use block masking with the asymmetric student: its encoder drops the masked " +
          "patches, so it needs the same count per image; add --student symmetric or use --mask random",
      );
    }
    if (c.recipe.startsWith("clip-") && BUILT_IN_TEACHERS.includes(c.teacher)) {
      throw new TypeError(
        `Cannot use recipe ${c.recipe} with the ${c.teacher} teacher: it distils a CLIP image ` +
          `tower; give --teacher clip:PATH.safetensors (CLIP ViT-${
            c.recipe === "clip-b16" ? "B/16" : "L/14"
          })`,
      );
    }
    if (c.student === "symmetric" && (c.teacher === "random" || c.teacher === "random0")) {
      throw new TypeError(
        `Cannot use the symmetric student with the ${c.teacher} teacher: a random teacher is a ` +
          "copy of the asymmetric student's encoder; give --teacher clip:PATH.safetensors, " +
          "--teacher PATH.safetensors (a ViT) or --teacher pixels",
      );
    }
    if (c.student === "symmetric" && planBoundaries(c).length > 2) {
      throw new RangeError(
        "Cannot bootstrap the symmetric student over several stages (its encoder is not a " +
          "teacher-shaped ViT); give --stages 1 or --boundaries 0,N",
      );
    }
    if (c.mean.length !== c.std.length) {
      throw new RangeError(
        `Cannot normalise with ${c.mean.length} means and ${c.std.length} stds: give as many of each`,
      );
    }
    const b = planBoundaries(c);
    const shortest = Math.min(...b.slice(1).map((end, i) => end - b[i]));
    if (c.warmupEpochs > shortest) {
      throw new RangeError(
        `Cannot warm up for ${c.warmupEpochs} epochs in a stage of ${shortest} epochs: the LR ` +
          `would never reach its peak; give --warmup-epochs ${shortest} or less (the reference ` +
          `warms up for 5% of a stage: ${+(0.05 * shortest).toFixed(3)})` +
          `${c.recipe ? `; --print-config shows what recipe ${c.recipe} set` : ""}`,
      );
    }
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

/**
 * One line a person reads at the start of a run: model, data, batch, stages, LR, teacher,
 * seed, backend, and where the whole configuration is (`config.json` of the run).
 *
 * @example
 * ```ts
 * import { resolvePretrain, summarizePretrain } from "./pretrain_config.ts";
 * console.log(summarizePretrain(resolvePretrain({})));
 * ```
 */
export function summarizePretrain(c: PretrainConfig, ranks = 1): string {
  const images = c.batch * c.accum * ranks;
  const batch = `batch ${c.batch}${c.accum > 1 ? ` × ${c.accum} micro-batches` : ""}${
    ranks > 1 ? ` × ${ranks} ranks` : ""
  }`;
  const size = c.imgSize ? `${c.imgSize} px` : "native size";
  const b = planBoundaries(c);
  const stages = `${b.length - 1} stage(s) to epoch ${b[b.length - 1]}`;
  const lr = `lr ${effectiveLr(c.baseLr, images).toExponential(2)}`;
  return `${c.model} (patch ${c.patchSize}) on ${c.data} at ${size}, ${batch}, ${stages}, ` +
    `${lr}, teacher ${c.teacher}, seed ${c.seed}, backend ${c.backend}; ` +
    `every setting: ${c.runsDir}/${c.name}/config.json`;
}
