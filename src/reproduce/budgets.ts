/**
 * The reproduction's budgets (named sizes), its configuration and the fine-tuning settings that
 * may change in a folder: the types every other file of the study imports.
 *
 * @module
 */
import { check, type Config, defineConfig, oneOf, positive } from "../util/config_schema.ts";

/** Warmup as a fraction of each stage (reference: 40 of 800 epochs) and of fine-tuning. */
export const WARMUP_FRACTION = 0.05;

/** The sizes of one reproduction. */
export interface ReproduceBudget {
  /** Training images for pre-training (the first N). */
  trainLimit: number;
  /** Images per step in pre-training and fine-tuning. */
  batch: number;
  /** Total pre-training epochs of every row (divisible by 1, 2 and 3). */
  epochs: number;
  /** k-NN for the curves every N epochs of pre-training (and at each stage boundary). */
  evalEvery: number;
  /** Curve k-NN: training images embedded (the first N). */
  curveTrain: number;
  /** Curve k-NN: test images embedded (the first N). */
  curveTest: number;
  /** Preset of the larger teacher. */
  teacherModel: string;
  /** Its pre-training epochs (1 stage, random teacher). */
  teacherEpochs: number;
  /** Its training images. */
  teacherLimit: number;
  /** k-NN / linear-probe training features (the first N training images). */
  evalTrain: number;
  /** k-NN / linear-probe / fine-tuning test images (the first N; 0: the whole test split). */
  evalTest: number;
  /** Linear-probe epochs. */
  probeEpochs: number;
  /** Linear-probe base LR (LARS; scaled up for few steps, see docs/RESULTS.md). */
  probeBaseLr: number;
  /**
   * Fine-tuning: training images (the first N; a superset of the pre-training images, so
   * that a few hundred steps can rank encoders), epochs, base LR (× batch/256) and whether
   * mixup/CutMix are on (the reference recipe's 0.8/1.0). These are evaluation settings
   * (`FINETUNE_KEYS`): changing them re-measures fine-tuning and keeps the rest.
   */
  finetuneLimit: number;
  /** Fine-tuning epochs over its `finetuneLimit` images. */
  finetuneEpochs: number;
  /** Fine-tuning base LR (effective: × batch/256). */
  finetuneBaseLr: number;
  /** Mixup 0.8 / CutMix 1.0 during fine-tuning (false: both off, label smoothing kept). */
  finetuneMix: boolean;
  /** Images analysed for CKA / attention distance. */
  analyzeImages: number;
}

/** The budgets by name. */
export type ReproduceBudgetName = "tiny" | "small" | "medium" | "long";

/** The reference base LR (× batch/256). */
export const REFERENCE_BASE_LR = 1.5e-4;

/**
 * The fine-tuning of `small` and `medium`: 512 steps of 64 images (2 epochs of the first
 * 16 384 training images) at base LR 1e-2 without mixup/CutMix, the best of the sweep in
 * docs/RESULTS.md.
 */
const FINETUNE_512_STEPS = {
  finetuneLimit: 16384,
  finetuneEpochs: 2,
  finetuneBaseLr: 1e-2,
  finetuneMix: false,
} as const;

/**
 * `tiny`: seconds, for tests (its figures mean nothing). `small`: 6 epochs a row on 512
 * images. `medium`: 60 epochs a row on 512 images, so the 2-stage row has 30 epochs a stage
 * (75 min for one seed on the shared 2-core machine of docs/RESULTS.md, side by side with
 * `small`). `long`: 300 epochs a row on 10 000 images, 100 epochs a stage for the 3-stage row,
 * a vit-tiny teacher (days on 2 CPU cores: run it over several invocations). Small and medium
 * distil from a vit-mini (vit-micro's depth at twice its width) so the distilled row stays
 * affordable. Small and medium fine-tune 512 steps (2 epochs of the first 16 384 training
 * images) at base LR 1e-2 without mixup/CutMix: the best of a sweep on one encoder
 * (docs/RESULTS.md; the reference recipe's 1e-3 with mixup/CutMix reached 40% in 512 steps);
 * `long` keeps the reference recipe for its 50 epochs.
 */
export const REPRODUCE_BUDGETS: Readonly<Record<ReproduceBudgetName, ReproduceBudget>> = Object
  .freeze({
    tiny: {
      trainLimit: 32,
      batch: 16,
      epochs: 6,
      evalEvery: 2,
      curveTrain: 32,
      curveTest: 16,
      teacherModel: "vit-micro",
      teacherEpochs: 1,
      teacherLimit: 32,
      evalTrain: 32,
      evalTest: 16,
      probeEpochs: 2,
      probeBaseLr: 20,
      finetuneLimit: 32,
      finetuneEpochs: 1,
      finetuneBaseLr: 1e-2,
      finetuneMix: false,
      analyzeImages: 8,
    },
    small: {
      trainLimit: 512,
      batch: 64,
      epochs: 6,
      evalEvery: 2,
      curveTrain: 1000,
      curveTest: 500,
      teacherModel: "vit-mini",
      teacherEpochs: 3,
      teacherLimit: 512,
      evalTrain: 2000,
      evalTest: 0,
      probeEpochs: 90,
      probeBaseLr: 20,
      ...FINETUNE_512_STEPS,
      analyzeImages: 128,
    },
    medium: {
      trainLimit: 512,
      batch: 64,
      epochs: 60,
      evalEvery: 10,
      curveTrain: 1000,
      curveTest: 500,
      teacherModel: "vit-mini",
      teacherEpochs: 10,
      teacherLimit: 512,
      evalTrain: 2000,
      evalTest: 0,
      probeEpochs: 90,
      probeBaseLr: 20,
      ...FINETUNE_512_STEPS,
      analyzeImages: 256,
    },
    long: {
      trainLimit: 10000,
      batch: 64,
      epochs: 300,
      evalEvery: 10,
      curveTrain: 2000,
      curveTest: 1000,
      teacherModel: "vit-tiny",
      teacherEpochs: 100,
      teacherLimit: 10000,
      evalTrain: 10000,
      evalTest: 0,
      probeEpochs: 90,
      probeBaseLr: 20,
      finetuneLimit: 10000,
      finetuneEpochs: 50,
      finetuneBaseLr: 1e-3,
      finetuneMix: true,
      analyzeImages: 256,
    },
  });

/** The settings of a reproduction (`deno task reproduce`). */
export interface ReproduceConfig {
  /** Budget name. */
  budget: ReproduceBudgetName;
  /** Dataset (default fashion-mnist). */
  data: string;
  /** Parent directory of the runs. */
  runsDir: string;
  /** Folder under `runsDir` ("" : `reproduce-<budget>`). */
  name: string;
  /** Seeds: every row runs once per seed. */
  seeds: number[];
  /** Pre-training base LR of every row (effective: × batch/256). */
  baseLr: number;
  /** Leave fine-tuning out (rows keep any fine-tuning already measured). */
  skipFinetune: boolean;
}

/** The defaults: the `small` budget on Fashion-MNIST, seed 0, the reference base LR. */
export const REPRODUCE_DEFAULTS: Readonly<ReproduceConfig> = Object.freeze({
  budget: "small",
  data: "fashion-mnist",
  runsDir: "runs",
  name: "",
  seeds: [0],
  baseLr: REFERENCE_BASE_LR,
  skipFinetune: false,
});

/** Help and checks of every reproduction setting: the resolver, `--flags` and `--help`. */
export const REPRODUCE_CONFIG: Config<ReproduceConfig> = defineConfig<ReproduceConfig>({
  what: "the reproduction",
  defaults: REPRODUCE_DEFAULTS,
  settings: {
    budget: {
      help: "small (minutes a seed) | medium (30 epochs a stage) | long (100 epochs a stage) | " +
        "tiny (seconds, for tests)",
      check: oneOf("tiny", "small", "medium", "long"),
    },
    data: { help: "dataset (Fashion-MNIST by default)" },
    runsDir: { help: "parent directory (tasks may write only under runs/)" },
    name: {
      help: "outputs in <runs-dir>/<name>/ (default reproduce-<budget>)",
      check: check(
        (v) => v === "" || /^[A-Za-z0-9._-]+$/.test(v),
        "give a name of letters, digits, '.', '_' and '-'",
        "type",
      ),
    },
    seeds: {
      help: "seeds, e.g. 0,1,2: every row runs once per seed",
      check: check(
        (v) => v.length > 0 && v.every((s) => Number.isInteger(s) && s >= 0),
        "give one or more non-negative integers, e.g. 0,1,2",
      ),
    },
    baseLr: { help: "pre-training base LR of every row (× batch/256)", check: positive },
    skipFinetune: {
      help: "leave fine-tuning out (the slowest evaluation; rows keep what was measured)",
    },
  },
});

/** `REPRODUCE_DEFAULTS` with checked overrides; an unknown key or a wrong type is a TypeError. */
export function resolveReproduce(overrides: Partial<Record<string, unknown>>): ReproduceConfig {
  return REPRODUCE_CONFIG.resolve(overrides);
}

/** Options of {@link reproduce}. */
export interface ReproduceOptions extends ReproduceConfig {
  /** Backend setting passed to the pre-training config (the backend itself is `be`). */
  backend: string;
  /**
   * Fine-tuning settings in place of the budget's (a sweep, a test): rows measured with
   * other settings are fine-tuned again, nothing else is rerun.
   */
  finetune?: Partial<FinetuneSettings>;
}

/** The output folder of `opts`. */
export function reproduceDir(opts: ReproduceConfig): string {
  return `${opts.runsDir}/${opts.name || `reproduce-${opts.budget}`}`;
}

/** The command that runs (or continues) this reproduction. */
export function reproduceCommand(opts: ReproduceConfig): string {
  const parts = ["deno task reproduce", `--budget ${opts.budget}`];
  if (opts.data !== REPRODUCE_DEFAULTS.data) parts.push(`--data ${opts.data}`);
  if (opts.runsDir !== REPRODUCE_DEFAULTS.runsDir) parts.push(`--runs-dir ${opts.runsDir}`);
  if (opts.name) parts.push(`--name ${opts.name}`);
  parts.push(`--seeds ${opts.seeds.join(",")}`);
  if (opts.baseLr !== REFERENCE_BASE_LR) parts.push(`--base-lr ${opts.baseLr}`);
  if (opts.skipFinetune) parts.push("--skip-finetune");
  return parts.join(" ");
}

/**
 * The budget's evaluation settings that may change in a folder: a change re-measures
 * fine-tuning (each row's eval.json records {@link finetuneProtocol}) and keeps the rest.
 */
export const FINETUNE_KEYS: readonly [
  "finetuneLimit",
  "finetuneEpochs",
  "finetuneBaseLr",
  "finetuneMix",
] = Object.freeze(["finetuneLimit", "finetuneEpochs", "finetuneBaseLr", "finetuneMix"] as const);

/** The fine-tuning settings of a budget ({@link FINETUNE_KEYS}). */
export type FinetuneSettings = Pick<ReproduceBudget, typeof FINETUNE_KEYS[number]>;

/** The fine-tuning settings of `b` as one string (what a row's figure was measured with). */
export function finetuneProtocol(b: ReproduceBudget): string {
  return JSON.stringify(Object.fromEntries(FINETUNE_KEYS.map((k) => [k, b[k]])));
}
