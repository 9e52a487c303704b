/**
 * The dataset contract and `openDataset(spec, split)`, which picks the source
 * from the spec string:
 *
 * - `shapes` or `shapes:N`: the built-in procedural dataset (N train images).
 * - `fashion-mnist` or `fashion-mnist:DIR`: the idx files.
 * - `shards:DIR`: WebDataset tar shards (`KEY.jpg|png` + `KEY.cls`), see `shards.ts`.
 * - anything else: a directory with one sub-folder of PNG/JPEG files per class.
 *
 * @module
 */
import { DataError } from "./error.ts";
import { openFashionMnist } from "./fashion_mnist.ts";
import { openFolder } from "./folder.ts";
import { openShapes } from "./shapes.ts";
import { openShards } from "./shards.ts";
import type { Dataset, Split } from "./types.ts";

export { DataError };

export type { Dataset, ImageRead, Pixels, Split } from "./types.ts";

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
  if (spec.startsWith("shards:")) {
    return await openShards(spec.slice("shards:".length), split, {
      strict: opts.strict ?? false,
      warn,
    });
  }
  const dir = spec.startsWith("folder:") ? spec.slice("folder:".length) : spec;
  return await openFolder(dir, split, { strict: opts.strict ?? false, warn });
}
