/**
 * A directory of class sub-folders of PNG/JPEG files:
 *
 * ```
 * DIR/cat/001.png   DIR/train/cat/001.png
 * DIR/dog/002.jpg   DIR/test/cat/101.png   (or DIR/val/…)
 * ```
 *
 * Opening lists the files (sorted; labels are the sorted union of the class folders, so
 * they agree across splits) and reads one header per class; nothing is decoded until an
 * image is asked for, so memory does not grow with the dataset. With `train/` and
 * `test/` (or `val/`) each split reads its own; a folder without them is split here: a
 * seeded, class-stratified {@link HOLDOUT_FRACTION} of each class is the test split (the
 * same for every run and task), and the rest is the training split.
 *
 * A file that is corrupt (truncated, not an image, zero-size, an unsupported colour model,
 * a header claiming more than {@link MAX_IMAGE_PIXELS} pixels, checked before decoding) or
 * that vanished throws a {@link BadImageError} when read, which the pipeline skips and
 * counts; with `strict` it is a plain {@link DataError} that ends the run.
 *
 * @module
 */
import type { Dataset, ImageRead, Split } from "./types.ts";
import { BadImageError, DataError } from "./error.ts";
import {
  decodeImageFile,
  loadPngDecoder,
  MAX_IMAGE_PIXELS,
  type Pixels,
  pngDecoderLoaded,
  readHeader,
} from "./image_file.ts";
import { Rng } from "../util/rng.ts";
import { pixelsToFloat } from "./pixels.ts";

export { loadPngDecoder, MAX_IMAGE_PIXELS, pixelsToFloat };

const IMAGE_EXT = /\.(png|jpe?g)$/i;

/** Share of each class held out as the test split of a folder with no `test/` or `val/`. */
export const HOLDOUT_FRACTION = 0.1;

/** Options for {@link openFolder}. */
export interface FolderOptions {
  /** Corrupt files throw a {@link DataError} instead of a skippable {@link BadImageError}. */
  strict: boolean;
  /** Receives notes (the held-out split). */
  warn: (msg: string) => void;
}

/** The file list of one split: paths and labels, in order. */
export interface FolderListing {
  /** Class names; label k is classNames[k]. */
  classNames: string[];
  /** File paths. */
  paths: string[];
  /** Labels, one per path. */
  labels: Int32Array;
  /** Set when the test split was held out of the training folder: what was done. */
  holdout?: string;
}

/** Lists the `split` of the class-folder tree at `dir` (no file is opened). */
export async function listFolder(dir: string, split: Split): Promise<FolderListing> {
  if (!(await isDir(dir))) {
    throw new DataError(
      `Cannot open dataset "${dir}": not a directory, and not "shapes" or "fashion-mnist"; ` +
        `pass a directory with one sub-folder of PNG/JPEG files per class`,
    );
  }
  const train = `${dir}/train`;
  let test: string | undefined;
  for (const name of ["test", "val"]) {
    if (await isDir(`${dir}/${name}`)) {
      test = `${dir}/${name}`;
      break;
    }
  }
  const split2 = test !== undefined && (await isDir(train));
  const roots = split2 ? { train, test: test! } : { train: dir, test: dir };
  const classNames = [...new Set([...await subDirs(roots.train), ...await subDirs(roots.test)])]
    .sort();
  const root = roots[split];
  if (classNames.length === 0) {
    throw new DataError(
      `Cannot open dataset "${dir}": ${root} has no class sub-folders; ` +
        `put the images of each class in their own folder, e.g. ${root}/cat/001.png`,
    );
  }
  const paths: string[] = [];
  const labels: number[] = [];
  let held = 0, total = 0;
  for (let k = 0; k < classNames.length; k++) {
    const classDir = `${root}/${classNames[k]}`;
    if (!(await isDir(classDir))) continue; // a class present only in the other split
    let files = await imageFiles(classDir);
    if (!split2) {
      const test = heldOut(files.length, k);
      held += test.size;
      total += files.length;
      files = files.filter((_, j) => test.has(j) === (split === "test"));
    }
    for (const f of files) {
      paths.push(`${classDir}/${f}`);
      labels.push(k);
    }
  }
  if (paths.length === 0) {
    throw new DataError(
      `Cannot open dataset "${dir}": no PNG/JPEG files under ${root}/<class>/` +
        (split2
          ? "; add images or check the path"
          : ` for the ${split} split (no class has 2 images to hold one out); add images, ` +
            `or put the test images in ${dir}/val/<class>/ and the rest in ${dir}/train/<class>/`),
    );
  }
  const holdout = split2 ? undefined : `${dir} has no train/ and val/ (or test/) folders: ` +
    `${held} of ${total} images (${
      100 * HOLDOUT_FRACTION
    }% of each class, seeded) are held out as the test split`;
  return { classNames, paths, labels: Int32Array.from(labels), holdout };
}

/** Which of a class's `n` sorted files (class `k`) are held out: seeded, the same every run. */
export function heldOut(n: number, k: number): Set<number> {
  const m = n < 2 ? 0 : Math.max(1, Math.round(n * HOLDOUT_FRACTION));
  const rng = new Rng(0x5eed0000 + k);
  const idx = Array.from({ length: n }, (_, j) => j);
  for (let j = n - 1; j > 0; j--) {
    const r = Math.floor(rng.uniform() * (j + 1));
    [idx[j], idx[r]] = [idx[r], idx[j]];
  }
  return new Set(idx.slice(0, m));
}

/** Opens the `split` of the class-folder dataset at `dir`: a listing, decoded on demand. */
export async function openFolder(dir: string, split: Split, opts: FolderOptions): Promise<Dataset> {
  const list = await listFolder(dir, split);
  if (list.holdout && split === "test") opts.warn(list.holdout);
  await loadPngDecoder();
  return new FolderDataset(`folder:${dir}`, split, list, opts.strict);
}

/**
 * Images decoded from their files when read. `channels` is 3 if the first image of any
 * class has colour, else 1; `height` and `width` are image 0's.
 */
export class FolderDataset implements Dataset {
  readonly count: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly classNames: readonly string[];
  readonly labels: Int32Array;
  /** The files, in order. */
  readonly paths: readonly string[];
  /** What the held-out test split is, when there is one (for config.json). */
  readonly holdout?: string;

  /**
   * A dataset over `list`; `strict` makes a bad file a DataError rather than skippable.
   * Needs `await loadPngDecoder()` first ({@link openFolder} does it).
   */
  constructor(
    readonly name: string,
    readonly split: Split,
    list: FolderListing,
    private readonly strict: boolean,
  ) {
    if (!pngDecoderLoaded()) {
      throw new Error("Cannot make a FolderDataset before the PNG decoder: await loadPngDecoder()");
    }
    this.classNames = list.classNames;
    this.labels = list.labels;
    this.paths = list.paths;
    this.count = list.paths.length;
    this.holdout = list.holdout;
    let colour = false, first: { height: number; width: number } | null = null;
    for (let i = 0; i < this.count; i++) {
      if (i > 0 && this.labels[i] === this.labels[i - 1]) continue; // first of each class
      const hdr = this.#header(i);
      if (!hdr) continue;
      first ??= hdr;
      colour ||= hdr.channels === 3;
    }
    this.channels = colour ? 3 : 1;
    this.height = first?.height ?? 0;
    this.width = first?.width ?? 0;
  }

  #header(i: number): { height: number; width: number; channels: number } | null {
    try {
      return readHeader(Deno.readFileSync(this.paths[i]));
    } catch {
      return null; // a bad file: found and counted when it is read
    }
  }

  #check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new RangeError(
        `Cannot read ${this.name} image ${i}: the ${this.split} split has ${this.count}`,
      );
    }
  }

  /** Image i decoded (at ≥ `min` when a JPEG allows DCT scaling), [channels, H, W] in [0, 1]. */
  read(i: number, min?: { width: number; height: number }): ImageRead {
    const px = this.decoded(i, min);
    return { image: pixelsToFloat(px, this.channels), height: px.height, width: px.width };
  }

  /** Image i decoded, interleaved (throws a BadImageError, or a DataError when strict). */
  decoded(i: number, min?: { width: number; height: number }): Pixels {
    this.#check(i);
    const path = this.paths[i];
    try {
      return decodeImageFile(Deno.readFileSync(path), min);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? "the file is gone"
        : e instanceof Error
        ? e.message
        : String(e);
      if (this.strict) {
        throw new DataError(
          `Cannot decode ${path}: ${why}; remove or replace the file, or run without ` +
            `--strict-data to skip it`,
          { cause: e },
        );
      }
      throw new BadImageError(path, why);
    }
  }

  image(i: number): Float32Array {
    return this.read(i).image;
  }

  size(i: number): { height: number; width: number } {
    const r = this.read(i);
    return { height: r.height, width: r.width };
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

async function subDirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (
      !e.name.startsWith(".") &&
      (e.isDirectory || (e.isSymlink && (await isDir(`${dir}/${e.name}`))))
    ) {
      out.push(e.name);
    }
  }
  return out;
}

async function imageFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.startsWith(".") && IMAGE_EXT.test(e.name) && !e.isDirectory) out.push(e.name);
  }
  return out.sort();
}
