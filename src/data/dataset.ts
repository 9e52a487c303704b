/**
 * The dataset contract and `openDataset(spec, split)`, which picks the source
 * from the spec string:
 *
 * - `shapes` or `shapes:N`: the built-in procedural dataset (N train images).
 * - `fashion-mnist` or `fashion-mnist:DIR`: the idx files.
 * - anything else: a directory with one sub-folder of PNG/JPEG files per class.
 *
 * @module
 */
import { DataError } from "./error.ts";
import { openFashionMnist } from "./fashion_mnist.ts";
import { openFolder } from "./folder.ts";
import { openShapes } from "./shapes.ts";

export { DataError };

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
}

/** Options for {@link openDataset}. */
export interface OpenOptions {
  /** Folders: a corrupt or unreadable image is a {@link DataError} instead of a skipped file. */
  strict?: boolean;
  /** Where warnings go (default `console.warn`). */
  warn?: (msg: string) => void;
}

/**
 * Opens the `split` half of the dataset named by `spec`.
 *
 * @example
 * ```ts
 * import { openDataset } from "./dataset.ts";
 *
 * const ds = await openDataset("shapes:100", "train");
 * const img = ds.image(0); // [3, 32, 32]
 * console.log(ds.classNames[ds.labels[0]], img.length);
 * ```
 */
export async function openDataset(
  spec: string,
  split: Split,
  opts: OpenOptions = {},
): Promise<Dataset> {
  if (split !== "train" && split !== "test") {
    throw new DataError(
      `Cannot open dataset "${spec}": split must be "train" or "test", got "${split}"`,
    );
  }
  const warn = opts.warn ?? ((msg: string) => console.warn(msg));
  if (spec === "shapes" || spec.startsWith("shapes:")) return openShapes(spec, split);
  if (spec === "fashion-mnist" || spec.startsWith("fashion-mnist:")) {
    const dir = spec === "fashion-mnist" ? undefined : spec.slice("fashion-mnist:".length);
    return await openFashionMnist(split, dir);
  }
  const dir = spec.startsWith("folder:") ? spec.slice("folder:".length) : spec;
  return await openFolder(dir, split, { strict: opts.strict ?? false, warn });
}
