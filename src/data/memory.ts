/**
 * A labelled dataset held in memory: the images a web page decoded from the user's folder
 * (`web/images.ts`), split into a training part and a held-out part for k-NN.
 * Browser-safe: no file access.
 *
 * @module
 */
import type { Dataset, Split } from "./types.ts";

/** One decoded image and its class name. */
export interface LabelledImage {
  /** Class (the name of the image's folder). */
  className: string;
  /** `[C, H, W]`, values in [0, 1]. */
  data: Float32Array;
}

/** A {@link Dataset} over decoded images of one size. */
export class MemoryDataset implements Dataset {
  /** Number of images. */
  readonly count: number;
  /** Class `k` is `classNames[k]`. */
  readonly labels: Int32Array;

  /** Holds `images` (`[C, H, W]` each, all of `channels × height × width`). */
  constructor(
    readonly name: string,
    readonly split: Split,
    readonly classNames: readonly string[],
    readonly channels: number,
    readonly height: number,
    readonly width: number,
    private readonly images: readonly LabelledImage[],
  ) {
    const want = channels * height * width;
    images.forEach((im, i) => {
      if (im.data.length !== want) {
        throw new RangeError(
          `Cannot hold image ${i} of ${name}: it has ${im.data.length} values, expected ` +
            `${channels}×${height}×${width} = ${want}`,
        );
      }
    });
    this.count = images.length;
    this.labels = Int32Array.from(images, (im) => classNames.indexOf(im.className));
  }

  /** A copy of image `i`. */
  image(i: number): Float32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new RangeError(
        `Cannot read ${this.name} image ${i}: the ${this.split} split has ${this.count}`,
      );
    }
    return this.images[i].data.slice();
  }

  /** Every image has the dataset's size. */
  size(_i: number): { height: number; width: number } {
    return { height: this.height, width: this.width };
  }
}

/**
 * Splits `images` (in the order given) into a training and a held-out dataset: in each
 * class, every `every`-th image counted back from its last (the last, the `every+1`-th from
 * last, …) is held out, so a class of 2 or more images is on both sides; a class of one
 * image trains only. Classes are sorted by name.
 */
export function splitHeldOut(
  name: string,
  images: readonly LabelledImage[],
  shape: { channels: number; height: number; width: number },
  every = 5,
): { train: MemoryDataset; test: MemoryDataset } {
  if (images.length === 0) {
    throw new RangeError(`Cannot build the dataset "${name}": no image could be decoded`);
  }
  const classNames = [...new Set(images.map((im) => im.className))].sort();
  const train: LabelledImage[] = [];
  const test: LabelledImage[] = [];
  for (const c of classNames) {
    const mine = images.filter((im) => im.className === c);
    mine.forEach((im, i) => {
      const fromEnd = mine.length - 1 - i;
      (mine.length > 1 && fromEnd % every === 0 ? test : train).push(im);
    });
  }
  const { channels, height, width } = shape;
  return {
    train: new MemoryDataset(name, "train", classNames, channels, height, width, train),
    test: new MemoryDataset(name, "test", classNames, channels, height, width, test),
  };
}
