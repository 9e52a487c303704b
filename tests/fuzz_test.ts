/**
 * Seeded fuzzing of the file parsers: mutated safetensors files through
 * decodeSafetensors(), mutated idx files (plain and gzipped) through decodeIdx(),
 * and corrupt PNG/JPEG members through the folder dataset. Every case must end in a
 * correct parse or the typed error (SafetensorsError / DataError) — never another
 * exception, a hang, or an allocation a lying header asked for.
 */
import { png } from "./png.ts";
import { DataError } from "../src/data/dataset.ts";
import { decodeIdx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC } from "../src/data/fashion_mnist.ts";
import { FolderDataset, loadPngDecoder, MAX_IMAGE_PIXELS } from "../src/data/folder.ts";
import { ImagePipeline } from "../src/data/pipeline.ts";
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from "../src/io/safetensors.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";

const SAFETENSORS_CASES = 1200;
const IDX_CASES = 800;
/** A case slower than this counts as a hang. */
const MAX_CASE_MS = 500;
/** Growth of resident memory over the whole fuzz run that counts as a huge allocation. */
const MAX_RSS_GROWTH = 512 * 2 ** 20;

const DTYPE_SIZE: Record<string, number> = {
  U8: 1,
  F16: 2,
  BF16: 2,
  I32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
};

function int(rng: Rng, n: number): number {
  return Math.floor(rng.uniform() * n);
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[int(rng, xs.length)];
}

/** Outcome counts of one fuzz run. */
interface Counts {
  cases: number;
  parsed: number;
  rejected: number;
  byKind: Record<string, number>;
}

/** Runs `body` and classifies the outcome; any other exception or a slow case fails the test. */
async function runCase(
  counts: Counts,
  kind: string,
  typed: new (...a: never[]) => Error,
  body: () => unknown,
): Promise<void> {
  counts.cases++;
  counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1;
  const t = performance.now();
  try {
    await body();
    counts.parsed++;
  } catch (e) {
    if (!(e instanceof typed)) {
      throw new Error(`case ${counts.cases} (${kind}) threw ${(e as Error)?.name}: ${e}`, {
        cause: e,
      });
    }
    counts.rejected++;
  }
  const ms = performance.now() - t;
  assert(ms < MAX_CASE_MS, `case ${counts.cases} (${kind}) took ${ms.toFixed(0)} ms`);
}

// ---- safetensors ----------------------------------------------------------------

function baseSafetensors(rng: Rng): Uint8Array {
  const n = 1 + int(rng, 4);
  const tensors: Record<
    string,
    {
      dtype: "F32" | "I32" | "U8" | "F16";
      shape: number[];
      data: Float32Array | Int32Array | Uint8Array;
    }
  > = {};
  for (let i = 0; i < n; i++) {
    const shape = [1 + int(rng, 4), 1 + int(rng, 5)];
    const count = shape[0] * shape[1];
    const kind = int(rng, 4);
    tensors[`t${i}.weight`] = kind === 0
      ? { dtype: "F32", shape, data: rng.uniformArray(count) }
      : kind === 1
      ? { dtype: "I32", shape, data: Int32Array.from({ length: count }, () => int(rng, 1000)) }
      : kind === 2
      ? { dtype: "U8", shape, data: Uint8Array.from({ length: count }, () => int(rng, 256)) }
      : { dtype: "F16", shape, data: Uint8Array.from({ length: 2 * count }, () => int(rng, 256)) };
  }
  return encodeSafetensors(tensors, rng.uniform() < 0.5 ? { note: "fuzz" } : undefined);
}

/** Splits a well-formed file into its header object and data buffer. */
function split(bytes: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return {
    header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))),
    data: bytes.subarray(8 + n),
  };
}

function join(headerText: string, data: Uint8Array, lengthLie?: bigint): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthLie ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const HUGE_NUMBERS = [
  2 ** 31,
  2 ** 32 + 1,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 60,
  1e300,
  -1,
  1.5,
  Number.MAX_SAFE_INTEGER,
];

/** One JSON-level edit of a tensor entry (or of the header as a whole). */
function editHeader(rng: Rng, header: Record<string, unknown>, dataLength: number): string {
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const name = pick(rng, names);
  const e = header[name] as { dtype: unknown; shape: unknown; data_offsets: [number, number] };
  const other = header[pick(rng, names)] as typeof e;
  const [b, end] = e.data_offsets;
  switch (int(rng, 16)) {
    case 0: // offsets past the end
      e.data_offsets = [b, dataLength + 1 + int(rng, 100)];
      break;
    case 1: // begin after end
      e.data_offsets = [end + 1, end];
      break;
    case 2: // huge / negative / fractional offsets
      e.data_offsets = [pick(rng, HUGE_NUMBERS), pick(rng, HUGE_NUMBERS)];
      break;
    case 3: // overlap another tensor
      e.data_offsets = [other.data_offsets[0], other.data_offsets[0] + (end - b)];
      break;
    case 4: // unordered: swap ranges (parses when sizes agree)
      [e.data_offsets, other.data_offsets] = [other.data_offsets, e.data_offsets];
      break;
    case 5: // unknown or mistyped dtype
      e.dtype = pick(rng, ["F8", "f32", "Q4", "", 4, null, "BOOL", "C64"]);
      break;
    case 6: // another known dtype: byte count no longer matches (unless same size)
      e.dtype = pick(rng, Object.keys(DTYPE_SIZE));
      break;
    case 7: // huge shapes
      e.shape = [pick(rng, HUGE_NUMBERS), pick(rng, HUGE_NUMBERS), pick(rng, HUGE_NUMBERS)];
      break;
    case 8: // shape-bytes mismatch
      e.shape = [...(e.shape as number[]), 2 + int(rng, 3)];
      break;
    case 9: // shape of the wrong type
      e.shape = pick(rng, ["3", [[1]], null, { 0: 1 }, [1, "2"], [true]]);
      break;
    case 10: // offsets of the wrong type
      (e as Record<string, unknown>).data_offsets = pick(rng, [[0], [0, 1, 2], "0,4", null, [
        "0",
        "4",
      ]]);
      break;
    case 11: // a missing key
      delete (e as Record<string, unknown>)[pick(rng, ["dtype", "shape", "data_offsets"])];
      break;
    case 12: // entry not an object
      header[name] = pick(rng, [null, 1, "x", [], true]);
      break;
    case 13: // bad metadata
      header.__metadata__ = pick(rng, [{ a: 1 }, [], "x", 3, { a: null }, null]);
      break;
    case 14: // header not an object
      return pick(rng, ["[]", "null", "1", '"x"', "{", "", "\ufeff{}", "{}}"]);
    default: // gap: shift everything up (trailing bytes / holes)
      e.data_offsets = [b + 1, end + 1];
      break;
  }
  let text = JSON.stringify(header);
  if (rng.uniform() < 0.3) text += " ".repeat(int(rng, 8)); // padding like the writer's
  return text;
}

function mutateSafetensors(rng: Rng, base: Uint8Array): { kind: string; bytes: Uint8Array } {
  const op = int(rng, 6);
  if (op === 0) {
    const bytes = base.slice();
    const flips = 1 + int(rng, 8);
    for (let i = 0; i < flips; i++) bytes[int(rng, bytes.length)] ^= 1 << int(rng, 8);
    return { kind: "byte flip", bytes };
  }
  if (op === 1) return { kind: "truncation", bytes: base.slice(0, int(rng, base.length)) };
  if (op === 2) {
    const bytes = base.slice();
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const lie = pick(rng, [
      0n,
      BigInt(n - 1 - int(rng, 8)),
      BigInt(n + 1 + int(rng, 8)),
      BigInt(bytes.length),
      BigInt(bytes.length - 8 + 1),
      2n ** 63n,
      2n ** 64n - 1n,
      100_000_001n,
      BigInt(int(rng, 2 ** 30)),
    ]);
    new DataView(bytes.buffer).setBigUint64(0, lie < 0n ? 0n : lie, true);
    return { kind: "header-length lie", bytes };
  }
  if (op === 3) {
    const bytes = new Uint8Array(base.length + 1 + int(rng, 64));
    bytes.set(base);
    for (let i = base.length; i < bytes.length; i++) bytes[i] = int(rng, 256);
    return { kind: "trailing bytes", bytes };
  }
  const { header, data } = split(base);
  return { kind: "json edit", bytes: join(editHeader(rng, header, data.length), data) };
}

/** A successful parse must account for every byte: shapes × dtype sizes tile the data buffer. */
function checkParse(bytes: Uint8Array): void {
  const { tensors } = decodeSafetensors(bytes);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  let total = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    assertEquals(t.data.byteLength, count * DTYPE_SIZE[t.dtype], `tensor ${name}`);
    total += t.data.byteLength;
  }
  assertEquals(total, bytes.length - 8 - n, "tensors tile the data buffer");
}

Deno.test("decodeSafetensors() ends every mutated file in a correct parse or a SafetensorsError", async () => {
  const rng = new Rng(20240707);
  const counts: Counts = { cases: 0, parsed: 0, rejected: 0, byKind: {} };
  const rss0 = Deno.memoryUsage().rss;
  for (let i = 0; i < SAFETENSORS_CASES; i++) {
    const { kind, bytes } = mutateSafetensors(rng, baseSafetensors(rng));
    await runCase(counts, kind, SafetensorsError, () => checkParse(bytes));
  }
  const grew = Deno.memoryUsage().rss - rss0;
  assert(grew < MAX_RSS_GROWTH, `resident memory grew by ${grew} bytes`);
  assertEquals(counts.cases, counts.parsed + counts.rejected);
  assert(counts.parsed > 0 && counts.rejected > counts.cases / 2, JSON.stringify(counts));
  console.log(
    `safetensors fuzz: ${counts.cases} cases, ${counts.parsed} parsed, ${counts.rejected} ` +
      `rejected with SafetensorsError; by mutation ${JSON.stringify(counts.byKind)}`,
  );
});

// ---- idx --------------------------------------------------------------------------

function idxFile(magic: number, dims: number[], payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d >>> 0));
  out.set(payload, 4 + 4 * dims.length);
  return out;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function mutateIdx(
  rng: Rng,
): Promise<{ kind: string; bytes: Uint8Array; magic: number }> {
  const images = rng.uniform() < 0.6;
  const magic = images ? IDX_IMAGES_MAGIC : IDX_LABELS_MAGIC;
  const dims = images ? [1 + int(rng, 6), 1 + int(rng, 5), 1 + int(rng, 5)] : [1 + int(rng, 30)];
  const count = dims.reduce((a, b) => a * b, 1);
  const good = idxFile(magic, dims, Uint8Array.from({ length: count }, () => int(rng, 256)));
  let kind: string;
  let bytes: Uint8Array;
  switch (int(rng, 7)) {
    case 0:
      kind = "bad magic";
      bytes = good.slice();
      new DataView(bytes.buffer).setUint32(
        0,
        pick(
          rng,
          [0, 0x0803, 0x0801, 0x0903, 0x0808, 0x08030000, int(rng, 2 ** 32)].filter((m) =>
            m !== magic
          ),
        ),
      );
      break;
    case 1:
      kind = "truncated";
      bytes = good.slice(0, int(rng, good.length));
      break;
    case 2: {
      kind = "count mismatch";
      const d = dims.slice();
      d[int(rng, d.length)] += rng.uniform() < 0.5 ? 1 + int(rng, 3) : -1;
      bytes = idxFile(magic, d, good.subarray(4 + 4 * dims.length));
      break;
    }
    case 3: {
      kind = "huge dims";
      const d = dims.map(() => pick(rng, [0xffffffff, 0x7fffffff, 65536, 1 << 20]));
      bytes = idxFile(magic, d, good.subarray(4 + 4 * dims.length));
      break;
    }
    case 4:
      kind = "byte flip";
      bytes = good.slice();
      for (let i = 1 + int(rng, 4); i > 0; i--) bytes[int(rng, bytes.length)] ^= 1 << int(rng, 8);
      break;
    case 5:
      kind = "trailing bytes";
      bytes = new Uint8Array(good.length + 1 + int(rng, 16));
      bytes.set(good);
      break;
    default:
      kind = "well-formed";
      bytes = good;
  }
  if (rng.uniform() < 0.3) {
    // gzipped, possibly then damaged
    bytes = await gzip(bytes);
    const r = rng.uniform();
    if (r < 0.3) {
      bytes = bytes.slice(0, 2 + int(rng, bytes.length - 2));
      kind = "gzip truncated";
    } else if (r < 0.5) {
      bytes = bytes.slice();
      bytes[10 + int(rng, bytes.length - 10)] ^= 1 << int(rng, 8);
      kind = "gzip byte flip";
    } else kind = `gzip of ${kind}`;
  }
  return { kind, bytes, magic };
}

Deno.test("decodeIdx() ends every mutated idx file, plain or gzipped, in a correct parse or a DataError", async () => {
  const rng = new Rng(7);
  const counts: Counts = { cases: 0, parsed: 0, rejected: 0, byKind: {} };
  const rss0 = Deno.memoryUsage().rss;
  for (let i = 0; i < IDX_CASES; i++) {
    const { kind, bytes, magic } = await mutateIdx(rng);
    await runCase(counts, kind, DataError, async () => {
      const idx = await decodeIdx("fuzz.idx", bytes, magic);
      assertEquals(idx.dims.length, magic & 0xff);
      assertEquals(idx.data.length, idx.dims.reduce((a, b) => a * b, 1));
    });
  }
  const grew = Deno.memoryUsage().rss - rss0;
  assert(grew < MAX_RSS_GROWTH, `resident memory grew by ${grew} bytes`);
  assert(counts.parsed > 0 && counts.rejected > counts.cases / 2, JSON.stringify(counts));
  console.log(
    `idx fuzz: ${counts.cases} cases, ${counts.parsed} parsed, ${counts.rejected} rejected ` +
      `with DataError; by mutation ${JSON.stringify(counts.byKind)}`,
  );
});

Deno.test("decodeIdx() stops inflating a gzip bomb at the length its header declares", async () => {
  // 64 MiB of zeros behind a header that declares 2×2×2: refused as too long, early
  const bomb = await gzip(idxFile(IDX_IMAGES_MAGIC, [2, 2, 2], new Uint8Array(64 * 2 ** 20)));
  const rss0 = Deno.memoryUsage().rss;
  let msg = "";
  try {
    await decodeIdx("bomb.gz", bomb, IDX_IMAGES_MAGIC);
  } catch (e) {
    assert(e instanceof DataError, String(e));
    msg = e.message;
  }
  assert(msg.includes("bomb.gz") && msg.includes("too long"), msg);
  assert(Deno.memoryUsage().rss - rss0 < 32 * 2 ** 20, "the bomb was inflated");
  // and dims beyond the limit are refused from the header alone
  const liar = await gzip(idxFile(IDX_LABELS_MAGIC, [0xffffffff], new Uint8Array(1 << 20)));
  try {
    await decodeIdx("liar.gz", liar, IDX_LABELS_MAGIC);
    throw new Error("accepted");
  } catch (e) {
    assert(e instanceof DataError && e.message.includes("limit"), String(e));
  }
});

// ---- images -------------------------------------------------------------------------

Deno.test("FolderDataset: corrupt, empty, truncated and oversized images are skipped once each when read; strict names each", async () => {
  await loadPngDecoder();
  const dir = await Deno.makeTempDir();
  const good = await png(4, 4, 2, 3);
  const rng = new Rng(3);
  const bad: Record<string, Uint8Array> = {
    "empty.png": new Uint8Array(),
    "truncated.png": good.slice(0, good.length - 20),
    "random.jpg": Uint8Array.from({ length: 300 }, () => int(rng, 256)),
    "truncated.jpeg": new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46]),
    "zero_width.png": await png(0, 4, 0, 1),
    "bad_colour_type.png": await png(4, 4, 5, 2),
    // a valid header claiming 20000×20000 px: refused before the decoder allocates
    "huge.png": await png(20000, 20000, 0, 1, 1),
  };
  await Deno.mkdir(`${dir}/a`);
  await Deno.mkdir(`${dir}/b`);
  await Deno.writeFile(`${dir}/a/good_rgb.png`, good);
  await Deno.writeFile(`${dir}/b/good_grey_alpha.png`, await png(4, 4, 4, 2)); // 2 channels: alpha dropped
  for (const [name, bytes] of Object.entries(bad)) await Deno.writeFile(`${dir}/b/${name}`, bytes);

  // every file on the training side: the test split of a folder without val/ is held out
  const ds = new FolderDataset(`folder:${dir}`, "train", {
    classNames: ["a", "b"],
    paths: [
      `${dir}/a/good_rgb.png`,
      `${dir}/b/good_grey_alpha.png`,
      ...Object.keys(bad).map((n) => `${dir}/b/${n}`),
    ],
    labels: Int32Array.from({ length: 2 + Object.keys(bad).length }, (_, i) => i === 0 ? 0 : 1),
  }, false);
  assertEquals(ds.channels, 3);
  // the pipeline skips each bad file once, naming it; the next readable image stands in
  const pipe = new ImagePipeline(ds, 4, 3, [0, 0, 0], [1, 1, 1]);
  for (let i = 2; i < ds.count; i++) {
    assertEquals(pipe.eval(i), pipe.eval(0)); // wraps round to image 0
  }
  const skipped = pipe.takeSkipped();
  assertEquals(skipped.length, Object.keys(bad).length);
  for (const name of Object.keys(bad)) assert(skipped.some((s) => s.includes(`/b/${name}`)), name);
  assertEquals(pipe.takeSkipped(), []); // reported once
  // grey+alpha: the grey values, replicated
  const grey = ds.image(1);
  assertEquals(grey.subarray(0, 16), grey.subarray(16, 32));

  for (const [name, bytes] of Object.entries(bad)) {
    const one = await Deno.makeTempDir();
    await Deno.mkdir(`${one}/c`);
    await Deno.writeFile(`${one}/c/${name}`, bytes);
    const strict = new FolderDataset(`folder:${one}`, "train", {
      classNames: ["c"],
      paths: [`${one}/c/${name}`],
      labels: new Int32Array(1),
    }, true);
    try {
      strict.image(0);
      throw new Error(`strict accepted ${name}`);
    } catch (e) {
      assert(e instanceof DataError, `${name}: ${e}`);
      assert(e.message.includes(`${one}/c/${name}`), e.message);
      if (name === "huge.png") assert(e.message.includes(`${MAX_IMAGE_PIXELS}`), e.message);
    }
    await Deno.remove(one, { recursive: true });
  }
  await Deno.remove(dir, { recursive: true });
});
