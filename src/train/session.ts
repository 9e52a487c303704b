/**
 * dBOT pre-training one step at a time, on any backend and with no file access: the loop
 * of the browser page (`web/`). It trains exactly what `deno task pretrain` trains for the
 * same configuration and seed — the same init (`startStageZero`), the same micro-batches
 * and random draws (`micro_batch.ts`), the same LR schedule, stage boundaries (`nextStage`)
 * and optimiser step (`TrainStep`) — so its losses equal `pretrain()`'s step for step.
 * What it leaves out: run files, resume state, locks, prefetch workers, data parallelism,
 * checkpoint teachers (`random`, `random0` and `pixels` only) and datasets read from files
 * (`shapes`, or images the caller decoded, given as {@link SessionData}).
 *
 *   create: data (shapes) → stats → student config → stage-0 teacher → trainee
 *   step:   stage boundary? → micro-batches → TrainStep (reads the loss back) → position
 *
 * @example
 * ```ts ignore
 * const s = PretrainSession.create(backend, resolvePretrain({ batch: 16 }));
 * while (!s.done) console.log((await s.step()).loss);
 * ```
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import type { Dataset } from "../data/types.ts";
import { channelStats, ImagePipeline, spreadSample } from "../data/pipeline.ts";
import { openShapes } from "../data/shapes.ts";
import { Embedder } from "../eval/embed.ts";
import { knnClassify, type KnnResult } from "../eval/knn.ts";
import {
  type CheckpointConfig,
  CheckpointError,
  decodeCheckpoint,
  encodeCheckpoint,
  vitWeights,
} from "../io/checkpoint.ts";
import { deriveVit, type VitConfig, vitFromPreset } from "../models/vit_config.ts";
import { randomMasking } from "../models/masking.ts";
import { planBoundaries, type PretrainConfig } from "./pretrain_config.ts";
import {
  epochOrder,
  type MicroBatch,
  microBatchJob,
  microBatchOf,
  pretrainAugment,
  renderBatch,
} from "./micro_batch.ts";
import { effectiveLr, lrAt, stageAt } from "./schedule.ts";
import { buildTrainee, builtinTeacher, nextStage, startStageZero, type Trainee } from "./stages.ts";
import { NonFiniteLossError, TrainStep } from "./step.ts";

/** Datasets given to {@link PretrainSession.create} instead of `cfg.data`. */
export interface SessionData {
  /** Images to pre-train on (and the k-NN's labelled side). */
  train: Dataset;
  /** The held-out images the k-NN classifies. */
  test: Dataset;
}

/** What one {@link PretrainSession.step} did. */
export interface SessionStep {
  /** Optimiser steps taken so far (this one included). */
  step: number;
  /** The epoch the step belonged to. */
  epoch: number;
  /** Its stage. */
  stage: number;
  /** The learning rate it used. */
  lr: number;
  /** The step's loss (last micro-batch). */
  loss: number;
  /** The global gradient norm before clipping. */
  norm: number;
  /** Wall seconds of the step, readback included. */
  seconds: number;
  /** The step ended its stage (the caller may run {@link PretrainSession.knn} now). */
  stageEnd: boolean;
  /** A stage boundary happened before the step (teacher ← student). */
  stageStart: boolean;
}

/** One sample of the last step, for pictures: input, mask, teacher targets and predictions. */
export interface SampleView {
  /** The input `[C, H, W]` as the model saw it, un-normalised to [0, 1]. */
  image: Float32Array;
  /** `[L]`: 1 where the patch was removed from the student's input. */
  mask: Float32Array;
  /** The teacher's standardised patch features `[L, Dt]` (cls left out). */
  target: Float32Array;
  /** The student's predictions `[L, Dt]` (cls left out). */
  pred: Float32Array;
  /** Patches per side. */
  grid: number;
  /** Target width Dt. */
  dim: number;
}

/** One step at a time pre-training of `cfg` on `be` (see the module doc). */
export class PretrainSession {
  /** The configuration (data must be `shapes` or `shapes:N`). */
  readonly cfg: PretrainConfig;
  /** The student encoder's configuration. */
  readonly student: VitConfig;
  /** Stage boundaries in epochs. */
  readonly boundaries: number[];
  /** Optimiser steps per epoch. */
  readonly itersPerEpoch: number;
  /** Steps of the whole run. */
  readonly totalSteps: number;
  /** Effective peak LR. */
  readonly lr: number;
  /** Normalisation statistics (measured on the training images unless given). */
  readonly stats: { mean: number[]; std: number[] };
  /** Position: optimiser steps taken. */
  stepsDone = 0;
  /** Position: epoch of the next step. */
  epoch = 0;
  /** Position: iteration of the next step within its epoch. */
  iter = 0;
  readonly #be: Backend;
  readonly #train: ImagePipeline;
  readonly #test: ImagePipeline;
  readonly #trainDs: Dataset;
  readonly #testDs: Dataset;
  readonly #nTrain: number;
  readonly #L: number;
  #t: Trainee;
  #step: TrainStep;
  #order: { epoch: number; order: Int32Array } | null = null;
  #last: MicroBatch | null = null;
  #embedder: Embedder | null = null;
  #images: Float32Array;

  private constructor(be: Backend, cfg: PretrainConfig, data?: SessionData) {
    if (!data && !/^shapes(:\d+)?$/.test(cfg.data)) {
      throw new RangeError(
        `Cannot train on "${cfg.data}" in a session: it reads no files; use shapes or shapes:N, ` +
          "or pass the decoded images as data",
      );
    }
    if (cfg.accum < 1) throw new RangeError(`Cannot accumulate ${cfg.accum} micro-batches`);
    this.#be = be;
    this.cfg = cfg;
    this.#trainDs = data?.train ?? openShapes(cfg.data, "train");
    this.#testDs = data?.test ?? openShapes(cfg.data, "test");
    const channels = this.#trainDs.channels;
    const size = cfg.imgSize || this.#trainDs.height;
    const stats = cfg.mean.length
      ? { mean: [...cfg.mean], std: [...cfg.std] }
      : channelStats(this.#trainDs, channels, 1000);
    this.stats = { mean: [...stats.mean], std: [...stats.std] };
    const augment = pretrainAugment(cfg); // as run_data.ts
    this.#train = new ImagePipeline(this.#trainDs, size, channels, stats.mean, stats.std, augment);
    this.#test = new ImagePipeline(this.#testDs, size, channels, stats.mean, stats.std);
    this.#nTrain = cfg.trainLimit
      ? Math.min(cfg.trainLimit, this.#trainDs.count)
      : this.#trainDs.count;
    const stepImages = cfg.batch * cfg.accum;
    this.itersPerEpoch = Math.floor(this.#nTrain / stepImages);
    if (this.itersPerEpoch < 1) {
      throw new RangeError(
        `Cannot train: ${this.#nTrain} images make no full step of ${stepImages}; lower batch or accum`,
      );
    }
    this.student = vitFromPreset(cfg.model, {
      imgSize: size,
      patchSize: cfg.patchSize,
      inChans: channels,
    });
    this.#L = deriveVit(this.student).numPatches;
    this.boundaries = planBoundaries(cfg);
    this.totalSteps = this.boundaries[this.boundaries.length - 1] * this.itersPerEpoch;
    this.lr = effectiveLr(cfg.baseLr, stepImages);
    const teacher = builtinTeacher(cfg, this.student);
    if (!teacher) {
      throw new RangeError(
        `Cannot use the teacher "${cfg.teacher}" in a session: it reads no files; ` +
          "use random, random0 or pixels",
      );
    }
    this.#t = buildTrainee(be, cfg, this.student, teacher.cfg);
    startStageZero(this.#t, cfg, teacher);
    this.#step = this.#trainStep();
    this.#images = new Float32Array(cfg.batch * channels * size * size);
  }

  /**
   * Builds the student, its teacher and optimiser (allocates every buffer on `be`). `data`
   * replaces `cfg.data` (e.g. the images a page decoded from the user's folder).
   */
  static create(be: Backend, cfg: PretrainConfig, data?: SessionData): PretrainSession {
    return new PretrainSession(be, cfg, data);
  }

  /** Every step of every stage is done. */
  get done(): boolean {
    return this.stepsDone >= this.totalSteps;
  }

  /** The stage of the next step (the last stage once done). */
  get stage(): number {
    const last = this.boundaries[this.boundaries.length - 1] - 1;
    return stageAt(this.boundaries, Math.min(this.epoch, last)).stage;
  }

  /** Runs one optimiser step (a stage boundary first when one is due); reads its loss back. */
  async step(): Promise<SessionStep> {
    if (this.done) throw new RangeError(`Cannot step: all ${this.totalSteps} steps are done`);
    const t0 = performance.now();
    const { cfg, epoch, iter } = this;
    const st = stageAt(this.boundaries, epoch);
    const stageStart = epoch === st.start && st.stage > 0 && iter === 0;
    if (stageStart) await this.#nextStage(st.stage);
    if (this.#order?.epoch !== epoch) {
      this.#order = { epoch, order: epochOrder(this.#plan(), epoch) };
    }
    const rate = lrAt(epoch - st.start + iter / this.itersPerEpoch, {
      lr: this.lr,
      warmupEpochs: cfg.warmupEpochs,
      stageEpochs: st.end - st.start,
      minLr: cfg.minLr,
    });
    const order = this.#order.order;
    const r = await this.#step.run(rate, (j) => {
      const [indices, seeds] = microBatchJob(this.#plan(), order, {
        first: iter,
        step: this.stepsDone,
        j,
      });
      const mb = microBatchOf(renderBatch(this.#train, indices, seeds, this.#images), this.#L);
      this.#t.model.setBatch(mb.images, mb.noise, mb.rngs);
      this.#t.model.forwardBackward();
      this.#last = { ...mb, images: mb.images.slice() };
    }, { read: true });
    if (!Number.isFinite(r.loss) || !Number.isFinite(r.norm)) {
      throw new NonFiniteLossError(
        `Stopped: the loss is ${r.loss} and the gradient norm ${r.norm} at step ${this.stepsDone} ` +
          `(epoch ${epoch}, lr ${rate.toExponential(3)}); try a lower base LR or clip`,
      );
    }
    this.stepsDone++;
    this.iter++;
    let stageEnd = false;
    if (this.iter === this.itersPerEpoch) {
      stageEnd = epoch + 1 === st.end;
      this.epoch++;
      this.iter = 0;
    }
    return {
      step: this.stepsDone,
      epoch,
      stage: st.stage,
      lr: rate,
      loss: r.loss,
      norm: r.norm,
      seconds: (performance.now() - t0) / 1000,
      stageEnd,
      stageStart,
    };
  }

  /**
   * k-NN top-1/top-5 of the student encoder (cfg.knnTrain → cfg.knnTest images, `knnPool`):
   * the first images, or spread over the classes of a class-sorted folder (`spreadSample`).
   */
  async knn(): Promise<KnnResult> {
    const { cfg } = this;
    const tr = spreadSample(this.#trainDs, cfg.knnTrain);
    const te = spreadSample(this.#testDs, cfg.knnTest);
    const fTr = await this.#featuresOf(this.#train, tr);
    const fTe = await this.#featuresOf(this.#test, te);
    return knnClassify(
      { features: fTr, labels: Int32Array.from(tr, (i) => this.#trainDs.labels[i]) },
      { features: fTe, labels: Int32Array.from(te, (i) => this.#testDs.labels[i]) },
      { dim: this.student.embedDim, k: cfg.knnK },
    );
  }

  /**
   * Student-encoder features `[count, D]` of the first `count` images of `split` (eval
   * transform, `knnPool`): what `deno task embed` computes from this session's checkpoint.
   */
  async features(split: "train" | "test", count: number): Promise<Float32Array> {
    const pipe = split === "train" ? this.#train : this.#test;
    return await this.#featuresOf(pipe, Int32Array.from({ length: count }, (_, i) => i));
  }

  /** Student-encoder features `[idx.length, D]` of images `idx` of a pipeline (eval view). */
  async #featuresOf(pipe: ImagePipeline, idx: Int32Array): Promise<Float32Array> {
    this.#embedder ??= new Embedder(
      this.#be,
      this.student,
      Math.min(64, Math.max(1, this.cfg.knnTest)),
    );
    this.#embedder.load(await this.#t.model.student.toHost());
    return await this.#embedder.embed(idx.length, (i) => pipe.eval(idx[i]), this.cfg.knnPool);
  }

  /** Sample `b` of the last step's batch: input, mask, teacher targets and predictions. */
  async sample(b = 0): Promise<SampleView | null> {
    const last = this.#last;
    if (!last) return null;
    const L = this.#L;
    const { model } = this.#t;
    const Dt = model.sizes.Dt;
    const C = this.student.inChans;
    const S = this.student.imgSize;
    const image = last.images.slice(b * C * S * S, (b + 1) * C * S * S);
    for (let c = 0; c < C; c++) {
      for (let i = c * S * S; i < (c + 1) * S * S; i++) {
        image[i] = Math.min(1, Math.max(0, image[i] * this.stats.std[c] + this.stats.mean[c]));
      }
    }
    const m = randomMasking(last.noise, { B: this.cfg.batch, L }, this.cfg.maskRatio);
    const rows = (t: Float32Array) => t.slice((b * (1 + L) + 1) * Dt, (b + 1) * (1 + L) * Dt);
    const target = rows((await this.#be.download(model.target)) as Float32Array);
    const pred = rows((await this.#be.download(model.pred)) as Float32Array);
    return {
      image,
      mask: m.mask.slice(b * L, (b + 1) * L),
      target,
      pred,
      grid: deriveVit(this.student).grid,
      dim: Dt,
    };
  }

  /** The checkpoint metadata, as `deno task pretrain` writes it. */
  checkpointConfig(): CheckpointConfig {
    return {
      vit: this.student,
      mean: [...this.stats.mean],
      std: [...this.stats.std],
      stage: this.stage,
      run: this.cfg.name,
      data: this.cfg.data,
      step: this.stepsDone,
    };
  }

  /** The student (encoder and decoder) as safetensors bytes: `deno task embed` loads it. */
  async checkpoint(): Promise<Uint8Array> {
    const ps = this.#t.model.student;
    return encodeCheckpoint({
      weights: await ps.toHost(),
      shapes: new Map(ps.specs.map((s) => [s.name, s.shape])),
    }, this.checkpointConfig());
  }

  /**
   * Loads checkpoint bytes into the student: the encoder (every name, checked), and the
   * decoder where the file has it. Training continues from the current position.
   */
  load(bytes: Uint8Array, file = "<memory>"): void {
    const ckpt = decodeCheckpoint(bytes, file);
    const enc = vitWeights(ckpt, this.student, { file });
    const ps = this.#t.model.student;
    const extra = new Map<string, Float32Array>();
    const wrong: string[] = [];
    for (const s of ps.specs) {
      const w = ckpt.weights.get(s.name);
      if (!w || enc.has(s.name)) continue;
      const got = ckpt.shapes.get(s.name)!;
      if (got.join(",") !== s.shape.join(",")) {
        wrong.push(`${s.name} [${got}] (expected [${s.shape}])`);
      } else extra.set(s.name, w);
    }
    if (wrong.length) {
      throw new CheckpointError(
        `Cannot load the decoder in "${file}": wrong shape: ${wrong.join(", ")}`,
      );
    }
    ps.load(enc);
    ps.load(extra);
  }

  /** Frees the model, optimiser, step and embedder buffers. */
  dispose(): void {
    this.#step.dispose();
    this.#t.model.dispose();
    this.#t.opt.dispose();
  }

  #plan() {
    const { seed, batch, accum } = this.cfg;
    return { seed, batch, accum, rank: 0, ranks: 1, nTrain: this.#nTrain };
  }

  #trainStep(): TrainStep {
    const { model, opt } = this.#t;
    return new TrainStep(this.#be, { ps: model.student, loss: model.loss, opt }, {
      accum: this.cfg.accum,
    });
  }

  async #nextStage(stage: number): Promise<void> {
    const next = await nextStage(this.#be, this.#t, this.cfg, this.student, stage, () => {});
    if (next === this.#t) return;
    this.#t = next;
    this.#step.dispose();
    this.#step = this.#trainStep();
  }
}
