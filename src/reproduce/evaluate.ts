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
import { readProgressJson, writeJsonAtomic } from "../util/atomic.ts";
import { readCheckpoint, vitWeights } from "../io/checkpoint_file.ts";
import { type AnalysisReport, analyzeCheckpoints } from "../eval/analyze.ts";
import { Embedder } from "../eval/embed.ts";
import { knnClassify } from "../eval/knn.ts";
import { similarityGemm } from "../eval/knn_file.ts";
import type { VitConfig } from "../models/vit_config.ts";
import { vitParamSpecs } from "../models/vit.ts";
import { ParamSet } from "../nn/params.ts";
import { Rng } from "../util/rng.ts";
import { finetune, type FinetuneConfig, resolveFinetune } from "../train/finetune.ts";
import { balancedSubset, gatherLabels, gatherRows } from "../data/label_subset.ts";
import { type ProbeJob, trainProbes } from "./probes.ts";
import { finetuneProtocol, labelKey, type ReproduceBudget, WARMUP_FRACTION } from "./budgets.ts";
import type {
  CurvePoint,
  EvalTimes,
  LabelFigures,
  RowPlan,
  RowResult,
  SeedPlan,
  TrainedRow,
} from "./types.ts";

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

  /** Training images embedded once per checkpoint (the first N). */
  get evalPool(): number {
    return Math.min(this.budget.evalPool || Infinity, this.trainDs.count);
  }

  /** The k-NN bank: the first N of the pool. */
  get knnBank(): number {
    return Math.min(this.budget.knnBank, this.evalPool);
  }

  /**
   * The pool indices of the class-balanced subset of `labels` images of `seed` (every pool
   * image for 0): the same for every row of a seed, so gains are paired.
   */
  labelSubset(labels: number, seed: number): Int32Array {
    return balancedSubset(this.trainDs.labels, {
      n: labels,
      pool: this.evalPool,
      numClasses: this.numClasses,
      seed,
    });
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
 * The `i`-th fine-tuning of a row under budget `b` (its labels from `b.finetuneLabels[i]`,
 * outputs in `<dir>/finetune-<labels>/`, no classifier kept): what `finetuneCommand` in
 * report.ts spells as a command.
 */
export function rowFinetuneConfig(
  b: ReproduceBudget,
  i: number,
  o: { checkpoint: string; data: string; dir: string; testLimit: number; seed: number },
): FinetuneConfig {
  const epochs = b.finetuneEpochs[i];
  return resolveFinetune({
    checkpoint: o.checkpoint,
    data: o.data,
    runsDir: o.dir,
    name: `finetune-${labelKey(b.finetuneLabels[i])}`,
    epochs,
    warmupEpochs: +(WARMUP_FRACTION * epochs).toPrecision(6),
    batch: b.finetuneBatch,
    baseLr: b.finetuneBaseLr,
    ...(b.finetuneMix ? {} : { mixup: 0, cutmix: 0 }),
    cropScale: [...b.finetuneCropScale],
    trainLimit: b.evalPool,
    labels: b.finetuneLabels[i],
    labelSeed: b.finetuneLabels[i] ? o.seed : 0, // (no subset: the seed draws nothing)
    testLimit: o.testLimit,
    seed: o.seed,
    save: false,
  });
}

/** One fine-tuning figure and what it was measured with. */
interface FinetunePart {
  /** Test top-1 (%). */
  top1: number;
  /** {@link finetuneProtocol} of the settings. */
  protocol: string;
  /** Wall seconds. */
  s: number;
}

/** What eval.json keeps (each part once measured). */
interface EvalProgress {
  /** k-NN on the bank, cls / mean (the frozen part: measured together, from one embedding). */
  knnCls?: number;
  knnMean?: number;
  /** Linear probes by label key. */
  probeCls?: LabelFigures;
  probeMean?: LabelFigures;
  /** The probes' label counts the frozen part was measured with. */
  probeLabels?: number[];
  /** Fine-tuning by label key. */
  finetune?: Record<string, FinetunePart>;
  /** Seconds of the frozen part: embedding, k-NN, probes. */
  embedS?: number;
  knnS?: number;
  probeS?: number;
}

/** The linear probe of pool features `[pool, D]` on the subset `idx` (a job of `trainProbes`). */
function probeJob(
  ctx: EvalContext,
  x: { train: Float32Array; test: Float32Array },
  o: { dim: number; seed: number; idx: Int32Array },
): Omit<ProbeJob, "id"> {
  return {
    train: {
      features: gatherRows(x.train, o.dim, o.idx),
      labels: gatherLabels(ctx.labels("train", ctx.evalPool), o.idx),
    },
    test: { features: x.test, labels: ctx.labels("test", ctx.evalTest) },
    dim: o.dim,
    config: {
      epochs: ctx.budget.probeEpochs,
      baseLr: ctx.budget.probeBaseLr,
      numClasses: ctx.numClasses,
      seed: o.seed,
    },
  };
}

/** Probes side by side: one worker per core (each probe is single-threaded). */
function probeWorkers(): number {
  return navigator.hardwareConcurrency ?? 1;
}

/** k-NN top-1 with the pool's first `knnBank` features as the bank (one GEMM). */
function knn(ctx: EvalContext, x: { train: Float32Array; test: Float32Array }, dim: number) {
  const n = ctx.knnBank;
  return knnClassify(
    { features: x.train.subarray(0, n * dim), labels: ctx.labels("train", n) },
    { features: x.test, labels: ctx.labels("test", ctx.evalTest) },
    { dim, numClasses: ctx.numClasses, gemm: similarityGemm() },
  ).top1;
}

/**
 * The frozen-feature part of an evaluation from one embedding of the pool and the test set:
 * k-NN on the bank and a linear probe at each label count, for each feature (cls, mean).
 */
async function frozenPart(
  ctx: EvalContext,
  feats: { name: "cls" | "mean"; train: Float32Array; test: Float32Array }[],
  o: { dim: number; seed: number },
): Promise<{
  knn: Record<string, number>;
  probe: Record<string, LabelFigures>;
  knnS: number;
  probeS: number;
}> {
  const out = { knn: {} as Record<string, number>, probe: {} as Record<string, LabelFigures> };
  let t = performance.now();
  for (const f of feats) out.knn[f.name] = knn(ctx, f, o.dim);
  const knnS = (performance.now() - t) / 1000;
  t = performance.now();
  const jobs = feats.flatMap((f) =>
    ctx.budget.probeLabels.map((n) => ({
      feature: f.name,
      key: labelKey(n),
      job: probeJob(ctx, f, { dim: o.dim, seed: o.seed, idx: ctx.labelSubset(n, o.seed) }),
    }))
  );
  const results = await trainProbes(jobs.map((j) => j.job), probeWorkers());
  for (const f of feats) out.probe[f.name] = {};
  jobs.forEach((j, i) => out.probe[j.feature][j.key] = results[i].testTop1);
  return { ...out, knnS, probeS: (performance.now() - t) / 1000 };
}

/** The frozen part is missing, or was measured with other probe label counts. */
function needsFrozen(ev: EvalProgress, b: ReproduceBudget): boolean {
  return ev.knnCls === undefined ||
    JSON.stringify(ev.probeLabels ?? null) !== JSON.stringify(b.probeLabels);
}

/**
 * Evaluates a trained row: the pool and the test set embedded once (cls and mean features),
 * k-NN and the linear probes at each label count from them, then one fine-tuning per entry
 * of `finetuneLabels`; parts already in eval.json are kept. Null when `signal` stopped it
 * between parts.
 */
export async function evaluateRow(
  ctx: EvalContext,
  plan: RowPlan,
  trained: TrainedRow,
  hooks: { signal?: AbortSignal; log: (line: string) => void },
): Promise<RowResult | null> {
  const path = `${plan.dir}/eval.json`;
  const ev: EvalProgress = (await readProgressJson<EvalProgress>(path)) ?? {};
  const seed = plan.pretrain?.seed ?? Number(plan.dir.match(/seed(\d+)/)?.[1] ?? 0);
  const b = ctx.budget;
  if (needsFrozen(ev, b)) {
    const ts = performance.now();
    const ckpt = await readCheckpoint(plan.checkpoint);
    const w = vitWeights(ckpt, ctx.student, { file: plan.checkpoint });
    const tr = await ctx.features(w, "train", ctx.evalPool);
    const te = await ctx.features(w, "test", ctx.evalTest);
    const embedS = (performance.now() - ts) / 1000;
    const r = await frozenPart(ctx, [
      { name: "cls", train: tr.cls, test: te.cls },
      { name: "mean", train: tr.mean, test: te.mean },
    ], { dim: ctx.student.embedDim, seed });
    Object.assign(ev, {
      knnCls: r.knn.cls,
      knnMean: r.knn.mean,
      probeCls: r.probe.cls,
      probeMean: r.probe.mean,
      probeLabels: [...b.probeLabels],
      embedS,
      knnS: r.knnS,
      probeS: r.probeS,
    });
    await writeJsonAtomic(path, ev);
  }
  const ft = ev.finetune ??= {};
  // a figure from other fine-tuning settings (or from a label count no longer asked) is stale
  const want = new Map(b.finetuneLabels.map((n, i) => [labelKey(n), finetuneProtocol(b, i)]));
  for (const [key, part] of Object.entries(ft)) {
    if (want.get(key) !== part.protocol) {
      hooks.log(`${plan.row} (seed ${seed}): fine-tuning settings changed; measuring again`);
      delete ft[key];
    }
  }
  for (let i = 0; i < b.finetuneLabels.length && ctx.finetune; i++) {
    const key = labelKey(b.finetuneLabels[i]);
    if (ft[key]) continue;
    if (hooks.signal?.aborted) return null;
    const ts = performance.now();
    const cfg = rowFinetuneConfig(b, i, {
      checkpoint: plan.checkpoint,
      data: ctx.data,
      dir: plan.dir,
      testLimit: ctx.evalTest,
      seed,
    });
    const top1 = (await finetune(ctx.be, cfg, { log: () => {} })).top1;
    ft[key] = { top1, protocol: finetuneProtocol(b, i), s: (performance.now() - ts) / 1000 };
    await writeJsonAtomic(path, ev);
  }
  const result: RowResult = {
    row: plan.row,
    recipe: plan.recipe,
    seed,
    command: plan.command,
    checkpoint: plan.checkpoint,
    boundaries: plan.boundaries,
    curve: trained.curve,
    finetune: Object.fromEntries(Object.entries(ft).map(([k, p]) => [k, p.top1])),
    probeCls: ev.probeCls!,
    probeMean: ev.probeMean!,
    knnCls: ev.knnCls!,
    knnMean: ev.knnMean!,
    pretrainS: trained.pretrainS,
    teacherS: 0,
    evalS: 0,
    times: {
      curve: trained.curveS,
      embed: ev.embedS ?? 0,
      knn: ev.knnS ?? 0,
      probe: ev.probeS ?? 0,
      finetune: Object.fromEntries(Object.entries(ft).map(([k, p]) => [k, p.s])),
    },
  };
  result.evalS = totalEvalS(result.times);
  hooks.log(`${plan.row} (seed ${seed}): ${figuresLine(result)}`);
  return result;
}

/** Every evaluation second of `t` (curve, embedding, k-NN, probes, fine-tunings). */
export function totalEvalS(t: EvalTimes): number {
  return t.curve + t.embed + t.knn + t.probe +
    Object.values(t.finetune).reduce((a, x) => a + x, 0);
}

/** A row's figures in one log line. */
function figuresLine(r: RowResult): string {
  const f = (v: number | null | undefined) => v?.toFixed(1) ?? "–";
  const by = (x: LabelFigures | null) =>
    x ? Object.entries(x).map(([k, v]) => `${k}: ${f(v)}`).join(", ") : "–";
  return `k-NN cls ${f(r.knnCls)} mean ${f(r.knnMean)}; probe cls ${by(r.probeCls)}; probe ` +
    `mean ${by(r.probeMean)}; fine-tune ${by(r.finetune)}`;
}

/**
 * The raw-pixel baseline: k-NN and the linear probes on the normalised pixels. Measured once
 * per reproduction (`<dir>/raw-pixels/`) with the label subsets of the first seed: k-NN does
 * not depend on the seed, and the probe's seed only moves its init, batch order and subsets.
 */
export async function evaluateRawPixels(
  ctx: EvalContext,
  o: { seed: number; dir: string; log: (line: string) => void },
): Promise<RowResult> {
  const dir = `${o.dir}/raw-pixels`;
  const path = `${dir}/eval.json`;
  let ev = await readProgressJson<EvalProgress & { seed?: number }>(path);
  if (!ev || needsFrozen(ev, ctx.budget)) {
    const ts = performance.now();
    const x = { train: ctx.pixels("train", ctx.evalPool), test: ctx.pixels("test", ctx.evalTest) };
    const P = x.train.length / Math.max(ctx.evalPool, 1);
    const embedS = (performance.now() - ts) / 1000;
    const r = await frozenPart(ctx, [{ name: "cls", ...x }], { dim: P, seed: o.seed });
    ev = {
      knnCls: r.knn.cls,
      probeCls: r.probe.cls,
      probeLabels: [...ctx.budget.probeLabels],
      embedS,
      knnS: r.knnS,
      probeS: r.probeS,
      seed: o.seed,
    };
    await Deno.mkdir(dir, { recursive: true });
    await writeJsonAtomic(path, ev);
  }
  const times = {
    curve: 0,
    embed: ev.embedS ?? 0,
    knn: ev.knnS ?? 0,
    probe: ev.probeS ?? 0,
    finetune: {},
  };
  const result: RowResult = {
    row: "raw pixels",
    recipe: "no encoder: the normalised pixels (measured once)",
    seed: ev.seed ?? o.seed,
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
    evalS: totalEvalS(times),
    times,
  };
  o.log(`raw pixels (probe seed ${result.seed}): ${figuresLine(result)}`);
  return result;
}

/** Attention distance, singular values and CKA of the seed's rows (once; `analyze/`). */
export async function analyzeSeed(
  ctx: EvalContext,
  plan: SeedPlan,
  log: (line: string) => void,
): Promise<void> {
  const out = `${plan.seedDir}/analyze`;
  const labels = plan.rows.map((r) => r.row);
  const done = await readProgressJson<AnalysisReport>(`${out}/analysis.json`);
  // rows added later (`--rows`) are analysed again with the rest
  if (done && JSON.stringify(done.models.map((m) => m.label)) === JSON.stringify(labels)) return;
  log(`seed ${plan.seed}: analysing (attention distance, singular values, CKA)`);
  await analyzeCheckpoints(ctx.be, {
    checkpoints: plan.rows.map((r) => r.checkpoint),
    labels,
    data: ctx.data,
    limit: ctx.budget.analyzeImages,
    outDir: out,
  });
}
