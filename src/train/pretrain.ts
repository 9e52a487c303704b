/**
 * Multi-stage dBOT pre-training (DBOT_SPEC.md "Multi-stage bootstrapping"), the loop in
 * the shape of MAE's `engine_pretrain`:
 *
 *   for each epoch:   stage boundary? → teacher ← student encoder, student re-initialised
 *     for each step:  micro-batches → trainStep (scale, all-reduce, finite check, clip, AdamW)
 *                     metrics every logEvery steps
 *     stage end?      checkpoint + k-NN
 *     save the resume state
 *
 * Each concern has its own module: `step.ts` (the optimiser step), `stages.ts` (teachers
 * and boundaries), `state.ts` (resume state), `metrics.ts` (metrics, summary, plot),
 * `run_data.ts` (datasets, batches, k-NN), `collective.ts` (which rank writes).
 *
 * Writes `runs/<name>/`: config.json, metrics.jsonl, stage<k>.safetensors,
 * final.safetensors, state.safetensors (resume), loss.svg and summary.json — every file
 * atomically, so a kill at any moment leaves complete files. The run directory is locked
 * while a process uses it. The state is saved at the end of every epoch and, when
 * `hooks.signal` aborts (SIGINT in the task), after the current step; `resume` continues
 * from it bit-identically. Faults (non-finite numbers, GPU errors) name the last good state.
 *
 * @module
 */
import { type Backend, backendSummary, DeviceFaultError, type Tensor } from "../backend/backend.ts";
import { removeStaleTemps, writeJsonAtomic } from "../util/atomic.ts";
import { writeCheckpoint } from "../io/checkpoint_file.ts";
import type { KnnResult } from "../eval/knn.ts";
import { acquireRunLock, type RunLock } from "../io/lock.ts";
import { type Collective, SINGLE_PROCESS } from "../parallel/collective.ts";
import { MAX_CONSECUTIVE_SKIPS, planBoundaries, type PretrainConfig } from "./pretrain_config.ts";
import {
  type PretrainProgress,
  type PretrainSummary,
  RunMetrics,
  writeLossPlot,
  writeSummary,
} from "./metrics.ts";
import { openRunData, type RunData } from "./run_data.ts";
import { effectiveLr, lrAt, stageAt } from "./schedule.ts";
import { buildTrainee, nextStage, startStageZero, type Trainee } from "./stages.ts";
import { stageZeroTeacher } from "./stages_file.ts";
import { loadState, readState, type RunPosition, saveState, stateSummary } from "./state.ts";
import { NonFiniteLossError, type StepResult, TrainStep } from "./step.ts";
import { sha256Hex } from "../util/digest.ts";

export type { MetricLine, PretrainProgress, PretrainSummary } from "./metrics.ts";
export { NonFiniteLossError } from "./step.ts";
export { nextStage } from "./stages.ts";

/** Callbacks and run controls of {@link pretrain}. */
export interface PretrainHooks {
  /** A line for the log (default console.log). */
  log?: (line: string) => void;
  /** Progress after each logged step (e.g. a progress bar). */
  progress?: (p: PretrainProgress) => void;
  /** Continue from `runs/<name>/state.safetensors`. */
  resume?: boolean;
  /** Stop (as if killed) after this many epochs of this process; for tests. */
  stopAfterEpochs?: number;
  /** How this backend was chosen, e.g. `"auto: no WebGPU adapter"` (goes to summary.json). */
  backendChosen?: string;
  /**
   * When aborted (e.g. on SIGINT), the run finishes the current step, saves the resume
   * state (mid-epoch: the next iteration is part of it), logs where, and returns null.
   */
  signal?: AbortSignal;
  /** Test seam: sees (and may alter) each micro-batch's images `[B, C, H, W]` before upload. */
  alterBatch?: (step: number, images: Float32Array) => void;
  /** Prepare batches on a data worker (default true; bit-identical either way). */
  prefetch?: boolean;
  /** The process group (default: a single process). */
  collective?: Collective;
}

/** `deno task pretrain` flags that resume `cfg`'s run. */
export function resumeCommand(cfg: PretrainConfig): string {
  const dir = cfg.runsDir === "runs" ? "" : ` --runs-dir ${cfg.runsDir}`;
  return `deno task pretrain --name ${cfg.name}${dir} --resume`;
}

/** Runs (or resumes) a pre-training run on `be`; returns the summary (also written to summary.json). */
export async function pretrain(
  be: Backend,
  cfg: PretrainConfig,
  hooks: PretrainHooks = {},
): Promise<PretrainSummary | null> {
  const run = await PretrainRun.open(be, cfg, hooks);
  try {
    const { data, boundaries, pos } = run;
    for (let epoch = pos.epoch; epoch < run.totalEpochs; epoch++) {
      const st = stageAt(boundaries, epoch);
      const first = epoch === pos.epoch ? pos.iter : 0;
      if (epoch === st.start && st.stage > 0 && first === 0) await run.nextStage(st.stage);
      const batches = data.epochBatches(epoch, first, pos.step);
      for (let it = first; it < data.itersPerEpoch; it++) {
        const t0 = performance.now();
        const rate = lrAt(epoch - st.start + it / data.itersPerEpoch, {
          lr: run.lr,
          warmupEpochs: cfg.warmupEpochs,
          stageEpochs: st.end - st.start,
          minLr: cfg.minLr,
        });
        const last = it === data.itersPerEpoch - 1;
        const read = run.skipMode || (pos.step + 1) % run.readEvery === 0 || last;
        const r = await run.step.run(rate, async () => {
          const b = await batches.next();
          hooks.alterBatch?.(pos.step, b.images);
          run.t.model.setBatch(b.images, b.noise, b.rngs);
          run.t.model.forwardBackward();
        }, { read, skipNonFinite: run.skipMode });
        pos.step++;
        await run.judge(r, read, { epoch, lr: rate });
        run.metrics.addStep(
          run.stepImages,
          (performance.now() - t0) / 1000,
          read && r.updated ? r.loss : undefined,
        );
        if (pos.step % cfg.logEvery === 0 || last) await run.logLine(st.stage, epoch, rate);
        if (hooks.signal?.aborted && !last) {
          Object.assign(pos, { epoch, iter: it + 1 });
          await run.save();
          run.log(
            `interrupted: saved the state after step ${pos.step} (epoch ${epoch}, iteration ${
              it + 1
            } of ${data.itersPerEpoch}) to ${run.statePath}; continue with: ${resumeCommand(cfg)}`,
          );
          return null;
        }
      }
      if (epoch + 1 === st.end) await run.endStage(st.stage, epoch);
      Object.assign(pos, { epoch: epoch + 1, iter: 0 });
      await run.save();
      run.epochsRun++;
      if (hooks.signal?.aborted) {
        run.log(
          `interrupted: saved the state at the end of epoch ${epoch} (step ${pos.step}) to ` +
            `${run.statePath}; continue with: ${resumeCommand(cfg)}`,
        );
        return null;
      }
      const stop = hooks.stopAfterEpochs;
      if (stop !== undefined && run.epochsRun >= stop && epoch + 1 < run.totalEpochs) {
        run.log(`stopping after ${run.epochsRun} epoch(s) as asked`);
        return null;
      }
    }
    return await run.finish();
  } catch (e) {
    throw await run.fault(e);
  } finally {
    await run.close();
  }
}

/** One run's state and its steps outside the loop: start/resume, stages, logging, outputs. */
class PretrainRun {
  readonly be: Backend;
  readonly cfg: PretrainConfig;
  readonly hooks: PretrainHooks;
  readonly log: (line: string) => void;
  readonly comm: Collective;
  readonly dir: string;
  readonly statePath: string;
  readonly data: RunData;
  readonly boundaries: number[];
  readonly totalEpochs: number;
  readonly stepImages: number;
  /** Effective peak LR. */
  readonly lr: number;
  readonly skipMode: boolean;
  /** Steps between read-backs: each is a GPU sync, so on WebGPU every logEvery steps. */
  readonly readEvery: number;
  readonly metrics: RunMetrics;
  readonly pos: RunPosition;
  t: Trainee;
  step: TrainStep;
  epochsRun = 0;
  readonly #t0: number;
  readonly #lock: RunLock | null;
  #inARow = 0; // consecutive skipped steps
  /** The k-NN of the student at the end of the last stage run in this process. */
  #stageKnn: { stage: number; knn: KnnResult } | null = null;

  private constructor(o: {
    be: Backend;
    cfg: PretrainConfig;
    hooks: PretrainHooks;
    t0: number;
    lock: RunLock | null;
    data: RunData;
    metrics: RunMetrics;
    t: Trainee;
    pos: RunPosition;
  }) {
    const { be, cfg, hooks } = o;
    this.be = be;
    this.cfg = cfg;
    this.hooks = hooks;
    this.log = hooks.log ?? console.log;
    this.comm = hooks.collective ?? SINGLE_PROCESS;
    this.dir = `${cfg.runsDir}/${cfg.name}`;
    this.statePath = `${this.dir}/${STATE}`;
    this.data = o.data;
    this.boundaries = planBoundaries(cfg);
    this.totalEpochs = this.boundaries[this.boundaries.length - 1];
    this.stepImages = o.data.stepImages; // over all ranks
    this.lr = effectiveLr(cfg.baseLr, this.stepImages);
    this.skipMode = cfg.onNan === "skip";
    this.readEvery = !be.deferredReads || this.skipMode ? 1 : cfg.logEvery;
    this.metrics = o.metrics;
    this.pos = o.pos;
    this.t = o.t;
    this.step = this.#trainStep();
    this.#t0 = o.t0;
    this.#lock = o.lock;
  }

  /**
   * Locks the run directory, opens the data, and starts the run (stage-0 teacher, the
   * student's init, config.json, k-NN of the init) or resumes it from its saved state.
   */
  static async open(be: Backend, cfg: PretrainConfig, hooks: PretrainHooks): Promise<PretrainRun> {
    const t0 = performance.now();
    const log = hooks.log ?? console.log;
    const comm = hooks.collective ?? SINGLE_PROCESS;
    const dir = `${cfg.runsDir}/${cfg.name}`;
    const statePath = `${dir}/${STATE}`;
    await Deno.mkdir(dir, { recursive: true });
    const lock = comm.isWriter ? await acquireRunLock(dir) : null;
    let data: RunData | null = null;
    try {
      data = await openRunData(be, cfg, {
        log,
        prefetch: hooks.prefetch !== false,
        rank: comm.rank,
        ranks: comm.size,
      });
      const boundaries = planBoundaries(cfg);
      const stepImages = data.stepImages; // over all ranks
      const lr = effectiveLr(cfg.baseLr, stepImages);
      // every rank runs the same configuration (and, below, starts from the same weights)
      await comm.agree("the configuration", JSON.stringify({ ...cfg, backend: be.name }));
      // the lock says no live process wrote them
      if (hooks.resume && comm.isWriter) await removeStaleTemps(dir);
      if (hooks.resume) await checkGlobalBatch(dir, stepImages, comm.size);
      const saved = hooks.resume ? await readState(statePath) : null;
      if (hooks.resume && !saved) log(`no ${statePath} yet: starting from scratch`);
      const src = saved ? null : await stageZeroTeacher(cfg, data.student, data.stats);
      const t = buildTrainee(be, cfg, data.student, saved?.teacherCfg ?? src!.cfg);
      let pos: RunPosition;
      if (saved) {
        loadState(be, t, saved);
        const { epoch, iter, step, skipped, knnInit, perStage } = saved;
        pos = { epoch, iter, step, skipped, knnInit, perStage };
        const at = iter ? `, iteration ${iter}` : "";
        log(`resuming ${dir} at epoch ${epoch}${at} (step ${step})`);
      } else {
        if (comm.isWriter) {
          const { student, stats } = data;
          await writeJsonAtomic(`${dir}/config.json`, {
            ...cfg,
            resolved: {
              student,
              ranks: comm.size,
              globalBatch: stepImages,
              lr,
              boundaries,
              mean: stats.mean,
              std: stats.std,
              ...(data.holdout ? { testSplit: data.holdout } : {}),
            },
          });
        }
        startStageZero(t, cfg, src!);
        const r = await data.knn(await t.model.student.toHost());
        log(
          `k-NN top-1 of the random-init student: ${r.top1.toFixed(2)}% ` +
            `(top-5 ${r.top5.toFixed(2)}%)`,
        );
        pos = { epoch: 0, iter: 0, step: 0, skipped: 0, knnInit: r.top1, perStage: [] };
      }
      const s = data.student;
      log(
        `pre-training ${cfg.model} (D ${s.embedDim}, depth ${s.depth}) on ${cfg.data} ` +
          `${data.size}px patch ${cfg.patchSize}: ${boundaries.length - 1} stage(s) at epochs ` +
          `[${boundaries}], ${data.itersPerEpoch} steps/epoch of ${stepImages} images, lr = ` +
          `${cfg.baseLr} × ${stepImages}/256 = ${lr.toExponential(3)}, teacher ${cfg.teacher}, ` +
          `loss ${t.model.lossFn.label}`,
      );
      if (comm.size > 1) {
        // identical weights, moments and position on every rank (same seed or same state file)
        await comm.agree("the initial weights and run position", await trainingDigest(be, t, pos));
      }
      const metrics = await RunMetrics.open(dir, {
        writer: comm.isWriter,
        resumeStep: saved ? pos.step : null,
        t0,
      });
      return new PretrainRun({ be, cfg, hooks, t0, lock, data, metrics, t, pos });
    } catch (e) {
      data?.dispose();
      await lock?.release();
      throw e;
    }
  }

  #trainStep(): TrainStep {
    const { model, opt } = this.t;
    return new TrainStep(this.be, { ps: model.student, loss: model.loss, opt }, {
      accum: this.cfg.accum,
      collective: this.comm,
    });
  }

  /** A stage boundary: teacher ← student (a rebuilt model gets a new step). */
  async nextStage(stage: number): Promise<void> {
    const next = await nextStage(this.be, this.t, this.cfg, this.data.student, stage, this.log);
    if (next === this.t) return;
    this.t = next;
    this.step.dispose();
    this.step = this.#trainStep();
  }

  /** Counts a skipped step, or stops the run on a non-finite loss, naming the last good state. */
  async judge(r: StepResult, read: boolean, at: { epoch: number; lr: number }): Promise<void> {
    const pos = this.pos;
    const lr = at.lr.toExponential(3);
    if (!r.updated) {
      pos.skipped++;
      this.#inARow++;
      this.log(
        `step ${pos.step} (epoch ${at.epoch}, lr ${lr}): loss ${r.loss}, gradient norm ${r.norm}: update skipped ` +
          `(${pos.skipped} skipped so far)`,
      );
      if (this.#inARow >= MAX_CONSECUTIVE_SKIPS) {
        throw new NonFiniteLossError(
          `Stopped: ${this.#inARow} steps in a row (to step ${pos.step}, epoch ${at.epoch}, lr ${lr}) had a non-finite loss or ` +
            `gradient norm; ${await this.#lastGood()}. Try a lower --base-lr or --clip-grad, ` +
            `or check the data.`,
        );
      }
    } else if (read) {
      this.#inARow = 0;
      if (!Number.isFinite(r.loss) || !Number.isFinite(r.norm)) {
        throw new NonFiniteLossError(
          `Stopped: the loss is ${r.loss} and the gradient norm ${r.norm} at step ${pos.step} ` +
            `(epoch ${at.epoch}, lr ${lr}); ` +
            `${await this.#lastGood()}. Try a lower --base-lr or --clip-grad, or --on-nan skip ` +
            `to skip such steps.`,
        );
      }
    }
  }

  /** A metrics.jsonl line and a progress update. */
  async logLine(stage: number, epoch: number, lr: number): Promise<void> {
    const { step, skipped } = this.pos;
    const line = await this.metrics.flush(
      { stage, epoch, step, lr, skipped, data_skipped: this.data.skippedFiles() },
      this.stepImages,
    );
    const totalSteps = this.totalEpochs * this.data.itersPerEpoch;
    const ips = this.metrics.imagesPerS;
    const etaS = ((totalSteps - step) * this.stepImages) / ips;
    this.hooks.progress?.({
      stage,
      epoch,
      step,
      totalSteps,
      loss: line.loss,
      imagesPerS: ips,
      etaS,
    });
  }

  /** The end of a stage: its checkpoint and k-NN. */
  async endStage(stage: number, epoch: number): Promise<void> {
    const host = await this.t.model.student.toHost();
    if (this.comm.isWriter) {
      const path = `${this.dir}/stage${stage}.safetensors`;
      await writeCheckpoint(path, this.t.model.student, this.data.ckptConfig(stage));
    }
    const r = await this.data.knn(host);
    this.#stageKnn = { stage, knn: r };
    this.pos.perStage[stage] = r.top1;
    this.log(
      `stage ${stage} done at epoch ${epoch + 1}: k-NN top-1 ${r.top1.toFixed(2)}% ` +
        `(top-5 ${r.top5.toFixed(2)}%)`,
    );
  }

  /** Writes the resume state at the current position (the writer rank only). */
  async save(): Promise<void> {
    if (this.comm.isWriter) await saveState(this.statePath, this.be, this.t, this.pos);
  }

  /** The final checkpoint, k-NN, loss plot and summary. */
  async finish(): Promise<PretrainSummary> {
    const { comm, dir, pos, t } = this;
    const finalPath = `${dir}/final.safetensors`;
    const lastStage = this.boundaries.length - 2;
    if (comm.isWriter) {
      await writeCheckpoint(finalPath, t.model.student, this.data.ckptConfig(lastStage));
    }
    // the final weights are the last stage's: its k-NN when this process measured it
    const last = this.#stageKnn?.stage === lastStage
      ? this.#stageKnn.knn
      : await this.data.knn(await t.model.student.toHost());
    const summary: PretrainSummary = {
      knn_top1_init: pos.knnInit,
      knn_top1_final: last.top1,
      knn_top1_per_stage: pos.perStage,
      knn_top5_final: last.top5,
      images_per_s: this.metrics.imagesPerS,
      backend: backendSummary(this.be.facts, this.hooks.backendChosen),
      final_checkpoint: finalPath,
      wall_s: (performance.now() - this.#t0) / 1000,
      steps: pos.step,
      lr: this.lr,
      skipped_steps: pos.skipped,
    };
    if (comm.isWriter) {
      await writeLossPlot(dir, {
        boundaries: this.boundaries,
        itersPerEpoch: this.data.itersPerEpoch,
        lossLabel: t.model.lossFn.label,
      });
      await writeSummary(dir, summary);
    }
    return summary;
  }

  /** A device fault gets the last good state appended (the device cannot be read any more). */
  async fault(e: unknown): Promise<unknown> {
    const fault = e instanceof DeviceFaultError ? e : this.be.deviceFault?.(e) ?? null;
    if (!fault) return e;
    return fault.withContext(`Stopped at step ${this.pos.step}: ${await this.#lastGood()}`, e);
  }

  /** Stops the data worker, closes metrics.jsonl and releases the run directory. */
  async close(): Promise<void> {
    this.data.dispose();
    this.metrics.close();
    await this.#lock?.release();
  }

  async #lastGood(): Promise<string> {
    const s = await stateSummary(this.statePath);
    return s
      ? `the last good state is ${this.statePath} (${s}); continue with: ${resumeCommand(this.cfg)}`
      : `no state was saved yet (${this.statePath} is written at the end of each epoch)`;
  }
}

const STATE = "state.safetensors";

/** A digest of the trainee's student, teacher and AdamW moments and of the run position. */
async function trainingDigest(be: Backend, t: Trainee, pos: RunPosition): Promise<string> {
  const parts: Uint8Array[] = [];
  const add = async (x: Tensor | undefined) => {
    if (x) parts.push(new Uint8Array((await be.download(x)).slice().buffer));
  };
  await add(t.model.student.params);
  await add(t.model.teacher.params?.params);
  await add(t.opt.m);
  await add(t.opt.v);
  const { epoch, iter, step, skipped } = pos; // (the k-NN figures exist on rank 0 only)
  parts.push(new TextEncoder().encode(JSON.stringify([epoch, iter, step, skipped, t.opt.step])));
  return await sha256Hex(parts);
}

/**
 * A resumed run keeps its global batch (the state's position counts global steps): with
 * another number of ranks the per-rank batch changes with it (the task does this).
 */
async function checkGlobalBatch(dir: string, stepImages: number, ranks: number): Promise<void> {
  let saved: {
    batch?: number;
    accum?: number;
    resolved?: { globalBatch?: number; ranks?: number };
  };
  const path = `${dir}/config.json`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return; // no config yet: nothing to continue
    throw e;
  }
  try {
    saved = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(
      `Cannot resume from ${path}: it is not valid JSON (${(e as Error).message}); restore ` +
        `it, or start a new run under another --name`,
      { cause: e },
    );
  }
  const want = saved.resolved?.globalBatch;
  if (want === undefined || want === stepImages) return;
  const accum = saved.accum ?? 1;
  const was = `${saved.resolved?.ranks ?? 1} rank(s) × batch ${saved.batch} × accum ${accum}`;
  throw new RangeError(
    `Cannot resume ${dir} with ${stepImages} images per step over ${ranks} rank(s): it was ` +
      `started with ${want} (${was}); give --batch ${want / (ranks * accum)} per rank` +
      (want % (ranks * accum)
        ? ` (${want} is not divisible by ${ranks * accum}: use another number of ranks)`
        : ""),
  );
}
