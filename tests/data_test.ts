import { DataError, type Dataset, openDataset } from "../src/data/dataset.ts";
import {
  decodeIdx,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  IDX_IMAGES_MAGIC,
  IDX_LABELS_MAGIC,
} from "../src/data/fashion_mnist.ts";
import { SHAPE_CLASSES } from "../src/data/shapes.ts";
import { BadImageError } from "../src/data/error.ts";
import { FolderDataset, listFolder, loadPngDecoder } from "../src/data/folder.ts";
import {
  centerCrop,
  evalTransform,
  hflip,
  normalize,
  randomResizedCrop,
  randomResizedCropBox,
  resizeBicubic,
  roundHalfEven,
  toChannels,
} from "../src/data/transforms.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { assertAllClose } from "./helpers.ts";

const FIXTURES = new URL("./fixtures/images", import.meta.url).pathname;

/** Awaits `fn` and asserts it rejects with a {@link DataError} whose message has every `parts`. */
async function assertDataError(fn: () => Promise<unknown>, ...parts: string[]): Promise<string> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof DataError, `expected DataError, got ${e}`);
    for (const p of parts) assert(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return e.message;
  }
  throw new Error(`expected a DataError mentioning ${parts.join(", ")}; nothing was thrown`);
}

function minMax(a: Float32Array): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const v of a) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  return [lo, hi];
}

// ---- shapes ---------------------------------------------------------------

Deno.test("openDataset(shapes) is deterministic per (split, index) and splits differ", async () => {
  const a = await openDataset("shapes", "train");
  const b = await openDataset("shapes:200", "train");
  const t = await openDataset("shapes", "test");
  assertEquals([a.count, b.count, t.count], [5000, 200, 1000]);
  assertEquals([a.channels, a.height, a.width], [3, 32, 32]);
  assertEquals(Array.from(a.image(17)), Array.from(b.image(17)));
  assertEquals(Array.from(a.image(17)), Array.from(a.image(17)));
  assert(a.image(17).some((v, j) => v !== t.image(17)[j]), "train and test image 17 are equal");
  assert(
    a.image(17).some((v, j) => v !== a.image(27)[j]),
    "images 17 and 27 (same class) are equal",
  );
});

Deno.test("openDataset(shapes) has balanced labels and values in [0, 1]", async () => {
  const ds = await openDataset("shapes", "test");
  assertEquals(ds.classNames, SHAPE_CLASSES);
  const counts = new Array(ds.classNames.length).fill(0);
  for (const k of ds.labels) counts[k]++;
  assertEquals(counts, new Array(10).fill(100));
  for (let i = 0; i < 50; i++) {
    const img = ds.image(i);
    assertEquals(img.length, 3 * 32 * 32);
    const [lo, hi] = minMax(img);
    assert(lo >= 0 && hi <= 1 && hi - lo > 0.3, `image ${i} range [${lo}, ${hi}]`);
  }
});

Deno.test("openDataset(shapes:N) rejects a bad count", async () => {
  await assertDataError(() => openDataset("shapes:0", "train"), "shapes:0", "positive integer");
  await assertDataError(() => openDataset("shapes:1e3", "train"), "shapes:1e3");
});

/** Weighted k-NN (cosine, weights exp(sim/0.07), as DINO) on raw pixels; returns top-1 accuracy. */
function rawPixelKnn(train: Dataset, nTrain: number, test: Dataset, nTest: number, k = 20): number {
  const D = train.channels * train.height * train.width;
  const feats = (ds: Dataset, n: number) => {
    const X = new Float32Array(n * D);
    for (let i = 0; i < n; i++) {
      const v = ds.image(i);
      let s = 0;
      for (const x of v) s += x * x;
      const inv = 1 / Math.sqrt(s);
      for (let j = 0; j < D; j++) X[i * D + j] = v[j] * inv;
    }
    return X;
  };
  const Xtr = feats(train, nTrain), Xte = feats(test, nTest);
  const sims = new Float32Array(nTrain);
  const order = new Int32Array(nTrain);
  let correct = 0;
  for (let q = 0; q < nTest; q++) {
    for (let i = 0; i < nTrain; i++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += Xtr[i * D + j] * Xte[q * D + j];
      sims[i] = s;
      order[i] = i;
    }
    order.sort((a, b) => sims[b] - sims[a]);
    const votes = new Float64Array(train.classNames.length);
    for (let r = 0; r < k; r++) votes[train.labels[order[r]]] += Math.exp(sims[order[r]] / 0.07);
    if (votes.indexOf(Math.max(...votes)) === test.labels[q]) correct++;
  }
  return correct / nTest;
}

Deno.test("shapes raw-pixel k-NN is above chance but far from perfect", async () => {
  // The full 5000 → 1000 figure (about 75%; ~66% on this subset) takes ~15 s; a subset keeps the
  // test quick.
  const full = Deno.env.get("DBOT_FULL_KNN") === "1";
  const [nTr, nTe] = full ? [5000, 1000] : [2000, 300];
  const acc = rawPixelKnn(
    await openDataset(`shapes:${nTr}`, "train"),
    nTr,
    await openDataset("shapes", "test"),
    nTe,
  );
  console.log(`shapes raw-pixel k-NN (cosine, k 20, ${nTr} → ${nTe}): ${(100 * acc).toFixed(1)}%`);
  assert(acc > 1 / SHAPE_CLASSES.length + 0.1, `accuracy ${acc} is too close to chance`);
  assert(acc < 0.8, `accuracy ${acc}: raw pixels should not solve shapes`);
});

// ---- Fashion-MNIST ----------------------------------------------------------

const requireDatasets = Deno.env.get("DBOT_REQUIRE_DATASETS") === "1";
const haveFashionMnist = (() => {
  try {
    return Deno.statSync(FASHION_MNIST_DIR).isDirectory;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "openDataset(fashion-mnist) loads 60000/10000 28×28 greyscale images",
  // Skipped where the Debian package is absent, unless DBOT_REQUIRE_DATASETS=1 makes it fail.
  ignore: !haveFashionMnist && !requireDatasets,
  fn: async () => {
    const train = await openDataset("fashion-mnist", "train");
    const test = await openDataset("fashion-mnist", "test");
    assertEquals([train.count, test.count], [60000, 10000]);
    assertEquals([train.channels, train.height, train.width], [1, 28, 28]);
    assertEquals(train.classNames, FASHION_MNIST_CLASSES);
    assertEquals(train.labels.length, 60000);
    const counts = new Array(10).fill(0);
    for (const k of test.labels) counts[k]++;
    assertEquals(counts, new Array(10).fill(1000));
    const img = train.image(0);
    assertEquals(img.length, 28 * 28);
    const [lo, hi] = minMax(img);
    assert(lo === 0 && hi === 1, `range [${lo}, ${hi}]`);
    assertEquals(train.labels[0], 9); // the first training image is an ankle boot
  },
});

Deno.test("openDataset(fashion-mnist:DIR) on a missing directory says how to install", async () => {
  await assertDataError(
    () => openDataset("fashion-mnist:/nonexistent/fmnist", "train"),
    "/nonexistent/fmnist",
    "apt-get install dataset-fashion-mnist",
    "fashion-mnist:DIR",
  );
});

/** An idx file: big-endian magic and dims, then `payload` bytes. */
function idxBytes(magic: number, dims: number[], payload: number): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + payload);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d));
  for (let j = 0; j < payload; j++) out[4 + 4 * dims.length + j] = j % 251;
  return out;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

Deno.test("decodeIdx() reads plain and gzipped idx and rejects bad magic, truncation, bad gzip", async () => {
  const good = idxBytes(IDX_IMAGES_MAGIC, [3, 2, 4], 24);
  for (const bytes of [good, await gzip(good)]) {
    const idx = await decodeIdx("x-idx3-ubyte", bytes, IDX_IMAGES_MAGIC);
    assertEquals(idx.dims, [3, 2, 4]);
    assertEquals(Array.from(idx.data), Array.from(good.subarray(16)));
  }
  await assertDataError(
    () => decodeIdx("f.idx", idxBytes(IDX_LABELS_MAGIC, [3, 2, 4], 24), IDX_IMAGES_MAGIC),
    "f.idx",
    "bad magic",
  );
  await assertDataError(
    () => decodeIdx("f.idx", good.subarray(0, 30), IDX_IMAGES_MAGIC),
    "f.idx",
    "truncated",
  );
  await assertDataError(
    () => decodeIdx("f.idx", good.subarray(0, 10), IDX_IMAGES_MAGIC),
    "f.idx",
    "truncated header",
  );
  await assertDataError(
    () => decodeIdx("f.idx", idxBytes(IDX_IMAGES_MAGIC, [3, 0, 4], 0), IDX_IMAGES_MAGIC),
    "zero dimension",
  );
  const gz = await gzip(good);
  await assertDataError(
    () => decodeIdx("f.gz", gz.subarray(0, gz.length - 9), IDX_IMAGES_MAGIC),
    "f.gz",
    "gzip",
  );
});

Deno.test({
  name: "openDataset(fashion-mnist:DIR) names the truncated or bad-magic file in a temp dir",
  // Writing the hand-made files needs --allow-write; decodeIdx() above covers the checks without it.
  ignore: Deno.permissions.querySync({ name: "write" }).state !== "granted",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dbot_fmnist_" });
    try {
      const images = idxBytes(IDX_IMAGES_MAGIC, [4, 28, 28], 4 * 28 * 28);
      const labels = idxBytes(IDX_LABELS_MAGIC, [4], 4).map((v) => v % 10);
      await Deno.writeFile(`${dir}/t10k-images-idx3-ubyte`, images);
      await Deno.writeFile(`${dir}/t10k-labels-idx1-ubyte.gz`, await gzip(labels));
      const ds = await openDataset(`fashion-mnist:${dir}`, "test");
      assertEquals([ds.count, ds.name], [4, `fashion-mnist:${dir}`]);

      await Deno.writeFile(`${dir}/t10k-images-idx3-ubyte`, images.subarray(0, 1000));
      await assertDataError(
        () => openDataset(`fashion-mnist:${dir}`, "test"),
        `${dir}/t10k-images-idx3-ubyte`,
        "truncated",
      );
      await Deno.writeFile(`${dir}/t10k-images-idx3-ubyte`, labels);
      await assertDataError(
        () => openDataset(`fashion-mnist:${dir}`, "test"),
        `${dir}/t10k-images-idx3-ubyte`,
        "bad magic",
      );
      await assertDataError(
        () => openDataset(`fashion-mnist:${dir}`, "train"),
        "train-images-idx3-ubyte",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---- folders ---------------------------------------------------------------

Deno.test("FolderDataset decodes PNG/JPEG files when read; a corrupt file is a BadImageError, or a DataError when strict", async () => {
  const dir = `${FIXTURES}/flat`;
  await loadPngDecoder();
  const list = await listFolder(dir, "train");
  const test = await listFolder(dir, "test");
  // every file (README ignored) read as one split, to check each decode
  const all = {
    classNames: list.classNames,
    paths: [...list.paths, ...test.paths].sort(),
    labels: Int32Array.from([0, 0, 0, 1, 1, 1]),
  };
  const ds = new FolderDataset(`folder:${dir}`, "train", all, false);
  assertEquals(ds.classNames, ["circle", "square"]);
  assertEquals(ds.paths.map((p) => p.slice(dir.length + 1)), [
    "circle/a_rgb.png",
    "circle/b_rgba.png",
    "circle/c_grey16.png",
    "square/a_grey.png",
    "square/b_rgb.jpg",
    "square/c_corrupt.png",
  ]);
  assertEquals(ds.channels, 3);
  assertEquals(ds.size!(0), { height: 5, width: 6 });
  assertEquals([ds.height, ds.width], [5, 6]);
  assertEquals(ds.size!(1), { height: 4, width: 4 });

  // a_rgb.png: pixel (y, x) = (40x, 50y, 255) / 255.
  const rgb = ds.image(0);
  assertEquals(rgb.length, 3 * 5 * 6);
  assertAllClose([rgb[0 * 30 + 2 * 6 + 3], rgb[1 * 30 + 2 * 6 + 3], rgb[2 * 30 + 2 * 6 + 3]], [
    120 / 255,
    100 / 255,
    1,
  ]);
  // b_rgba.png: alpha dropped.
  assertAllClose(ds.image(1).subarray(0, 16), new Float32Array(16).fill(200 / 255));
  assertAllClose(ds.image(1).subarray(32, 48), new Float32Array(16).fill(0));
  // c_grey16.png: 65535 → 1, 0 → 0, 32768 → 0.5; grey replicated to 3 channels.
  const g16 = ds.image(2);
  assertAllClose([g16[0], g16[1], g16[2], g16[16], g16[32 + 1]], [1, 0, 32768 / 65535, 1, 0]);
  // a_grey.png: 17·j / 255, replicated to 3 channels.
  const grey = ds.image(3);
  assertAllClose(grey.subarray(0, 16), Float32Array.from({ length: 16 }, (_, j) => 17 * j / 255));
  assertEquals(Array.from(grey.subarray(0, 16)), Array.from(grey.subarray(32, 48)));
  // b_rgb.jpg: (255, 128, 0), lossy.
  const jpg = ds.image(4);
  assertAllClose([jpg[0], jpg[64], jpg[128]], [1, 128 / 255, 0], { atol: 3 / 255 });
  // c_corrupt.png: skippable when read, by name
  try {
    ds.image(5);
    throw new Error("the corrupt file decoded");
  } catch (e) {
    assert(e instanceof BadImageError && e.path.endsWith("c_corrupt.png"), String(e));
  }
  const strict = new FolderDataset(`folder:${dir}`, "train", all, true);
  await assertDataError(
    () => Promise.resolve().then(() => strict.image(5)),
    "c_corrupt.png",
    "--strict",
  );
});

Deno.test("openDataset(DIR) without train/ and val/ holds out a seeded, class-stratified test split and says so", async () => {
  const dir = `${FIXTURES}/flat`;
  const notes: string[] = [];
  const train = await openDataset(dir, "train", { warn: (m) => notes.push(m) });
  const test = await openDataset(dir, "test", { warn: (m) => notes.push(m) });
  assertEquals([train.count, test.count], [4, 2]);
  assertEquals(Array.from(test.labels), [0, 1]); // one of each class's 3 files
  const paths = (d: Dataset) => (d as FolderDataset).paths;
  assertEquals(paths(train).filter((p) => paths(test).includes(p)), []); // disjoint
  assertEquals(notes.length, 1);
  assert(notes[0].includes("held out") && notes[0].includes("2 of 6"), notes[0]);
  assertEquals((test as FolderDataset).holdout, notes[0]);
  // the same split every time (seeded), whatever opens it
  const again = await listFolder(dir, "test");
  assertEquals(again.paths, paths(test));
  // one image a class leaves nothing to hold out: the test split is refused, naming the fix
  await assertDataError(() => openDataset(`${FIXTURES}/grey`, "test"), "val/");
});

Deno.test("openDataset(DIR) of greyscale PNG and JPEG has 1 channel", async () => {
  const grey = await openDataset(`${FIXTURES}/grey`, "train");
  assertEquals([grey.channels, grey.count], [1, 2]);
  assertAllClose(grey.image(0), new Float32Array(12).fill(0.2));
  assertEquals(grey.size!(1), { height: 8, width: 8 });
  assertAllClose(grey.image(1), new Float32Array(64).fill(0.8), { atol: 2 / 255 });
});

Deno.test("openDataset(DIR) uses train/ and val/ sub-folders with labels shared across splits", async () => {
  const dir = `${FIXTURES}/split`;
  const train = await openDataset(dir, "train");
  const test = await openDataset(dir, "test");
  assertEquals(train.classNames, ["cat", "dog", "emu"]);
  assertEquals(test.classNames, ["cat", "dog", "emu"]);
  assertEquals(Array.from(train.labels), [0, 0, 1, 1]);
  assertEquals(Array.from(test.labels), [0, 0, 2, 2]);
  assertAllClose([train.image(2)[0], test.image(2)[0]], [40 / 255, (40 + 100) / 255]);
});

Deno.test("openDataset() of a missing directory explains the spec forms", async () => {
  await assertDataError(
    () => openDataset("/nonexistent/images", "train"),
    "/nonexistent/images",
    "sub-folder",
  );
});

// ---- transforms ---------------------------------------------------------------

function ramp(n: number, seed = 1): Float32Array {
  return new Rng(seed).uniformArray(n);
}

Deno.test("roundHalfEven() matches Python's round()", () => {
  assertEquals([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, -2, 2, 3]);
});

Deno.test("resizeBicubic() keeps a constant image constant and the same size is the identity", () => {
  const C = 2, H = 7, W = 5;
  const flat = new Float32Array(C * H * W).fill(0.3);
  for (const [oh, ow] of [[3, 4], [13, 11], [7, 5], [1, 1]]) {
    assertAllClose(resizeBicubic(flat, C, H, W, oh, ow), new Float32Array(C * oh * ow).fill(0.3));
  }
  const img = ramp(C * H * W);
  assertEquals(Array.from(resizeBicubic(img, C, H, W, H, W)), Array.from(img));
});

// Golden values from PyTorch 1.13:
//   x = torch.tensor([0.5 + 0.5 * math.sin(0.7 * j * j + 0.3 * j) for j in range(70)]).reshape(1, 2, 5, 7)
//   F.interpolate(x, size=(3, 4) or (9, 11), mode="bicubic", align_corners=False)
const BICUBIC_IN = Float32Array.from(
  { length: 70 },
  (_, j) => 0.5 + 0.5 * Math.sin(0.7 * j * j + 0.3 * j),
);
const BICUBIC_3x4 = [
  0.5189293,
  0.4357927,
  0.4826775,
  0.7129139,
  0.2502114,
  1.011987,
  0.3400012,
  0.6236312,
  0.4780658,
  0.1967847,
  0.1678668,
  0.5173501,
  0.7779198,
  0.5465118,
  0.6441975,
  0.8849104,
  0.07322803,
  0.9290763,
  0.4958588,
  0.3248752,
  0.8122614,
  0.1023216,
  0.7200239,
  0.5010414,
];
const BICUBIC_9x11_HEAD = [
  0.5103668,
  0.7889776,
  0.9410028,
  0.4497984,
  0.529578,
  0.9709614,
  0.619654,
  0.3823323,
  0.5751501,
  0.8510411,
  1.046447,
  0.27867,
  0.5681022,
  0.8003377,
  0.5262251,
  0.4819814,
  0.6450526,
  0.5411558,
  0.4053805,
  0.3839486,
  0.669408,
  0.9333665,
  -0.01400142,
  0.2519825,
];
const BICUBIC_9x11_TAIL = [
  0.5333152,
  0.3363087,
  1.001187,
  1.033896,
  0.834594,
  0.1434875,
  0.1265551,
  0.7182148,
  0.9907688,
  1.045617,
  0.8817257,
  0.3014836,
  -0.164219,
];

Deno.test("resizeBicubic() matches PyTorch's F.interpolate(bicubic) when shrinking and enlarging", () => {
  // F.interpolate(torch.tensor([[[[0., 1., 2., 3.]]]]), size=(1, 8), mode="bicubic")
  const line = resizeBicubic(new Float32Array([0, 1, 2, 3]), 1, 1, 4, 1, 8);
  assertAllClose(line, [
    -0.10546875,
    0.19140625,
    0.66796875,
    1.296875,
    1.703125,
    2.33203125,
    2.80859375,
    3.10546875,
  ], { atol: 1e-6 });
  assertAllClose(resizeBicubic(BICUBIC_IN, 2, 5, 7, 3, 4), BICUBIC_3x4, { atol: 1e-6 });
  const big = resizeBicubic(BICUBIC_IN, 2, 5, 7, 9, 11);
  assertEquals(big.length, 2 * 9 * 11);
  assertAllClose(big.subarray(0, 24), BICUBIC_9x11_HEAD, { atol: 1e-6 });
  assertAllClose(big.subarray(198 - 13), BICUBIC_9x11_TAIL, { atol: 1e-6 });
});

Deno.test("centerCrop() takes torchvision's offsets and zero-pads a larger crop", () => {
  const C = 1, H = 5, W = 6;
  const img = Float32Array.from({ length: H * W }, (_, j) => j);
  // (5−3)/2 = 1 rows, round((6−3)/2 = 1.5) = 2 columns.
  assertEquals(Array.from(centerCrop(img, C, H, W, 3, 3)), [8, 9, 10, 14, 15, 16, 20, 21, 22]);
  // round(0.5) = 0: the top-left of two equally central windows.
  assertEquals(Array.from(centerCrop(img, C, H, W, 4, 6)).slice(0, 6), [0, 1, 2, 3, 4, 5]);
  const padded = centerCrop(new Float32Array([1, 2, 3, 4]), 1, 2, 2, 4, 3);
  assertEquals(Array.from(padded), [0, 0, 0, 1, 2, 0, 3, 4, 0, 0, 0, 0]);
});

Deno.test("evalTransform() resizes the shorter side and centre-crops to size×size", () => {
  const C = 3, H = 20, W = 30;
  const out = evalTransform(ramp(C * H * W), C, H, W, 10);
  assertEquals(out.length, C * 10 * 10);
  const flat = evalTransform(new Float32Array(C * H * W).fill(0.25), C, H, W, 8);
  assertAllClose(flat, new Float32Array(C * 64).fill(0.25));
  // Already size×size: unchanged.
  const sq = ramp(C * 8 * 8);
  assertEquals(Array.from(evalTransform(sq, C, 8, 8, 8)), Array.from(sq));
});

Deno.test("hflip() twice is the identity and mirrors each row", () => {
  const C = 2, H = 3, W = 5;
  const img = ramp(C * H * W);
  assertEquals(Array.from(hflip(hflip(img, C, H, W), C, H, W)), Array.from(img));
  const f = hflip(Float32Array.from({ length: 5 }, (_, j) => j), 1, 1, 5);
  assertEquals(Array.from(f), [4, 3, 2, 1, 0]);
});

Deno.test("randomResizedCrop() gives size×size, is seeded, and its boxes obey scale and ratio", () => {
  const C = 3, H = 32, W = 40;
  const img = ramp(C * H * W);
  const a = randomResizedCrop(img, C, H, W, 16, new Rng(5));
  const b = randomResizedCrop(img, C, H, W, 16, new Rng(5));
  const c = randomResizedCrop(img, C, H, W, 16, new Rng(6));
  assertEquals(a.length, C * 16 * 16);
  assertEquals(Array.from(a), Array.from(b));
  assert(a.some((v, j) => v !== c[j]), "different seeds gave the same crop");
  const rng = new Rng(9);
  for (let t = 0; t < 200; t++) {
    const box = randomResizedCropBox(H, W, rng);
    assert(box.top >= 0 && box.left >= 0, `box ${JSON.stringify(box)}`);
    assert(box.top + box.height <= H && box.left + box.width <= W, `box ${JSON.stringify(box)}`);
    const frac = (box.height * box.width) / (H * W);
    assert(frac > 0.15 && frac <= 1.05, `area fraction ${frac}`);
  }
  // Impossible scales force the fallback: the largest centred crop within the ratio range.
  assertEquals(randomResizedCropBox(10, 40, new Rng(1), [2, 3]), {
    top: 0,
    left: 13,
    height: 10,
    width: 13,
  });
});

Deno.test("toChannels() replicates grey, averages RGB and copies equal counts", () => {
  const grey = new Float32Array([0.1, 0.2]);
  assertEquals(
    Array.from(toChannels(grey, 1, 1, 2, 3)),
    Array.from(new Float32Array([0.1, 0.2, 0.1, 0.2, 0.1, 0.2])),
  );
  assertAllClose(toChannels(new Float32Array([0.3, 0.6, 0.9, 0]), 2, 1, 2, 1), [0.6, 0.3]);
  assertAllClose(toChannels(new Float32Array([0, 0.3, 0.6]), 3, 1, 1, 1), [0.3]);
  const same = toChannels(grey, 1, 1, 2, 1);
  assert(same !== grey, "identity must copy");
});

Deno.test("normalize() subtracts the mean and divides by the std per channel in place", () => {
  const img = new Float32Array([0.5, 1, 0, 0.2]);
  const out = normalize(img, 2, [0.5, 0.1], [0.5, 0.2]);
  assert(out === img, "normalize() should work in place");
  assertAllClose(out, [0, 1, -0.5, 0.5]);
});
