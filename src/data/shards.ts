/**
 * WebDataset shards: tar files of `KEY.jpg|jpeg|png` + `KEY.cls` (the class index as
 * text), as timm and OpenCLIP write them, opened as `shards:DIR`:
 *
 * ```
 * DIR/train/shard-000000.tar …  DIR/val/shard-000000.tar …   (or DIR/*.tar)
 * DIR/classes.json (optional: the class names, label k = names[k])
 * ```
 *
 * Each shard has an index (member offsets and labels: `NAME.tar.idx.json`, written by
 * `deno task shard`, or built at open by reading the tar's headers), so a sample is read
 * with one positioned read: the seeded epoch order, `--resume` and MPI rank slices are the
 * same as for a folder. Samples are numbered in shard order, then in tar order. A tar that
 * is truncated, has a bad header, or a member with `..` or an absolute path is refused at
 * open. Without `train/` and `val/` (or `test/`) the test split is held out as for folders.
 *
 * @module
 */
import type { Dataset, ImageRead, Pixels, Split } from "./types.ts";
import { BadImageError, DataError } from "./error.ts";
import { decodeImageFile, loadPngDecoder, readHeader } from "./image_file.ts";
import { heldOut } from "./folder.ts";
import { pixelsToFloat } from "./pixels.ts";
import { listTar, type TarEntry } from "./tar.ts";

/** One sample of a shard: its key, image member and label. */
export interface ShardSample {
  /** The WebDataset key (member name up to the first dot of its base name). */
  key: string;
  /** Image member: byte offset in the tar. */
  offset: number;
  /** Image member: bytes. */
  size: number;
  /** Class index from `KEY.cls`. */
  label: number;
}

/** The index of one shard (what `NAME.tar.idx.json` holds). */
export interface ShardIndex {
  /** Bytes of the tar it describes (a different size: the index is stale and rebuilt). */
  tarBytes: number;
  /** Samples in tar order. */
  samples: ShardSample[];
}

const IMAGE_MEMBER = /\.(jpg|jpeg|png)$/i;

/** Reads `n` bytes at `offset` of an open file. */
function readAt(f: Deno.FsFile, offset: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  f.seekSync(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < n) {
    const r = f.readSync(out.subarray(got));
    if (r === null || r === 0) throw new Error(`unexpected end of file at byte ${offset + got}`);
    got += r;
  }
  return out;
}

/** Builds the index of the tar at `path` from its headers (refusing a hostile tar). */
export function indexShard(path: string): ShardIndex {
  const f = Deno.openSync(path);
  try {
    const tarBytes = f.statSync().size;
    const entries = listTar(path, tarBytes, (o, n) => readAt(f, o, n));
    const byKey = new Map<string, { img?: TarEntry; cls?: TarEntry }>();
    const keys: string[] = [];
    for (const e of entries) {
      const slash = e.name.lastIndexOf("/");
      const dot = e.name.indexOf(".", slash + 1);
      if (dot < 0) continue;
      const key = e.name.slice(0, dot), ext = e.name.slice(dot + 1).toLowerCase();
      let s = byKey.get(key);
      if (!s) byKey.set(key, s = {}), keys.push(key);
      if (IMAGE_MEMBER.test(e.name) && !s.img) s.img = e;
      else if (ext === "cls") s.cls = e;
    }
    const samples: ShardSample[] = [];
    for (const key of keys) {
      const { img, cls } = byKey.get(key)!;
      if (!img || !cls) continue; // not an image sample (e.g. only text)
      if (cls.size > 32) {
        throw new DataError(
          `Cannot read shard ${path}: ${key}.cls has ${cls.size} bytes, not a class index`,
        );
      }
      const t = new TextDecoder().decode(readAt(f, cls.offset, cls.size)).trim();
      if (!/^\d+$/.test(t)) {
        throw new DataError(
          `Cannot read shard ${path}: ${key}.cls holds "${t}", not a class index`,
        );
      }
      samples.push({ key, offset: img.offset, size: img.size, label: Number(t) });
    }
    return { tarBytes, samples };
  } finally {
    f.close();
  }
}

/** The index of a shard: its `.idx.json` when it matches the tar's size, else read from the tar. */
export function shardIndex(path: string): ShardIndex {
  try {
    const idx = JSON.parse(Deno.readTextFileSync(`${path}.idx.json`)) as ShardIndex;
    if (idx.tarBytes === Deno.statSync(path).size && Array.isArray(idx.samples)) return idx;
  } catch {
    // no index, or a stale one: read the tar
  }
  return indexShard(path);
}

async function tarsIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.endsWith(".tar") && !e.name.startsWith(".")) {
        out.push(`${dir}/${e.name}`);
      }
    }
  } catch {
    return [];
  }
  return out.sort();
}

/** Opens the `split` of the shards under `dir` (see the module notes for the layout). */
export async function openShards(
  dir: string,
  split: Split,
  opts: { strict: boolean; warn: (msg: string) => void },
): Promise<Dataset> {
  let test: string[] = [];
  for (const name of ["val", "test"]) {
    test = await tarsIn(`${dir}/${name}`);
    if (test.length) break;
  }
  const train = await tarsIn(`${dir}/train`);
  const both = train.length > 0 && test.length > 0;
  const tars = both ? (split === "train" ? train : test) : await tarsIn(dir);
  if (tars.length === 0) {
    throw new DataError(
      `Cannot open dataset "shards:${dir}": no .tar files in ${dir}` +
        (both ? "" : ` (nor in ${dir}/train/ and ${dir}/val/)`) +
        `; write them with deno task shard --data FOLDER --out ${dir}`,
    );
  }
  const samples: { tar: number; s: ShardSample }[] = [];
  tars.forEach((t, k) => {
    for (const s of shardIndex(t).samples) samples.push({ tar: k, s });
  });
  let classNames: string[] | null = null;
  try {
    classNames = JSON.parse(await Deno.readTextFile(`${dir}/classes.json`));
  } catch {
    // no names: numbered classes
  }
  let all = samples;
  let holdout: string | undefined;
  if (!both) {
    // hold out each class's seeded share, as for a folder
    const byClass = new Map<number, number[]>();
    samples.forEach((x, i) => {
      const l = byClass.get(x.s.label) ?? [];
      l.push(i);
      byClass.set(x.s.label, l);
    });
    const isTest = new Uint8Array(samples.length);
    for (const [k, members] of byClass) {
      for (const j of heldOut(members.length, k)) isTest[members[j]] = 1;
    }
    all = samples.filter((_, i) => isTest[i] === (split === "test" ? 1 : 0));
    const held = isTest.reduce((a, b) => a + b, 0);
    holdout = `shards:${dir} has no train/ and val/ (or test/) shards: ${held} of ` +
      `${samples.length} images (10% of each class, seeded) are held out as the test split`;
    if (split === "test") opts.warn(holdout);
  }
  if (all.length === 0) {
    throw new DataError(
      `Cannot open dataset "shards:${dir}": the ${split} split has no image samples`,
    );
  }
  const maxLabel = all.reduce((m, x) => Math.max(m, x.s.label), 0);
  classNames ??= Array.from({ length: maxLabel + 1 }, (_, k) => String(k));
  if (maxLabel >= classNames.length) {
    throw new DataError(
      `Cannot open dataset "shards:${dir}": a sample has class ${maxLabel} but classes.json names ${classNames.length}`,
    );
  }
  await loadPngDecoder();
  return new ShardDataset(`shards:${dir}`, split, tars, all, classNames, opts.strict, holdout);
}

/** Shard samples decoded when read (one positioned read each). */
export class ShardDataset implements Dataset {
  readonly count: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly labels: Int32Array;
  readonly #files = new Map<number, Deno.FsFile>();

  /** The samples of `tars`; see {@link openShards}. */
  constructor(
    readonly name: string,
    readonly split: Split,
    readonly tars: readonly string[],
    private readonly samples: readonly { tar: number; s: ShardSample }[],
    readonly classNames: readonly string[],
    private readonly strict: boolean,
    /** What the held-out test split is, when there is one. */
    readonly holdout?: string,
  ) {
    this.count = samples.length;
    this.labels = Int32Array.from(samples, (x) => x.s.label);
    // channels: 3 if the first sample of any class has colour (as for folders)
    let colour = false, first: { height: number; width: number } | null = null;
    for (let i = 0; i < this.count; i++) {
      if (i > 0 && this.labels[i] === this.labels[i - 1]) continue;
      try {
        const hdr = readHeader(this.#bytes(i));
        if (!hdr) continue;
        first ??= hdr;
        colour ||= hdr.channels === 3;
      } catch {
        // found and counted when read
      }
    }
    this.channels = colour ? 3 : 1;
    this.height = first?.height ?? 0;
    this.width = first?.width ?? 0;
  }

  /** Where sample i is, for messages: `TAR:KEY`. */
  where(i: number): string {
    const x = this.samples[i];
    return `${this.tars[x.tar]}:${x.s.key}`;
  }

  #bytes(i: number): Uint8Array {
    const { tar, s } = this.samples[i];
    let f = this.#files.get(tar);
    if (!f) {
      if (this.#files.size >= 16) {
        const [k, old] = this.#files.entries().next().value!;
        old.close();
        this.#files.delete(k);
      }
      f = Deno.openSync(this.tars[tar]);
      this.#files.set(tar, f);
    }
    return readAt(f, s.offset, s.size);
  }

  /** Sample i decoded, [channels, H, W] in [0, 1]. */
  read(i: number, min?: { width: number; height: number }): ImageRead {
    const px = this.decoded(i, min);
    return { image: pixelsToFloat(px, this.channels), height: px.height, width: px.width };
  }

  /** Sample i decoded, interleaved (throws a BadImageError, or a DataError when strict). */
  decoded(i: number, min?: { width: number; height: number }): Pixels {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new RangeError(
        `Cannot read ${this.name} image ${i}: the ${this.split} split has ${this.count}`,
      );
    }
    try {
      return decodeImageFile(this.#bytes(i), min);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      if (this.strict) {
        throw new DataError(
          `Cannot decode ${
            this.where(i)
          }: ${why}; write the shard again, or run without --strict-data to skip it`,
          { cause: e },
        );
      }
      throw new BadImageError(this.where(i), why);
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
