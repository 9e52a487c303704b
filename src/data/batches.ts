/**
 * Evaluation batches: images packed into one reused, zero-padded buffer of
 * `batch` images (the last batch may hold fewer).
 *
 * @module
 */

/** One packed batch: images `start … start + n − 1` in `data [batch, C, H, W]`. */
export interface ImageBatch {
  /** Index of the first image. */
  start: number;
  /** Images in this batch (≤ batch); the rest of `data` is zero. */
  n: number;
  /** The packed images (the same buffer every batch). */
  data: Float32Array;
}

/**
 * Yields `count` images in batches of `batch`, each image `imgLen` values long;
 * throws a RangeError naming an image of the wrong length.
 */
export async function* imageBatches(
  count: number,
  batch: number,
  imgLen: number,
  image: (i: number) => Float32Array | Promise<Float32Array>,
): AsyncGenerator<ImageBatch> {
  const data = new Float32Array(batch * imgLen);
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    data.fill(0);
    for (let b = 0; b < n; b++) {
      const img = await image(start + b);
      if (img.length !== imgLen) {
        throw new RangeError(
          `Cannot batch image ${start + b}: expected ${imgLen} values, got ${img.length}`,
        );
      }
      data.set(img, b * imgLen);
    }
    yield { start, n, data };
  }
}
