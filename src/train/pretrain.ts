/**
 * Multi-stage dBOT pre-training (DBOT_SPEC.md "Multi-stage bootstrapping"):
 *
 *   for each stage: distil the teacher into the student for the stage's epochs
 *                   (warmup + half-cosine LR, restarted per stage);
 *   at a boundary:  teacher ← student encoder (no EMA); student re-initialised
 *                   except the patch-embed bias; AdamW moments and step kept.
 *
 * Writes `runs/<name>/`: config.json, metrics.jsonl, stage<k>.safetensors,
 * final.safetensors, state.safetensors (resume), loss.svg and summary.json.
 *
 * Crash safety: every file but metrics.jsonl is written atomically (temp file, fsync,
 * rename), so a kill at any moment leaves complete files. The resume state is saved at the
 * end of every epoch and, when `hooks.signal` aborts (SIGINT in the task), after the
 * current step; `resume` continues from it bit-identically and first drops the metric
 * lines written after it. Faults (non-finite numbers, GPU errors) name the last good state.
 *
 * @module
 */
import { type Backend, view } from "../backend/backend.ts";
import { openDataset } from "../data/dataset.ts";
import { Prefetcher, type PreparedBatch, renderBatch } from "./prefetch.ts";
import { Embedder } from "../eval/embed.ts";
import { knnClassify, type KnnResult } from "../eval/knn.ts";
import { inferVitConfig, readCheckpoint, vitWeights, writeCheckpoint } from "../io/checkpoint.ts";
import { readSafetensors, toFloat32, writeSafetensors } from "../io/safetensors.ts";
import { lineChartSvg } from "../io/plot.ts";
import { deriveVit, PRESETS, type VitConfig, vitFromPreset } from "../models/config.ts";
import { type DbotConfig, DbotModel, type TeacherConfig } from "../models/dbot.ts";
import { vitParamSpecs } from "../models/vit.ts";
import { asGpuError, GpuError } from "../backend/webgpu/context.ts";
import { Rng } from "../util/rng.ts";
import { AdamW } from "./adamw.ts";
import { MAX_CONSECUTIVE_SKIPS, planBoundaries, type PretrainConfig } from "./config.ts";
import { channelStats, deriveSeed, ImagePipeline, permutation } from "./data.ts";
import { effectiveLr, lrAt, stageAt } from "./schedule.ts";

/** Thrown when the loss or gradients stop being finite; the last good state is kept. */
export class NonFiniteLossError extends Error {
  /** `message` names the step, the LR and the last good checkpoint. */
  constructor(message: string) {
    super(message);
    this.name = "NonFiniteLossError";
  }
}

/** One line of metrics.jsonl. */
export interface MetricLine {
  /** Stage index. */
  stage: number;
  /** Epoch (global). */
  epoch: number;
  /** Optimiser steps so far. */
  step: number;
  /** LR of the step. */
  lr: number;
  /** Mean loss over the steps read since the last line. */
  loss: number;
  /** Throughput over the steps since the last line. */
  images_per_s: number;
  /** Seconds since the process started the run. */
  elapsed_s: number;
  /** Steps skipped so far for a non-finite loss or gradient norm (`onNan: "skip"`). */
  skipped: number;
}

/** summary.json. */
export interface PretrainSummary {
  /** k-NN top-1 (%) of the randomly initialised student. */
  knn_top1_init: number;
  /** k-NN top-1 (%) of the final student. */
  knn_top1_final: number;
  /** k-NN top-1 at the end of each stage. */
  knn_top1_per_stage: number[];
  /** k-NN top-5 of the final student. */
  knn_top5_final: number;
  /** Training throughput (images per second over the run's steps, evaluation excluded). */
  images_per_s: number;
  /** Backend and why it was chosen. */
  backend: string;
  /** Path of the final student checkpoint. */
  final_checkpoint: string;
  /** Wall time of the whole run (this process). */
  wall_s: number;
  /** Optimiser steps taken. */
  steps: number;
  /** Effective peak LR. */
  lr: number;
  /** Steps whose optimiser update was skipped for a non-finite loss or gradient norm. */
  skipped_steps: number;
}

/** What a progress update carries (after each logged step). */
export interface PretrainProgress {
  /** Stage index. */
  stage: number;
  /** Epoch (global). */
  epoch: number;
  /** Optimiser steps so far. */
  step: number;
  /** Steps of the whole run. */
  totalSteps: number;
  /** Mean loss since the last update. */
  loss: number;
  /** Training throughput so far. */
  imagesPerS: number;
  /** Estimated seconds left (training only). */
  etaS: number;
}

/** Callbacks and run controls of {@link pretrain}. */
export interface PretrainHooks {
  /** A line for the log (default console.log). */
  log?: (line: string) => void;
  /** Progress after each step (e.g. a progress bar). */
  progress?: (p: PretrainProgress) => void;
  /** Continue from `runs/<name>/state.safetensors`. */
  resume?: boolean;
  /** Stop (as if killed) after this many epochs of this process; for tests. */
  stopAfterEpochs?: number;
  /** Why this backend was chosen (goes to summary.json). */
  backendReason?: string;
  /**
   * When aborted (e.g. on SIGINT), the run finishes the current step, saves the resume
   * state (mid-epoch: the next iteration is part of it), logs where, and returns null.
   */
  signal?: AbortSignal;
  /** Test seam: sees (and may alter) each micro-batch's images `[B, C, H, W]` before upload. */
  alterBatch?: (step: number, images: Float32Array) => void;
  /**
   * Prepare each batch on a data worker while the previous step runs (default true; the
   * run is bit-identical either way). False renders batches on this thread.
   */
  prefetch?: boolean;
}

const STATE = "state.safetensors";

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
  const log = hooks.log ?? console.log;
  const t0 = performance.now();
  const dir = `${cfg.runsDir}/${cfg.name}`;
  const statePath = `${dir}/${STATE}`;
  await Deno.mkdir(dir, { recursive: true });
  const boundaries = planBoundaries(cfg);
  const totalEpochs = boundaries[boundaries.length - 1];

  // ---- data -----------------------------------------------------------------
  const trainDs = await openDataset(cfg.data, "train", { warn: log, strict: cfg.strict });
  const testDs = await openDataset(cfg.data, "test", { warn: log, strict: cfg.strict });
  const size = cfg.imgSize || trainDs.height;
  const channels = trainDs.channels;
  const stats = cfg.mean.length
    ? { mean: cfg.mean, std: cfg.std }
    : channelStats(trainDs, channels, 1000);
  const train = new ImagePipeline(trainDs, size, channels, stats.mean, stats.std);
  const test = new ImagePipeline(testDs, size, channels, stats.mean, stats.std);
  const nTrain = cfg.trainLimit ? Math.min(cfg.trainLimit, trainDs.count) : trainDs.count;
  const stepImages = cfg.batch * cfg.accum;
  const itersPerEpoch = Math.floor(nTrain / stepImages);
  if (itersPerEpoch < 1) {
    throw new RangeError(
      `Cannot train: ${nTrain} images make no full step of ${stepImages}; lower --batch or --accum`,
    );
  }

  // ---- model ----------------------------------------------------------------
  const student = vitFromPreset(cfg.model, {
    imgSize: size,
    patchSize: cfg.patchSize,
    inChans: channels,
  });
  const lr = effectiveLr(cfg.baseLr, stepImages);
  if (hooks.resume) await removeStaleTemps(dir);
  const state = hooks.resume ? await readState(statePath) : null;
  if (hooks.resume && !state) log(`no ${statePath} yet: starting from scratch`);
  const teacher0 = state ? state.teacher : await stageZeroTeacher(cfg, student);
  let model = new DbotModel(be, dbotConfig(cfg, student, teacher0.cfg), cfg.batch);
  let opt = new AdamW(be, model.student, adamwConfig(cfg));
  const embedder = new Embedder(be, student, Math.min(64, Math.max(1, cfg.knnTest)));
  const knn = async (weights: Map<string, Float32Array>): Promise<KnnResult> => {
    embedder.load(weights);
    const nTr = Math.min(cfg.knnTrain, trainDs.count);
    const nTe = Math.min(cfg.knnTest, testDs.count);
    const fTr = await embedder.embed(nTr, (i) => train.eval(i), cfg.knnPool);
    const fTe = await embedder.embed(nTe, (i) => test.eval(i), cfg.knnPool);
    return knnClassify(
      fTr,
      trainDs.labels.slice(0, nTr),
      fTe,
      testDs.labels.slice(0, nTe),
      student.embedDim,
      {
        k: cfg.knnK,
      },
    );
  };

  let epoch0 = 0;
  let iter0 = 0; // first iteration of epoch0 (> 0 after a mid-epoch save)
  let step = 0;
  let skipped = 0;
  let knnInit: number;
  let perStage: number[] = [];
  if (state) {
    model.student.load(state.student);
    if (model.teacher) model.teacher.load(state.teacherWeights);
    be.upload(opt.m, state.m);
    be.upload(opt.v, state.v);
    opt.step = state.optStep;
    epoch0 = state.epoch;
    iter0 = state.iter;
    step = state.step;
    skipped = state.skipped;
    knnInit = state.knnInit;
    perStage = state.perStage;
    await trimMetrics(`${dir}/metrics.jsonl`, step);
    log(`resuming ${dir} at epoch ${epoch0}${iter0 ? `, iteration ${iter0}` : ""} (step ${step})`);
  } else {
    await writeJson(`${dir}/config.json`, {
      ...cfg,
      resolved: { student, lr, boundaries, mean: stats.mean, std: stats.std },
    });
    await Deno.writeTextFile(`${dir}/metrics.jsonl`, "");
    model.initStudent(deriveSeed(cfg.seed, 1, 0));
    if (teacher0.weights) model.teacher!.load(teacher0.weights);
    else if (model.teacher) model.copyStudentToTeacher(); // random / random0: an exact copy of the student's init
    const r = await knn(await model.student.toHost());
    knnInit = r.top1;
    log(
      `k-NN top-1 of the random-init student: ${r.top1.toFixed(2)}% (top-5 ${r.top5.toFixed(2)}%)`,
    );
  }
  log(
    `pre-training ${cfg.model} (D ${student.embedDim}, depth ${student.depth}) on ${cfg.data} ${size}px patch ${cfg.patchSize}: ` +
      `${
        boundaries.length - 1
      } stage(s) at epochs [${boundaries}], ${itersPerEpoch} steps/epoch of ${stepImages} images, ` +
      `lr = ${cfg.baseLr} × ${stepImages}/256 = ${lr.toExponential(3)}, teacher ${cfg.teacher}`,
  );

  // ---- loop -----------------------------------------------------------------
  const metrics = await Deno.open(`${dir}/metrics.jsonl`, { append: true, create: true });
  const enc = new TextEncoder();
  const totalSteps = totalEpochs * itersPerEpoch;
  // Each read-back is a GPU sync: on WebGPU read every logEvery steps, unless onNan "skip"
  // must judge every step before its update.
  const skipMode = cfg.onNan === "skip";
  const readEvery = be.name === "cpu" || skipMode ? 1 : cfg.logEvery;
  const images = new Float32Array(cfg.batch * channels * size * size);
  const L = deriveVit(student).numPatches;
  const accumScale = cfg.accum > 1 ? be.tensor([1], "f32", "accum.scale") : null;
  if (accumScale) be.upload(accumScale, new Float32Array([1 / cfg.accum])); // averages micro-batch gradients
  // [loss, gradient norm] of a step, read back with one download
  const probe = be.tensor([2], "f32", "pretrain.probe");
  const probeClip = be.tensor([1], "f32", "pretrain.probeClip");
  const lossView = view(probe, 0, [1]);
  const normView = view(probe, 1, [1]);
  let trainS = 0;
  let trainImages = 0;
  let epochsRun = 0;
  let inARow = 0; // consecutive skipped steps
  const lastGood = async (): Promise<string> => {
    const saved = await stateSummary(statePath);
    return saved
      ? `the last good state is ${statePath} (${saved}); continue with: ${resumeCommand(cfg)}`
      : `no state was saved yet (${statePath} is written at the end of each epoch)`;
  };
  const pf = hooks.prefetch === false ? null : Prefetcher.create({
    data: cfg.data,
    strict: cfg.strict,
    size,
    channels,
    mean: [...stats.mean],
    std: [...stats.std],
  });
  try {
    for (let epoch = epoch0; epoch < totalEpochs; epoch++) {
      const st = stageAt(boundaries, epoch);
      const first = epoch === epoch0 ? iter0 : 0;
      if (epoch === st.start && st.stage > 0 && first === 0) {
        ({ model, opt } = await nextStage(be, model, opt, cfg, student, st.stage, log));
      }
      const order = permutation(nTrain, new Rng(deriveSeed(cfg.seed, 2, epoch)));
      // Micro-batch (it, micro) of this epoch: its images and its augmentation seed (the
      // seed stream index counts micro-batches over the whole run).
      const job = (it: number, micro: number, k: number) => {
        const base = (it * cfg.accum + micro) * cfg.batch;
        return {
          indices: order.subarray(base, base + cfg.batch),
          seed: deriveSeed(cfg.seed, 3, k),
        };
      };
      if (pf && first < itersPerEpoch) {
        const j = job(first, 0, step * cfg.accum);
        pf.request(j.indices, j.seed);
      }
      let windowLoss = 0;
      let windowN = 0;
      let windowSteps = 0;
      let tWindow = performance.now();
      for (let it = first; it < itersPerEpoch; it++) {
        const tStep = performance.now();
        const rate = lrAt(epoch - st.start + it / itersPerEpoch, {
          lr,
          warmupEpochs: cfg.warmupEpochs,
          stageEpochs: st.end - st.start,
          minLr: cfg.minLr,
        });
        for (let micro = 0; micro < cfg.accum; micro++) {
          const k = step * cfg.accum + micro;
          let batch: PreparedBatch;
          if (pf) {
            // queue the next micro-batch of this epoch, then take this one
            const [nIt, nMicro] = micro + 1 < cfg.accum ? [it, micro + 1] : [it + 1, 0];
            if (nIt < itersPerEpoch) {
              const j = job(nIt, nMicro, k + 1);
              pf.request(j.indices, j.seed);
            }
            batch = await pf.next();
          } else {
            const j = job(it, micro, k);
            batch = renderBatch(train, j.indices, j.seed, images);
          }
          const rng = new Rng(0);
          rng.state = batch.rngState; // continue where the augmentations left off
          hooks.alterBatch?.(step, batch.images);
          model.setBatch(batch.images, rng.uniformArray(cfg.batch * L), rng);
          if (micro === 0) be.fill(model.student.grads!, 0);
          model.forwardBackward();
        }
        if (accumScale) {
          be.scaleRows(
            { out: model.student.grads!, inp: model.student.grads!, scale: accumScale },
            { rows: 1, C: model.student.count },
          );
        }
        let skip = false;
        if (skipMode) {
          // judge the step before its update (AdamW recomputes this norm: one cheap reduction)
          be.gradNorm({ norm: normView, clipScale: probeClip, grad: model.student.grads! }, {
            maxNorm: Infinity,
          });
          be.copy(lossView, model.loss);
          const [loss, norm] = await be.download(probe);
          skip = !Number.isFinite(loss) || !Number.isFinite(norm);
          if (skip) {
            skipped++;
            inARow++;
            log(
              `step ${step + 1} (epoch ${epoch}, lr ${rate.toExponential(3)}): loss ${loss}, ` +
                `gradient norm ${norm}: update skipped (${skipped} skipped so far)`,
            );
            if (inARow >= MAX_CONSECUTIVE_SKIPS) {
              throw new NonFiniteLossError(
                `Stopped: ${inARow} steps in a row (to step ${step + 1}, epoch ${epoch}, lr ${
                  rate.toExponential(3)
                }) had a non-finite loss or gradient norm; ${await lastGood()}. ` +
                  `Try a lower --base-lr or --clip-grad, or check the data.`,
              );
            }
          } else {
            inARow = 0;
            windowLoss += loss;
            windowN++;
          }
        }
        if (!skip) opt.update(rate);
        step++;
        if (!skipMode && (step % readEvery === 0 || it === itersPerEpoch - 1)) {
          be.copy(lossView, model.loss);
          be.copy(normView, opt.norm);
          const [loss, norm] = await be.download(probe);
          if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
            throw new NonFiniteLossError(
              `Stopped: the loss is ${loss} and the gradient norm ${norm} at step ${step} ` +
                `(epoch ${epoch}, lr ${rate.toExponential(3)}); ${await lastGood()}. ` +
                `Try a lower --base-lr or --clip-grad, or --on-nan skip to skip such steps.`,
            );
          }
          windowLoss += loss;
          windowN++;
        }
        windowSteps++;
        trainS += (performance.now() - tStep) / 1000;
        trainImages += stepImages;
        if (step % cfg.logEvery === 0 || it === itersPerEpoch - 1) {
          const now = performance.now();
          const line: MetricLine = {
            stage: st.stage,
            epoch,
            step,
            lr: rate,
            loss: windowN ? windowLoss / windowN : NaN,
            images_per_s: (stepImages * windowSteps) / ((now - tWindow) / 1000),
            elapsed_s: (now - t0) / 1000,
            skipped,
          };
          await metrics.write(enc.encode(JSON.stringify(line) + "\n"));
          hooks.progress?.({
            stage: st.stage,
            epoch,
            step,
            totalSteps,
            loss: line.loss,
            imagesPerS: trainImages / trainS,
            etaS: ((totalSteps - step) * stepImages) / (trainImages / trainS),
          });
          windowLoss = 0;
          windowN = 0;
          windowSteps = 0;
          tWindow = now;
        }
        if (hooks.signal?.aborted && it + 1 < itersPerEpoch) {
          await saveState(statePath, be, model, opt, {
            epoch,
            iter: it + 1,
            step,
            skipped,
            knnInit,
            perStage,
            teacherCfg: model.cfg.teacher,
          });
          log(
            `interrupted: saved the state after step ${step} (epoch ${epoch}, iteration ${
              it + 1
            } of ${itersPerEpoch}) to ${statePath}; continue with: ${resumeCommand(cfg)}`,
          );
          return null;
        }
      }
      const stageEnd = epoch + 1 === st.end;
      if (stageEnd) {
        const host = await model.student.toHost();
        await writeCheckpoint(
          `${dir}/stage${st.stage}.safetensors`,
          model.student,
          ckptConfig(cfg, student, stats, st.stage),
        );
        const r = await knn(host);
        perStage[st.stage] = r.top1;
        log(
          `stage ${st.stage} done at epoch ${epoch + 1}: k-NN top-1 ${r.top1.toFixed(2)}% (top-5 ${
            r.top5.toFixed(2)
          }%)`,
        );
      }
      await saveState(statePath, be, model, opt, {
        epoch: epoch + 1,
        iter: 0,
        step,
        skipped,
        knnInit,
        perStage,
        teacherCfg: model.cfg.teacher,
      });
      epochsRun++;
      if (hooks.signal?.aborted) {
        log(
          `interrupted: saved the state at the end of epoch ${epoch} (step ${step}) to ` +
            `${statePath}; continue with: ${resumeCommand(cfg)}`,
        );
        return null;
      }
      if (
        hooks.stopAfterEpochs !== undefined && epochsRun >= hooks.stopAfterEpochs &&
        epoch + 1 < totalEpochs
      ) {
        log(`stopping after ${epochsRun} epoch(s) as asked`);
        return null;
      }
    }
  } catch (e) {
    const gpu = asGpuError(e);
    // the device cannot be read after a fault: what can be saved is the state already on disk
    if (gpu) {
      throw new GpuError(`${gpu.message}\nStopped at step ${step}: ${await lastGood()}`, {
        cause: e,
      });
    }
    throw e;
  } finally {
    pf?.dispose();
    metrics.close();
  }

  // ---- outputs ----------------------------------------------------------------
  const finalPath = `${dir}/final.safetensors`;
  await writeCheckpoint(
    finalPath,
    model.student,
    ckptConfig(cfg, student, stats, boundaries.length - 2),
  );
  const last = await knn(await model.student.toHost());
  await writeLossPlot(dir, boundaries, itersPerEpoch);
  const summary: PretrainSummary = {
    knn_top1_init: knnInit,
    knn_top1_final: last.top1,
    knn_top1_per_stage: perStage,
    knn_top5_final: last.top5,
    images_per_s: trainImages / Math.max(trainS, 1e-9),
    backend: hooks.backendReason ?? be.description,
    final_checkpoint: finalPath,
    wall_s: (performance.now() - t0) / 1000,
    steps: step,
    lr,
    skipped_steps: skipped,
  };
  await writeJson(`${dir}/summary.json`, summary);
  return summary;
}

/** The DbotConfig of a run with the given teacher. */
function dbotConfig(cfg: PretrainConfig, student: VitConfig, teacher: TeacherConfig): DbotConfig {
  return {
    student,
    decoder: PRESETS[cfg.model].decoder,
    teacher,
    maskRatio: cfg.maskRatio,
    dropPath: cfg.dropPath,
  };
}

/** The stage-0 teacher: random copy, zero-depth copy, pixels, or a checkpoint (with its weights). */
async function stageZeroTeacher(
  cfg: PretrainConfig,
  student: VitConfig,
): Promise<{ cfg: TeacherConfig; weights: Map<string, Float32Array> | null }> {
  switch (cfg.teacher) {
    case "random":
      return { cfg: { kind: "vit", vit: student }, weights: null };
    case "random0":
      return { cfg: { kind: "vit", vit: { ...student, depth: 0 } }, weights: null };
    case "pixels":
      return { cfg: { kind: "pixels" }, weights: null };
  }
  const ckpt = await readCheckpoint(cfg.teacher);
  const vit = inferVitConfig(ckpt, { heads: cfg.teacherHeads || undefined, file: cfg.teacher });
  return { cfg: { kind: "vit", vit }, weights: vitWeights(ckpt, vit, { file: cfg.teacher }) };
}

/** AdamW settings of a run. */
function adamwConfig(cfg: PretrainConfig) {
  return {
    beta1: cfg.beta1,
    beta2: cfg.beta2,
    eps: 1e-8,
    weightDecay: cfg.weightDecay,
    clipGrad: cfg.clipGrad > 0 ? cfg.clipGrad : Infinity,
  };
}

/**
 * A stage boundary: teacher ← student encoder, student re-initialised except the
 * patch-embed bias, AdamW moments and step kept. When the stage-0 teacher had another
 * architecture (zero-depth, pixels, a wider checkpoint) the model is rebuilt with a
 * student-shaped teacher and the moments move over by parameter name.
 */
export async function nextStage(
  be: Backend,
  model: DbotModel,
  opt: AdamW,
  cfg: PretrainConfig,
  student: VitConfig,
  stage: number,
  log: (s: string) => void,
): Promise<{ model: DbotModel; opt: AdamW }> {
  const names = new Set(vitParamSpecs(student).map((s) => s.name));
  const host = await model.student.toHost();
  const encoder = new Map([...host].filter(([n]) => names.has(n)));
  const sameArch = model.cfg.teacher.kind === "vit" &&
    JSON.stringify(model.cfg.teacher.vit) === JSON.stringify(student);
  let next = model;
  let nextOpt = opt;
  if (!sameArch) {
    next = new DbotModel(be, dbotConfig(cfg, student, { kind: "vit", vit: student }), cfg.batch);
    nextOpt = new AdamW(be, next.student, adamwConfig(cfg));
    nextOpt.step = opt.step;
    const m = (await be.download(opt.m)) as Float32Array;
    const v = (await be.download(opt.v)) as Float32Array;
    be.upload(nextOpt.m, remap(model, next, m));
    be.upload(nextOpt.v, remap(model, next, v));
  }
  next.teacher!.load(encoder);
  next.initStudent(deriveSeed(cfg.seed, 1, stage));
  be.upload(next.student.get("patch_embed.proj.bias"), host.get("patch_embed.proj.bias")!);
  log(
    `stage ${stage}: teacher ← student encoder; student re-initialised (patch-embed bias kept), AdamW moments kept`,
  );
  return { model: next, opt: nextOpt };
}

/** A flat moment buffer of `from`'s layout moved into `to`'s, by name (changed shapes start at 0). */
function remap(from: DbotModel, to: DbotModel, flat: Float32Array): Float32Array {
  const out = new Float32Array(to.student.count);
  for (const s of to.student.specs) {
    if (!s.trainable || !from.student.has(s.name)) continue;
    const a = from.student.get(s.name);
    const b = to.student.get(s.name);
    if (a.size !== b.size) continue;
    out.set(flat.subarray(a.offset, a.offset + a.size), b.offset);
  }
  return out;
}

function ckptConfig(
  cfg: PretrainConfig,
  student: VitConfig,
  stats: { mean: readonly number[]; std: readonly number[] },
  stage: number,
): Record<string, unknown> {
  return {
    vit: student,
    mean: [...stats.mean],
    std: [...stats.std],
    stage,
    run: cfg.name,
    data: cfg.data,
  };
}

interface SavedState {
  /** The epoch to continue in. */
  epoch: number;
  /** The iteration of `epoch` to continue at (0 unless saved mid-epoch). */
  iter: number;
  step: number;
  skipped: number;
  optStep: number;
  knnInit: number;
  perStage: number[];
  teacher: { cfg: TeacherConfig; weights: Map<string, Float32Array> | null };
  teacherWeights: Map<string, Float32Array>;
  student: Map<string, Float32Array>;
  m: Float32Array;
  v: Float32Array;
}

/** Writes the resume state atomically: student, teacher, AdamW moments and counters. */
async function saveState(
  path: string,
  be: Backend,
  model: DbotModel,
  opt: AdamW,
  meta: {
    epoch: number;
    iter: number;
    step: number;
    skipped: number;
    knnInit: number;
    perStage: number[];
    teacherCfg: TeacherConfig;
  },
): Promise<void> {
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const [n, d] of await model.student.toHost()) {
    tensors[`student/${n}`] = { dtype: "F32", shape: [d.length], data: d };
  }
  if (model.teacher) {
    for (const [n, d] of await model.teacher.toHost()) {
      tensors[`teacher/${n}`] = { dtype: "F32", shape: [d.length], data: d };
    }
  }
  tensors["adamw/m"] = {
    dtype: "F32",
    shape: [opt.m.size],
    data: (await be.download(opt.m)) as Float32Array,
  };
  tensors["adamw/v"] = {
    dtype: "F32",
    shape: [opt.v.size],
    data: (await be.download(opt.v)) as Float32Array,
  };
  await writeSafetensors(path, tensors, { state: JSON.stringify({ ...meta, optStep: opt.step }) });
}

async function readState(path: string): Promise<SavedState | null> {
  try {
    await Deno.stat(path);
  } catch {
    return null;
  }
  const { tensors, metadata } = await readSafetensors(path);
  const meta = JSON.parse(metadata.state);
  const pick = (prefix: string) =>
    new Map(
      [...tensors].filter(([n]) => n.startsWith(prefix)).map((
        [n, t],
      ) => [n.slice(prefix.length), toFloat32(t)]),
    );
  const teacherWeights = pick("teacher/");
  return {
    ...meta,
    iter: meta.iter ?? 0,
    skipped: meta.skipped ?? 0,
    teacher: { cfg: meta.teacherCfg, weights: teacherWeights.size ? teacherWeights : null },
    teacherWeights,
    student: pick("student/"),
    m: toFloat32(tensors.get("adamw/m")!),
    v: toFloat32(tensors.get("adamw/v")!),
  };
}

/** "epoch E, step S" of a saved state, read from its header only; null when there is none. */
async function stateSummary(path: string): Promise<string | null> {
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(path);
    const head = new Uint8Array(8);
    if ((await file.read(head)) !== 8) return null;
    const n = Number(new DataView(head.buffer).getBigUint64(0, true));
    if (n > 1e8) return null;
    const json = new Uint8Array(n);
    for (let at = 0; at < n;) {
      const got = await file.read(json.subarray(at));
      if (got === null) return null;
      at += got;
    }
    const meta = JSON.parse(JSON.parse(new TextDecoder().decode(json)).__metadata__.state);
    const iter = meta.iter ? `, iteration ${meta.iter}` : "";
    return `saved at epoch ${meta.epoch}${iter}, step ${meta.step}`;
  } catch {
    return null;
  } finally {
    file?.close();
  }
}

/** Removes temp files that a killed process left behind (`<file>.tmp-<pid>[-<hex>]`). */
async function removeStaleTemps(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /\.tmp-\d+(-[0-9a-f]+)?$/.test(e.name)) await Deno.remove(`${dir}/${e.name}`);
  }
}

/** Drops metric lines after `step` (written after the saved state) and any torn last line. */
async function trimMetrics(path: string, step: number): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const keep = text.split("\n").filter((l) => {
    try {
      return (JSON.parse(l) as MetricLine).step <= step;
    } catch {
      return false;
    }
  });
  await writeTextAtomic(path, keep.map((l) => l + "\n").join(""));
}

/** Writes `text` to a temp file, fsyncs it and renames it over `path`. */
async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  const bytes = new TextEncoder().encode(text);
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/** loss.svg from metrics.jsonl, stage boundaries marked. */
async function writeLossPlot(
  dir: string,
  boundaries: number[],
  itersPerEpoch: number,
): Promise<void> {
  const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").filter(
    Boolean,
  );
  const points = lines.map((l) => JSON.parse(l) as MetricLine)
    .filter((m) => typeof m.loss === "number" && Number.isFinite(m.loss))
    .map((m) => [m.step, m.loss] as [number, number]);
  const svg = lineChartSvg({
    title: `dBOT pre-training loss (${dir})`,
    xLabel: "step",
    yLabel: "SmoothL1 loss",
    series: [{ name: "loss", points }],
    verticalMarkers: boundaries.slice(1, -1).map((e, i) => ({
      x: e * itersPerEpoch,
      label: `stage ${i + 1}`,
    })),
  });
  await writeTextAtomic(`${dir}/loss.svg`, svg);
}
