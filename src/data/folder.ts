/**
 * A directory of class sub-folders of PNG/JPEG files:
 *
 * ```
 * DIR/cat/001.png   DIR/train/cat/001.png
 * DIR/dog/002.jpg   DIR/test/cat/101.png   (or DIR/val/…)
 * ```
 *
 * With `train/` and `test/` (or `val/`) sub-folders each split reads its own;
 * otherwise both splits read the whole directory. Class names are the sorted
 * union of the class folders, so labels agree across splits; files are read
 * in sorted order. Every file is decoded once at open time (image-js) and held
 * in memory; a corrupt file (truncated, not an image, zero-size, an unsupported
 * colour model, or a header claiming more than {@link MAX_IMAGE_PIXELS} pixels,
 * which is checked before decoding so a lying header cannot exhaust memory) is
 * skipped with one warning and a count (or is a {@link DataError} when `strict`).
 *
 * @module
 */
import type { Dataset, Split } from "./types.ts";
import { DataError } from "./error.ts";

const IMAGE_EXT = /\.(png|jpe?g)$/i;

/** Images whose header claims more pixels than this (16384²) are refused before decoding. */
export const MAX_IMAGE_PIXELS = 1 << 28;

/** Options for {@link openFolder}. */
export interface FolderOptions {
  /** Corrupt files throw instead of being skipped. */
  strict: boolean;
  /** Receives the skip warning. */
  warn: (msg: string) => void;
}

/** One decoded image: [C, H, W] bytes or 16-bit words, scaled by `1 / maxValue` on access. */
interface Stored {
  data: Uint8Array | Uint16Array;
  channels: number;
  height: number;
  width: number;
  maxValue: number;
}

/** Opens the `split` of the class-folder dataset at `dir`. */
export async function openFolder(dir: string, split: Split, opts: FolderOptions): Promise<Dataset> {
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
  const roots = test !== undefined && (await isDir(train))
    ? { train, test }
    : { train: dir, test: dir };
  const classNames = [...new Set([...await subDirs(roots.train), ...await subDirs(roots.test)])]
    .sort();
  const root = roots[split];
  if (classNames.length === 0) {
    throw new DataError(
      `Cannot open dataset "${dir}": ${root} has no class sub-folders; ` +
        `put the images of each class in their own folder, e.g. ${root}/cat/001.png`,
    );
  }

  const { decode } = await import("image-js");
  const images: Stored[] = [];
  const labels: number[] = [];
  const bad: string[] = [];
  for (let k = 0; k < classNames.length; k++) {
    const classDir = `${root}/${classNames[k]}`;
    if (!(await isDir(classDir))) continue; // a class present only in the other split
    for (const file of await imageFiles(classDir)) {
      const path = `${classDir}/${file}`;
      let img: Stored;
      try {
        const bytes = await Deno.readFile(path);
        checkHeaderSize(bytes);
        img = toStored(
          decode(bytes),
          IMAGE_EXT.exec(file)![1].toLowerCase() !== "png",
        );
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        if (opts.strict) {
          throw new DataError(
            `Cannot decode ${path}: ${why}; remove or replace the file, or open without strict to skip it`,
            { cause: e },
          );
        }
        bad.push(`${path} (${why})`);
        continue;
      }
      images.push(img);
      labels.push(k);
    }
  }
  if (bad.length > 0) {
    const shown = bad.slice(0, 3).join(", ") + (bad.length > 3 ? `, … ${bad.length - 3} more` : "");
    opts.warn(`Skipped ${bad.length} unreadable image file(s) in ${root}: ${shown}`);
  }
  if (images.length === 0) {
    throw new DataError(
      `Cannot open dataset "${dir}": no readable PNG/JPEG files under ${root}/<class>/; ` +
        `add images or check the path`,
    );
  }
  return new FolderDataset(`folder:${dir}`, split, classNames, images, Int32Array.from(labels));
}

/** Decoded images; `channels` is 3 if any image has colour, else 1 (grey is replicated as needed). */
class FolderDataset implements Dataset {
  readonly count: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;

  constructor(
    readonly name: string,
    readonly split: Split,
    readonly classNames: readonly string[],
    private readonly images: Stored[],
    readonly labels: Int32Array,
  ) {
    this.count = images.length;
    this.channels = images.some((im) => im.channels === 3) ? 3 : 1;
    this.height = images[0].height;
    this.width = images[0].width;
  }

  image(i: number): Float32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new RangeError(
        `Cannot read ${this.name} image ${i}: the ${this.split} split has ${this.count}`,
      );
    }
    const im = this.images[i];
    const HW = im.height * im.width;
    const out = new Float32Array(this.channels * HW);
    const s = 1 / im.maxValue;
    for (let c = 0; c < this.channels; c++) {
      const src = Math.min(c, im.channels - 1) * HW; // grey → replicate
      for (let j = 0; j < HW; j++) out[c * HW + j] = im.data[src + j] * s;
    }
    return out;
  }

  size(i: number): { height: number; width: number } {
    const im = this.images[i];
    return { height: im.height, width: im.width };
  }
}

/** The subset of image-js's `Image` read here. */
interface Decoded {
  width: number;
  height: number;
  components: number; // colour channels without alpha
  channels: number; // with alpha
  maxValue: number;
  getRawImage(): { data: ArrayLike<number> };
}

/**
 * Interleaved [H, W, channels] → planar [C, H, W], dropping alpha. jpeg-js
 * always decodes to RGBA, so a JPEG whose three channels agree everywhere is
 * stored as grey.
 */
function toStored(img: Decoded, isJpeg: boolean): Stored {
  const { width: W, height: H, channels: CH } = img;
  const raw = img.getRawImage().data;
  let C = img.components;
  if (C !== 1 && C !== 3) throw new Error(`unsupported colour model with ${C} components`);
  if (C === 3 && isJpeg) {
    let grey = true;
    for (let j = 0; j < H * W && grey; j++) {
      grey = raw[j * CH] === raw[j * CH + 1] && raw[j * CH] === raw[j * CH + 2];
    }
    if (grey) C = 1;
  }
  const data = img.maxValue > 255 ? new Uint16Array(C * H * W) : new Uint8Array(C * H * W);
  for (let c = 0; c < C; c++) {
    for (let j = 0; j < H * W; j++) data[c * H * W + j] = raw[j * CH + c];
  }
  return { data, channels: C, height: H, width: W, maxValue: img.maxValue };
}

/**
 * Refuses empty files and PNG/JPEG headers that claim a zero or huge size, before the
 * decoder allocates from them. Other formats are left to the decoder.
 */
function checkHeaderSize(bytes: Uint8Array): void {
  if (bytes.length === 0) throw new Error("the file is empty");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let dims: [number, number] | null = null;
  if (bytes.length >= 24 && v.getUint32(0) === 0x89504e47 && v.getUint32(12) === 0x49484452) {
    dims = [v.getUint32(16), v.getUint32(20)]; // PNG IHDR: width, height
  } else if (bytes.length >= 4 && v.getUint16(0) === 0xffd8) {
    // JPEG: walk the marker segments to the first start-of-frame
    for (let at = 2; at + 9 <= bytes.length;) {
      if (bytes[at] !== 0xff) break;
      const marker = bytes[at + 1];
      if (marker === 0xff) {
        at++; // fill byte
        continue;
      }
      const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
        marker !== 0xcc;
      if (isSof) {
        dims = [v.getUint16(at + 7), v.getUint16(at + 5)]; // width, height
        break;
      }
      at += 2 + v.getUint16(at + 2);
    }
  }
  if (dims === null) return;
  const [w, h] = dims;
  if (w === 0 || h === 0) throw new Error(`the header says ${w}×${h} pixels`);
  if (w * h > MAX_IMAGE_PIXELS) {
    throw new Error(
      `the header says ${w}×${h} pixels, over the limit of ${MAX_IMAGE_PIXELS}; ` +
        `the file is corrupt or far too large`,
    );
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
