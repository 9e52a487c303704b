/**
 * The rows of a reproduction ({@link planRows}) and the resumable steps of each: a
 * pre-training run cut into chunks of `evalEvery` epochs with a k-NN curve point after each
 * ({@link runPretrainRow}), and the random-init row; their evaluation is `evaluate.ts`. Every file is written atomically, so a stop at any moment loses at
 * most the step or evaluation part in progress.
 *
 * @module
 */
import { readProgressJson, writeJsonAtomic } from "../util/atomic.ts";
import { readCheckpoint, vitWeights, writeCheckpoint } from "../io/checkpoint_file.ts";
import { readRunState, readRunStateMeta } from "../io/run_state.ts";
import type { VitConfig } from "../models/vit_config.ts";
import {
  planBoundaries,
  PRETRAIN_CONFIG,
  PRETRAIN_DEFAULTS,
  type PretrainConfig,
  resolvePretrain,
} from "../train/pretrain_config.ts";
import { pretrain } from "../train/pretrain.ts";
import {
  type ReproduceBudget,
  type ReproduceConfig,
  selectedRows,
  WARMUP_FRACTION,
} from "./budgets.ts";
import type { EvalContext } from "./evaluate.ts";
import type { CurvePoint, RowPlan, SeedPlan, TrainedRow } from "./types.ts";

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

/** The seed of the larger teacher, one for every seed of a reproduction. */
export const TEACHER_SEED = 0;

/** The rows of one seed: random init, mae, dBOT 1/2/3 stages, dBOT from a larger teacher. */
export function planRows(o: {
  opts: ReproduceConfig & { backend: string };
  budget: ReproduceBudget;
  seed: number;
  /** The reproduction's folder: the seed's rows go in `<dir>/seed<seed>`, the teacher in it. */
  dir: string;
  stats: { mean: number[]; std: number[] };
  student: VitConfig;
}): SeedPlan {
  const { opts, budget: b, seed, dir } = o;
  const seedDir = `${dir}/seed${seed}`;
  const E = b.epochs;
  const base = {
    runsDir: seedDir,
    data: opts.data,
    model: "vit-micro",
    patchSize: 4,
    batch: b.batch / b.accum,
    accum: b.accum,
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
      folder: row,
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
  // one larger teacher for every seed (trained with TEACHER_SEED, beside the seeds' folders):
  // like a released checkpoint, it is an input of the distilled row, not a source of its noise
  const teacher: RowPlan = {
    ...pre(
      "teacher",
      `${b.teacherModel}, dBOT random teacher, 1 stage × ${b.teacherEpochs} ep, seed ` +
        `${TEACHER_SEED}`,
      {
        model: b.teacherModel,
        epochsPerStage: b.teacherEpochs,
        trainLimit: b.teacherLimit,
        runsDir: dir,
        seed: TEACHER_SEED,
      },
      { dir: `${dir}/teacher`, checkpoint: `${dir}/teacher/final.safetensors` },
    ),
    curve: false,
  };
  const rows: RowPlan[] = [
    {
      row: "random init",
      folder: "random-init",
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
        `images; one teacher for every seed), 1 stage × ${E} ep`,
      { teacher: teacher.checkpoint, epochsPerStage: E },
      { teacherRun: true },
    ),
  ];
  const keep = selectedRows(opts.rows ?? "");
  const chosen = rows.filter((r) => keep.includes(r.folder));
  return { seed, seedDir, rows: chosen, teacher };
}

/** The progress file of a pre-training row. */
interface RowProgress {
  curve: CurvePoint[];
  pretrainS: number;
  curveS: number;
  done: boolean;
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
  const prog: RowProgress = (await readProgressJson<RowProgress>(progressPath)) ??
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
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
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

/** The teacher's pre-training seconds of a seed (0 when it has not run). */
export async function teacherSeconds(plan: SeedPlan): Promise<number> {
  if (!plan.teacher) return 0;
  const p = await readProgressJson<RowProgress>(`${plan.teacher.dir}/row.json`);
  return p?.pretrainS ?? 0;
}
