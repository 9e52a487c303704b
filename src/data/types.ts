/**
 * The dataset contract (types only, so that browser code can use it without the
 * file-reading sources of `dataset.ts`).
 *
 * @module
 */

/** Which half of a dataset to read. */
export type Split = "train" | "test";

/** A labelled image dataset; images are [C, H, W] with values in [0, 1]. */
export interface Dataset {
  /** The source, e.g. `shapes`, `fashion-mnist`, `folder:/path`. */
  readonly name: string;
  /** The split this object reads. */
  readonly split: Split;
  /** Number of images. */
  readonly count: number;
  /** Channels as stored: 1 for Fashion-MNIST, 3 for shapes and RGB folders. */
  readonly channels: number;
  /** Native height; for folders of mixed sizes, that of image 0 (see {@link Dataset.size}). */
  readonly height: number;
  /** Native width; for folders of mixed sizes, that of image 0 (see {@link Dataset.size}). */
  readonly width: number;
  /** Class names; label `k` is `classNames[k]`. */
  readonly classNames: readonly string[];
  /** Labels, [count]. */
  readonly labels: Int32Array;
  /** Image `i` as a fresh [C, H, W] array with values in [0, 1]. */
  image(i: number): Float32Array;
  /** Size of image `i` (every dataset here implements it). */
  size?(i: number): { height: number; width: number };
  /**
   * Image `i` and its size in one read (file-backed datasets); with `min`, a source may
   * return a smaller image (JPEG DCT scaling) as long as it is at least `min`.
   */
  read?(i: number, min?: { width: number; height: number }): ImageRead;
  /** Image `i` as decoded, interleaved (file-backed datasets: the training fast path). */
  decoded?(i: number): Pixels;
}

/** Decoded pixels, interleaved `[H, W, stride]`; value v means `v / maxValue`. */
export interface Pixels {
  /** The samples. */
  data: Uint8Array | Uint16Array;
  /** Values per pixel (channels, plus alpha when the file has it). */
  stride: number;
  /** Colour channels: 1 (grey) or 3 (RGB), the first of each pixel's `stride`. */
  channels: number;
  /** Height. */
  height: number;
  /** Width. */
  width: number;
  /** 255 or 65535. */
  maxValue: number;
}

/** One image read by {@link Dataset.read}: [C, H, W] with values in [0, 1]. */
export interface ImageRead {
  /** The pixels. */
  image: Float32Array;
  /** Height. */
  height: number;
  /** Width. */
  width: number;
}
