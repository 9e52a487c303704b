/**
 * Real-size data paths against the simple one: a folder listed at open and decoded when
 * read, and the WebDataset shards written from it, give the batches of the eager path
 * (every image decoded at open) bit for bit; the number of data workers does not change a
 * batch; files that break mid-run are skipped, warned once and counted; hostile tars are
 * refused; a run on shards stopped mid-epoch and resumed is exact.
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { DataError, type Dataset, openDataset } from "../src/data/dataset.ts";
import { type FolderDataset, pixelsToFloat } from "../src/data/folder.ts";
import { decodeImageFile, loadPngDecoder } from "../src/data/image_file.ts";
import { channelStats, ImagePipeline, spreadSample, statsSample } from "../src/data/pipeline.ts";
import { writeShards } from "../src/data/shard_writer.ts";
import { writeTar } from "../src/data/tar.ts";
import { epochOrder, microBatchJob, renderBatch } from "../src/train/micro_batch.ts";
import { defaultDataWorkers, MAX_WORKER_RESTARTS, Prefetcher } from "../src/data/prefetch.ts";
import { resolvePretrain } from "../src/train/pretrain_config.ts";
import { type MetricLine, pretrain } from "../src/train/pretrain.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { tinyConfig } from "./golden.ts";

const quiet = { log: () => {} };
const NOTES = { warn: () => {} };
const MEAN = [0.5, 0.4, 0.3], STD = [0.25, 0.2, 0.3];

/** A class folder of JPEGs and PNGs of mixed sizes: `classes` × `per` images. */
async function makeFolder(dir: string, classes = 3, per = 12): Promise<void> {
  const { Image, encodeJpeg, encodePng } = await import("image-js");
  const rng = new Rng(5);
  for (let k = 0; k < classes; k++) {
    await Deno.mkdir(`${dir}/class${k}`, { recursive: true });
    for (let j = 0; j < per; j++) {
      const w = 24 + Math.floor(rng.uniform() * 24), h = 20 + Math.floor(rng.uniform() * 24);
      const data = new Uint8Array(w * h * 3);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const at = 3 * (y * w + x);
          data[at] = (x * 9 + k * 70) & 255;
          data[at + 1] = (y * 7 + j * 13) & 255;
          data[at + 2] = Math.floor(rng.uniform() * 256);
        }
      }
      const img = new Image(w, h, { data, colorModel: "RGB" });
      const name = `${dir}/class${k}/${String(j).padStart(3, "0")}`;
      if (j % 4 === 3) await Deno.writeFile(`${name}.png`, encodePng(img));
      else await Deno.writeFile(`${name}.jpg`, encodeJpeg(img, { quality: 90 }));
    }
  }
}

/** The eager path: every image of `ds` decoded into memory up front. */
function eager(ds: FolderDataset): Dataset {
  const images = ds.paths.map((p) => {
    const im = decodeImageFile(Deno.readFileSync(p));
    return { image: pixelsToFloat(im, ds.channels), height: im.height, width: im.width };
  });
  return {
    name: "eager",
    split: ds.split,
    count: ds.count,
    channels: ds.channels,
    height: images[0].height,
    width: images[0].width,
    classNames: ds.classNames,
    labels: ds.labels,
    image: (i) => images[i].image.slice(),
    size: (i) => ({ height: images[i].height, width: images[i].width }),
  };
}

/** The micro-batches of two epochs (batch 5, seed 3) rendered inline from `ds`. */
function epochBatches(ds: Dataset): Float32Array[] {
  const pipe = new ImagePipeline(ds, 16, 3, MEAN, STD, { cropScale: [0.2, 1] });
  const plan = { seed: 3, batch: 5, accum: 1, rank: 0, ranks: 1, nTrain: ds.count };
  const out: Float32Array[] = [];
  for (let epoch = 0; epoch < 2; epoch++) {
    const order = epochOrder(plan, epoch);
    for (let j = 0; j < Math.floor(ds.count / 5); j++) {
      out.push(renderBatch(pipe, ...microBatchJob(plan, order, { first: 0, step: 0, j })).images);
    }
  }
  return out;
}

function sameBits(a: Float32Array[], b: Float32Array[], what: string): void {
  assertEquals(a.length, b.length);
  a.forEach((x, i) => {
    assert(
      x.length === b[i].length && x.every((v, k) => Object.is(v, b[i][k])),
      `${what}: batch ${i} differs`,
    );
  });
}

Deno.test("a lazy folder and the shards written from it give the eager path's batches, bit for bit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await makeFolder(`${dir}/f`);
    await loadPngDecoder();
    const lazy = await openDataset(`${dir}/f`, "train", NOTES) as FolderDataset;
    assertEquals(lazy.count, 33); // 1 of each class's 12 held out
    const want = epochBatches(eager(lazy));
    sameBits(epochBatches(lazy), want, "lazy folder");

    const r = await writeShards({ data: `${dir}/f`, out: `${dir}/s`, shardSize: 7 });
    assertEquals([r.samples.train, r.samples.test, r.written.train, r.written.test], [33, 3, 5, 1]);
    const shards = await openDataset(`shards:${dir}/s`, "train");
    assertEquals(Array.from(shards.labels), Array.from(lazy.labels));
    assertEquals(shards.classNames, lazy.classNames);
    sameBits(epochBatches(shards), want, "shards");
    const test = await openDataset(`shards:${dir}/s`, "test");
    const folderTest = await openDataset(`${dir}/f`, "test", NOTES);
    assertEquals(Array.from(test.labels), Array.from(folderTest.labels));
    assertEquals(test.image(2), folderTest.image(2));

    // a second run keeps the complete shards; a shard lost is written again, the same bytes
    const before = await Deno.readFile(`${dir}/s/train/shard-000001.tar`);
    await Deno.remove(`${dir}/s/train/shard-000001.tar`);
    const again = await writeShards({ data: `${dir}/f`, out: `${dir}/s`, shardSize: 7 });
    assertEquals([again.written.train, again.kept.train, again.kept.test], [1, 4, 1]);
    assertEquals(await Deno.readFile(`${dir}/s/train/shard-000001.tar`), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the number of data workers does not change a batch (0 = inline, 1, 2, 3)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await makeFolder(`${dir}/f`);
    const ds = await openDataset(`${dir}/f`, "train", NOTES);
    const pipe = new ImagePipeline(ds, 16, 3, MEAN, STD);
    const plan = { seed: 9, batch: 7, accum: 1, rank: 0, ranks: 1, nTrain: ds.count };
    const order = epochOrder(plan, 0);
    const jobs = [0, 1, 2, 3].map((j) => microBatchJob(plan, order, { first: 0, step: 0, j }));
    const want = jobs.map((job) => renderBatch(pipe, ...job));
    for (const workers of [1, 2, 3]) {
      const pf = Prefetcher.create(
        { data: `${dir}/f`, strict: false, size: 16, channels: 3, mean: MEAN, std: STD },
        workers,
      );
      assert(pf && pf.workers === workers, `${workers} data workers start`);
      try {
        for (const job of jobs) pf.request(...job);
        for (const w of want) {
          const got = await pf.next();
          assertEquals(got.images, w.images);
          assertEquals(got.rngStates, w.rngStates);
        }
      } finally {
        pf.dispose();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a data worker that crashes mid-run is restarted with its jobs: the batches do not change", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await makeFolder(`${dir}/f`);
    const ds = await openDataset(`${dir}/f`, "train", NOTES);
    const pipe = new ImagePipeline(ds, 16, 3, MEAN, STD);
    const plan = { seed: 4, batch: 6, accum: 1, rank: 0, ranks: 1, nTrain: ds.count };
    const order = epochOrder(plan, 0);
    const jobs = [0, 1, 2, 3, 4].map((j) => microBatchJob(plan, order, { first: 0, step: 0, j }));
    const want = jobs.map((job) => renderBatch(pipe, ...job));
    const warnings: string[] = [];
    const init = { data: `${dir}/f`, strict: false, size: 16, channels: 3, mean: MEAN, std: STD };
    const pf = Prefetcher.create(init, 2, (m) => warnings.push(m))!;
    try {
      pf.request(...jobs[0]);
      assertEquals((await pf.next()).images, want[0].images);
      // worker 1 dies before its parts of three batches; worker 0 between batches
      pf.crashForTest(1);
      for (const job of jobs.slice(1, 4)) pf.request(...job);
      for (const w of want.slice(1, 3)) assertEquals((await pf.next()).images, w.images);
      pf.crashForTest(0);
      pf.request(...jobs[4]);
      for (const w of want.slice(3)) {
        const got = await pf.next();
        assertEquals(got.images, w.images);
        assertEquals(got.rngStates, w.rngStates);
      }
      assertEquals(pf.restarts, 2);
      assertEquals(warnings.length, 2, warnings.join("\n"));
      assert(warnings[0].includes("data worker 1 crashed"), warnings[0]);
      assert(warnings[0].includes("its 3 unfinished job(s)"), warnings[0]);
      assert(warnings[1].includes("data worker 0 crashed"), warnings[1]);
    } finally {
      pf.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** `p`, or a failure after `ms` (a test of a hang must fail, not hang). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("a data worker that keeps crashing or exiting ends the run with its error, never a stall", async () => {
  const init = { data: "shapes:40", strict: false, size: 16, channels: 3, mean: MEAN, std: STD };
  // an uncaught error, or an exit without a word (found by its silence: 2 s here)
  const ways = [["crash", "a crash asked for by a test"], ["exit", "it exited or hangs"]] as const;
  for (const [how, said] of ways) {
    const pf = Prefetcher.create(init, 1, () => {}, 2000)!;
    try {
      const seeds = Uint32Array.from([1, 2, 3, 4]);
      for (let k = 0; k <= MAX_WORKER_RESTARTS; k++) {
        pf.crashForTest(0, how);
        pf.request(Int32Array.from([0, 1, 2, 3]), seeds);
        // restarted: the batch comes
        if (k < MAX_WORKER_RESTARTS) await within(pf.next(), 30_000, `${how}: restart ${k + 1}`);
      }
      const err = await within(pf.next(), 30_000, `${how}: the last`).then(() => null, (e) => e);
      assert(err !== null, `the last ${how} did not fail the batch`);
      assert(
        err.message.includes(`crashed ${MAX_WORKER_RESTARTS + 1} times`) &&
          err.message.includes(said),
        err.message,
      );
      pf.request(Int32Array.from([0]), Uint32Array.from([1]));
      await pf.next().then(() => assert(false, "a batch after the failure"), () => {});
    } finally {
      pf.dispose();
    }
  }
});

Deno.test("a data worker that exits without a word is found by its silence and restarted", async () => {
  const init = { data: "shapes:40", strict: false, size: 16, channels: 3, mean: MEAN, std: STD };
  const ds = await openDataset("shapes:40", "train", NOTES);
  const pipe = new ImagePipeline(ds, 16, 3, MEAN, STD);
  const jobs = [0, 1, 2].map((j) =>
    [Int32Array.from([j, j + 4, j + 8, j + 12]), Uint32Array.from([j, 7, 8, 9])] as const
  );
  const want = jobs.map((job) => renderBatch(pipe, ...job));
  const warnings: string[] = [];
  // silent for 2 s with a job: exited (a live worker says "alive" every 200 ms here, idle or
  // between samples; 2 s is also above a fresh worker's start)
  const pf = Prefetcher.create(init, 2, (m) => warnings.push(m), 2000)!;
  try {
    pf.request(...jobs[0]);
    assertEquals((await pf.next()).images, want[0].images);
    pf.crashForTest(1, "exit");
    pf.request(...jobs[1]);
    pf.request(...jobs[2]);
    for (const w of want.slice(1)) {
      const got = await within(pf.next(), 30_000, "a batch after a silent exit");
      assertEquals(got.images, w.images);
      assertEquals(got.rngStates, w.rngStates);
    }
    assertEquals(pf.restarts, 1);
    assertEquals(warnings.length, 1, warnings.join("\n"));
    assert(warnings[0].includes("data worker 1 crashed (it exited or hangs"), warnings[0]);
    assert(warnings[0].includes("2 unfinished job(s)"), warnings[0]);
  } finally {
    pf.dispose();
  }
});

Deno.test("defaultDataWorkers: the cores training leaves free, at least 1, at most 8", () => {
  assertEquals(defaultDataWorkers({ cores: 2, trainThreads: 2 }), 1); // CPU training here
  assertEquals(defaultDataWorkers({ cores: 16, trainThreads: 1 }), 8); // WebGPU, 16 cores
  assertEquals(defaultDataWorkers({ cores: 8, trainThreads: 1 }), 7);
  assertEquals(defaultDataWorkers({ cores: 16, trainThreads: 1, ranks: 4 }), 3);
  assertEquals(defaultDataWorkers({ cores: 1, trainThreads: 1 }), 1);
  assertEquals(resolvePretrain({}).dataWorkers, -1); // the default asks for it
});

Deno.test("spreadSample: every class of a sorted folder, evenly, distinct, exactly n", () => {
  // a stand-in file dataset: classes of 2, 5, 9 and 30 images, sorted by class
  const sizes = [2, 5, 9, 30];
  const labels = Int32Array.from(sizes.flatMap((m, k) => Array(m).fill(k)));
  const ds = { count: labels.length, labels, decoded: () => null } as unknown as Dataset;
  for (const n of [1, 3, 4, 8, 20, 40, 46, 100]) {
    const idx = spreadSample(ds, n);
    assertEquals(idx.length, Math.min(n, labels.length), `n=${n}`);
    assertEquals(new Set(idx).size, idx.length, `n=${n}: distinct`);
    for (let j = 1; j < idx.length; j++) assert(idx[j] > idx[j - 1], `n=${n}: ascending`);
    const perClass = sizes.map((_, k) => Array.from(idx).filter((i) => labels[i] === k).length);
    if (n >= 4) assert(perClass.every((m) => m > 0), `n=${n}: every class, got ${perClass}`);
    if (n === 20) assertEquals(perClass, [2, 5, 7, 6]); // small classes give their rest away
  }
  // an in-memory dataset keeps its first n (its order is already mixed)
  const mem = { count: 10, labels: new Int32Array(10) } as unknown as Dataset;
  assertEquals(Array.from(spreadSample(mem, 3)), [0, 1, 2]);
});

Deno.test("channelStats of a file dataset: a class-spread sample, the float path's statistics", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await makeFolder(`${dir}/f`, 4, 12);
    const lazy = await openDataset(`${dir}/f`, "train", NOTES) as FolderDataset;
    const idx = statsSample(lazy, 20);
    assertEquals(idx.length, 20);
    assertEquals(new Set(Array.from(idx, (i) => lazy.labels[i])).size, 4); // every class
    assertEquals(statsSample(lazy, 1000).length, lazy.count); // fewer files than the sample
    // the byte histograms give what the float images give, image by image
    const all = eager(lazy);
    const sum = [0, 0, 0], sq = [0, 0, 0];
    let n = 0;
    for (const i of idx) {
      const img = all.image(i), hw = img.length / 3;
      for (let c = 0; c < 3; c++) {
        for (let k = 0; k < hw; k++) sum[c] += img[c * hw + k], sq[c] += img[c * hw + k] ** 2;
      }
      n += hw;
    }
    const got = channelStats(lazy, 3, 20);
    for (let c = 0; c < 3; c++) {
      const m = sum[c] / n, sd = Math.sqrt(sq[c] / n - m * m);
      assert(Math.abs(got.mean[c] - m) <= 5e-5 + 1e-9, `mean ${c}: ${got.mean[c]} vs ${m}`);
      assert(Math.abs(got.std[c] - sd) <= 5e-5 + 1e-9, `std ${c}: ${got.std[c]} vs ${sd}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("files corrupted or deleted mid-run are skipped with one warning each and counted in metrics.jsonl", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await makeFolder(`${dir}/f`);
    const train = (await openDataset(`${dir}/f`, "train", NOTES)) as FolderDataset;
    const [gone, broken] = [train.paths[4], train.paths[20]];
    const lines: string[] = [];
    const cfg = tinyConfig(`${dir}/runs`, {
      data: `${dir}/f`,
      boundaries: [0, 2],
      logEvery: 1,
      knnTrain: 8,
      knnTest: 3,
      dataWorkers: 2,
    });
    const s = await pretrain(new CpuBackend(), cfg, {
      log: (l) => lines.push(l),
      alterBatch: (step) => {
        if (step !== 0) return;
        // during epoch 0: both are read again in epoch 1
        Deno.removeSync(gone);
        const bytes = Deno.readFileSync(broken);
        Deno.writeFileSync(broken, bytes.subarray(0, 40));
      },
    });
    assert(s !== null, "the run finishes");
    const warned = lines.filter((l) => l.includes("skipped unreadable image"));
    assertEquals(warned.length, 2, lines.join("\n"));
    assert(
      warned.some((l) => l.includes(gone)) && warned.some((l) => l.includes(broken)),
      warned.join("\n"),
    );
    const metrics = (await Deno.readTextFile(`${dir}/runs/t/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l) as MetricLine);
    assertEquals(metrics[0].data_skipped, 0);
    assertEquals(metrics.at(-1)!.data_skipped, 2);

    // strict: the same file ends the run with a DataError that names it
    let message = "";
    try {
      await pretrain(new CpuBackend(), { ...cfg, name: "strict", strictData: true }, quiet);
    } catch (e) {
      assert(e instanceof Error, String(e));
      message = e.message;
    }
    assert(message.includes(gone) || message.includes(broken), message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hostile tars are refused at open, naming the shard and the problem", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const enc = new TextEncoder();
    const png = await Deno.readFile(
      new URL("./fixtures/images/flat/circle/a_rgb.png", import.meta.url),
    );
    const good = writeTar([{ name: "a.png", data: png }, { name: "a.cls", data: enc.encode("0") }]);
    const cases: Record<string, [Uint8Array, string]> = {
      dotdot: [writeTar([{ name: "../a.png", data: png }]), '".."'],
      absolute: [writeTar([{ name: "/etc/a.png", data: png }]), "absolute"],
      truncated: [good.subarray(0, 700), "truncated"],
      "cut header": [good.subarray(0, 300), "truncated"],
      checksum: [good.slice().fill(7, 0, 4), "checksum"],
      "size lie": [
        (() => {
          const t = good.slice();
          t.set(enc.encode("77777777777\0"), 124); // 8 GiB claimed
          let sum = 0;
          for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : t[i];
          t.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
          return t;
        })(),
        "truncated",
      ],
      "bad label": [
        writeTar([{ name: "a.png", data: png }, { name: "a.cls", data: enc.encode("cat") }]),
        "not a class index",
      ],
    };
    for (const [name, [bytes, why]] of Object.entries(cases)) {
      const d = `${dir}/${name.replace(" ", "_")}`;
      await Deno.mkdir(d);
      await Deno.writeFile(`${d}/s.tar`, bytes);
      try {
        await openDataset(`shards:${d}`, "train");
        throw new Error(`${name}: accepted`);
      } catch (e) {
        assert(e instanceof DataError, `${name}: ${e}`);
        assert(
          e.message.includes(`${d}/s.tar`) && e.message.includes(why),
          `${name}: ${e.message}`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a run on shards stopped mid-epoch and resumed ends bit-identical to an uninterrupted run", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await makeFolder(`${dir}/f`);
    await writeShards({ data: `${dir}/f`, out: `${dir}/s`, shardSize: 10 });
    const over = { data: `shards:${dir}/s`, boundaries: [0, 2], knnTrain: 8, knnTest: 3 };
    const full = await pretrain(new CpuBackend(), tinyConfig(`${dir}/a`, over), quiet);
    assert(full !== null, "the uninterrupted run finishes");
    const cfg = tinyConfig(`${dir}/b`, over);
    const stop = new AbortController();
    const stopped = await pretrain(new CpuBackend(), cfg, {
      ...quiet,
      signal: stop.signal,
      alterBatch: (step) => {
        if (step === 5) stop.abort(); // epoch 1 (4 steps an epoch), iteration 1
      },
    });
    assertEquals(stopped, null);
    const resumed = await pretrain(new CpuBackend(), cfg, { ...quiet, resume: true });
    assert(resumed !== null, "the resumed run finishes");
    const a = await Deno.readFile(`${dir}/a/t/final.safetensors`);
    const b = await Deno.readFile(`${dir}/b/t/final.safetensors`);
    assert(a.length === b.length && a.every((x, i) => x === b[i]), "final checkpoints differ");
    assertEquals([resumed.steps, resumed.knn_top1_final], [full.steps, full.knn_top1_final]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task shard --resize-short re-encodes larger images at that short side", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await makeFolder(`${dir}/f`, 2, 4);
    await writeShards({ data: `${dir}/f`, out: `${dir}/s`, resizeShort: 16 });
    const ds = await openDataset(`shards:${dir}/s`, "train");
    const folder = await openDataset(`${dir}/f`, "train", NOTES);
    assertEquals(Array.from(ds.labels), Array.from(folder.labels));
    for (let i = 0; i < ds.count; i++) {
      const { height, width } = ds.size!(i);
      const f = folder.size!(i);
      assertEquals(Math.min(height, width), 16);
      assert(
        Math.abs(width / height - f.width / f.height) < 0.1,
        `${width}×${height} vs ${f.width}×${f.height}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
