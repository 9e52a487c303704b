/**
 * The evaluation of a reproduction's rows: the datasets, pipelines and frozen encoder every
 * evaluation shares ({@link EvalContext}: features and k-NN curve points), then each row's
 * k-NN and linear probe on the cls token and on the mean of the patch tokens and its
 * fine-tuning, kept in `eval.json` part by part ({@link evaluateRow}); raw pixels; the
 * per-seed analysis.
 *
 * @module
 */

import type { Backend } from "../backend/backend.ts";
import type { Dataset } from "../data/dataset.ts";
import { deriveSeed, ImagePipeline } from "../data/pipeline.ts";
import { readProgressJson, writeJsonAtomic } from "../io/atomic.ts";
import { readCheckpoint, vitWeights } from "../io/checkpoint_file.ts";
import { analyzeCheckpoints } from "../eval/analyze.ts";
import { Embedder } from "../eval/embed.ts";
import { knnClassify } from "../eval/knn.ts";
import { similarityGemm } from "../eval/knn_file.ts";
import type { VitConfig } from "../models/vit_config.ts";
import { vitParamSpecs } from "../models/vit.ts";
import { ParamSet } from "../nn/params.ts";
import { Rng } from "../util/rng.ts";
import { finetune, type FinetuneConfig, resolveFinetune } from "../train/finetune.ts";
import { trainLinearProbe } from "../train/linprobe.ts";
import { finetuneProtocol, type ReproduceBudget, WARMUP_FRACTION } from "./budgets.ts";
import type { CurvePoint, RowPlan, RowResult, SeedPlan, TrainedRow } from "./types.ts";

/** Datasets, pipelines and a frozen encoder shared by every evaluation of a reproduction. */
export class EvalContext {
  /** The backend. */
  readonly be: Backend;
  /** Train split. */
  readonly trainDs: Dataset;
  /** Test split. */
  readonly testDs: Dataset;
  /** The student encoder of every row. */
  readonly student: VitConfig;
  /** Normalisation of every row. */
  readonly stats: { mean: number[]; std: number[] };
  /** The sizes. */
  readonly budget: ReproduceBudget;
  /** The dataset spec. */
  readonly data: string;
  /** Fine-tune the rows (else fine-tuning is left out). */
  readonly finetune: boolean;
  /** Classes. */
  readonly numClasses: number;
  readonly #train: ImagePipeline;
  readonly #test: ImagePipeline;
  readonly #embedder: Embedder;
  readonly #initPoints = new Map<number, CurvePoint>();

  /** Opens the pipelines and allocates the encoder. */
  constructor(
    be: Backend,
    o: {
      trainDs: Dataset;
      testDs: Dataset;
      student: VitConfig;
      stats: { mean: number[]; std: number[] };
      budget: ReproduceBudget;
      data: string;
      finetune: boolean;
    },
  ) {
    this.be = be;
    this.trainDs = o.trainDs;
    this.testDs = o.testDs;
    this.student = o.student;
    this.stats = o.stats;
    this.budget = o.budget;
    this.data = o.data;
    this.finetune = o.finetune;
    this.numClasses = o.trainDs.classNames.length;
    const { imgSize, inChans } = o.student;
    this.#train = new ImagePipeline(o.trainDs, imgSize, inChans, o.stats.mean, o.stats.std);
    this.#test = new ImagePipeline(o.testDs, imgSize, inChans, o.stats.mean, o.stats.std);
    this.#embedder = new Embedder(be, o.student, 64);
  }

  /** Training images evaluated (the first N). */
  get evalTrain(): number {
    return Math.min(this.budget.evalTrain, this.trainDs.count);
  }

  /** Test images evaluated (the first N; the whole split for 0). */
  get evalTest(): number {
    return Math.min(this.budget.evalTest || Infinity, this.testDs.count);
  }

  /** cls and mean-of-patch features `[n, D]` of the first `n` images of a split. */
  async features(
    weights: ReadonlyMap<string, Float32Array>,
    split: "train" | "test",
    n: number,
  ): Promise<{ cls: Float32Array; mean: Float32Array }> {
    this.#embedder.load(weights);
    const pipe = split === "train" ? this.#train : this.#test;
    return await this.#embedder.embedPooled(n, (i) => pipe.eval(i), ["cls", "mean"]);
  }

  /** Raw pixels `[n, C·H·W]` (normalised) of the first `n` images of a split. */
  pixels(split: "train" | "test", n: number): Float32Array {
    const pipe = split === "train" ? this.#train : this.#test;
    const { inChans: C, imgSize: S } = this.student;
    const P = C * S * S;
    const x = new Float32Array(n * P);
    for (let i = 0; i < n; i++) x.set(pipe.eval(i), i * P);
    return x;
  }

  /** Labels of the first `n` images of a split. */
  labels(split: "train" | "test", n: number): Int32Array {
    return (split === "train" ? this.trainDs : this.testDs).labels.slice(0, n);
  }

  /** A curve point: k-NN (cls and mean) on the budget's curve images. */
  async curvePoint(weights: ReadonlyMap<string, Float32Array>, epoch: number): Promise<CurvePoint> {
    const nTr = Math.min(this.budget.curveTrain, this.trainDs.count);
    const nTe = Math.min(this.budget.curveTest, this.testDs.count);
    const tr = await this.features(weights, "train", nTr);
    const te = await this.features(weights, "test", nTe);
    const knn = (a: Float32Array, b: Float32Array) =>
      knnClassify(
        { features: a, labels: this.labels("train", nTr) },
        { features: b, labels: this.labels("test", nTe) },
        { dim: this.student.embedDim, numClasses: this.numClasses, gemm: similarityGemm() },
      ).top1;
    return { epoch, knnCls: knn(tr.cls, te.cls), knnMean: knn(tr.mean, te.mean) };
  }

  /**
   * The student's stage-0 init for `seed`: the weights every pre-training row of that seed
   * starts from (encoder first in the student's table, drawn from the same stream).
   */
  initWeights(seed: number): ParamSet {
    const ps = new ParamSet(this.be, vitParamSpecs(this.student), {
      grads: false,
      label: "random-init",
    });
    ps.init(new Rng(deriveSeed(seed, 1, 0)));
    return ps;
  }

  /** The curve's epoch-0 point of `seed` (the init, measured once). */
  async initPoint(seed: number): Promise<CurvePoint> {
    let p = this.#initPoints.get(seed);
    if (!p) {
      const ps = this.initWeights(seed);
      p = await this.curvePoint(await ps.toHost(), 0);
      ps.dispose();
      this.#initPoints.set(seed, p);
    }
    return p;
  }

  /** Nothing to free on the host; the backend owns the encoder buffers. */
  dispose(): void {}
}

/**
 * The fine-tuning of a row under budget `b` (outputs in `<dir>/finetune/`, no classifier
 * kept): what `finetuneCommand` in report.ts spells as a command.
 */
export function rowFinetuneConfig(
  b: ReproduceBudget,
  o: { checkpoint: string; data: string; dir: string; testLimit: number; seed: number },
): FinetuneConfig {
  return resolveFinetune({
    checkpoint: o.checkpoint,
    data: o.data,
    runsDir: o.dir,
    name: "finetune",
    epochs: b.finetuneEpochs,
    warmupEpochs: WARMUP_FRACTION * b.finetuneEpochs,
    batch: b.batch,
    baseLr: b.finetuneBaseLr,
    ...(b.finetuneMix ? {} : { mixup: 0, cutmix: 0 }),
    trainLimit: b.finetuneLimit,
    testLimit: o.testLimit,
    seed: o.seed,
    save: false,
  });
}

/** What eval.json keeps (each part once measured). */
interface EvalProgress {
  knnCls?: number;
  knnMean?: number;
  probeCls?: number;
  probeMean?: number;
  finetune?: number;
  /** {@link finetuneProtocol} of the budget `finetune` was measured with. */
  finetuneProtocol?: string;
  evalS: number;
}

/** Linear probe test top-1 of features `[n, D]` (the budget's recipe). */
function probe(
  ctx: EvalContext,
  x: { train: Float32Array; test: Float32Array },
  o: { dim: number; seed: number },
): number {
  const nTr = ctx.evalTrain;
  const nTe = ctx.evalTest;
  return trainLinearProbe(
    { features: x.train, labels: ctx.labels("train", nTr) },
    { features: x.test, labels: ctx.labels("test", nTe) },
    o.dim,
    {
      epochs: ctx.budget.probeEpochs,
      baseLr: ctx.budget.probeBaseLr,
      numClasses: ctx.numClasses,
      seed: o.seed,
    },
  ).testTop1;
}

function knn(ctx: EvalContext, x: { train: Float32Array; test: Float32Array }, dim: number) {
  return knnClassify(
    { features: x.train, labels: ctx.labels("train", ctx.evalTrain) },
    { features: x.test, labels: ctx.labels("test", ctx.evalTest) },
    { dim, numClasses: ctx.numClasses, gemm: similarityGemm() },
  ).top1;
}

/**
 * Evaluates a trained row: k-NN and linear probe on both features, then fine-tuning; parts
 * already in eval.json are kept. Null when `signal` stopped it between parts.
 */
export async function evaluateRow(
  ctx: EvalContext,
  plan: RowPlan,
  trained: TrainedRow,
  hooks: { signal?: AbortSignal; log: (line: string) => void },
): Promise<RowResult | null> {
  const path = `${plan.dir}/eval.json`;
  const ev: EvalProgress = (await readProgressJson<EvalProgress>(path)) ?? { evalS: 0 };
  const seed = plan.pretrain?.seed ?? Number(plan.dir.match(/seed(\d+)/)?.[1] ?? 0);
  const b = ctx.budget;
  if (ev.knnCls === undefined) {
    const ts = performance.now();
    const ckpt = await readCheckpoint(plan.checkpoint);
    const w = vitWeights(ckpt, ctx.student, { file: plan.checkpoint });
    const tr = await ctx.features(w, "train", ctx.evalTrain);
    const te = await ctx.features(w, "test", ctx.evalTest);
    const D = ctx.student.embedDim;
    ev.knnCls = knn(ctx, { train: tr.cls, test: te.cls }, D);
    ev.knnMean = knn(ctx, { train: tr.mean, test: te.mean }, D);
    ev.probeCls = probe(ctx, { train: tr.cls, test: te.cls }, { dim: D, seed });
    ev.probeMean = probe(ctx, { train: tr.mean, test: te.mean }, { dim: D, seed });
    ev.evalS += (performance.now() - ts) / 1000;
    await writeJsonAtomic(path, ev);
  }
  if (hooks.signal?.aborted) return null;
  // a figure from other fine-tuning settings (or from before they were recorded) is stale
  const protocol = finetuneProtocol(b);
  if (ev.finetune !== undefined && ev.finetuneProtocol !== protocol) {
    hooks.log(`${plan.row} (seed ${seed}): fine-tuning settings changed; measuring again`);
    delete ev.finetune;
    delete ev.finetuneProtocol;
  }
  if (ev.finetune === undefined && ctx.finetune) {
    const ts = performance.now();
    const cfg = rowFinetuneConfig(b, {
      checkpoint: plan.checkpoint,
      data: ctx.data,
      dir: plan.dir,
      testLimit: ctx.evalTest,
      seed,
    });
    const ft = await finetune(ctx.be, cfg, { log: () => {} });
    ev.finetune = ft.top1;
    ev.finetuneProtocol = protocol;
    ev.evalS += (performance.now() - ts) / 1000;
    await writeJsonAtomic(path, ev);
  }
  const f = (v: number | undefined) => v?.toFixed(1) ?? "–";
  hooks.log(
    `${plan.row} (seed ${seed}): fine-tune ${f(ev.finetune)}, probe cls ${f(ev.probeCls)} mean ` +
      `${f(ev.probeMean)}, k-NN cls ${f(ev.knnCls)} mean ${f(ev.knnMean)}`,
  );
  return {
    row: plan.row,
    recipe: plan.recipe,
    seed,
    command: plan.command,
    checkpoint: plan.checkpoint,
    boundaries: plan.boundaries,
    curve: trained.curve,
    finetune: ev.finetune ?? null,
    probeCls: ev.probeCls!,
    probeMean: ev.probeMean!,
    knnCls: ev.knnCls!,
    knnMean: ev.knnMean!,
    pretrainS: trained.pretrainS,
    teacherS: 0,
    evalS: ev.evalS + trained.curveS,
  };
}

/**
 * The raw-pixel baseline: k-NN and linear probe on the normalised pixels. Measured once per
 * reproduction (`<dir>/raw-pixels/`): k-NN does not depend on the seed, and the probe's seed
 * (that of the first run) only moves its init and batch order.
 */
export async function evaluateRawPixels(
  ctx: EvalContext,
  o: { seed: number; dir: string; log: (line: string) => void },
): Promise<RowResult> {
  const dir = `${o.dir}/raw-pixels`;
  const path = `${dir}/eval.json`;
  let ev = await readProgressJson<EvalProgress & { seed?: number }>(path);
  if (!ev) {
    const ts = performance.now();
    const x = { train: ctx.pixels("train", ctx.evalTrain), test: ctx.pixels("test", ctx.evalTest) };
    const P = x.train.length / Math.max(ctx.evalTrain, 1);
    ev = { knnCls: knn(ctx, x, P), probeCls: probe(ctx, x, { dim: P, seed: o.seed }), evalS: 0 };
    ev.evalS = (performance.now() - ts) / 1000;
    ev.seed = o.seed;
    await Deno.mkdir(dir, { recursive: true });
    await writeJsonAtomic(path, ev);
  }
  const seed = ev.seed ?? o.seed;
  o.log(
    `raw pixels (probe seed ${seed}): probe ${ev.probeCls!.toFixed(1)}, k-NN ${
      ev.knnCls!.toFixed(1)
    }`,
  );
  return {
    row: "raw pixels",
    recipe: "no encoder: the normalised pixels (measured once)",
    seed,
    command: "",
    checkpoint: "",
    boundaries: [0],
    curve: [],
    finetune: null,
    probeCls: ev.probeCls!,
    probeMean: null,
    knnCls: ev.knnCls!,
    knnMean: null,
    pretrainS: 0,
    teacherS: 0,
    evalS: ev.evalS,
  };
}

/** Attention distance, singular values and CKA of the seed's rows (once; `analyze/`). */
export async function analyzeSeed(
  ctx: EvalContext,
  plan: SeedPlan,
  log: (line: string) => void,
): Promise<void> {
  const out = `${plan.seedDir}/analyze`;
  if (await readProgressJson(`${out}/analysis.json`)) return;
  log(`seed ${plan.seed}: analysing (attention distance, singular values, CKA)`);
  await analyzeCheckpoints(ctx.be, {
    checkpoints: plan.rows.map((r) => r.checkpoint),
    labels: plan.rows.map((r) => r.row),
    data: ctx.data,
    limit: ctx.budget.analyzeImages,
    outDir: out,
  });
}
