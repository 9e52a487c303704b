/**
 * The pre-training input pipeline: seeded epoch order, RandomResizedCrop
 * (scale 0.2–1, bicubic) + horizontal flip + normalise for training, resize +
 * centre crop + normalise for evaluation.
 *
 * @module
 */
import type { Dataset } from "./dataset.ts";
import { evalTransform, hflip, normalize, randomResizedCrop, toChannels } from "./transforms.ts";
import type { Rng } from "../util/rng.ts";

/** ImageNet statistics, the timm default when a checkpoint stores none. */
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
/** ImageNet statistics, the timm default when a checkpoint stores none. */
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

/** A dataset seen at a fixed size, channel count and normalisation. */
export class ImagePipeline {
  /** The dataset. */
  readonly ds: Dataset;
  /** Output channels C. */
  readonly channels: number;
  /** Output size (square). */
  readonly size: number;
  /** Per-channel mean. */
  readonly mean: readonly number[];
  /** Per-channel std. */
  readonly std: readonly number[];

  /** Binds `ds` to an output size, channel count and normalisation. */
  constructor(
    ds: Dataset,
    size: number,
    channels: number,
    mean: readonly number[],
    std: readonly number[],
  ) {
    if (mean.length !== channels || std.length !== channels) {
      throw new RangeError(
        `Cannot normalise ${channels}-channel images with ${mean.length} means and ${std.length} stds`,
      );
    }
    this.ds = ds;
    this.size = size;
    this.channels = channels;
    this.mean = mean;
    this.std = std;
  }

  /** Image i at its native size with the pipeline's channel count, values in [0, 1]. */
  #raw(i: number): { img: Float32Array; H: number; W: number } {
    const { height: H, width: W } = this.ds.size ? this.ds.size(i) : this.ds;
    return { img: toChannels(this.ds.image(i), this.ds.channels, H, W, this.channels), H, W };
  }

  /** Training view of image i: RandomResizedCrop + flip (p 0.5) + normalise, drawn from `rng`. */
  train(i: number, rng: Rng): Float32Array {
    const { img, H, W } = this.#raw(i);
    const C = this.channels;
    let out = randomResizedCrop(img, C, H, W, this.size, rng);
    if (rng.uniform() < 0.5) out = hflip(out, C, this.size, this.size);
    return normalize(out, C, this.mean, this.std);
  }

  /** Evaluation view of image i: resize + centre crop + normalise. */
  eval(i: number): Float32Array {
    const { img, H, W } = this.#raw(i);
    return normalize(
      evalTransform(img, this.channels, H, W, this.size),
      this.channels,
      this.mean,
      this.std,
    );
  }
}

/** A seeded permutation of `0..n-1` (Fisher–Yates). */
export function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** A seed derived from (seed, stream, index): independent, reproducible RNG streams. */
export function deriveSeed(seed: number, stream: number, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [stream, index]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

/** Per-channel mean and std of the first `n` images at native size (values in [0, 1]). */
export function channelStats(
  ds: Dataset,
  channels: number,
  n: number,
): { mean: number[]; std: number[] } {
  const sum = new Float64Array(channels);
  const sq = new Float64Array(channels);
  let count = 0;
  for (let i = 0; i < Math.min(n, ds.count); i++) {
    const { height: H, width: W } = ds.size ? ds.size(i) : ds;
    const img = toChannels(ds.image(i), ds.channels, H, W, channels);
    const hw = H * W;
    for (let c = 0; c < channels; c++) {
      for (let k = 0; k < hw; k++) {
        const v = img[c * hw + k];
        sum[c] += v;
        sq[c] += v * v;
      }
    }
    count += hw;
  }
  const mean = [...sum].map((s) => s / count);
  const std = [...sq].map((s, c) => Math.sqrt(Math.max(s / count - mean[c] ** 2, 1e-12)));
  return { mean: mean.map((x) => Number(x.toFixed(4))), std: std.map((x) => Number(x.toFixed(4))) };
}
