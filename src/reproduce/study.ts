/**
 * The paper's comparison at small scale on Fashion-MNIST: the same small ViT pre-trained for
 * the same total epochs with different targets; first the gate (each row's gain over the
 * random init on k-NN and linear probe, paired by seed: a row under 3 standard errors is not
 * ranked), then linear probes and fine-tuning with 1%, 10% and every label, k-NN on the cls
 * token and on the mean of the patch tokens, plus the CKA / attention-distance similarity
 * between rows.
 *
 * Rows: random init; `mae` (MSE on per-patch normalised pixels, masked patches only); dBOT
 * from a random teacher for 1, 2 and 3 stages at equal total epochs; dBOT distilled from a
 * larger pre-trained teacher (trained first, on its own budget); raw pixels as a baseline.
 * Every pre-training follows the reference schedule at its batch: steps of 256 images
 * (accumulated micro-batches where a budget says), base LR 1.5e-4 × 256/256, linear warmup
 * over 5% of each stage, cosine to 0 per stage. Each checkpoint is embedded once; k-NN and
 * every probe reuse those features.
 *
 * Every row is a resumable run: a rerun skips finished rows and evaluations, resumes an
 * unfinished pre-training from its last saved step, and can be stopped at any time
 * (`hooks.signal`). k-NN is measured every `evalEvery` epochs during pre-training (and at
 * every stage boundary), so each row has a curve. Rows run for each seed of `seeds`;
 * tables give mean ± standard deviation over the seeds.
 *
 * Writes `<runsDir>/<name>/`: `seed<s>/<row>/` (the pre-training run, `row.json` with its
 * curve, `eval.json`), `seed<s>/analyze/`, `curve-<row>.svg`, `curves.svg`,
 * `results.json` and `results.md`. Budgets and settings: `budgets.ts`; rows: `rows.ts`;
 * their evaluation: `evaluate.ts`; tables and plots: `report.ts`.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { openDataset } from "../data/dataset.ts";
import { channelStats } from "../data/pipeline.ts";
import { writeJsonAtomic } from "../util/atomic.ts";
import { vitFromPreset } from "../models/vit_config.ts";
import { PRESETS } from "../models/vit_config.ts";
import {
  checkBudget,
  FINETUNE_KEYS,
  REPRODUCE_BUDGETS,
  type ReproduceBudget,
  reproduceCommand,
  reproduceDir,
  type ReproduceOptions,
} from "./budgets.ts";
import { analyzeSeed, EvalContext, evaluateRawPixels, evaluateRow } from "./evaluate.ts";
import { planRows, runPretrainRow, teacherSeconds, writeRandomInit } from "./rows.ts";
import type { RowResult } from "./types.ts";
import { type ReproduceReport, writeReport } from "./report.ts";

/** Callbacks and run controls of {@link reproduce}. */
export interface ReproduceHooks {
  /** A line for the log (default console.log). */
  log?: (line: string) => void;
  /**
   * When aborted (e.g. on SIGINT), the current pre-training saves its state after the current
   * step (an evaluation finishes its current part) and {@link reproduce} returns null; a rerun
   * with the same settings continues there.
   */
  signal?: AbortSignal;
  /** Prepare pre-training batches on a data worker (default true; bit-identical either way). */
  prefetch?: boolean;
}

/**
 * Runs (or continues) every row for every seed and writes results.json / results.md; returns
 * the report, or null when `hooks.signal` stopped it (rerun to continue).
 */
export async function reproduce(
  be: Backend,
  opts: ReproduceOptions,
  hooks: ReproduceHooks = {},
): Promise<ReproduceReport | null> {
  const t0 = performance.now();
  const log = hooks.log ?? console.log;
  const b: ReproduceBudget = { ...REPRODUCE_BUDGETS[opts.budget], ...opts.finetune };
  checkBudget(opts.budget, b);
  if (!Object.hasOwn(PRESETS, b.teacherModel)) {
    throw new RangeError(`Cannot reproduce: unknown teacher preset "${b.teacherModel}"`);
  }
  const dir = reproduceDir(opts);
  await Deno.mkdir(dir, { recursive: true });
  await checkSameSettings(dir, opts, b);
  const trainDs = await openDataset(opts.data, "train", { warn: log });
  const testDs = await openDataset(opts.data, "test", { warn: log });
  const stats = channelStats(trainDs, trainDs.channels, 1000);
  const student = vitFromPreset("vit-micro", {
    imgSize: trainDs.height,
    patchSize: 4,
    inChans: trainDs.channels,
  });
  const ctx = new EvalContext(be, {
    trainDs,
    testDs,
    student,
    stats,
    budget: b,
    data: opts.data,
    finetune: !opts.skipFinetune,
  });
  const stopped = () => hooks.signal?.aborted ?? false;
  const results: RowResult[] = [];
  let teacherCommand = "";
  const report = () =>
    writeReport(dir, {
      opts,
      budget: b,
      command: reproduceCommand(opts),
      teacherCommand,
      backend: be.description,
      results,
      wallS: (performance.now() - t0) / 1000,
    });
  try {
    results.push(await evaluateRawPixels(ctx, { seed: opts.seeds[0], dir, log }));
    await report(); // a partial table after every row: `long` spans several invocations
    if (stopped()) return null;
    for (const seed of opts.seeds) {
      const plans = planRows({ opts, budget: b, seed, dir, stats, student });
      // the larger teacher's command, where a row distils from it (`--rows` may leave it out)
      if (plans.rows.some((r) => r.teacherRun)) teacherCommand ||= plans.teacher?.command ?? "";
      log(`seed ${seed}: ${plans.rows.map((r) => r.row).join(", ")} in ${plans.seedDir}`);
      for (const plan of plans.rows) {
        if (plan.teacherRun) {
          const t = await runPretrainRow(ctx, plans.teacher!, { ...hooks, log });
          if (!t) return null;
        }
        const row = plan.pretrain
          ? await runPretrainRow(ctx, plan, { ...hooks, log })
          : await writeRandomInit(ctx, plan, log);
        if (!row) return null;
        const r = await evaluateRow(ctx, plan, row, { signal: hooks.signal, log });
        if (!r) return null;
        if (plan.teacherRun) r.teacherS = await teacherSeconds(plans);
        results.push(r);
        await report();
      }
      if (stopped()) return null;
      await analyzeSeed(ctx, plans, log);
    }
  } finally {
    ctx.dispose();
  }
  const done = await report();
  log(`wrote ${dir}/results.md and ${dir}/results.json`);
  return done;
}

/** `sizes` without {@link FINETUNE_KEYS} (older folders stored `finetuneEpochs` alone). */
function pretrainSizes(sizes: unknown): unknown {
  if (typeof sizes !== "object" || sizes === null) return sizes;
  const keep = Object.entries(sizes).filter(([k]) => !FINETUNE_KEYS.includes(k as never));
  return Object.fromEntries(keep);
}

/**
 * The settings a folder was started with must match (seeds may differ; the fine-tuning
 * settings may change, see `FINETUNE_KEYS`).
 */
async function checkSameSettings(
  dir: string,
  opts: ReproduceOptions,
  b: ReproduceBudget,
): Promise<void> {
  const path = `${dir}/reproduce.json`;
  const want = { budget: opts.budget, data: opts.data, baseLr: opts.baseLr, sizes: b };
  let was: { sizes?: unknown };
  try {
    was = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    await writeJsonAtomic(path, want);
    return;
  }
  const same = (x: { sizes?: unknown }) => JSON.stringify({ ...x, sizes: pretrainSizes(x.sizes) });
  if (same(was) === same(want)) {
    if (JSON.stringify(was) !== JSON.stringify(want)) await writeJsonAtomic(path, want);
  } else {
    throw new RangeError(
      `Cannot continue the reproduction in ${dir}: it was started with other settings ` +
        `(${JSON.stringify(was)}; now ${JSON.stringify(want)}); give another --name or ` +
        `--runs-dir, or remove ${dir}`,
    );
  }
}
