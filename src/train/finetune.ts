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
import { openDataset } from "../data/dataset.ts";
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
import { NonFiniteLossError, TrainStep } from "./step.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
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

/** Fine-tunes `cfg.checkpoint` on `cfg.data`; returns (and writes) the summary. */
export async function finetune(
  be: Backend,
  cfg: FinetuneConfig,
  log: (line: string) => void = console.log,
): Promise<FinetuneSummary> {
  const t0 = performance.now();
  const dir = `${cfg.runsDir}/${cfg.name}`;
  if (cfg.save) await Deno.mkdir(dir, { recursive: true });
  const { ckpt, vit, weights } = await loadPretrained(cfg.checkpoint, cfg.heads);
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
  const K = trainDs.classNames.length;
  const nTrain = Math.min(trainDs.count, cfg.trainLimit || Infinity);
  const nTest = Math.min(testDs.count, cfg.testLimit || Infinity);
  const B = cfg.batch;
  const itersPerEpoch = Math.floor(nTrain / B);
  if (itersPerEpoch < 1) {
    throw new RangeError(
      `Cannot fine-tune: ${nTrain} training images make no full batch of ${B}; lower --batch`,
    );
  }

  const model = new VitClassifier(be, vit, {
    numClasses: K,
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
  const lr = effectiveLr(cfg.baseLr, B);
  const sched = {
    lr,
    warmupEpochs: cfg.warmupEpochs,
    stageEpochs: cfg.epochs,
    minLr: cfg.minLr,
  };
  log(
    `finetune: ${nTrain} train / ${nTest} test images, ${K} classes, D ${vit.embedDim} depth ` +
      `${vit.depth}, ${itersPerEpoch} steps/epoch × ${cfg.epochs} epochs, lr = ${cfg.baseLr} × ` +
      `${B}/256 = ${
        lr.toExponential(3)
      }, layer decay ${cfg.layerDecay}, drop path ${cfg.dropPath}, ` +
      `augmentation: crop ${cfg.cropScale.join("-")} + flip${
        cfg.randAugment ? ` + RandAugment ${cfg.randAugment}` : ""
      }${cfg.reprob ? ` + RandomErasing ${cfg.reprob}` : ""}, eval crop ${cfg.cropPct}`,
  );

  const imgLen = C * vit.imgSize * vit.imgSize;
  const images = new Float32Array(B * imgLen);
  const labels = new Int32Array(B);
  const dims = { B, C, H: vit.imgSize, W: vit.imgSize };
  const mix = { ...cfg, numClasses: K };
  const losses: number[] = [];
  const trainStep = new TrainStep(be, { ps: model.ps, loss: model.loss, opt });
  const totalSteps = itersPerEpoch * cfg.epochs;
  let step = 0;
  let trainS = 0;
  for (let epoch = 0; epoch < cfg.epochs; epoch++) {
    const order = permutation(nTrain, new Rng(deriveSeed(cfg.seed, 11, epoch)));
    const rng = new Rng(deriveSeed(cfg.seed, 12, epoch));
    for (let it = 0; it < itersPerEpoch; it++) {
      const ts = performance.now();
      const read = (step + 1) % cfg.logEvery === 0 || step + 1 === totalSteps;
      const r = await trainStep.run(lrAt(epoch + it / itersPerEpoch, sched), () => {
        for (let b = 0; b < B; b++) {
          const i = order[it * B + b];
          images.set(train.train(i, rng), b * imgLen);
          labels[b] = trainDs.labels[i];
        }
        const { targets } = mixBatch(images, labels, dims, mix, rng);
        model.setBatch(images, targets, rng);
        model.forwardBackward();
      }, { read });
      step++;
      if (read) {
        if (!Number.isFinite(r.loss) || !Number.isFinite(r.norm)) {
          throw new NonFiniteLossError(
            `Fine-tuning stopped: the loss is ${r.loss} and the gradient norm ${r.norm} at step ` +
              `${step} (epoch ${epoch}); try a lower --base-lr`,
          );
        }
        losses.push(r.loss);
        log(`epoch ${epoch} step ${step} loss ${r.loss.toFixed(4)}`);
      } else {
        be.submit();
      }
      trainS += (performance.now() - ts) / 1000;
    }
  }
  await be.sync();

  const top1 = await evaluate(model, be, nTest, (i) => test.eval(i), testDs.labels);
  let classifier = "";
  if (cfg.save) {
    classifier = `${dir}/classifier.safetensors`;
    await writeCheckpoint(classifier, model.ps, {
      vit,
      mean: [...stats.mean],
      std: [...stats.std],
      numClasses: K,
      classNames: [...trainDs.classNames],
      finetune: cfg,
    });
  }
  const summary: FinetuneSummary = {
    top1,
    test: nTest,
    train: nTrain,
    loss_first: losses[0] ?? NaN,
    loss_last: losses[losses.length - 1] ?? NaN,
    steps: step,
    lr,
    images_per_s: (step * B) / Math.max(trainS, 1e-9),
    wall_s: (performance.now() - t0) / 1000,
    classifier,
  };
  if (cfg.save) await writeJsonAtomic(`${dir}/summary.json`, summary);
  return summary;
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
