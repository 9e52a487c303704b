/**
 * The rows of a reproduction ({@link planRows}) and the resumable steps of each: a
 * pre-training run cut into chunks of `evalEvery` epochs with a k-NN curve point after each
 * ({@link runPretrainRow}), then its evaluation — k-NN and linear probe on the cls token and
 * on the mean of the patch tokens, fine-tuning — kept in `eval.json` part by part
 * ({@link evaluateRow}). Every file is written atomically, so a stop at any moment loses at
 * most the step or evaluation part in progress.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import type { Dataset } from "../data/dataset.ts";
import { deriveSeed, ImagePipeline } from "../data/pipeline.ts";
import { writeJsonAtomic } from "../io/atomic.ts";
import { readCheckpoint, vitWeights, writeCheckpoint } from "../io/checkpoint.ts";
import { readRunState, readRunStateMeta } from "../io/run_state.ts";
import { analyzeCheckpoints } from "../eval/analyze.ts";
import { Embedder } from "../eval/embedder.ts";
import { knnClassify } from "../eval/knn.ts";
import type { VitConfig } from "../models/config.ts";
import { vitParamSpecs } from "../models/vit.ts";
import { ParamSet } from "../nn/params.ts";
import { Rng } from "../util/rng.ts";
import {
  PRETRAIN_CONFIG,
  PRETRAIN_DEFAULTS,
  type PretrainConfig,
  resolvePretrain,
} from "./config.ts";
import { planBoundaries } from "./config.ts";
import { finetune, type FinetuneConfig, resolveFinetune } from "./finetune.ts";
import { trainLinearProbe } from "./linprobe.ts";
import { pretrain } from "./pretrain.ts";
import type { ReproduceBudget, ReproduceConfig } from "./reproduce.ts";

/** Warmup as a fraction of each stage (reference: 40 of 800 epochs) and of fine-tuning. */
export const WARMUP_FRACTION = 0.05;

/** One k-NN measurement during pre-training. */
export interface CurvePoint {
  /** Epochs of pre-training done. */
  epoch: number;
  /** k-NN top-1 (%) on the cls token. */
  knnCls: number;
  /** k-NN top-1 (%) on the mean of the patch tokens. */
  knnMean: number;
}

/** How one row is made. */
export interface RowPlan {
  /** Row name (also its folder under the seed's folder). */
  row: string;
  /** How it was pre-trained, in words. */
  recipe: string;
  /** Its pre-training (null: the random init, not trained). */
  pretrain: PretrainConfig | null;
  /** Stage boundaries in epochs ([0] for the random init). */
  boundaries: number[];
  /** The row's folder. */
  dir: string;
  /** The encoder evaluated. */
  checkpoint: string;
  /** The larger teacher is trained before this row. */
  teacherRun: boolean;
  /** k-NN curve during pre-training. */
  curve: boolean;
  /** The equivalent `deno task pretrain` command ("" for the random init). */
  command: string;
}

/** The rows of one seed, and the teacher run the distilled row needs. */
export interface SeedPlan {
  /** The seed. */
  seed: number;
  /** Its folder. */
  seedDir: string;
  /** The table's rows (random init first). */
  rows: RowPlan[];
  /** The larger teacher's pre-training (not a row). */
  teacher: RowPlan | null;
}

/** One row's figures for one seed (null: does not apply, e.g. fine-tuning raw pixels). */
export interface RowResult {
  /** Row name. */
  row: string;
  /** How it was pre-trained. */
  recipe: string;
  /** The seed. */
  seed: number;
  /** The equivalent pre-training command. */
  command: string;
  /** The encoder evaluated ("" for raw pixels). */
  checkpoint: string;
  /** Stage boundaries in epochs. */
  boundaries: number[];
  /** k-NN during pre-training. */
  curve: CurvePoint[];
  /** Fine-tuning test top-1 (%). */
  finetune: number | null;
  /** Linear probe test top-1 (%), cls token. */
  probeCls: number | null;
  /** Linear probe test top-1 (%), mean of the patch tokens. */
  probeMean: number | null;
  /** k-NN test top-1 (%), cls token. */
  knnCls: number | null;
  /** k-NN test top-1 (%), mean of the patch tokens. */
  knnMean: number | null;
  /** Pre-training wall seconds (training steps and run start-up, over every invocation). */
  pretrainS: number;
  /** Wall seconds of the larger teacher's pre-training (distilled row only, else 0). */
  teacherS: number;
  /** Evaluation wall seconds (curve points and the final evaluation). */
  evalS: number;
}

/** A pre-trained (or initialised) encoder and its curve. */
export interface TrainedRow {
  /** Final checkpoint. */
  checkpoint: string;
  /** k-NN during pre-training. */
  curve: CurvePoint[];
  /** Pre-training wall seconds. */
  pretrainS: number;
  /** Curve wall seconds. */
  curveS: number;
}

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
    return await this.#embedder.embedPools(n, (i) => pipe.eval(i), ["cls", "mean"]);
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
        { dim: this.student.embedDim, numClasses: this.numClasses },
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

/** `deno task pretrain` flags that reproduce `cfg` (every setting that is not the default). */
export function pretrainCommand(cfg: PretrainConfig): string {
  const flags = PRETRAIN_CONFIG.flags();
  const parts = ["deno task pretrain"];
  for (const key of Object.keys(PRETRAIN_DEFAULTS) as (keyof PretrainConfig)[]) {
    const v = cfg[key];
    const d = PRETRAIN_DEFAULTS[key];
    if (JSON.stringify(v) === JSON.stringify(d)) continue;
    const flag = Object.keys(flags).find((f) => f.replaceAll("-", "") === key.toLowerCase());
    const shown = Array.isArray(v) ? v.map((x) => +Number(x).toPrecision(6)).join(",") : v;
    parts.push(`--${flag ?? key} ${shown}`);
  }
  return parts.join(" ");
}

/** The rows of one seed: random init, mae, dBOT 1/2/3 stages, dBOT from a larger teacher. */
export function planRows(o: {
  opts: ReproduceConfig & { backend: string };
  budget: ReproduceBudget;
  seed: number;
  seedDir: string;
  stats: { mean: number[]; std: number[] };
  student: VitConfig;
}): SeedPlan {
  const { opts, budget: b, seed, seedDir } = o;
  const E = b.epochs;
  const base = {
    runsDir: seedDir,
    data: opts.data,
    model: "vit-micro",
    patchSize: 4,
    batch: b.batch,
    trainLimit: b.trainLimit,
    baseLr: opts.baseLr,
    minLr: 0,
    knnTrain: Math.min(64, b.curveTrain),
    knnTest: Math.min(64, b.curveTest),
    seed,
    backend: opts.backend,
    mean: o.stats.mean,
    std: o.stats.std,
  };
  const pre = (row: string, recipe: string, over: Record<string, unknown>, more = {}) => {
    const eps = (over.epochsPerStage as number | undefined) ?? E;
    const cfg = resolvePretrain({
      ...base,
      name: row,
      stages: 1,
      warmupEpochs: +(WARMUP_FRACTION * eps).toPrecision(6),
      ...over,
    });
    return {
      row,
      recipe,
      pretrain: cfg,
      boundaries: planBoundaries(cfg),
      dir: `${seedDir}/${row}`,
      checkpoint: `${seedDir}/${row}/final.safetensors`,
      teacherRun: false,
      curve: true,
      command: pretrainCommand(cfg),
      ...more,
    };
  };
  const teacher: RowPlan = {
    ...pre("teacher", `${b.teacherModel}, dBOT random teacher, 1 stage × ${b.teacherEpochs} ep`, {
      model: b.teacherModel,
      epochsPerStage: b.teacherEpochs,
      trainLimit: b.teacherLimit,
    }),
    curve: false,
  };
  const rows: RowPlan[] = [
    {
      row: "random init",
      recipe: "no training (the pre-training rows' stage-0 student)",
      pretrain: null,
      boundaries: [0],
      dir: `${seedDir}/random-init`,
      checkpoint: `${seedDir}/random-init/random-init.safetensors`,
      teacherRun: false,
      curve: false,
      command: "",
    },
    pre("mae", `MAE: MSE on normalised pixels, masked patches, 1 stage × ${E} ep`, {
      teacher: "pixels",
      loss: "mse",
      epochsPerStage: E,
    }),
    pre("dbot-1", `dBOT random teacher, 1 stage × ${E} ep`, { stages: 1, epochsPerStage: E }),
    pre("dbot-2", `dBOT, 2 stages × ${E / 2} ep`, { stages: 2, epochsPerStage: E / 2 }),
    pre("dbot-3", `dBOT, 3 stages × ${E / 3} ep`, { stages: 3, epochsPerStage: E / 3 }),
    pre(
      "dbot-distilled",
      `dBOT from a pre-trained ${b.teacherModel} (${b.teacherEpochs} ep on ${b.teacherLimit} ` +
        `images), 1 stage × ${E} ep`,
      { teacher: teacher.checkpoint, epochsPerStage: E },
      { teacherRun: true },
    ),
  ];
  return { seed, seedDir, rows, teacher };
}

/** The progress file of a pre-training row. */
interface RowProgress {
  curve: CurvePoint[];
  pretrainS: number;
  curveS: number;
  done: boolean;
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return null;
    throw e;
  }
}

/** The next epoch after `epoch` with a curve point: a multiple of `every`, a boundary, or the end. */
export function nextCurveEpoch(
  epoch: number,
  every: number,
  boundaries: readonly number[],
): number {
  const total = boundaries[boundaries.length - 1];
  const byEvery = (Math.floor(epoch / every) + 1) * every;
  const byBoundary = boundaries.find((b) => b > epoch) ?? total;
  return Math.min(byEvery, byBoundary, total);
}

/**
 * Pre-trains one row (or the teacher), resuming where it stopped: chunks of epochs up to the
 * next curve epoch, a k-NN point after each. Null when `signal` stopped it.
 */
export async function runPretrainRow(
  ctx: EvalContext,
  plan: RowPlan,
  hooks: { signal?: AbortSignal; prefetch?: boolean; log: (line: string) => void },
): Promise<TrainedRow | null> {
  const cfg = plan.pretrain!;
  const { log, signal } = hooks;
  const progressPath = `${plan.dir}/row.json`;
  const prog: RowProgress = (await readJson<RowProgress>(progressPath)) ??
    { curve: [], pretrainS: 0, curveS: 0, done: false };
  const result = () => ({
    checkpoint: plan.checkpoint,
    curve: prog.curve,
    pretrainS: prog.pretrainS,
    curveS: prog.curveS,
  });
  if (prog.done) {
    log(`${plan.row}: pre-training done (${prog.pretrainS.toFixed(0)} s), skipped`);
    return result();
  }
  await Deno.mkdir(plan.dir, { recursive: true });
  const total = plan.boundaries[plan.boundaries.length - 1];
  const every = plan.curve ? ctx.budget.evalEvery : total;
  const statePath = `${plan.dir}/state.safetensors`;
  const addPoint = async (weights: () => Promise<ReadonlyMap<string, Float32Array>>, e: number) => {
    if (!plan.curve || prog.curve.some((p) => p.epoch === e)) return;
    const ts = performance.now();
    const p = await ctx.curvePoint(await weights(), e);
    prog.curve.push(p);
    prog.curve.sort((a, b) => a.epoch - b.epoch);
    prog.curveS += (performance.now() - ts) / 1000;
    log(
      `  ${plan.row} epoch ${e}/${total}: k-NN cls ${p.knnCls.toFixed(1)}, mean ` +
        `${p.knnMean.toFixed(1)} (pre-training ${prog.pretrainS.toFixed(0)} s so far)`,
    );
    await writeJsonAtomic(progressPath, prog);
  };
  if (plan.curve && !prog.curve.some((p) => p.epoch === 0)) {
    prog.curve.push(await ctx.initPoint(cfg.seed));
    await writeJsonAtomic(progressPath, prog);
  }
  const quiet = (line: string) => {
    if (/resuming|interrupted|no .* yet/.test(line)) log(`  ${plan.row}: ${line}`);
  };
  log(`${plan.row}: ${plan.command}`);
  for (;;) {
    const meta = await readRunStateMeta(statePath).catch(() => null);
    const epoch = (meta?.epoch as number | undefined) ?? 0;
    const iter = (meta?.iter as number | undefined) ?? 0;
    if (
      iter === 0 && epoch > 0 && epoch < total &&
      epoch === nextCurveEpoch(epoch - 1, every, plan.boundaries)
    ) {
      // a chunk ended here, but its point was not taken (stopped in between)
      await addPoint(async () => (await readRunState(statePath))!.groups.student, epoch);
    }
    const stop = epoch < total ? nextCurveEpoch(epoch, every, plan.boundaries) - epoch : undefined;
    const ts = performance.now();
    const s = await pretrain(ctx.be, cfg, {
      resume: true,
      stopAfterEpochs: stop,
      signal,
      prefetch: hooks.prefetch,
      log: quiet,
    });
    prog.pretrainS += (performance.now() - ts) / 1000;
    await writeJsonAtomic(progressPath, prog);
    if (!s) {
      if (signal?.aborted) return null;
      continue; // the next chunk (its point is taken at the top of the loop)
    }
    await addPoint(async () => {
      const ckpt = await readCheckpoint(plan.checkpoint);
      return vitWeights(ckpt, ctx.student, { file: plan.checkpoint });
    }, total);
    prog.done = true;
    await writeJsonAtomic(progressPath, prog);
    log(`${plan.row}: pre-training done (${prog.pretrainS.toFixed(0)} s)`);
    return result();
  }
}

/** The random-init row: the seed's stage-0 student, written as a checkpoint. */
export async function writeRandomInit(
  ctx: EvalContext,
  plan: RowPlan,
  log: (line: string) => void,
): Promise<TrainedRow> {
  const seed = Number(plan.dir.match(/seed(\d+)/)?.[1] ?? 0);
  try {
    await Deno.stat(plan.checkpoint);
  } catch {
    await Deno.mkdir(plan.dir, { recursive: true });
    const ps = ctx.initWeights(seed);
    await writeCheckpoint(plan.checkpoint, ps, {
      vit: ctx.student,
      mean: ctx.stats.mean,
      std: ctx.stats.std,
    });
    ps.dispose();
    log(`${plan.row}: wrote ${plan.checkpoint}`);
  }
  return { checkpoint: plan.checkpoint, curve: [], pretrainS: 0, curveS: 0 };
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

/**
 * The fine-tuning of a row under budget `b` (outputs in `<dir>/finetune/`, no classifier
 * kept): what `finetuneCommand` in reproduce_report.ts spells as a command.
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
    {
      dim: o.dim,
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
    { dim, numClasses: ctx.numClasses },
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
  const ev: EvalProgress = (await readJson<EvalProgress>(path)) ?? { evalS: 0 };
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
    const ft = await finetune(ctx.be, cfg, () => {});
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
  let ev = await readJson<EvalProgress & { seed?: number }>(path);
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
  if (await readJson(`${out}/analysis.json`)) return;
  log(`seed ${plan.seed}: analysing (attention distance, singular values, CKA)`);
  await analyzeCheckpoints(ctx.be, {
    checkpoints: plan.rows.map((r) => r.checkpoint),
    labels: plan.rows.map((r) => r.row),
    data: ctx.data,
    limit: ctx.budget.analyzeImages,
    outDir: out,
  });
}

/** The teacher's pre-training seconds of a seed (0 when it has not run). */
export async function teacherSeconds(plan: SeedPlan): Promise<number> {
  if (!plan.teacher) return 0;
  const p = await readJson<RowProgress>(`${plan.teacher.dir}/row.json`);
  return p?.pretrainS ?? 0;
}
