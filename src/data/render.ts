/**
 * One batch of training views rendered on this thread: the inline path of a run, and the
 * body of a data worker ({@link "./prefetch.ts"}). No file access of its own.
 *
 * @module
 */
import type { ImagePipeline } from "./pipeline.ts";
import { Rng } from "../util/rng.ts";

/** One batch's images `[B, C, size, size]` and the RNG state after drawing them. */
export interface PreparedBatch {
  /** The images. */
  images: Float32Array;
  /** `Rng.state` after the batch's augmentations (one stream: the last sample's). */
  rngState: number;
  /** With one seed per sample: each sample's `Rng.state` after its augmentation. */
  rngStates?: Uint32Array;
  /** Files found unreadable while rendering it (skipped), as "path (why)". */
  skipped?: string[];
}

/**
 * Renders one batch on this thread (the synchronous path, and the worker's body): one RNG
 * stream from `seed`, or with one seed per sample, sample b from `new Rng(seed[b])` (its
 * state after the augmentation in `rngStates[b]`). `onSample` runs after each sample (a data
 * worker's heartbeat).
 */
export function renderBatch(
  pipe: ImagePipeline,
  indices: Int32Array,
  seed: number | Uint32Array,
  out?: Float32Array,
  onSample?: () => void,
): PreparedBatch {
  const per = pipe.channels * pipe.size * pipe.size;
  const images = out ?? new Float32Array(indices.length * per);
  if (typeof seed !== "number") {
    if (seed.length !== indices.length) {
      throw new RangeError(`Cannot render ${indices.length} images from ${seed.length} seeds`);
    }
    const rngStates = new Uint32Array(indices.length);
    let rng = new Rng(0);
    for (let b = 0; b < indices.length; b++) {
      rng = new Rng(seed[b]);
      images.set(pipe.train(indices[b], rng), b * per);
      rngStates[b] = rng.state;
      onSample?.();
    }
    return { images, rngState: rng.state, rngStates, skipped: pipe.takeSkipped() };
  }
  const rng = new Rng(seed);
  for (let b = 0; b < indices.length; b++) {
    images.set(pipe.train(indices[b], rng), b * per);
    onSample?.();
  }
  return { images, rngState: rng.state, skipped: pipe.takeSkipped() };
}
