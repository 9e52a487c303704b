/**
 * Input pipeline throughput: read + JPEG decode + RandomResizedCrop 224 (bicubic) + flip +
 * normalise, images per second.
 *
 * `deno run --allow-read --allow-run --allow-env --allow-ffi=/usr/lib bench/data_bench.ts DIR
 * [--images 640] [--rounds 2] [--workers 0,1,2]`: on the JPEG class folder DIR, dbot inline
 * (0 workers) and with 1 and 2 data workers, interleaved with torchvision's ImageFolder +
 * DataLoader (PIL) at the same worker counts (`bench/torch_data.py`, run by `$DBOT_PYTHON`
 * or python3, with torch and torchvision); the share of dbot's inline time that is
 * decoding; and the decoders side by side on the folder's files (libjpeg-turbo native and
 * WebAssembly, full size and DCT-scaled to 1/2), with the share of training crops that could
 * use DCT scaling at each output size. Under `deno task bench` (no arguments):
 * decoder and transform micro-benchmarks on generated 500×375 JPEGs.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { listFolder, pixelsToFloat } from "../src/data/folder.ts";
import { openDataset } from "../src/data/dataset.ts";
import {
  decodeImageFile,
  loadPngDecoder,
  MAX_IMAGE_PIXELS,
  readHeader,
} from "../src/data/image_file.ts";
import { randomResizedCropBox } from "../src/data/transforms.ts";
import { Rng } from "../src/util/rng.ts";
import { decodeJpeg, jpegDecoder, nativeJpegAvailable } from "../src/data/jpeg.ts";
import { deriveSeed, IMAGENET_MEAN, IMAGENET_STD, ImagePipeline } from "../src/data/pipeline.ts";
import { renderBatch } from "../src/train/micro_batch.ts";
import { Prefetcher } from "../src/data/prefetch.ts";

const BATCH = 32;
const SIZE = 224;

/** The seeds of batch b (one per sample). */
function seeds(b: number, n: number): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => deriveSeed(1, 3, b * BATCH + i));
}

/** dbot images/s over `order` with `workers` data workers (0: inline), from the 2nd batch on. */
async function ours(dir: string, order: Int32Array, workers: number): Promise<number> {
  const nb = Math.floor(order.length / BATCH);
  const batch = (b: number) => order.subarray(b * BATCH, (b + 1) * BATCH);
  if (workers === 0) {
    const ds = await openDataset(dir, "train", { warn: () => {} });
    const pipe = new ImagePipeline(ds, SIZE, 3, IMAGENET_MEAN, IMAGENET_STD);
    renderBatch(pipe, batch(0), seeds(0, BATCH));
    const t0 = performance.now();
    for (let b = 1; b < nb; b++) renderBatch(pipe, batch(b), seeds(b, BATCH));
    return ((nb - 1) * BATCH) / ((performance.now() - t0) / 1000);
  }
  const pf = Prefetcher.create({
    data: dir,
    strict: false,
    size: SIZE,
    channels: 3,
    mean: [...IMAGENET_MEAN],
    std: [...IMAGENET_STD],
  }, workers)!;
  try {
    const ahead = 2 * workers;
    let asked = 0;
    const ask = (upTo: number) => {
      while (asked < Math.min(nb, upTo)) pf.request(batch(asked), seeds(asked++, BATCH));
    };
    ask(1);
    await pf.next(); // workers started and warm
    const t0 = performance.now();
    for (let b = 1; b < nb; b++) {
      ask(b + ahead);
      await pf.next();
    }
    return ((nb - 1) * BATCH) / ((performance.now() - t0) / 1000);
  } finally {
    pf.dispose();
  }
}

async function torch(dir: string, workers: number, images: number): Promise<number> {
  const py = new URL("./torch_data.py", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.env.get("DBOT_PYTHON") || "python3", {
    args: [py, dir, String(workers), String(images), String(BATCH)],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`bench/torch_data.py failed (exit ${out.code})`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!).images_per_s;
}

/** Inline: ms an image for read + decode alone, and for the whole training view. */
async function decodeShare(
  dir: string,
  order: Int32Array,
): Promise<{ decode: number; total: number }> {
  await loadPngDecoder();
  const list = await listFolder(dir, "train");
  const ds = await openDataset(dir, "train", { warn: () => {} });
  const pipe = new ImagePipeline(ds, SIZE, 3, IMAGENET_MEAN, IMAGENET_STD);
  const n = Math.min(order.length, 256);
  let t0 = performance.now();
  for (let i = 0; i < n; i++) decodeImageFile(Deno.readFileSync(list.paths[order[i]]));
  const decode = (performance.now() - t0) / n;
  t0 = performance.now();
  renderBatch(pipe, order.subarray(0, n), seeds(0, n));
  return { decode, total: (performance.now() - t0) / n };
}

/**
 * ms an image for each decoder choice over the files (read once into memory), rounds
 * interleaved: native and WebAssembly libjpeg-turbo, full size and DCT-scaled to 1/2.
 */
function decoderTable(paths: string[], rounds: number): void {
  const files = paths.map((p) => Deno.readFileSync(p));
  const halves = files.map(half);
  const kinds: ("native" | "wasm")[] = nativeJpegAvailable() ? ["wasm", "native"] : ["wasm"];
  const rows = kinds.flatMap((k) => [1, 2].map((s) => ({ k, s, ms: [] as number[] })));
  for (let r = 0; r < rounds; r++) {
    for (const row of rows) {
      const t0 = performance.now();
      for (let i = 0; i < files.length; i++) {
        const o = { maxPixels: MAX_IMAGE_PIXELS, decoder: row.k };
        decodeJpeg(files[i], row.s === 1 ? o : { ...o, ...halves[i] });
      }
      row.ms.push((performance.now() - t0) / files.length);
    }
  }
  const base = Math.min(...rows[0].ms);
  console.log(
    `\n| decoder (${files.length} files, in memory) | ms / image | vs WebAssembly full |`,
  );
  console.log(`|---|---:|---:|`);
  for (const { k, s, ms } of rows) {
    const best = Math.min(...ms);
    console.log(
      `| ${k === "native" ? "native libturbojpeg" : "WebAssembly"} ${
        s === 1 ? "full size" : "DCT 1/2"
      } | ${best.toFixed(2)} | ${(base / best).toFixed(2)}× |`,
    );
  }
}

/**
 * How often a training crop could be decoded DCT-scaled: for each output size, the share of
 * RandomResizedCrop boxes (scale 0.2–1, drawn on these files' sizes) whose scaled box still
 * has ≥ size pixels each way at 1/2, 1/4, 1/8.
 */
function dctShare(paths: string[]): void {
  const sizes = paths.map((p) => readHeader(Deno.readFileSync(p))!);
  console.log(`\n| crop size | boxes at full | at 1/2 | at 1/4 | at 1/8 |`);
  console.log(`|---:|---:|---:|---:|---:|`);
  for (const S of [224, 160, 112, 64]) {
    const rng = new Rng(1), n = 20000, at = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) {
      const { height, width } = sizes[i % sizes.length];
      const b = randomResizedCropBox(height, width, rng, [0.2, 1]);
      let k = 0;
      while (
        k < 3 && Math.floor(b.width / 2 ** (k + 1)) >= S && Math.floor(b.height / 2 ** (k + 1)) >= S
      ) k++;
      at[k]++;
    }
    console.log(`| ${S} | ${at.map((c) => `${((100 * c) / n).toFixed(1)}%`).join(" | ")} |`);
  }
}

/** The minimum size that asks for DCT scale 1/2 of a JPEG. */
function half(bytes: Uint8Array): { minWidth: number; minHeight: number } {
  const d = decodeJpeg(bytes, { maxPixels: MAX_IMAGE_PIXELS, minWidth: 1, minHeight: 1 });
  return { minWidth: Math.floor(d.fullWidth / 2), minHeight: Math.floor(d.fullHeight / 2) };
}

if (Deno.args.length > 0) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      images: { type: "string", default: "640" },
      rounds: { type: "string", default: "2" },
      workers: { type: "string", default: "0,1,2" },
    },
    allowPositionals: true,
  });
  const dir = positionals[0];
  const list = await listFolder(dir, "train");
  const n = Math.min(Number(values.images), list.paths.length);
  // the same images for both: a seeded sample of the training split
  const order = Int32Array.from({ length: n }, (_, i) => Math.floor((i * list.paths.length) / n));
  const rows: Record<string, { ours: number[]; torch: number[] }> = {};
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const w of values.workers.split(",").map(Number)) {
      const row = rows[w] ??= { ours: [], torch: [] };
      row.ours.push(await ours(dir, order, w));
      row.torch.push(await torch(dir, w, n));
      console.error(
        `round ${r + 1}, ${w} workers: dbot ${row.ours.at(-1)!.toFixed(1)} img/s, torchvision ${
          row.torch.at(-1)!.toFixed(1)
        } img/s`,
      );
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(`| workers | dbot img/s | torchvision img/s | dbot / torchvision |`);
  console.log(`|---:|---:|---:|---:|`);
  for (const [w, row] of Object.entries(rows)) {
    const o = med(row.ours), t = med(row.torch);
    console.log(
      `| ${w === "0" ? "0 (inline)" : w} | ${o.toFixed(1)} | ${t.toFixed(1)} | ${
        (o / t).toFixed(2)
      }× |`,
    );
  }
  const share = await decodeShare(dir, order);
  console.log(
    `inline, per image: read + decode ${share.decode.toFixed(2)} ms of ${
      share.total.toFixed(2)
    } ms ` +
      `(${((100 * share.decode) / share.total).toFixed(0)}% decode) over ${
        Math.min(n, 256)
      } images of ${dir}, JPEG decoder: ${jpegDecoder().name}`,
  );
  const sample = Array.from(order.subarray(0, Math.min(n, 256)), (i) => list.paths[i]);
  decoderTable(sample, 3);
  dctShare(sample);
} else {
  // deno task bench: generated JPEGs, no dataset needed
  const { Image, encodeJpeg, decode } = await import("image-js");
  const jpegs: Uint8Array[] = [];
  for (let k = 0; k < 4; k++) {
    const w = 500, h = 375, data = new Uint8Array(w * h * 3);
    for (let i = 0; i < data.length; i++) {
      data[i] = ((i * 2654435761 + k * 97) >>> 24) ^ ((i / 3000) | 0);
    }
    jpegs.push(encodeJpeg(new Image(w, h, { data, colorModel: "RGB" }), { quality: 90 }));
  }
  await loadPngDecoder();
  let j = 0;
  const next = () => jpegs[j++ % jpegs.length];
  Deno.bench({
    name: "decode 500×375 JPEG: image-js (jpeg-js)",
    group: "decode",
    fn: () => void decode(next()),
  });
  const kinds: ("native" | "wasm")[] = nativeJpegAvailable() ? ["wasm", "native"] : ["wasm"];
  for (const decoder of kinds) {
    for (const s of [1, 2, 4, 8]) {
      const min = s === 1 ? {} : { minWidth: Math.floor(500 / s), minHeight: Math.floor(375 / s) };
      Deno.bench({
        name: `decode 500×375 JPEG: libjpeg-turbo ${decoder}${s === 1 ? "" : ` at 1/${s}`}`,
        group: "decode",
        baseline: decoder === "wasm" && s === 1,
        fn: () => void decodeJpeg(next(), { maxPixels: MAX_IMAGE_PIXELS, decoder, ...min }),
      });
    }
  }
  const ds = {
    name: "mem",
    split: "train" as const,
    count: 4,
    channels: 3,
    height: 375,
    width: 500,
    classNames: ["a"],
    labels: new Int32Array(4),
    decoded: (i: number) => decodeImageFile(jpegs[i]),
    read: (i: number) => {
      const px = decodeImageFile(jpegs[i]);
      return { image: pixelsToFloat(px, 3), height: px.height, width: px.width };
    },
    image: (i: number) => ds.read(i).image,
  };
  const pipe = new ImagePipeline(ds, SIZE, 3, IMAGENET_MEAN, IMAGENET_STD);
  let b = 0;
  Deno.bench({
    name: "decode + RandomResizedCrop 224 + flip + normalise (one image)",
    group: "view",
    fn: () => {
      renderBatch(pipe, new Int32Array([b % 4]), seeds(b++, 1));
    },
  });
}
