/**
 * End-to-end fine-tuning of a pre-trained encoder (DBOT_SPEC.md "Downstream recipes",
 * MAE/BEiT `main_finetune.py` scaled to small data):
 *
 *   encoder ← checkpoint; mean pool of patch tokens → fc_norm → head (std 0.01)
 *   AdamW (0.9, 0.999), wd 0.05 (not on 1-D params, pos_embed, cls_token)
 *   lr = baseLr × batch/256, per-iteration warmup + cosine to minLr,
 *   layer-wise LR decay decay^(depth+1−id), drop path, label smoothing,
 *   mixup / cutmix (timm `Mixup`, batch mode, switch prob 0.5) as soft targets.
 *
 * Train view ({@link ImagePipeline.train}): RandomResizedCrop + flip, with the ImageNet
 * recipe (`--recipe vit-base|vit-large|vit-huge`) crop 0.08–1 + RandAugment
 * `rand-m9-mstd0.5-inc1` + RandomErasing 0.25 (timm); eval view: resize + centre crop
 * (crop fraction 0.875 in the recipes). The defaults stay the small-data settings (crop
 * 0.2–1 + flip, no RandAugment or erasing, eval crop 1: 28–32 px images have no border to
 * spare). Writes `<runsDir>/<name>/classifier.safetensors` (encoder names without
 * `norm.*`, plus `fc_norm.*` / `head.*`) and `summary.json`.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { imageBatches } from "../data/batches.ts";
import { type Dataset, openDataset } from "../data/dataset.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "../data/pipeline.ts";
import {
  type Checkpoint,
  CheckpointError,
  inferVitConfig,
  readCheckpoint,
  vitWeights,
  writeCheckpoint,
} from "../io/checkpoint_file.ts";
import { classifierSpecs, layerDecayScale, VitClassifier } from "../models/classifier.ts";
import type { VitConfig } from "../models/vit_config.ts";
import {
  check,
  type Config,
  defineConfig,
  fraction,
  nonEmpty,
  nonNegative,
  nonNegativeInt,
  oneOf,
  positive,
  positiveInt,
  probability,
  type RecipeTable,
} from "../util/config_schema.ts";
import { parseRandAugment } from "../data/randaugment.ts";
import { mixBatch } from "../data/mixup.ts";
import { Rng } from "../util/rng.ts";
import { AdamW } from "./adamw.ts";
import { NonFiniteLossError, type StepResult, TrainStep } from "./step.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { balancedSubset } from "../data/label_subset.ts";
import { channelStats, deriveSeed, ImagePipeline, permutation } from "../data/pipeline.ts";
import { effectiveLr, lrAt } from "./schedule.ts";

/** Everything a fine-tuning run needs (saved in the classifier's metadata). */
export interface FinetuneConfig {
  /** A named recipe ({@link FINETUNE_RECIPES}, DOWNSTREAM.md per size); `""`: none. */
  recipe: string;
  /** Pre-trained encoder checkpoint (timm names). */
  checkpoint: string;
  /** Dataset: `shapes`, `fashion-mnist[:DIR]` or a directory of class folders. */
  data: string;
  /** Run name: outputs go to `<runsDir>/<name>/`. */
  name: string;
  /** Parent directory of runs. */
  runsDir: string;
  /** Epochs over the training images. */
  epochs: number;
  /** Linear warmup epochs. */
  warmupEpochs: number;
  /** Images per step. */
  batch: number;
  /** Base LR; effective = baseLr × batch / 256 (reference 3e-4 at ImageNet scale; 1e-3 for small data). */
  baseLr: number;
  /** Final LR of the cosine. */
  minLr: number;
  /** AdamW weight decay (not on 1-D params, pos_embed, cls_token). */
  weightDecay: number;
  /** Layer-wise LR decay factor (0.65 ViT-B, 0.75 ViT-L/H and small models). */
  layerDecay: number;
  /** Stochastic depth rate. */
  dropPath: number;
  /** Gradient-norm clip (0: none; DOWNSTREAM ViT-L 1.0). */
  clipGrad: number;
  /** RandomResizedCrop area range of the training view (timm/ImageNet 0.08–1). */
  cropScale: number[];
  /** timm RandAugment after crop + flip, e.g. `rand-m9-mstd0.5-inc1` (""; off). */
  randAugment: string;
  /** RandomErasing probability (timm mode "pixel"; ImageNet recipe 0.25). */
  reprob: number;
  /** Evaluation crop fraction: resize to ⌊size / cropPct⌋, centre-crop size (ImageNet 0.875). */
  cropPct: number;
  /** Label smoothing. */
  smoothing: number;
  /** Mixup Beta(α, α); 0: off. */
  mixup: number;
  /** CutMix Beta(α, α); 0: off. */
  cutmix: number;
  /** Probability of CutMix instead of mixup when both are on. */
  switchProb: number;
  /** Train on the first N training images (0: all). */
  trainLimit: number;
  /**
   * Labelled images: a class-balanced subset of N of the `trainLimit` images, fixed by
   * `labelSeed` (low-label evaluation; 0: every one).
   */
  labels: number;
  /** Seed of the `labels` subset (the same seed, the same images; 600 ⊂ 6000). */
  labelSeed: number;
  /** Evaluate on the first N test images (0: all). */
  testLimit: number;
  /** Heads when the checkpoint does not store them (0: stored or D/64). */
  heads: number;
  /** Seed of the head init, data order, augmentation, mixup and drop path. */
  seed: number;
  /** Steps between loss readbacks (log lines). */
  logEvery: number;
  /** Write the classifier checkpoint. */
  save: boolean;
}

/** The defaults (small-data settings; reference values in the field docs). */
export const FINETUNE_DEFAULTS: Readonly<FinetuneConfig> = Object.freeze({
  recipe: "",
  checkpoint: "",
  data: "shapes",
  name: "finetune",
  runsDir: "runs",
  epochs: 10,
  warmupEpochs: 1,
  batch: 64,
  baseLr: 1e-3,
  minLr: 1e-6,
  weightDecay: 0.05,
  layerDecay: 0.75,
  dropPath: 0.1,
  clipGrad: 0,
  cropScale: [0.2, 1],
  randAugment: "",
  reprob: 0,
  cropPct: 1,
  smoothing: 0.1,
  mixup: 0.8,
  cutmix: 1.0,
  switchProb: 0.5,
  trainLimit: 0,
  labels: 0,
  labelSeed: 0,
  testLimit: 0,
  heads: 0,
  seed: 0,
  logEvery: 20,
  save: true,
});

/** The ImageNet fine-tuning recipe shared by every size (MAE/dBOT `main_finetune.py`). */
const IMAGENET_FINETUNE: Readonly<Partial<FinetuneConfig>> = {
  warmupEpochs: 5,
  baseLr: 3e-4,
  minLr: 1e-6,
  weightDecay: 0.05,
  smoothing: 0.1,
  mixup: 0.8,
  cutmix: 1.0,
  switchProb: 0.5,
  cropScale: [0.08, 1],
  randAugment: "rand-m9-mstd0.5-inc1",
  reprob: 0.25,
  cropPct: 0.875,
};

/**
 * `--recipe`: dBOT's DOWNSTREAM.md per size (effective batch 1024 there; the LR scales with
 * `--batch`): ViT-B 100 epochs, layer decay 0.65, drop path 0.1; ViT-L 50 epochs, 0.75,
 * drop path 0.25, clip 1.0; ViT-H 50 epochs, 0.75, drop path 0.3; all base LR 3e-4, warmup
 * 5, RandAugment rand-m9-mstd0.5-inc1, RandomErasing 0.25, crop 0.08–1, eval crop 0.875.
 */
export const FINETUNE_RECIPES: RecipeTable<FinetuneConfig> = Object.freeze({
  key: "recipe",
  table: Object.freeze({
    "vit-base": { ...IMAGENET_FINETUNE, epochs: 100, layerDecay: 0.65, dropPath: 0.1, clipGrad: 0 },
    "vit-large": {
      ...IMAGENET_FINETUNE,
      epochs: 50,
      layerDecay: 0.75,
      dropPath: 0.25,
      clipGrad: 1.0,
    },
    "vit-huge": { ...IMAGENET_FINETUNE, epochs: 50, layerDecay: 0.75, dropPath: 0.3, clipGrad: 0 },
  }),
});

/** Help and checks of every fine-tuning setting: the resolver, `--flags` and `--help`. */
export const FINETUNE_CONFIG: Config<FinetuneConfig> = defineConfig<FinetuneConfig>({
  what: "fine-tuning",
  defaults: FINETUNE_DEFAULTS,
  recipes: FINETUNE_RECIPES,
  settings: {
    recipe: {
      help: "vit-base | vit-large | vit-huge: dBOT DOWNSTREAM.md per size (base LR 3e-4, warmup " +
        "5, layer decay 0.65/0.75/0.75, drop path 0.1/0.25/0.3, epochs 100/50/50, clip 1.0 for " +
        "L, RandAugment rand-m9-mstd0.5-inc1, RandomErasing 0.25, crop 0.08-1, eval crop " +
        "0.875); flags given override it; --print-config shows the result",
      check: oneOf("", ...Object.keys(FINETUNE_RECIPES.table)),
    },
    checkpoint: {
      help: "pre-trained ViT checkpoint (.safetensors, timm names)",
      check: nonEmpty("give the checkpoint to fine-tune"),
    },
    data: { help: "shapes | fashion-mnist[:DIR] | DIR of class folders" },
    name: { help: "run name: outputs in runs/<name>/" },
    runsDir: { help: "parent directory of runs (tasks may write only under runs/)" },
    epochs: { help: "epochs over the training images", check: positiveInt },
    warmupEpochs: { help: "linear warmup epochs", check: nonNegative },
    batch: { help: "images per step", check: positiveInt },
    baseLr: { help: "base LR; effective = base × batch / 256", check: positive },
    minLr: { help: "final LR of the cosine", check: nonNegative },
    weightDecay: { help: "AdamW weight decay", check: nonNegative },
    layerDecay: {
      help: "layer-wise LR decay (0.65 ViT-B, 0.75 ViT-L/H and small models)",
      check: check((v) => v > 0 && v <= 1, "give a value in (0, 1]"),
    },
    dropPath: { help: "stochastic depth rate", check: fraction },
    clipGrad: { help: "gradient-norm clip (0: none)", check: nonNegative },
    cropScale: {
      help: "RandomResizedCrop area range min,max (ImageNet recipe 0.08,1)",
      check: check(
        (v) => v.length === 2 && v[0] > 0 && v[0] <= v[1] && v[1] <= 1,
        "give two fractions min,max with 0 < min <= max <= 1, e.g. 0.08,1",
      ),
    },
    randAugment: {
      help: "timm RandAugment spec after crop + flip, e.g. rand-m9-mstd0.5-inc1 (empty: off)",
      check: check(
        (v) => v === "" || validRandAugment(v),
        "give a timm spec such as rand-m9-mstd0.5-inc1 (increasing ops), or an empty string",
        "type",
      ),
    },
    reprob: { help: "RandomErasing probability (timm mode pixel)", check: probability },
    cropPct: {
      help: "eval crop fraction: resize to size/cropPct, centre-crop (ImageNet 0.875)",
      check: check((v) => v > 0 && v <= 1, "give a value in (0, 1], e.g. 0.875"),
    },
    smoothing: { help: "label smoothing", check: fraction },
    mixup: { help: "mixup Beta(α, α) (0: off)", check: nonNegative },
    cutmix: { help: "CutMix Beta(α, α) (0: off)", check: nonNegative },
    switchProb: { help: "probability of CutMix instead of mixup", check: probability },
    trainLimit: { help: "train on the first N training images (0: all)", check: nonNegativeInt },
    labels: {
      help: "train on a class-balanced subset of N of those images (low-label; 0: all)",
      check: nonNegativeInt,
    },
    labelSeed: { help: "seed of the --labels subset", check: nonNegativeInt },
    testLimit: { help: "evaluate on the first N test images (0: all)", check: nonNegativeInt },
    heads: {
      help: "attention heads when the checkpoint does not store them (0: stored or D/64)",
      check: nonNegativeInt,
    },
    seed: { help: "seed of the head init, data order, augmentation", check: nonNegativeInt },
    logEvery: { help: "steps between loss lines", check: positiveInt },
    save: { help: "write the classifier checkpoint", flag: false },
  },
  checkAll(c) {
    if (c.warmupEpochs > c.epochs) {
      throw new RangeError(
        `Cannot warm up for ${c.warmupEpochs} epochs in a run of ${c.epochs} epochs: the LR ` +
          `would never reach its peak; give --warmup-epochs ${c.epochs} or less` +
          `${c.recipe ? ` (--print-config shows what recipe ${c.recipe} set)` : ""}`,
      );
    }
  },
});

/** Whether `spec` parses as a RandAugment spec this library implements. */
function validRandAugment(spec: string): boolean {
  try {
    parseRandAugment(spec);
    return true;
  } catch {
    return false;
  }
}

/** `FINETUNE_DEFAULTS` with checked overrides; an unknown key or a wrong type is a TypeError. */
export function resolveFinetune(overrides: Partial<Record<string, unknown>>): FinetuneConfig {
  return FINETUNE_CONFIG.resolve(overrides);
}

/** summary.json of a fine-tuning run. */
export interface FinetuneSummary {
  /** Test top-1 (%) of the final classifier. */
  top1: number;
  /** Test images evaluated. */
  test: number;
  /** Training images. */
  train: number;
  /** Mean training loss of the first logged window. */
  loss_first: number;
  /** Mean training loss of the last logged window. */
  loss_last: number;
  /** Optimiser steps. */
  steps: number;
  /** Effective peak LR. */
  lr: number;
  /** Training images per second. */
  images_per_s: number;
  /** Wall time. */
  wall_s: number;
  /** Saved classifier (empty when `save` is false). */
  classifier: string;
}

/** Callbacks of {@link finetune}. */
export interface FinetuneHooks {
  /** A line for the log (default console.log). */
  log?: (line: string) => void;
}

/**
 * Fine-tunes `cfg.checkpoint` on `cfg.data`; returns (and writes) the summary. The loop:
 *
 *   for each epoch:   image order and augmentation stream of the epoch
 *     for each step:  augmented, mixed batch → forward/backward → TrainStep (clip, AdamW)
 *                     loss read back every logEvery steps (and at the last)
 *   test top-1, classifier checkpoint, summary.json
 */
export async function finetune(
  be: Backend,
  cfg: FinetuneConfig,
  hooks: FinetuneHooks = {},
): Promise<FinetuneSummary> {
  const run = await FinetuneRun.open(be, cfg, hooks);
  try {
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      const draw = run.epochDraw(epoch);
      for (let it = 0; it < run.itersPerEpoch; it++) {
        const t0 = performance.now();
        const read = (run.steps + 1) % cfg.logEvery === 0 || run.steps + 1 === run.totalSteps;
        const r = await run.step.run(run.lrAt(epoch, it), () => run.forwardBackward(draw, it), {
          read,
        });
        run.steps++;
        if (read) run.record(r, epoch);
        else be.submit();
        run.trainS += (performance.now() - t0) / 1000;
      }
    }
    await be.sync();
    return await run.finish();
  } finally {
    run.close();
  }
}

/** An epoch's image order and the random stream of its augmentation, mixing and drop path. */
interface EpochDraw {
  /** Training image indices in the epoch's order. */
  order: Int32Array;
  /** Augmentation, mixup/CutMix and drop path, in that order per step. */
  rng: Rng;
}

/** The datasets, views and normalisation of a fine-tuning run. */
interface FinetuneData {
  trainDs: Dataset;
  testDs: Dataset;
  /** Train view: RRC + flip [+ RandAugment] + normalise [+ RandomErasing]. */
  train: ImagePipeline;
  /** Eval view: resize + centre crop + normalise. */
  test: ImagePipeline;
  stats: { mean: number[]; std: number[] };
  /** Classes K. */
  numClasses: number;
  /** Training images used: `trainDs` indices (all of the first `trainLimit`, or a subset). */
  trainIndices: Int32Array;
  nTrain: number;
  nTest: number;
}

/** One fine-tuning run's state and its steps outside the loop: open, batches, log, outputs. */
class FinetuneRun {
  readonly be: Backend;
  readonly cfg: FinetuneConfig;
  readonly log: (line: string) => void;
  readonly dir: string;
  readonly vit: VitConfig;
  readonly data: FinetuneData;
  readonly model: VitClassifier;
  readonly opt: AdamW;
  readonly step: TrainStep;
  /** Effective peak LR. */
  readonly lr: number;
  readonly itersPerEpoch: number;
  readonly totalSteps: number;
  /** Optimiser steps taken. */
  steps = 0;
  /** Seconds spent in training steps. */
  trainS = 0;
  /** The losses read back. */
  readonly losses: number[] = [];
  readonly #t0: number;
  /** `[B, C, H, W]` images and `[B]` labels of the step being built. */
  readonly #images: Float32Array;
  readonly #labels: Int32Array;

  private constructor(o: {
    be: Backend;
    cfg: FinetuneConfig;
    hooks: FinetuneHooks;
    t0: number;
    vit: VitConfig;
    data: FinetuneData;
    model: VitClassifier;
    opt: AdamW;
    itersPerEpoch: number;
  }) {
    const { be, cfg, vit, model, opt } = o;
    this.be = be;
    this.cfg = cfg;
    this.log = o.hooks.log ?? console.log;
    this.dir = `${cfg.runsDir}/${cfg.name}`;
    this.vit = vit;
    this.data = o.data;
    this.model = model;
    this.opt = opt;
    this.step = new TrainStep(be, { ps: model.ps, loss: model.loss, opt });
    this.lr = effectiveLr(cfg.baseLr, cfg.batch);
    this.itersPerEpoch = o.itersPerEpoch;
    this.totalSteps = o.itersPerEpoch * cfg.epochs;
    this.#t0 = o.t0;
    this.#images = new Float32Array(cfg.batch * vit.inChans * vit.imgSize * vit.imgSize);
    this.#labels = new Int32Array(cfg.batch);
  }

  /** Reads the encoder, opens the data, builds the classifier and its optimiser. */
  static async open(be: Backend, cfg: FinetuneConfig, hooks: FinetuneHooks): Promise<FinetuneRun> {
    const t0 = performance.now();
    const log = hooks.log ?? console.log;
    if (cfg.save) await Deno.mkdir(`${cfg.runsDir}/${cfg.name}`, { recursive: true });
    const { ckpt, vit, weights } = await loadPretrained(cfg.checkpoint, cfg.heads);
    const data = await openFinetuneData(cfg, vit, ckpt, log);
    const B = cfg.batch;
    const itersPerEpoch = Math.floor(data.nTrain / B);
    if (itersPerEpoch < 1) {
      throw new RangeError(
        `Cannot fine-tune: ${data.nTrain} training images make no full batch of ${B}; lower --batch`,
      );
    }
    const model = new VitClassifier(be, vit, {
      numClasses: data.numClasses,
      B,
      dropPath: cfg.dropPath,
      label: "ft",
    });
    model.init(new Rng(deriveSeed(cfg.seed, 10, 0)));
    model.loadEncoder(weights);
    const opt = new AdamW(be, model.ps, {
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: cfg.weightDecay,
      clipGrad: cfg.clipGrad > 0 ? cfg.clipGrad : Infinity,
      lrScale: layerDecayScale(vit.depth, cfg.layerDecay),
    });
    const run = new FinetuneRun({ be, cfg, hooks, t0, vit, data, model, opt, itersPerEpoch });
    run.#logStart();
    return run;
  }

  #logStart(): void {
    const { cfg, vit, data, lr } = this;
    this.log(
      `finetune: ${data.nTrain} train / ${data.nTest} test images, ${data.numClasses} classes, ` +
        `D ${vit.embedDim} depth ${vit.depth}, ${this.itersPerEpoch} steps/epoch × ` +
        `${cfg.epochs} epochs, lr = ${cfg.baseLr} × ${cfg.batch}/256 = ${lr.toExponential(3)}, ` +
        `layer decay ${cfg.layerDecay}, drop path ${cfg.dropPath}, augmentation: crop ` +
        `${cfg.cropScale.join("-")} + flip${
          cfg.randAugment ? ` + RandAugment ${cfg.randAugment}` : ""
        }${cfg.reprob ? ` + RandomErasing ${cfg.reprob}` : ""}, eval crop ${cfg.cropPct}`,
    );
  }

  /** The image order and random stream of `epoch` (seeded by the run seed and the epoch). */
  epochDraw(epoch: number): EpochDraw {
    const { seed } = this.cfg;
    return {
      order: permutation(this.data.nTrain, new Rng(deriveSeed(seed, 11, epoch))),
      rng: new Rng(deriveSeed(seed, 12, epoch)),
    };
  }

  /** The LR at iteration `it` of `epoch`: per-iteration warmup, then cosine to minLr. */
  lrAt(epoch: number, it: number): number {
    const { cfg } = this;
    return lrAt(epoch + it / this.itersPerEpoch, {
      lr: this.lr,
      warmupEpochs: cfg.warmupEpochs,
      stageEpochs: cfg.epochs,
      minLr: cfg.minLr,
    });
  }

  /** Step `it`'s batch (augmented, then mixed into soft targets), forward and backward. */
  forwardBackward(draw: EpochDraw, it: number): void {
    const targets = this.#mixedBatch(draw, it);
    this.model.setBatch(this.#images, targets, draw.rng); // (drop path draws from rng)
    this.model.forwardBackward();
  }

  /** Fills the `[B, C, H, W]` train views of step `it`, mixes them; the `[B, K]` soft targets. */
  #mixedBatch(draw: EpochDraw, it: number): Float32Array {
    const { cfg, vit, data } = this;
    const B = cfg.batch, C = vit.inChans, H = vit.imgSize, W = vit.imgSize;
    const images = this.#images, labels = this.#labels;
    for (let b = 0; b < B; b++) {
      const i = data.trainIndices[draw.order[it * B + b]];
      images.set(data.train.train(i, draw.rng), b * C * H * W);
      labels[b] = data.trainDs.labels[i];
    }
    const mix = { ...cfg, numClasses: data.numClasses };
    return mixBatch(images, labels, { B, C, H, W }, mix, draw.rng).targets;
  }

  /** Keeps a read-back loss and logs it; a non-finite loss or norm stops the run. */
  record(r: StepResult, epoch: number): void {
    if (!Number.isFinite(r.loss) || !Number.isFinite(r.norm)) {
      throw new NonFiniteLossError(
        `Fine-tuning stopped: the loss is ${r.loss} and the gradient norm ${r.norm} at step ` +
          `${this.steps} (epoch ${epoch}); try a lower --base-lr`,
      );
    }
    this.losses.push(r.loss);
    this.log(`epoch ${epoch} step ${this.steps} loss ${r.loss.toFixed(4)}`);
  }

  /** Test top-1, the classifier checkpoint (when saving) and summary.json. */
  async finish(): Promise<FinetuneSummary> {
    const { be, cfg, data, model, losses } = this;
    const top1 = await evaluate(
      model,
      be,
      data.nTest,
      (i) => data.test.eval(i),
      data.testDs.labels,
    );
    const classifier = cfg.save ? await this.#saveClassifier() : "";
    const summary: FinetuneSummary = {
      top1,
      test: data.nTest,
      train: data.nTrain,
      loss_first: losses[0] ?? NaN,
      loss_last: losses[losses.length - 1] ?? NaN,
      steps: this.steps,
      lr: this.lr,
      images_per_s: (this.steps * cfg.batch) / Math.max(this.trainS, 1e-9),
      wall_s: (performance.now() - this.#t0) / 1000,
      classifier,
    };
    if (cfg.save) await writeJsonAtomic(`${this.dir}/summary.json`, summary);
    return summary;
  }

  /** Writes `<dir>/classifier.safetensors` (the run's config in its metadata); its path. */
  async #saveClassifier(): Promise<string> {
    const { data } = this;
    const path = `${this.dir}/classifier.safetensors`;
    await writeCheckpoint(path, this.model.ps, {
      vit: this.vit,
      mean: [...data.stats.mean],
      std: [...data.stats.std],
      numClasses: data.numClasses,
      classNames: [...data.trainDs.classNames],
      finetune: this.cfg,
    });
    return path;
  }

  /** Frees the step's, the optimiser's and the model's buffers. */
  close(): void {
    this.step.dispose();
    this.opt.dispose();
    this.model.dispose();
  }
}

/** Encoder config, weights and normalisation of a pre-trained checkpoint. */
async function loadPretrained(
  path: string,
  heads: number,
): Promise<{ ckpt: Checkpoint; vit: VitConfig; weights: Map<string, Float32Array> }> {
  const ckpt = await readCheckpoint(path);
  const vit = inferVitConfig(ckpt, { heads: heads || undefined, file: path });
  // a classifier has no `norm.*`; a pre-trained encoder has all encoder names
  const weights = ckpt.weights.has("norm.weight")
    ? vitWeights(ckpt, vit, { file: path })
    : ckpt.weights;
  return { ckpt, vit, weights };
}

/** Opens both splits and their views; the normalisation is the checkpoint's when it has one. */
async function openFinetuneData(
  cfg: FinetuneConfig,
  vit: VitConfig,
  ckpt: Checkpoint,
  log: (line: string) => void,
): Promise<FinetuneData> {
  const trainDs = await openDataset(cfg.data, "train", { warn: log });
  const testDs = await openDataset(cfg.data, "test", { warn: log });
  const C = vit.inChans;
  if (trainDs.channels !== C && !(trainDs.channels === 1 && C === 3)) {
    throw new RangeError(
      `Cannot fine-tune a ${C}-channel encoder on ${trainDs.channels}-channel data (${cfg.data})`,
    );
  }
  const stats = ckpt.config.mean && ckpt.config.std
    ? { mean: ckpt.config.mean, std: ckpt.config.std }
    : trainDs.channels === C
    ? channelStats(trainDs, C, 1000)
    : { mean: IMAGENET_MEAN.slice(0, C), std: IMAGENET_STD.slice(0, C) };
  // train: RRC + flip [+ RandAugment] + normalise [+ RandomErasing]; eval: resize + crop
  const train = new ImagePipeline(trainDs, vit.imgSize, C, stats.mean, stats.std, {
    cropScale: cfg.cropScale,
    randAugment: cfg.randAugment,
    reprob: cfg.reprob,
  });
  const test = new ImagePipeline(testDs, vit.imgSize, C, stats.mean, stats.std, {
    cropPct: cfg.cropPct,
  });
  const numClasses = trainDs.classNames.length;
  const pool = Math.min(trainDs.count, cfg.trainLimit || Infinity);
  const trainIndices = balancedSubset(trainDs.labels, {
    n: cfg.labels,
    pool,
    numClasses,
    seed: cfg.labelSeed,
  });
  const nTrain = trainIndices.length;
  const nTest = Math.min(testDs.count, cfg.testLimit || Infinity);
  return { trainDs, testDs, train, test, stats, numClasses, trainIndices, nTrain, nTest };
}

/** Top-1 (%) of `model` on `count` eval images (the last batch is padded with zeros). */
export async function evaluate(
  model: VitClassifier,
  be: Backend,
  count: number,
  image: (i: number) => Float32Array,
  labels: Int32Array,
): Promise<number> {
  const { B, numClasses: K } = model;
  const imgLen = model.images.size / B;
  let hits = 0;
  for await (const { start, n, data } of imageBatches(count, B, imgLen, image)) {
    model.setBatch(data, null);
    model.forward(false);
    const logits = (await be.download(model.logits)) as Float32Array;
    for (let b = 0; b < n; b++) {
      let best = 0;
      for (let k = 1; k < K; k++) if (logits[b * K + k] > logits[b * K + best]) best = k;
      if (best === labels[start + b]) hits++;
    }
  }
  return (100 * hits) / Math.max(count, 1);
}

/**
 * Reads a classifier written by {@link finetune}: its encoder config, class count and the
 * weights, checked against {@link classifierSpecs} (missing or unexpected names are a
 * {@link CheckpointError} that lists them).
 */
export async function readClassifier(
  path: string,
): Promise<{ vit: VitConfig; numClasses: number; weights: Map<string, Float32Array> }> {
  const ckpt = await readCheckpoint(path);
  const vit = inferVitConfig(ckpt, { file: path });
  const head = ckpt.shapes.get("head.weight");
  if (!head) throw new CheckpointError(`Cannot read a classifier from "${path}": no head.weight`);
  const numClasses = head[0];
  const specs = classifierSpecs(vit, numClasses);
  const known = new Set(specs.map((s) => s.name));
  const missing = specs.filter((s) => !ckpt.weights.has(s.name)).map((s) => s.name);
  const unexpected = [...ckpt.weights.keys()].filter((n) => !known.has(n));
  const bad = specs.filter((s) =>
    ckpt.shapes.has(s.name) && ckpt.shapes.get(s.name)!.join(",") !== s.shape.join(",")
  ).map((s) => s.name);
  if (missing.length || unexpected.length || bad.length) {
    throw new CheckpointError(
      `Cannot read a classifier from "${path}": missing [${missing}], unexpected [${unexpected}], ` +
        `wrong shape [${bad}]`,
    );
  }
  return { vit, numClasses, weights: ckpt.weights };
}
