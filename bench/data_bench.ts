/**
 * Input pipeline throughput: read + JPEG decode + RandomResizedCrop 224 (bicubic) + flip +
 * normalise, images per second.
 *
 * `deno run --allow-read --allow-run --allow-env bench/data_bench.ts DIR [--images 640]
 * [--rounds 2]`: on the JPEG class folder DIR, dbot inline (0 workers) and with 1 and 2 data
 * workers, interleaved with torchvision's ImageFolder + DataLoader (PIL) at the same worker
 * counts (`bench/torch_data.py`, python3 with torch and torchvision), and the share of dbot's
 * inline time that is decoding. Under `deno task bench` (no arguments): decoder and
 * transform micro-benchmarks on generated 500×375 JPEGs.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { listFolder, pixelsToFloat } from "../src/data/folder.ts";
import { openDataset } from "../src/data/dataset.ts";
import { decodeImageFile, loadPngDecoder } from "../src/data/image_file.ts";
import { deriveSeed, IMAGENET_MEAN, IMAGENET_STD, ImagePipeline } from "../src/data/pipeline.ts";
import { renderBatch } from "../src/train/micro_batch.ts";
import { Prefetcher } from "../src/train/prefetch.ts";

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
  const out = await new Deno.Command("python3", {
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

if (Deno.args.length > 0) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      images: { type: "string", default: "640" },
      rounds: { type: "string", default: "2" },
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
    for (const w of [0, 1, 2]) {
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
      } images of ${dir}`,
  );
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
  Deno.bench({
    name: "decode 500×375 JPEG: libjpeg-turbo wasm",
    group: "decode",
    baseline: true,
    fn: () => void decodeImageFile(next()),
  });
  for (const s of [2, 4, 8]) {
    Deno.bench({
      name: `decode 500×375 JPEG: libjpeg-turbo wasm at 1/${s} (DCT scaling)`,
      group: "decode",
      fn: () =>
        void decodeImageFile(next(), { width: Math.ceil(500 / s), height: Math.ceil(375 / s) }),
    });
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
