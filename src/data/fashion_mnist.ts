/**
 * Fashion-MNIST from its idx files (`train-images-idx3-ubyte[.gz]`,
 * `train-labels-idx1-ubyte[.gz]`, `t10k-…`), gzipped or not.
 *
 * @module
 */
import type { Dataset, Split } from "./types.ts";
import { DataError } from "./error.ts";

/** Where Debian's `dataset-fashion-mnist` package installs the files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/** The ten Fashion-MNIST classes, in label order. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]);

/** Magic number of an idx file of unsigned bytes with 3 dims (images). */
export const IDX_IMAGES_MAGIC = 0x00000803;
/** Magic number of an idx file of unsigned bytes with 1 dim (labels). */
export const IDX_LABELS_MAGIC = 0x00000801;

/** Opens one split of Fashion-MNIST from `dir` (default {@link FASHION_MNIST_DIR}). */
export async function openFashionMnist(split: Split, dir = FASHION_MNIST_DIR): Promise<Dataset> {
  if (dir === "") {
    throw new DataError(
      `Cannot open "fashion-mnist:": the directory is empty; pass fashion-mnist:DIR`,
    );
  }
  let isDir = false;
  try {
    isDir = (await Deno.stat(dir)).isDirectory;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new DataError(`Cannot open Fashion-MNIST directory ${dir}: ${errText(e)}`, {
        cause: e,
      });
    }
  }
  if (!isDir) {
    throw new DataError(
      `Cannot open Fashion-MNIST: directory ${dir} does not exist; ` +
        `run "apt-get install dataset-fashion-mnist" or pass fashion-mnist:DIR`,
    );
  }
  const prefix = split === "train" ? "train" : "t10k";
  const images = await readIdx(dir, `${prefix}-images-idx3-ubyte`, IDX_IMAGES_MAGIC);
  const labels = await readIdx(dir, `${prefix}-labels-idx1-ubyte`, IDX_LABELS_MAGIC);
  const [n, H, W] = images.dims;
  if (labels.dims[0] !== n) {
    throw new DataError(
      `Cannot open Fashion-MNIST in ${dir}: ${images.path} holds ${n} images but ` +
        `${labels.path} holds ${labels.dims[0]} labels; re-download the pair`,
    );
  }
  const lab = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = labels.data[i];
    if (k >= FASHION_MNIST_CLASSES.length) {
      throw new DataError(
        `Cannot open Fashion-MNIST: ${labels.path} has label ${k} at index ${i}, ` +
          `outside 0..${FASHION_MNIST_CLASSES.length - 1}; re-download the file`,
      );
    }
    lab[i] = k;
  }
  return new IdxDataset(dir, split, images.data, H, W, lab);
}

/** Greyscale images held as bytes, converted to [1, H, W] floats on access. */
class IdxDataset implements Dataset {
  readonly name: string;
  readonly channels = 1;
  readonly count: number;
  readonly classNames: readonly string[] = FASHION_MNIST_CLASSES;

  constructor(
    dir: string,
    readonly split: Split,
    private readonly pixels: Uint8Array, // [count, H, W]
    readonly height: number,
    readonly width: number,
    readonly labels: Int32Array,
  ) {
    this.name = dir === FASHION_MNIST_DIR ? "fashion-mnist" : `fashion-mnist:${dir}`;
    this.count = labels.length;
  }

  image(i: number): Float32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new RangeError(
        `Cannot read ${this.name} image ${i}: the ${this.split} split has ${this.count}`,
      );
    }
    const HW = this.height * this.width;
    const out = new Float32Array(HW);
    const src = this.pixels.subarray(i * HW, (i + 1) * HW);
    for (let j = 0; j < HW; j++) out[j] = src[j] / 255;
    return out;
  }

  size(_i: number): { height: number; width: number } {
    return { height: this.height, width: this.width };
  }
}

/** Reads `dir/base` or `dir/base.gz` and checks magic, dims and length. */
async function readIdx(dir: string, base: string, magic: number): Promise<Idx> {
  let path = `${dir}/${base}`;
  let bytes: Uint8Array | undefined;
  for (const candidate of [path, `${path}.gz`]) {
    try {
      bytes = await Deno.readFile(candidate);
      path = candidate;
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new DataError(`Cannot read ${candidate}: ${errText(e)}`, { cause: e });
      }
    }
  }
  if (bytes === undefined) {
    throw new DataError(
      `Cannot open Fashion-MNIST: neither ${path} nor ${path}.gz exists; ` +
        `run "apt-get install dataset-fashion-mnist" or pass fashion-mnist:DIR with the idx files`,
    );
  }
  return await decodeIdx(path, bytes, magic);
}

/** An idx file's shape and payload. */
export interface Idx {
  /** The file it came from, for messages. */
  path: string;
  /** The dimensions from the header, e.g. [60000, 28, 28]. */
  dims: number[];
  /** The unsigned-byte payload after the header. */
  data: Uint8Array;
}

/** Idx payloads larger than this (2 GiB) are refused as corrupt before anything is allocated. */
export const MAX_IDX_BYTES = 2 ** 31;

/**
 * Parses idx `bytes` (gunzipped first if they start with the gzip magic),
 * checking the magic number (`0x0000080N`: unsigned bytes, N dims), that no
 * dim is zero, and that the payload length matches the dims; `path` names
 * the file in {@link DataError}s. A gzipped file is decompressed only as far
 * as its header's dims allow, so a gzip bomb cannot exhaust memory.
 */
export async function decodeIdx(path: string, bytes: Uint8Array, magic: number): Promise<Idx> {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    bytes = await gunzip(path, bytes, magic);
  }
  return parseIdx(path, bytes, magic);
}

/**
 * How many bytes of a decompressing idx file to read: those its header declares; just the
 * header when the magic is wrong or the dims exceed {@link MAX_IDX_BYTES} (the parser then
 * says why); null until the header is complete.
 */
function idxLimit(head: Uint8Array, magic: number): number | null {
  const header = 4 + 4 * (magic & 0xff);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length >= 4 && view.getUint32(0) !== magic) return 4;
  if (head.length < header) return null;
  let need = 1;
  for (let d = 0; d < (magic & 0xff); d++) need *= view.getUint32(4 + 4 * d);
  return need > MAX_IDX_BYTES ? header : header + need;
}

function parseIdx(path: string, bytes: Uint8Array, magic: number): Idx {
  const ndim = magic & 0xff;
  const header = 4 + 4 * ndim;
  const fix = "replace the file with a good copy";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const got = bytes.length >= 4 ? view.getUint32(0) : -1; // idx is big-endian
  if (got !== magic) {
    const seen = got < 0 ? "none (under 4 bytes)" : `0x${got.toString(16).padStart(8, "0")}`;
    throw new DataError(
      `Cannot read ${path}: bad magic number ${seen}, expected ` +
        `0x${magic.toString(16).padStart(8, "0")}; is it an idx file? ${fix}`,
    );
  }
  if (bytes.length < header) {
    throw new DataError(
      `Cannot read ${path}: truncated header (${bytes.length} bytes, need ${header}); ${fix}`,
    );
  }
  const dims: number[] = [];
  for (let d = 0; d < ndim; d++) dims.push(view.getUint32(4 + 4 * d));
  if (dims.some((v) => v === 0)) {
    throw new DataError(`Cannot read ${path}: a zero dimension in [${dims.join(", ")}]; ${fix}`);
  }
  const need = dims.reduce((a, b) => a * b, 1);
  if (need > MAX_IDX_BYTES) {
    throw new DataError(
      `Cannot read ${path}: dims [${dims.join(", ")}] claim ${need} data bytes, over the ` +
        `${MAX_IDX_BYTES}-byte limit; the header is corrupt. ${fix}`,
    );
  }
  const have = bytes.length - header;
  if (have !== need) {
    const what = have < need ? "truncated" : "too long";
    throw new DataError(
      `Cannot read ${path}: ${what}: dims [${dims.join(", ")}] need ${need} data bytes, ` +
        `the file has ${have}; ${fix}`,
    );
  }
  return { path, dims, data: bytes.subarray(header) };
}

/**
 * Decompresses `bytes`, stopping one byte past the length the idx header declares (or at
 * {@link MAX_IDX_BYTES}), so the parser reports "too long" without the rest being inflated.
 * The input goes in 1 KiB at a time (deflate inflates at most ~1000×), and the stream's
 * backpressure keeps the decompressor from running ahead of the reads.
 */
async function gunzip(path: string, bytes: Uint8Array, magic: number): Promise<Uint8Array> {
  const inflate = new DecompressionStream("gzip");
  const writer = inflate.writable.getWriter();
  const reader = inflate.readable.getReader();
  const pump = (async () => {
    for (let at = 0; at < bytes.length; at += 1024) {
      await writer.write(bytes.slice(at, at + 1024));
    }
    await writer.close();
  })();
  pump.catch(() => {}); // its failure surfaces through the reader
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    let limit = MAX_IDX_BYTES + 64; // until the header is in
    while (total <= limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
      if (total - value.length < 64) {
        const declared = idxLimit(concat(chunks, Math.min(total, 64)), magic);
        if (declared !== null) limit = Math.min(limit, declared);
      }
    }
    if (total > limit) {
      await reader.cancel();
      total = Math.min(total, limit + 1);
    }
    return concat(chunks, total);
  } catch (e) {
    throw new DataError(
      `Cannot read ${path}: gzip data is corrupt or truncated (${errText(e)}); ` +
        `replace the file with a good copy`,
      { cause: e },
    );
  }
}

/** The first `n` bytes of `chunks`, joined. */
function concat(chunks: Uint8Array[], n: number): Uint8Array {
  if (chunks.length === 1) return chunks[0].subarray(0, n);
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    if (at >= n) break;
    const part = c.subarray(0, n - at);
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
