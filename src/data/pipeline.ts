/**
 * The input pipeline: seeded epoch order; for training, [ColorJitter] +
 * RandomResizedCrop (bicubic) + horizontal flip + [RandAugment] + normalise +
 * [RandomErasing]; for evaluation, resize + centre crop (crop fraction) + normalise.
 * The bracketed steps are off unless {@link AugmentOptions} turns them on; the
 * defaults are the reference dBOT pre-training (crop scale 0.2–1, flip).
 *
 * @module
 */
import type { Dataset, ImageRead, Pixels } from "./types.ts";
import { BadImageError, DataError } from "./error.ts";
import {
  colorJitter,
  evalTransform,
  hflip,
  normalize,
  randomErasing,
  randomResizedCrop,
  randomResizedCropBox,
  toChannels,
} from "./transforms.ts";
import { fastCropApplies, resizedCrop } from "./fast_crop.ts";
import { pixelsToFloat } from "./pixels.ts";
import { parseRandAugment, randAugment, type RandAugmentSpec } from "./randaugment.ts";
import type { Rng } from "../util/rng.ts";

/**
 * The training and evaluation transforms of an {@link ImagePipeline} (JSON-able: the data
 * worker rebuilds the pipeline from it). Defaults: reference dBOT pre-training.
 */
export interface AugmentOptions {
  /** RandomResizedCrop area range (default [0.2, 1]; CLIP branch [0.4, 1]; fine-tuning [0.08, 1]). */
  cropScale?: readonly number[];
  /**
   * ColorJitter strength for brightness, contrast and saturation, applied to the whole image
   * before the crop as in the CLIP branch (default 0: off).
   */
  colorJitter?: number;
  /** timm RandAugment spec after crop and flip, e.g. `rand-m9-mstd0.5-inc1` (default "": off). */
  randAugment?: string;
  /** RandomErasing probability after normalising (timm mode "pixel"; default 0: off). */
  reprob?: number;
  /** Evaluation crop fraction: resize to ⌊size / cropPct⌋ then centre-crop (default 1). */
  cropPct?: number;
}

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
  /** The transforms' settings. */
  readonly augment: Readonly<AugmentOptions>;
  readonly #randAug: RandAugmentSpec | null;
  readonly #fill: number[];
  readonly #bad = new Set<number>();
  readonly #skipped: string[] = [];

  /** Binds `ds` to an output size, channel count, normalisation and transforms. */
  constructor(
    ds: Dataset,
    size: number,
    channels: number,
    mean: readonly number[],
    std: readonly number[],
    augment: AugmentOptions = {},
  ) {
    if (mean.length !== channels || std.length !== channels) {
      throw new RangeError(
        `Cannot normalise ${channels}-channel images with ${mean.length} means and ${std.length} stds: ` +
          `give ${channels} values each (deno task pretrain: --mean "" --std "" measures them)`,
      );
    }
    this.ds = ds;
    this.size = size;
    this.channels = channels;
    this.mean = mean;
    this.std = std;
    this.augment = Object.freeze({ ...augment });
    this.#randAug = augment.randAugment ? parseRandAugment(augment.randAugment) : null;
    // timm's img_mean: the normalisation mean on the 0–255 scale, rounded
    this.#fill = mean.map((m) => Math.min(255, Math.round(255 * m)) / 255);
  }

  /**
   * Image i at its native size with the pipeline's channel count, values in [0, 1]. An
   * unreadable file ({@link BadImageError}) is skipped: the next readable image in index
   * order stands in for it, so the substitute depends on the files alone (not on the
   * thread or worker that reads it), and it is reported once by {@link takeSkipped}.
   */
  #raw(i: number): { img: Float32Array; H: number; W: number } {
    const ds = this.ds;
    const r = this.#readable(i, (j) => readImage(ds, j));
    const { height: H, width: W } = r;
    return { img: toChannels(r.image, ds.channels, H, W, this.channels), H, W };
  }

  /** `read(i)`, or when image i is unreadable, `read` of the next readable image. */
  #readable<T>(i: number, read: (j: number) => T): T {
    const ds = this.ds;
    if (!Number.isInteger(i) || i < 0 || i >= ds.count) {
      throw new RangeError(
        `Cannot read ${ds.name} image ${i}: the ${ds.split} split has ${ds.count}`,
      );
    }
    for (let tries = 0; tries < ds.count; tries++) {
      const j = (i + tries) % ds.count;
      if (this.#bad.has(j)) continue;
      try {
        return read(j);
      } catch (e) {
        if (!(e instanceof BadImageError)) throw e;
        this.#bad.add(j);
        this.#skipped.push(`${e.path} (${e.why})`);
      }
    }
    throw new DataError(
      `Cannot read any image of ${ds.name} (${ds.split}): all ${ds.count} files are unreadable`,
    );
  }

  /** Files found unreadable (and skipped) since the last call, as "path (why)". */
  takeSkipped(): string[] {
    return this.#skipped.splice(0);
  }

  /**
   * Training view of image i, drawn from `rng`: [ColorJitter] + RandomResizedCrop + flip
   * (p 0.5) + [RandAugment] + normalise + [RandomErasing].
   */
  train(i: number, rng: Rng): Float32Array {
    const C = this.channels, S = this.size;
    const a = this.augment;
    let out: Float32Array;
    const ds = this.ds;
    if (ds.decoded && !a.colorJitter && ds.channels === C) {
      // decoded bytes straight to the crop: the same values as the float path below
      const px = this.#readable(i, (j) => ds.decoded!(j));
      if (fastCropApplies(px, C)) {
        const box = randomResizedCropBox(px.height, px.width, rng, a.cropScale);
        out = resizedCrop(px, C, box, S);
      } else {
        const img = toChannels(pixelsToFloat(px, ds.channels), ds.channels, px.height, px.width, C);
        out = randomResizedCrop(img, C, px.height, px.width, S, rng, a.cropScale);
      }
    } else {
      const raw = this.#raw(i);
      const { H, W } = raw;
      let img = raw.img;
      if (a.colorJitter) {
        const s = a.colorJitter;
        img = colorJitter(img, { C, H, W }, rng, { brightness: s, contrast: s, saturation: s });
      }
      out = randomResizedCrop(img, C, H, W, S, rng, a.cropScale);
    }
    if (rng.uniform() < 0.5) out = hflip(out, C, S, S);
    if (this.#randAug) {
      out = randAugment(out, { C, H: S, W: S }, { spec: this.#randAug, rng, fill: this.#fill });
    }
    normalize(out, C, this.mean, this.std);
    if (a.reprob) randomErasing(out, { C, H: S, W: S }, rng, { prob: a.reprob });
    return out;
  }

  /** Evaluation view of image i: resize + centre crop + normalise. */
  eval(i: number): Float32Array {
    const { img, H, W } = this.#raw(i);
    return normalize(
      evalTransform(img, this.channels, H, W, this.size, this.augment.cropPct),
      this.channels,
      this.mean,
      this.std,
    );
  }
}

/** Image i and its size, from {@link Dataset.read} where the source has it. */
export function readImage(ds: Dataset, i: number): ImageRead {
  if (ds.read) return ds.read(i);
  const { height, width } = ds.size ? ds.size(i) : ds;
  return { image: ds.image(i), height, width };
}

/**
 * Adds decoded pixels' per-channel sums of values and squares (values `v / maxValue`, as
 * the float path sees them; grey counts for every channel) to `sum` and `sq`, through a
 * histogram of the stored values; returns the pixel count.
 */
function byteSums(px: Pixels, channels: number, sum: Float64Array, sq: Float64Array): number {
  const { data, stride, height, width, maxValue } = px;
  const hw = height * width;
  for (let c = 0; c < channels; c++) {
    const hist = new Float64Array(maxValue + 1);
    const sc = Math.min(c, px.channels - 1);
    for (let k = 0; k < hw; k++) hist[data[k * stride + sc]]++;
    for (let v = 0; v <= maxValue; v++) {
      const x = v / maxValue;
      sum[c] += hist[v] * x;
      sq[c] += hist[v] * x * x;
    }
  }
  return hw;
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

/**
 * Images {@link channelStats} reads from a dataset decoded from files (a folder or shards):
 * decoding is the cost there (1000 ImageNet JPEGs: ~10 s on one core), and 256 images
 * spread over the classes measure the statistics to ~±0.005.
 */
export const STATS_SAMPLE_FILES = 256;

/**
 * Which images {@link channelStats} reads: the first `n` of an in-memory dataset; of one
 * decoded from files, {@link STATS_SAMPLE_FILES} (at most `n`) spread over the classes
 * ({@link spreadSample}).
 */
export function statsSample(ds: Dataset, n: number): Int32Array {
  return spreadSample(ds, ds.decoded ? Math.min(n, STATS_SAMPLE_FILES) : n);
}

/**
 * `n` image indices (ascending) that stand for a dataset: the first `n` of an in-memory
 * dataset (its order is already mixed); of one decoded from files, whose order is sorted by
 * class, `n` taken round-robin over the classes, evenly spaced within each, so that every
 * class counts (the first `n` files would be the first classes only). Used by the channel
 * statistics and by the k-NN monitor's train and test images.
 */
export function spreadSample(ds: Dataset, n: number): Int32Array {
  if (!ds.decoded) return Int32Array.from({ length: Math.min(n, ds.count) }, (_, i) => i);
  const want = Math.min(n, ds.count);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < ds.count; i++) {
    const k = ds.labels[i];
    const list = byClass.get(k) ?? [];
    list.push(i);
    byClass.set(k, list);
  }
  const classes = [...byClass.values()];
  // each class's share: equal parts of `want`, a small class giving the rest to the larger
  const share = new Array<number>(classes.length);
  let left = want;
  const bySize = classes.map((_, c) => c).sort((a, b) => classes[a].length - classes[b].length);
  bySize.forEach((c, i) => {
    share[c] = Math.min(classes[c].length, Math.ceil(left / (classes.length - i)));
    left -= share[c];
  });
  const out: number[] = [];
  for (let c = 0; c < classes.length; c++) {
    const list = classes[c];
    for (let r = 0; r < share[c]; r++) out.push(list[Math.floor((r * list.length) / share[c])]);
  }
  return Int32Array.from(out.sort((a, b) => a - b));
}

/**
 * Per-channel mean and std at native size (values in [0, 1]) of the images
 * {@link statsSample} picks: the first `n`, or a class-spread sample of a file dataset.
 */
export function channelStats(
  ds: Dataset,
  channels: number,
  n: number,
): { mean: number[]; std: number[] } {
  const sum = new Float64Array(channels);
  const sq = new Float64Array(channels);
  let count = 0;
  for (const i of statsSample(ds, n)) {
    try {
      const px = ds.decoded?.(i);
      if (px && ds.channels === channels && (px.channels === channels || px.channels === 1)) {
        count += byteSums(px, channels, sum, sq); // the same values, without float images
        continue;
      }
      const r = px
        ? { image: pixelsToFloat(px, ds.channels), height: px.height, width: px.width }
        : readImage(ds, i);
      const { height: H, width: W } = r;
      const img = toChannels(r.image, ds.channels, H, W, channels);
      const hw = H * W;
      for (let c = 0; c < channels; c++) {
        for (let k = 0; k < hw; k++) {
          const v = img[c * hw + k];
          sum[c] += v;
          sq[c] += v * v;
        }
      }
      count += hw;
    } catch (e) {
      if (e instanceof BadImageError) continue; // reported when training reads it
      throw e;
    }
  }
  const mean = [...sum].map((s) => s / count);
  const std = [...sq].map((s, c) => Math.sqrt(Math.max(s / count - mean[c] ** 2, 1e-12)));
  return { mean: mean.map((x) => Number(x.toFixed(4))), std: std.map((x) => Number(x.toFixed(4))) };
}
