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
  /** Training images for pre-training (the first N; distinct images seen by every row). */
  trainLimit: number;
  /** Images per pre-training optimiser step (the reference's 256; the LR scales with it). */
  batch: number;
  /** Micro-batches per pre-training step (`batch / accum` images each; gradients accumulated). */
  accum: number;
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
  /** k-NN bank: the first N training images (the budget's pre-training images). */
  knnBank: number;
  /**
   * Training images embedded once per checkpoint (the first N; 0: the whole split): the k-NN
   * bank is their first `knnBank`, the probes' and fine-tunings' label subsets are drawn
   * from them, and "all" labels means every one of them.
   */
  evalPool: number;
  /** k-NN / linear-probe / fine-tuning test images (the first N; 0: the whole test split). */
  evalTest: number;
  /** Labelled images of the linear probes: class-balanced subsets of the pool (0: all of it). */
  probeLabels: number[];
  /** Linear-probe epochs. */
  probeEpochs: number;
  /** Linear-probe base LR (LARS; scaled up for few steps, see docs/RESULTS.md). */
  probeBaseLr: number;
  /**
   * Fine-tuning: labelled images of each fine-tuning (class-balanced subsets of the pool, the
   * same as the probes'; 0: all of it), its epochs (one per entry of `finetuneLabels`), batch,
   * base LR (× batch/256) and whether mixup/CutMix are on (the reference recipe's 0.8/1.0).
   * These are evaluation settings (`FINETUNE_KEYS`): changing them re-measures fine-tuning
   * and keeps the rest.
   */
  finetuneLabels: number[];
  /** Fine-tuning epochs over each `finetuneLabels` subset. */
  finetuneEpochs: number[];
  /** Fine-tuning images per step. */
  finetuneBatch: number;
  /** Fine-tuning base LR (effective: × finetuneBatch/256). */
  finetuneBaseLr: number;
  /** Mixup 0.8 / CutMix 1.0 during fine-tuning (false: both off, label smoothing kept). */
  finetuneMix: boolean;
  /**
   * Fine-tuning RandomResizedCrop scale range (`--crop-scale`): [1, 1] keeps the whole image
   * (resize + flip only), the ImageNet recipes' range is [0.08, 1] or [0.2, 1].
   */
  finetuneCropScale: [number, number];
  /** Images analysed for CKA / attention distance. */
  analyzeImages: number;
}

/** The budgets by name. */
export type ReproduceBudgetName = "tiny" | "small" | "medium" | "long";

/** The reference base LR (× batch/256). */
export const REFERENCE_BASE_LR = 1.5e-4;

/** The reference pre-training batch (the LR is given per 256 images). */
export const REFERENCE_BATCH = 256;

/**
 * Micro-batches of a 256-image step on the CPU: 4 × 64 images (gradients accumulated). On the
 * loaded 2-core VM they ran ~1.35× faster than one micro-batch of 256; on a quiet one, after the
 * fused CPU attention, the two are equal within noise (docs/RESULTS.md). The step, its LR and its
 * images are the same either way, and 64-image micro-batches hold a quarter of the activations.
 */
export const MICRO_BATCHES = 4;

/**
 * The evaluation of `small` and `medium`: every training image embedded once per checkpoint;
 * linear probes with 1%, 10% and 100% of the labels; fine-tuning at batch 64 and base LR 1e-2
 * without mixup/CutMix (the best of the 512-step sweep in docs/RESULTS.md) with 1% of the
 * labels for 20 epochs (180 steps), 10% for 5 epochs (465 steps) and every label for 1 epoch
 * (937 steps), from every row and from the random init (the from-scratch baseline).
 * Whole-image crops: with the recipe's 0.2–1 a 28-px image keeps too little for these few
 * steps, every row fine-tuned below its own linear probe and nothing was ranked. 20 epochs on
 * 1%, not 50: after 50 passes over 600 images the random init caught up with every row (no gain
 * on seeds 0–2); 20 was chosen by a sweep on those seeds and confirmed, by a rule written down
 * before the run, on fresh seeds 3–5 (docs/RESULTS.md, "The fine-tuning protocol").
 */
const EVAL_LOW_LABEL: Readonly<Omit<ReproduceBudget, "trainLimit" | PretrainSizes>> = {
  knnBank: 0,
  evalPool: 0,
  evalTest: 0,
  probeLabels: [600, 6000, 0], // 1%, 10%, 100% of Fashion-MNIST's 60 000 training labels
  probeEpochs: 90,
  probeBaseLr: 20,
  finetuneLabels: [600, 6000, 0],
  finetuneEpochs: [20, 5, 1],
  finetuneBatch: 64,
  finetuneBaseLr: 1e-2,
  finetuneMix: false,
  finetuneCropScale: [1, 1],
  analyzeImages: 256,
};

/** The budget's pre-training and curve sizes (what `EVAL_LOW_LABEL` leaves out). */
type PretrainSizes =
  | "batch"
  | "accum"
  | "epochs"
  | "evalEvery"
  | "curveTrain"
  | "curveTest"
  | "teacherModel"
  | "teacherEpochs"
  | "teacherLimit";

/**
 * Budgets by distinct images at the reference batch: every pre-training row takes steps of 256
 * images ({@link MICRO_BATCHES} accumulated micro-batches of 64) at base LR 1.5e-4 × 256/256,
 * warmup 5% of each stage, cosine to 0 per stage.
 * `tiny`: seconds, for tests (its figures mean nothing; micro-batches of 8 exercise
 * accumulation). `small`: 24 epochs a row on the first 10 000 images (936 steps; dbot-2 2 × 12,
 * dbot-3 3 × 8). `medium`: 30 epochs a row on all 60 000 (7020 steps; 2 × 15, 3 × 10).
 * `long`: 300 epochs a row on all 60 000 (3 × 100), a vit-tiny teacher, the reference
 * fine-tuning recipe (days on 2 CPU cores: run it over several invocations). The k-NN bank is
 * the pre-training images, the test set is whole; evaluation is `EVAL_LOW_LABEL` (`small`:
 * fine-tuning with 1% and 10% of the labels only; `long`: the reference fine-tuning recipe, 50
 * epochs on every label, mixup/CutMix, LR 1e-3 and crops of 20–100% for every subset).
 * The distilled row's teacher is a vit-mini (vit-micro's depth at twice its width) trained
 * like a row.
 */
export const REPRODUCE_BUDGETS: Readonly<Record<ReproduceBudgetName, ReproduceBudget>> = Object
  .freeze({
    tiny: {
      trainLimit: 32,
      batch: 16,
      accum: 2,
      epochs: 6,
      evalEvery: 2,
      curveTrain: 32,
      curveTest: 16,
      teacherModel: "vit-micro",
      teacherEpochs: 1,
      teacherLimit: 32,
      knnBank: 32,
      evalPool: 64,
      evalTest: 16,
      probeLabels: [20, 0],
      probeEpochs: 2,
      probeBaseLr: 20,
      finetuneLabels: [20, 0],
      finetuneEpochs: [2, 1],
      finetuneBatch: 16,
      finetuneBaseLr: 1e-2,
      finetuneMix: false,
      finetuneCropScale: [1, 1],
      analyzeImages: 8,
    },
    small: {
      trainLimit: 10000,
      batch: REFERENCE_BATCH,
      accum: MICRO_BATCHES,
      epochs: 24,
      evalEvery: 4,
      curveTrain: 2000,
      curveTest: 1000,
      teacherModel: "vit-mini",
      teacherEpochs: 24,
      teacherLimit: 10000,
      ...EVAL_LOW_LABEL,
      knnBank: 10000,
      // low-label fine-tuning only: every label (937 steps) costs as much as both low-label
      // fine-tunings together and ranked nothing at the 512-image budgets (docs/RESULTS.md)
      finetuneLabels: [600, 6000],
      finetuneEpochs: [20, 5],
    },
    medium: {
      trainLimit: 60000,
      batch: REFERENCE_BATCH,
      accum: MICRO_BATCHES,
      epochs: 30,
      evalEvery: 5,
      curveTrain: 2000,
      curveTest: 1000,
      teacherModel: "vit-mini",
      teacherEpochs: 30,
      teacherLimit: 60000,
      ...EVAL_LOW_LABEL,
      knnBank: 60000,
    },
    long: {
      trainLimit: 60000,
      batch: REFERENCE_BATCH,
      accum: MICRO_BATCHES,
      epochs: 300,
      evalEvery: 20,
      curveTrain: 2000,
      curveTest: 1000,
      teacherModel: "vit-tiny",
      teacherEpochs: 100,
      teacherLimit: 60000,
      ...EVAL_LOW_LABEL,
      knnBank: 60000,
      finetuneEpochs: [50, 5, 50],
      finetuneBaseLr: 1e-3,
      finetuneMix: true,
      finetuneCropScale: [0.2, 1],
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
  /**
   * Only these rows, by folder name, comma-separated ("": every row); `random-init` always
   * runs (the gate pairs every row with it). Rows can be added later in the same folder.
   */
  rows: string;
}

/** The rows' folder names, in table order (`--rows`). */
export const ROW_NAMES: readonly string[] = Object.freeze([
  "random-init",
  "mae",
  "dbot-1",
  "dbot-2",
  "dbot-3",
  "dbot-distilled",
]);

/** The rows `rows` selects (`--rows`; "": all), random-init always among them, in table order. */
export function selectedRows(rows: string): string[] {
  if (rows.trim() === "") return [...ROW_NAMES];
  const want = new Set(rows.split(",").map((r) => r.trim()).filter(Boolean));
  return ROW_NAMES.filter((r) => r === "random-init" || want.has(r));
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
  rows: "",
});

/** Help and checks of every reproduction setting: the resolver, `--flags` and `--help`. */
export const REPRODUCE_CONFIG: Config<ReproduceConfig> = defineConfig<ReproduceConfig>({
  what: "the reproduction",
  defaults: REPRODUCE_DEFAULTS,
  settings: {
    budget: {
      help: "small (10 000 images × 24 epochs a row) | medium (60 000 × 30) | long (60 000 × " +
        "300, resumable over days) | tiny (seconds, for tests)",
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
    rows: {
      help: `only these rows, e.g. mae,dbot-1 (of ${ROW_NAMES.join(", ")}; random-init always ` +
        "runs, the gate pairs every row with it; default every row); rerun without it to add " +
        "the rest in the same folder",
      check: check(
        (v) =>
          v.split(",").map((r) => r.trim()).filter(Boolean).every((r) => ROW_NAMES.includes(r)),
        `give row names from ${ROW_NAMES.join(", ")}, comma-separated`,
      ),
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
  if (opts.rows) parts.push(`--rows ${opts.rows}`);
  return parts.join(" ");
}

/**
 * The budget's evaluation settings that may change in a folder: a change re-measures
 * fine-tuning (each row's eval.json records {@link finetuneProtocol} of each figure) and keeps
 * the rest.
 */
export const FINETUNE_KEYS = [
  "finetuneLabels",
  "finetuneEpochs",
  "finetuneBatch",
  "finetuneBaseLr",
  "finetuneMix",
  "finetuneCropScale",
] as const;

/** The fine-tuning settings of a budget ({@link FINETUNE_KEYS}). */
export type FinetuneSettings = Pick<ReproduceBudget, typeof FINETUNE_KEYS[number]>;

/** A label count as a key and a column name: "600", or "all" for 0 (every pool image). */
export function labelKey(labels: number): string {
  return labels ? String(labels) : "all";
}

/**
 * The settings of the `i`-th fine-tuning of `b` as one string (what a figure was measured
 * with): its labels, epochs, batch, LR, mixing and the pool and test images.
 */
export function finetuneProtocol(b: ReproduceBudget, i: number): string {
  return JSON.stringify({
    labels: b.finetuneLabels[i],
    epochs: b.finetuneEpochs[i],
    batch: b.finetuneBatch,
    baseLr: b.finetuneBaseLr,
    mix: b.finetuneMix,
    crop: b.finetuneCropScale,
    pool: b.evalPool,
    test: b.evalTest,
  });
}

/** A RangeError naming what is wrong with `b` (label lists, pools, batches), else nothing. */
export function checkBudget(name: string, b: ReproduceBudget): void {
  const fail = (what: string) => {
    throw new RangeError(`Cannot use the budget "${name}": ${what}`);
  };
  if (b.finetuneLabels.length !== b.finetuneEpochs.length) {
    fail(
      `${b.finetuneLabels.length} fine-tuning label counts but ${b.finetuneEpochs.length} ` +
        "epoch counts; give one epoch count per label count",
    );
  }
  if (b.batch % b.accum) fail(`batch ${b.batch} is not divisible by accum ${b.accum}`);
  if (b.epochs % 6) fail(`${b.epochs} epochs a row do not split into 2 and 3 stages; give 6·k`);
  if (b.evalPool && b.knnBank > b.evalPool) {
    fail(`the k-NN bank (${b.knnBank}) is larger than the embedded pool (${b.evalPool})`);
  }
}
