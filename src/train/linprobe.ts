/**
 * Linear probe on frozen features (MAE `main_linprobe.py`, DBOT_SPEC.md "Downstream
 * recipes"): `head(BatchNorm(x))` with a BatchNorm without affine (eps 1e-6) and a Linear
 * (weight normal std 0.01, bias 0), trained with LARS (momentum 0.9, trust coefficient
 * 0.001, no LARS and no decay on the bias), `lr = baseLr × batch/256`, per-iteration linear
 * warmup then half-cosine to 0, weight decay 0.
 *
 * Features are computed once (cls token after the final norm, {@link embedDataset}) and
 * the head trains on the host in f64: it is `K × D` numbers.
 *
 * BatchNorm statistics: the mean and biased variance of the WHOLE training feature set, used
 * in training and at test. The features are frozen, so these are the fixed point the
 * reference's running statistics converge to; using them from step 0 drops the batch-to-batch
 * noise of train-mode BatchNorm (a deliberate, documented simplification).
 *
 * A last partial batch is kept (the reference drops it; with small data it matters).
 *
 * @example
 * ```ts
 * import { trainLinearProbe } from "./linprobe.ts";
 * const x = new Float32Array([1, 0, 0, 1, 0.9, 0.1, 0.1, 0.9]); // [4, D=2]
 * const y = new Int32Array([0, 1, 0, 1]);
 * const r = trainLinearProbe({ features: x, labels: y }, { features: x, labels: y }, 2, {
 *   epochs: 30,
 *   batch: 4,
 *   baseLr: 50,
 *   warmupEpochs: 1,
 * });
 * console.log(r.trainTop1); // 100
 * ```
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import {
  type Config,
  defineConfig,
  fraction,
  nonNegative,
  nonNegativeInt,
  positive,
  positiveInt,
} from "../util/config_schema.ts";
import { Rng } from "../util/rng.ts";
import { lrAt } from "./schedule.ts";
import { embedDataset } from "../eval/embed_file.ts";
import type { LabeledFeatures } from "../eval/knn.ts";

/** Accuracies and settings of a linear probe. */
export interface LinprobeResult {
  /** Train top-1 (%) of the final head (eval mode). */
  trainTop1: number;
  /** Test top-1 (%). */
  testTop1: number;
  /** Effective peak LR. */
  lr: number;
  /** Optimiser steps. */
  steps: number;
  /** Mean cross-entropy over the last epoch. */
  lastLoss: number;
}

/** Per-feature mean and `1/sqrt(var + eps)` (biased variance) of `x [rows, D]`, in f64. */
export function batchNormStats(
  x: Float32Array,
  D: number,
  eps: number,
): { mean: Float64Array; rstd: Float64Array } {
  const rows = x.length / D;
  const mean = new Float64Array(D);
  const rstd = new Float64Array(D);
  for (let r = 0; r < rows; r++) for (let c = 0; c < D; c++) mean[c] += x[r * D + c];
  for (let c = 0; c < D; c++) mean[c] /= rows;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < D; c++) rstd[c] += (x[r * D + c] - mean[c]) ** 2;
  }
  for (let c = 0; c < D; c++) rstd[c] = 1 / Math.sqrt(rstd[c] / rows + eps);
  return { mean, rstd };
}

function normalized(x: Float32Array, D: number, s: { mean: Float64Array; rstd: Float64Array }) {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = i % D;
    out[i] = (x[i] - s.mean[c]) * s.rstd[c];
  }
  return out;
}

function top1(x: Float64Array, y: Int32Array, W: Float64Array, b: Float64Array, K: number) {
  const D = W.length / K;
  const rows = y.length;
  let hits = 0;
  for (let r = 0; r < rows; r++) {
    let best = 0;
    let bestV = -Infinity;
    for (let k = 0; k < K; k++) {
      let z = b[k];
      for (let c = 0; c < D; c++) z += W[k * D + c] * x[r * D + c];
      if (z > bestV) {
        bestV = z;
        best = k;
      }
    }
    if (best === y[r]) hits++;
  }
  return (100 * hits) / Math.max(rows, 1);
}

/**
 * Softmax cross-entropy of one batch (the rows `idx` of `xs [N, D]`): writes the mean
 * gradient into `gW [K, D]` and `gB [K]` (overwritten) and returns `lossBefore` plus the batch's summed loss. `p [K]` is
 * scratch. A function of its own so that V8 optimises the hot loops (inlined in the epoch
 * loop they ran ~4× slower).
 */
function batchGradient(
  xs: Float64Array,
  labels: Int32Array,
  idx: Int32Array,
  W: Float64Array,
  b: Float64Array,
  gW: Float64Array,
  gB: Float64Array,
  p: Float64Array,
  p1: Float64Array,
  lossBefore: number,
): number {
  const K = b.length;
  const D = W.length / K;
  const rows = idx.length;
  let lossSum = lossBefore;
  gW.fill(0);
  gB.fill(0);
  // two rows at a time: each W and gW element is loaded once for both, and every sum still
  // adds its terms in row order (the result is the same as one row at a time, bit for bit)
  let q = 0;
  for (; q + 1 < rows; q += 2) {
    const r0 = idx[q];
    const r1 = idx[q + 1];
    const x0 = r0 * D;
    const x1 = r1 * D;
    let max0 = -Infinity;
    let max1 = -Infinity;
    for (let k = 0; k < K; k++) {
      let z0 = b[k];
      let z1 = b[k];
      const wo = k * D;
      for (let c = 0; c < D; c++) {
        const w = W[wo + c];
        z0 += w * xs[x0 + c];
        z1 += w * xs[x1 + c];
      }
      p[k] = z0;
      p1[k] = z1;
      max0 = Math.max(max0, z0);
      max1 = Math.max(max1, z1);
    }
    let sum0 = 0;
    let sum1 = 0;
    for (let k = 0; k < K; k++) sum0 += p[k] = Math.exp(p[k] - max0);
    for (let k = 0; k < K; k++) sum1 += p1[k] = Math.exp(p1[k] - max1);
    lossSum -= Math.log(p[labels[r0]] / sum0);
    lossSum -= Math.log(p1[labels[r1]] / sum1);
    for (let k = 0; k < K; k++) {
      const g0 = (p[k] / sum0 - (k === labels[r0] ? 1 : 0)) / rows;
      const g1 = (p1[k] / sum1 - (k === labels[r1] ? 1 : 0)) / rows;
      gB[k] = gB[k] + g0 + g1;
      const wo = k * D;
      for (let c = 0; c < D; c++) gW[wo + c] = gW[wo + c] + g0 * xs[x0 + c] + g1 * xs[x1 + c];
    }
  }
  for (; q < rows; q++) {
    const r = idx[q];
    const xo = r * D;
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      let z = b[k];
      for (let c = 0; c < D; c++) z += W[k * D + c] * xs[xo + c];
      p[k] = z;
      max = Math.max(max, z);
    }
    let sum = 0;
    for (let k = 0; k < K; k++) sum += p[k] = Math.exp(p[k] - max);
    lossSum -= Math.log(p[labels[r]] / sum);
    for (let k = 0; k < K; k++) {
      const g = (p[k] / sum - (k === labels[r] ? 1 : 0)) / rows;
      gB[k] += g;
      for (let c = 0; c < D; c++) gW[k * D + c] += g * xs[xo + c];
    }
  }
  return lossSum;
}

/**
 * Trains `head(BatchNorm(x))` on `train.features [Ntrain, D]` with `train.labels [Ntrain]`
 * and reports train and test top-1; `D` is `dim`. `config` is checked as
 * {@link LINPROBE_CONFIG} (absent settings: the reference recipe); its checkpoint and data
 * settings are not used here. Throws a RangeError when the arrays
 * disagree in size or a label is out of range.
 */
export function trainLinearProbe(
  train: LabeledFeatures,
  test: LabeledFeatures,
  dim: number,
  config: Partial<LinprobeConfig> = {},
): LinprobeResult {
  const cfg = LINPROBE_CONFIG.resolve(config);
  const { features: trainX, labels: trainY } = train;
  const { features: testX, labels: testY } = test;
  const D = dim;
  const { epochs, warmupEpochs: warmup, batch, weightDecay: wd, momentum: mom } = cfg;
  const lr = (cfg.baseLr * batch) / 256;
  const trust = cfg.trustCoefficient;
  const N = trainY.length;
  if (trainX.length !== N * D || testX.length !== testY.length * D || N === 0) {
    throw new RangeError(
      `Cannot train a linear probe on [${trainX.length / D}, ${D}] features with ${N} labels ` +
        `(test: ${testX.length / D} rows, ${testY.length} labels)`,
    );
  }
  let maxLabel = 0;
  for (const y of [...trainY, ...testY]) maxLabel = Math.max(maxLabel, y);
  const K = cfg.numClasses || maxLabel + 1;
  for (const y of [...trainY, ...testY]) {
    if (y < 0 || y >= K) {
      throw new RangeError(`Cannot train a linear probe: label ${y} is outside [0, ${K})`);
    }
  }
  const stats = batchNormStats(trainX, D, cfg.eps);
  const xs = normalized(trainX, D, stats);
  const rng = new Rng(cfg.seed);
  const W = new Float64Array(K * D);
  for (let i = 0; i < W.length; i++) W[i] = 0.01 * rng.normal();
  const b = new Float64Array(K);
  const muW = new Float64Array(K * D);
  const muB = new Float64Array(K);
  const gW = new Float64Array(K * D);
  const gB = new Float64Array(K);
  const p = new Float64Array(K);
  const p1 = new Float64Array(K);
  const iters = Math.ceil(N / batch);
  const order = new Int32Array(N).map((_, i) => i);
  let steps = 0;
  let lastLoss = NaN;
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = N - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    let lossSum = 0;
    for (let it = 0; it < iters; it++) {
      const r0 = it * batch;
      const rows = Math.min(batch, N - r0);
      lossSum = batchGradient(
        xs,
        trainY,
        order.subarray(r0, r0 + rows),
        W,
        b,
        gW,
        gB,
        p,
        p1,
        lossSum,
      );
      const lrNow = lrAt(epoch + it / iters, {
        lr,
        warmupEpochs: warmup,
        stageEpochs: epochs,
        minLr: 0,
      });
      larsStep(W, gW, muW, { lr: lrNow, wd, mom, trust, lars: true });
      larsStep(b, gB, muB, { lr: lrNow, wd: 0, mom, trust, lars: false });
      steps++;
    }
    lastLoss = lossSum / N;
  }
  const xt = normalized(testX, D, stats);
  return {
    trainTop1: top1(xs, trainY, W, b, K),
    testTop1: top1(xt, testY, W, b, K),
    lr,
    steps,
    lastLoss,
  };
}

/**
 * One LARS step (MAE `util/lars.py`): for a weight, `g ← (g + wd·p)·q` with the trust ratio
 * `q = trust·‖p‖/‖g + wd·p‖` (1 when either norm is 0); biases skip both. Then
 * `μ ← momentum·μ + g`, `p ← p − lr·μ`.
 */
export function larsStep(
  p: Float64Array,
  g: Float64Array,
  mu: Float64Array,
  o: { lr: number; wd: number; mom: number; trust: number; lars: boolean },
): void {
  let q = 1;
  if (o.lars) {
    let pn = 0;
    let un = 0;
    for (let i = 0; i < p.length; i++) {
      g[i] += o.wd * p[i];
      pn += p[i] * p[i];
      un += g[i] * g[i];
    }
    if (pn > 0 && un > 0) q = (o.trust * Math.sqrt(pn)) / Math.sqrt(un);
  }
  for (let i = 0; i < p.length; i++) {
    mu[i] = o.mom * mu[i] + g[i] * q;
    p[i] -= o.lr * mu[i];
  }
}

/** Every setting of a linear probe: what to embed, and the head's recipe (MAE `main_linprobe.py`). */
export interface LinprobeConfig {
  /** Checkpoint path ({@link linprobeCheckpoint}; unused by {@link trainLinearProbe}). */
  checkpoint: string;
  /** Dataset spec. */
  data: string;
  /** First N training images (0: all). */
  trainLimit: number;
  /** First N test images (0: all). */
  testLimit: number;
  /** Epochs. */
  epochs: number;
  /** Linear warmup epochs. */
  warmupEpochs: number;
  /** Batch size; lr = baseLr × batch/256. */
  batch: number;
  /** LARS base LR. */
  baseLr: number;
  /** Weight decay on the head weight (not the bias). */
  weightDecay: number;
  /** Seed of the head init and the batch order. */
  seed: number;
  /** Heads when the checkpoint does not store them (0: stored, else D/64). */
  heads: number;
  /** LARS momentum. */
  momentum: number;
  /** LARS trust coefficient. */
  trustCoefficient: number;
  /** BatchNorm epsilon. */
  eps: number;
  /** Classes (0: one more than the largest label). */
  numClasses: number;
  /** Images per forward pass when embedding. */
  embedBatch: number;
}

/** The defaults: the reference recipe (MAE `main_linprobe.py`). */
export const LINPROBE_DEFAULTS: Readonly<LinprobeConfig> = Object.freeze({
  checkpoint: "",
  data: "shapes",
  trainLimit: 0,
  testLimit: 0,
  epochs: 90,
  warmupEpochs: 10,
  batch: 256,
  baseLr: 0.1,
  weightDecay: 0,
  seed: 0,
  heads: 0,
  momentum: 0.9,
  trustCoefficient: 0.001,
  eps: 1e-6,
  numClasses: 0,
  embedBatch: 64,
});

/** Help and checks of every linear-probe setting: the resolver, `--flags` and `--help`. */
export const LINPROBE_CONFIG: Config<LinprobeConfig> = defineConfig<LinprobeConfig>({
  what: "the linear probe",
  defaults: LINPROBE_DEFAULTS,
  settings: {
    checkpoint: { help: "ViT checkpoint (.safetensors, timm names)" },
    data: { help: "shapes | fashion-mnist[:DIR] | DIR" },
    trainLimit: { help: "first N training images (0: all)", check: nonNegativeInt },
    testLimit: { help: "first N test images (0: all)", check: nonNegativeInt },
    epochs: { help: "epochs", check: positiveInt },
    warmupEpochs: { help: "linear warmup epochs", check: nonNegative },
    batch: { help: "batch size; lr = base-lr × batch/256", check: positiveInt },
    baseLr: { help: "LARS base LR (raise it for few steps)", check: nonNegative },
    weightDecay: { help: "weight decay on the head weight", check: nonNegative },
    seed: { help: "head init and batch order", check: nonNegativeInt },
    heads: {
      help: "attention heads when the checkpoint does not store them (0: D/64)",
      check: nonNegativeInt,
    },
    momentum: { help: "LARS momentum", check: fraction },
    trustCoefficient: { help: "LARS trust coefficient", check: positive },
    eps: { help: "BatchNorm epsilon", check: positive },
    numClasses: { help: "classes (0: one more than the largest label)", check: nonNegativeInt },
    embedBatch: { help: "images per forward pass when embedding", check: positiveInt },
  },
});

/** `LINPROBE_DEFAULTS` with checked overrides; an unknown key or a wrong type is a TypeError. */
export function resolveLinprobe(overrides: Partial<Record<string, unknown>>): LinprobeConfig {
  return LINPROBE_CONFIG.resolve(overrides);
}

/** Embeds both splits (cls token after the final norm) and trains the probe. */
export async function linprobeCheckpoint(
  be: Backend,
  cfg: LinprobeConfig,
): Promise<LinprobeResult & { train: number; test: number; dim: number }> {
  if (!cfg.checkpoint) {
    throw new RangeError(
      "Cannot run the linear probe without a checkpoint: give --checkpoint PATH",
    );
  }
  const common = {
    checkpoint: cfg.checkpoint,
    data: cfg.data,
    pool: "cls" as const,
    heads: cfg.heads || undefined,
    batch: cfg.embedBatch,
  };
  const trainLimit = cfg.trainLimit || undefined, testLimit = cfg.testLimit || undefined;
  const tr = await embedDataset(be, { ...common, split: "train", limit: trainLimit });
  const te = await embedDataset(be, { ...common, split: "test", limit: testLimit });
  const r = trainLinearProbe(tr, te, tr.dim, cfg);
  return { ...r, train: tr.count, test: te.count, dim: tr.dim };
}
