/**
 * The data side of a pre-training run: datasets and pipelines, the seeded epoch order, the
 * micro-batches of an epoch (rendered on a data worker one ahead, or inline), and the k-NN
 * monitor.
 *
 * Data parallelism: a step takes `G = batch × accum × ranks` images of the epoch's seeded
 * order; micro-batch m of rank r takes positions `m·ranks·batch + r·batch …` of them, so
 * one rank of batch `ranks × batch` sees the same images in the same micro-batches. Every
 * sample's randomness (augmentation, then masking noise, then drop path) comes from its own
 * stream, keyed by the sample's global index over the run (`step·G + position`): a resumed
 * run, and a run split over any number of ranks, draws exactly what the uninterrupted
 * single-process run draws.
 *
 * @module
 */
import { openDataset } from "../data/dataset.ts";
import { channelStats, ImagePipeline, spreadSample } from "../data/pipeline.ts";
import { Embedder } from "../eval/embed.ts";
import { knnClassify, type KnnResult } from "../eval/knn.ts";
import { similarityGemm } from "../eval/knn_file.ts";
import type { Backend } from "../backend/backend.ts";
import { deriveVit, type VitConfig, vitFromPreset } from "../models/vit_config.ts";
import { symmetricVit } from "../models/symmetric_student.ts";
import type { PretrainConfig } from "./pretrain_config.ts";
import {
  defaultDataWorkers,
  Prefetcher,
  type PreparedBatch,
  renderBatch,
} from "../data/prefetch.ts";
import { jpegDecoder } from "../data/jpeg.ts";
import { CpuBackend } from "../backend/cpu/backend.ts";
import { epochOrder, type MicroBatch, microBatchJob, microBatchOf } from "./micro_batch.ts";

export type { MicroBatch } from "./micro_batch.ts";

/** What {@link openRunData} returns. */
export interface RunData {
  /** The student encoder's configuration (size and channels from the data). */
  student: VitConfig;
  /** Image size. */
  size: number;
  /** Patches per image. */
  L: number;
  /** Normalisation statistics. */
  stats: { mean: readonly number[]; std: readonly number[] };
  /** Optimiser steps per epoch. */
  itersPerEpoch: number;
  /** Images per optimiser step over all ranks (batch × accum × ranks). */
  stepImages: number;
  /** This rank's micro-batches of `epoch` from iteration `first`, whose first step is `step`, in order. */
  epochBatches(epoch: number, first: number, step: number): { next(): Promise<MicroBatch> };
  /** k-NN top-1/top-5 of an encoder with `weights` (cfg.knnTrain → cfg.knnTest images); NaN on ranks other than 0. */
  knn(weights: Map<string, Float32Array>): Promise<KnnResult>;
  /** Checkpoint metadata of stage `stage`. */
  ckptConfig(stage: number): Record<string, unknown>;
  /** Unreadable image files skipped so far (each counted once). */
  skippedFiles(): number;
  /** What the held-out test split is, when the data had none (for config.json). */
  holdout?: string;
  /** Stops the data workers. */
  dispose(): void;
}

/**
 * Most bytes of k-NN images a run keeps decoded between its k-NN evaluations (a run
 * measures k-NN at the start and at every stage end; shapes' 3000 images are 37 MB).
 */
const KNN_VIEW_CACHE_BYTES = 256 << 20;

/** Opens the run's data on `be` (the k-NN embedder lives there too) for rank `rank` of `ranks` (default 0 of 1). */
export async function openRunData(
  be: Backend,
  cfg: PretrainConfig,
  o: { log: (s: string) => void; prefetch: boolean; rank?: number; ranks?: number },
): Promise<RunData> {
  const rank = o.rank ?? 0;
  const ranks = o.ranks ?? 1;
  const trainDs = await openDataset(cfg.data, "train", { warn: o.log, strict: cfg.strictData });
  const testDs = await openDataset(cfg.data, "test", { warn: o.log, strict: cfg.strictData });
  const size = cfg.imgSize || trainDs.height;
  const channels = trainDs.channels;
  const stats = cfg.mean.length
    ? { mean: cfg.mean, std: cfg.std }
    : channelStats(trainDs, channels, 1000);
  // the training view: cfg's crop scale and colour jitter (the CLIP branch's augmentation)
  const augment = { cropScale: [...cfg.cropScale], colorJitter: cfg.colorJitter };
  const train = new ImagePipeline(trainDs, size, channels, stats.mean, stats.std, augment);
  const test = new ImagePipeline(testDs, size, channels, stats.mean, stats.std);
  const nTrain = cfg.trainLimit ? Math.min(cfg.trainLimit, trainDs.count) : trainDs.count;
  const stepImages = cfg.batch * cfg.accum * ranks;
  const itersPerEpoch = Math.floor(nTrain / stepImages);
  if (itersPerEpoch < 1) {
    throw new RangeError(
      `Cannot train: ${nTrain} images make no full step of ${stepImages}` +
        `${ranks > 1 ? ` (${ranks} ranks)` : ""}; lower --batch or --accum`,
    );
  }
  const preset = vitFromPreset(cfg.model, {
    imgSize: size,
    patchSize: cfg.patchSize,
    inChans: channels,
  });
  // the symmetric student's encoder is a BEiT (no abs. position embedding, relative position
  // bias, layer scale, q/v biases): k-NN and checkpoints use that config
  const student = cfg.student === "symmetric" ? symmetricVit(preset) : preset;
  const embedder = new Embedder(be, student, Math.min(64, Math.max(1, cfg.knnTest)));
  const workers = !o.prefetch ? 0 : cfg.dataWorkers >= 0 ? cfg.dataWorkers : defaultDataWorkers({
    cores: navigator.hardwareConcurrency ?? 1,
    trainThreads: be instanceof CpuBackend ? be.threads : 1,
    ranks,
  });
  const pf = workers > 0
    ? Prefetcher.create(
      {
        data: cfg.data,
        strict: cfg.strictData,
        size,
        channels,
        mean: [...stats.mean],
        std: [...stats.std],
        augment,
      },
      workers,
      o.log,
    )
    : null;
  if (trainDs.decoded) {
    // a folder or shards: say who decodes, and what would be faster
    const dec = jpegDecoder();
    o.log(
      `data: ${trainDs.count} training images of ${cfg.data}, ${
        pf ? `${pf.workers} data worker(s)` : "decoded inline"
      }${cfg.dataWorkers < 0 && pf ? " (--data-workers -1: what the machine can spare)" : ""}; ` +
        `JPEG decoder ${dec.name}${dec.hint ? ` (${dec.hint})` : ""}`,
    );
  }
  // how many micro-batches are in flight: enough to keep every worker busy
  const ahead = pf ? Math.max(2, pf.workers) : 0;
  // unreadable files met while training: one warning each, and a count for metrics.jsonl
  const skippedFiles = new Set<string>();
  const noteSkipped = (list: string[] | undefined) => {
    for (const f of list ?? []) {
      if (skippedFiles.has(f)) continue;
      skippedFiles.add(f);
      o.log(`warning: skipped unreadable image ${f}; the next image stands in for it`);
    }
  };
  const images = new Float32Array(cfg.batch * channels * size * size);
  const L = deriveVit(student).numPatches;

  function epochBatches(epoch: number, first: number, step: number) {
    const plan = { seed: cfg.seed, batch: cfg.batch, accum: cfg.accum, rank, ranks, nTrain };
    const order = epochOrder(plan, epoch);
    const job = (j: number) => microBatchJob(plan, order, { first, step, j });
    const count = (itersPerEpoch - first) * cfg.accum;
    let j = 0, asked = 0;
    const ask = () => {
      while (pf && asked < count && asked < j + ahead) pf.request(...job(asked++));
    };
    ask(); // the first batches render while the caller gets ready
    return {
      async next(): Promise<MicroBatch> {
        if (j >= count) {
          throw new RangeError(`Cannot draw micro-batch ${j}: the epoch has ${count}`);
        }
        let b: PreparedBatch;
        if (pf) {
          ask(); // `ahead` micro-batches in flight
          b = await pf.next();
        } else {
          b = renderBatch(train, ...job(j), images);
        }
        j++;
        noteSkipped(b.skipped);
        return microBatchOf(b, L);
      },
    };
  }

  // the k-NN images' evaluation views, decoded once for every k-NN of the run when they fit
  // the k-NN images: the first N, or spread over the classes of a (class-sorted) folder
  const knnTr = spreadSample(trainDs, cfg.knnTrain), knnTe = spreadSample(testDs, cfg.knnTest);
  const nKnnTr = knnTr.length, nKnnTe = knnTe.length;
  const keepViews = 4 * (nKnnTr + nKnnTe) * channels * size * size <= KNN_VIEW_CACHE_BYTES;
  const views = (pipe: ImagePipeline): (i: number) => Float32Array => {
    if (!keepViews) return (i) => pipe.eval(i);
    const kept: Float32Array[] = [];
    return (i) => (kept[i] ??= pipe.eval(i));
  };
  const trainView = views(train), testView = views(test);

  async function knn(weights: Map<string, Float32Array>): Promise<KnnResult> {
    // rank 0 alone: the others would compute the same numbers
    if (rank !== 0) return { top1: NaN, top5: NaN, count: 0, k: 0 };
    embedder.load(weights);
    const nTr = nKnnTr, nTe = nKnnTe;
    const fTr = await embedder.embed(nTr, (i) => trainView(knnTr[i]), cfg.knnPool);
    const fTe = await embedder.embed(nTe, (i) => testView(knnTe[i]), cfg.knnPool);
    noteSkipped([...train.takeSkipped(), ...test.takeSkipped()]);
    return knnClassify(
      { features: fTr, labels: Int32Array.from(knnTr, (i) => trainDs.labels[i]) },
      { features: fTe, labels: Int32Array.from(knnTe, (i) => testDs.labels[i]) },
      { dim: student.embedDim, k: cfg.knnK, gemm: similarityGemm() },
    );
  }

  return {
    student,
    size,
    L,
    stats,
    itersPerEpoch,
    stepImages,
    epochBatches,
    knn,
    ckptConfig: (stage) => ({
      vit: student,
      mean: [...stats.mean],
      std: [...stats.std],
      stage,
      run: cfg.name,
      data: cfg.data,
    }),
    skippedFiles: () => skippedFiles.size,
    holdout: (trainDs as { holdout?: string }).holdout,
    dispose: () => pf?.dispose(),
  };
}
