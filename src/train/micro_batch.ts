/**
 * Which images, and which random draws, make each micro-batch of a pre-training epoch: the
 * one definition shared by `deno task pretrain` (`run_data.ts`) and the browser page
 * (`session.ts`), so the same seed trains on the same batches everywhere. No file access.
 *
 * A step takes `G = batch × accum × ranks` images of the epoch's seeded order; micro-batch
 * m of rank r takes positions `m·ranks·batch + r·batch …` of them. Every sample's
 * randomness (augmentation, then masking noise, then drop path) comes from its own stream,
 * keyed by the sample's global index over the run (`step·G + position`).
 *
 * @module
 */
import { type AugmentOptions, deriveSeed, permutation } from "../data/pipeline.ts";
import { type PreparedBatch, renderBatch } from "../data/render.ts";
import type { PretrainConfig } from "./pretrain_config.ts";

export { type PreparedBatch, renderBatch };
import { Rng } from "../util/rng.ts";

/** One micro-batch: images `[B, C, H, W]`, their masking noise and per-sample RNGs. */
export interface MicroBatch {
  /** The images. */
  images: Float32Array;
  /** Masking noise `[B, L]`: each sample's draws right after its augmentation. */
  noise: Float32Array;
  /** Each sample's stream after its noise (drop path: `DbotModel.setBatch`). */
  rngs: Rng[];
  /** Files found unreadable while rendering it (skipped), as "path (why)". */
  skipped?: string[];
}

/** The training view of a pre-training run: its crop scale and colour jitter (CLIP branch). */
export function pretrainAugment(
  cfg: Pick<PretrainConfig, "cropScale" | "colorJitter">,
): AugmentOptions {
  return { cropScale: [...cfg.cropScale], colorJitter: cfg.colorJitter };
}

/** The sizes and seed that fix a run's micro-batches. */
export interface BatchPlan {
  /** Run seed. */
  seed: number;
  /** Images per micro-batch (per rank). */
  batch: number;
  /** Micro-batches per optimiser step. */
  accum: number;
  /** This process's rank. */
  rank: number;
  /** Processes. */
  ranks: number;
  /** Training images used. */
  nTrain: number;
}

/** The seeded order of the training images in `epoch`. */
export function epochOrder(plan: BatchPlan, epoch: number): Int32Array {
  return permutation(plan.nTrain, new Rng(deriveSeed(plan.seed, 2, epoch)));
}

/**
 * Micro-batch `j` (counted from iteration `first` of the epoch, whose first step is `step`)
 * of this rank: its image indices and one augmentation seed per sample.
 */
export function microBatchJob(
  plan: BatchPlan,
  order: Int32Array,
  at: { first: number; step: number; j: number },
): readonly [Int32Array, Uint32Array] {
  const { batch, accum, ranks, rank, seed } = plan;
  const stepImages = batch * accum * ranks;
  const it = Math.floor(at.j / accum); // steps after `first`
  const pos = (at.j % accum) * ranks * batch + rank * batch; // within the step
  const base = (at.first + it) * stepImages + pos;
  const seeds = new Uint32Array(batch);
  for (let b = 0; b < batch; b++) {
    seeds[b] = deriveSeed(seed, 3, (at.step + it) * stepImages + pos + b);
  }
  return [order.subarray(base, base + batch), seeds] as const;
}

/** A rendered batch (one seed per sample) with each sample's masking noise `[L]` drawn after it. */
export function microBatchOf(b: PreparedBatch, L: number): MicroBatch {
  // each sample's stream continues where its augmentation left off
  const rngs = Array.from(b.rngStates!, (st) => {
    const r = new Rng(0);
    r.state = st;
    return r;
  });
  const noise = new Float32Array(rngs.length * L);
  rngs.forEach((r, i) => noise.set(r.uniformArray(L), i * L));
  return { images: b.images, noise, rngs, skipped: b.skipped };
}
