/**
 * The data side of a pre-training run: datasets and pipelines, the seeded epoch order, the
 * micro-batches of an epoch (rendered on a data worker one ahead, or inline), and the k-NN
 * monitor. Every micro-batch's augmentation seed is keyed by its index over the whole run,
 * so a resumed run sees exactly the batches the uninterrupted one would have.
 *
 * @module
 */
import { openDataset } from "../data/dataset.ts";
import { channelStats, deriveSeed, ImagePipeline, permutation } from "../data/pipeline.ts";
import { Embedder } from "../eval/embed.ts";
import { knnClassify, type KnnResult } from "../eval/knn.ts";
import type { Backend } from "../backend/backend.ts";
import { deriveVit, type VitConfig, vitFromPreset } from "../models/config.ts";
import { Rng } from "../util/rng.ts";
import type { PretrainConfig } from "./config.ts";
import { Prefetcher, type PreparedBatch, renderBatch } from "./prefetch.ts";

/** One micro-batch: images `[B, C, H, W]` and the RNG positioned after their augmentations. */
export interface MicroBatch {
  /** The images. */
  images: Float32Array;
  /** Continues the batch's random stream (masking noise, drop path). */
  rng: Rng;
}

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
  /** The micro-batches of `epoch` from iteration `first`, whose first step is `step`, in order. */
  epochBatches(epoch: number, first: number, step: number): { next(): Promise<MicroBatch> };
  /** k-NN top-1/top-5 of an encoder with `weights` (cfg.knnTrain → cfg.knnTest images). */
  knn(weights: Map<string, Float32Array>): Promise<KnnResult>;
  /** Checkpoint metadata of stage `stage`. */
  ckptConfig(stage: number): Record<string, unknown>;
  /** Stops the data worker. */
  dispose(): void;
}

/** Opens the run's data on `be` (the k-NN embedder lives there too). */
export async function openRunData(
  be: Backend,
  cfg: PretrainConfig,
  o: { log: (s: string) => void; prefetch: boolean },
): Promise<RunData> {
  const trainDs = await openDataset(cfg.data, "train", { warn: o.log, strict: cfg.strict });
  const testDs = await openDataset(cfg.data, "test", { warn: o.log, strict: cfg.strict });
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
  const student = vitFromPreset(cfg.model, {
    imgSize: size,
    patchSize: cfg.patchSize,
    inChans: channels,
  });
  const embedder = new Embedder(be, student, Math.min(64, Math.max(1, cfg.knnTest)));
  const pf = o.prefetch
    ? Prefetcher.create({
      data: cfg.data,
      strict: cfg.strict,
      size,
      channels,
      mean: [...stats.mean],
      std: [...stats.std],
    })
    : null;
  const images = new Float32Array(cfg.batch * channels * size * size);

  function epochBatches(epoch: number, first: number, step: number) {
    const order = permutation(nTrain, new Rng(deriveSeed(cfg.seed, 2, epoch)));
    // micro-batch j of the epoch (counted from `first`): its images and its augmentation
    // seed, keyed by the micro-batch's index over the whole run
    const job = (j: number) => {
      const base = (first * cfg.accum + j) * cfg.batch;
      return {
        indices: order.subarray(base, base + cfg.batch),
        seed: deriveSeed(cfg.seed, 3, step * cfg.accum + j),
      };
    };
    const count = (itersPerEpoch - first) * cfg.accum;
    let j = 0;
    if (pf && count > 0) pf.request(job(0).indices, job(0).seed);
    return {
      async next(): Promise<MicroBatch> {
        if (j >= count) {
          throw new RangeError(`Cannot draw micro-batch ${j}: the epoch has ${count}`);
        }
        let b: PreparedBatch;
        if (pf) {
          if (j + 1 < count) pf.request(job(j + 1).indices, job(j + 1).seed); // one ahead
          b = await pf.next();
        } else {
          b = renderBatch(train, job(j).indices, job(j).seed, images);
        }
        j++;
        const rng = new Rng(0);
        rng.state = b.rngState; // continue where the augmentations left off
        return { images: b.images, rng };
      },
    };
  }

  async function knn(weights: Map<string, Float32Array>): Promise<KnnResult> {
    embedder.load(weights);
    const nTr = Math.min(cfg.knnTrain, trainDs.count);
    const nTe = Math.min(cfg.knnTest, testDs.count);
    const fTr = await embedder.embed(nTr, (i) => train.eval(i), cfg.knnPool);
    const fTe = await embedder.embed(nTe, (i) => test.eval(i), cfg.knnPool);
    return knnClassify(
      { features: fTr, labels: trainDs.labels.slice(0, nTr) },
      { features: fTe, labels: testDs.labels.slice(0, nTe) },
      { dim: student.embedDim, k: cfg.knnK },
    );
  }

  return {
    student,
    size,
    L: deriveVit(student).numPatches,
    stats,
    itersPerEpoch,
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
    dispose: () => pf?.dispose(),
  };
}
