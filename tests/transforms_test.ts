/**
 * The variant's and the fine-tuning recipe's transforms, each against its torchvision/timm
 * semantics: ColorJitter, RandomErasing, RandAugment (rand-m9-mstd0.5-inc1) and its ops,
 * RandomResizedCrop's scale, the evaluation crop fraction, and the pipeline hook —
 * distributions over many seeds, edge cases, and determinism per seed.
 */
import {
  autoContrast,
  brightness,
  color,
  contrast,
  equalize,
  INCREASING_OPS,
  parseRandAugment,
  posterize,
  randAugment,
  type RandAugmentTrace,
  rotate,
  sharpness,
  solarize,
  solarizeAdd,
} from "../src/data/randaugment.ts";
import {
  colorJitter,
  crop,
  evalTransform,
  randomErasing,
  randomResizedCropBox,
  resizeBicubic,
} from "../src/data/transforms.ts";
import { ImagePipeline } from "../src/data/pipeline.ts";
import { Prefetcher, renderBatch } from "../src/data/prefetch.ts";
import { openDataset } from "../src/data/dataset.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { assertAllClose } from "./helpers.ts";

/** A seeded random image in [lo, hi]. */
function image(n: number, seed: number, lo = 0, hi = 1): Float32Array {
  return new Rng(seed).uniformArray(n, lo, hi);
}

function meanStd(xs: ArrayLike<number>): [number, number] {
  let s = 0, q = 0;
  for (let i = 0; i < xs.length; i++) [s, q] = [s + xs[i], q + xs[i] * xs[i]];
  const m = s / xs.length;
  return [m, Math.sqrt(Math.max(0, q / xs.length - m * m))];
}

const LUMA = [0.2989, 0.587, 0.114];

// ---- ColorJitter ----------------------------------------------------------------------

/** The reference semantics, written apart: torchvision's adjust_* on a tensor in [0, 1]. */
function jitterReference(
  img: Float32Array,
  HW: number,
  order: number[],
  f: number[],
): Float32Array {
  let x = Array.from(img);
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  const gray = (a: number[], j: number) =>
    LUMA[0] * a[j] + LUMA[1] * a[HW + j] + LUMA[2] * a[2 * HW + j];
  for (const op of order) {
    if (op === 0) x = x.map((v) => clamp(f[0] * v));
    if (op === 1) {
      let m = 0;
      for (let j = 0; j < HW; j++) m += gray(x, j);
      m /= HW;
      x = x.map((v) => clamp(f[1] * v + (1 - f[1]) * m));
    }
    if (op === 2) {
      const g = Array.from({ length: HW }, (_, j) => gray(x, j));
      x = x.map((v, k) => clamp(f[2] * v + (1 - f[2]) * g[k % HW]));
    }
  }
  return Float32Array.from(x);
}

/** torchvision's draws: randperm(4), then the three factors in [0.6, 1.4]. */
function jitterDraws(seed: number): { order: number[]; f: number[] } {
  const rng = new Rng(seed);
  const order = [0, 1, 2, 3];
  for (let i = 3; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const f = [0, 1, 2].map(() => 0.6 + 0.8 * rng.uniform());
  return { order, f };
}

Deno.test("colorJitter() applies brightness, contrast, saturation in the drawn order (torchvision)", () => {
  const d = { C: 3, H: 5, W: 7 };
  const img = image(3 * 35, 1);
  const orders = new Set<string>();
  for (let seed = 0; seed < 60; seed++) {
    const { order, f } = jitterDraws(seed);
    orders.add(order.filter((o) => o < 3).join(""));
    const got = colorJitter(img, d, new Rng(seed), {
      brightness: 0.4,
      contrast: 0.4,
      saturation: 0.4,
    });
    assertAllClose(
      got,
      jitterReference(img, 35, order, f),
      { atol: 1e-6, rtol: 1e-6 },
      `seed ${seed}`,
    );
  }
  assertEquals(orders.size, 6); // every order of the three adjustments occurs
});

Deno.test("colorJitter() factors are uniform in [0.6, 1.4]; clamps to [0, 1]; is seeded", () => {
  const d = { C: 3, H: 4, W: 4 };
  const img = image(48, 2, 0.2, 0.6); // brightness ≤ 1.4 × 0.6 < 1: no clamping
  const factors: number[] = [];
  for (let seed = 0; seed < 2000; seed++) {
    const out = colorJitter(img, d, new Rng(seed), { brightness: 0.4, contrast: 0, saturation: 0 });
    const k = out[0] / img[0];
    for (let i = 0; i < img.length; i++) assert(Math.abs(out[i] - k * img[i]) < 1e-6, "one factor");
    factors.push(k);
  }
  const [m, s] = meanStd(factors);
  assert(Math.min(...factors) >= 0.6 - 1e-6 && Math.max(...factors) <= 1.4 + 1e-6, "range");
  assert(Math.min(...factors) < 0.61 && Math.max(...factors) > 1.39, "range covered");
  assert(Math.abs(m - 1) < 0.02 && Math.abs(s - 0.8 / Math.sqrt(12)) < 0.01, `mean ${m} std ${s}`);
  // strong jitter on bright pixels clamps at 1
  const bright = new Float32Array(48).fill(0.95);
  for (let seed = 0; seed < 50; seed++) {
    const out = colorJitter(bright, d, new Rng(seed), {
      brightness: 0.4,
      contrast: 0.4,
      saturation: 0.4,
    });
    assert(out.every((v) => v >= 0 && v <= 1), "out of [0, 1]");
  }
  const a = colorJitter(img, d, new Rng(7), { brightness: 0.4, contrast: 0.4, saturation: 0.4 });
  const b = colorJitter(img, d, new Rng(7), { brightness: 0.4, contrast: 0.4, saturation: 0.4 });
  const c = colorJitter(img, d, new Rng(8), { brightness: 0.4, contrast: 0.4, saturation: 0.4 });
  assertEquals(Array.from(a), Array.from(b));
  assert(a.some((v, i) => v !== c[i]), "seeds 7 and 8 gave the same jitter");
});

Deno.test("colorJitter() contrast keeps the mean luma; saturation leaves gray and 1-channel images", () => {
  const d = { C: 3, H: 6, W: 6 };
  const img = image(108, 3, 0.3, 0.7);
  const lumaMean = (x: Float32Array) => {
    let s = 0;
    for (let j = 0; j < 36; j++) s += LUMA[0] * x[j] + LUMA[1] * x[36 + j] + LUMA[2] * x[72 + j];
    return s / 36;
  };
  for (let seed = 0; seed < 20; seed++) {
    const out = colorJitter(img, d, new Rng(seed), { brightness: 0, contrast: 0.4, saturation: 0 });
    // (the luma weights sum to 0.9999, hence the tolerance)
    assert(Math.abs(lumaMean(out) - lumaMean(img)) < 1e-4, "contrast moved the mean");
  }
  const gray = new Float32Array(108);
  for (let j = 0; j < 36; j++) gray[j] = gray[36 + j] = gray[72 + j] = (j % 7) / 7;
  const g = colorJitter(gray, d, new Rng(1), { brightness: 0, contrast: 0, saturation: 0.4 });
  assertAllClose(g, gray, { atol: 1e-4, rtol: 0 }); // luma of a gray pixel: 0.9999 × it
  const one = image(36, 4);
  const o = colorJitter(one, { C: 1, H: 6, W: 6 }, new Rng(1), {
    brightness: 0,
    contrast: 0,
    saturation: 0.4,
  });
  assertEquals(Array.from(o), Array.from(one));
  assertThrows(
    () =>
      colorJitter(one, { C: 3, H: 6, W: 6 }, new Rng(1), {
        brightness: 0.4,
        contrast: 0,
        saturation: 0,
      }),
    RangeError,
    "C·H·W",
  );
});

// ---- RandomErasing --------------------------------------------------------------------

Deno.test("randomErasing() (timm pixel mode) erases one box of 2–33% with N(0, 1) noise, p = prob", () => {
  const d = { C: 3, H: 32, W: 32 };
  let erased = 0;
  const noise: number[] = [];
  for (let seed = 0; seed < 2000; seed++) {
    const img = new Float32Array(3 * 1024).fill(7);
    const box = randomErasing(img, d, new Rng(seed), { prob: 0.25 });
    if (!box) {
      assert(img.every((v) => v === 7), "changed without a box");
      continue;
    }
    erased++;
    const { top, left, height: h, width: w } = box;
    assert(h < 32 && w < 32 && top >= 0 && left >= 0 && top + h <= 32 && left + w <= 32, "box");
    const area = (h * w) / 1024;
    assert(area >= 0.02 * 0.5 && area <= (1 / 3) * 1.5, `area ${area}`);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const v = img[(c * 32 + y) * 32 + x];
          const inside = y >= top && y < top + h && x >= left && x < left + w;
          if (inside) noise.push(v);
          else assert(v === 7, "pixel outside the box changed");
        }
      }
    }
  }
  assert(Math.abs(erased / 2000 - 0.25) < 0.03, `erased ${erased} of 2000`);
  const [m, s] = meanStd(noise);
  assert(Math.abs(m) < 0.02 && Math.abs(s - 1) < 0.02, `noise mean ${m} std ${s}`);
  const never = new Float32Array(3 * 1024).fill(7);
  assertEquals(randomErasing(never, d, new Rng(1), { prob: 0 }), null);
  const a = new Float32Array(3 * 1024), b = new Float32Array(3 * 1024);
  randomErasing(a, d, new Rng(5), { prob: 1 });
  randomErasing(b, d, new Rng(5), { prob: 1 });
  assertEquals(Array.from(a), Array.from(b));
});

// ---- crops ----------------------------------------------------------------------------

Deno.test("randomResizedCropBox() areas follow the scale range (0.4–1 variant, 0.08–1 fine-tuning)", () => {
  for (const scale of [[0.4, 1], [0.08, 1]]) {
    const areas: number[] = [];
    const rng = new Rng(9);
    for (let i = 0; i < 3000; i++) {
      const b = randomResizedCropBox(224, 224, rng, scale);
      areas.push((b.height * b.width) / (224 * 224));
    }
    const lo = Math.min(...areas), hi = Math.max(...areas);
    assert(lo >= scale[0] * 0.97 && lo < scale[0] + 0.03, `min area ${lo} for ${scale}`);
    assert(hi <= 1 && hi > 0.95, `max area ${hi}`);
  }
});

Deno.test("evalTransform() with cropPct resizes to ⌊size/cropPct⌋ and centre-crops (timm eval)", () => {
  const img = image(3 * 32 * 32, 5);
  // 28 / 0.875 = 32: no resize, a 2-pixel border cropped
  assertEquals(
    Array.from(evalTransform(img, 3, 32, 32, 28, 0.875)),
    Array.from(crop(img, 3, 32, 32, 2, 2, 28, 28)),
  );
  // 224 at 0.875 from 300×400: shorter side to 256, longer ⌊256·400/300⌋ = 341, then crop
  const big = image(3 * 300 * 400, 6);
  const want = crop(resizeBicubic(big, 3, 300, 400, 256, 341), 3, 256, 341, 16, 58, 224, 224);
  assertEquals(Array.from(evalTransform(big, 3, 300, 400, 224, 0.875)), Array.from(want));
  // cropPct 1 (the default) resizes straight to the size, as before
  assertEquals(
    Array.from(evalTransform(img, 3, 32, 32, 16, 1)),
    Array.from(evalTransform(img, 3, 32, 32, 16)),
  );
  assertThrows(() => evalTransform(img, 3, 32, 32, 28, 0), RangeError, "(0, 1]");
});

// ---- RandAugment ----------------------------------------------------------------------

Deno.test("parseRandAugment() reads timm specs and names the fix for the others", () => {
  assertEquals(parseRandAugment("rand-m9-mstd0.5-inc1"), {
    layers: 2,
    magnitude: 9,
    magnitudeStd: 0.5,
    prob: 0.5,
    increasing: true,
  });
  assertEquals(parseRandAugment("rand-n3-m5-inc1-p1").layers, 3);
  assertThrows(
    () => parseRandAugment("rand-m9-mstd0.5"),
    TypeError,
    "only the increasing op set (inc1)",
  );
  assertThrows(() => parseRandAugment("augmix-m5"), TypeError, 'must start with "rand"');
  assertThrows(() => parseRandAugment("rand-m9-q2-inc1"), TypeError, 'unknown part "q2"');
  assertThrows(() => parseRandAugment("rand-m11-inc1"), TypeError, "m must be in [0, 10]");
});

Deno.test("randAugment(rand-m9-mstd0.5-inc1) draws 2 of the 15 ops uniformly, p 0.5, magnitude N(9, 0.5)", () => {
  assertEquals(INCREASING_OPS.map((o) => o.name), [
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
  ]);
  const spec = parseRandAugment("rand-m9-mstd0.5-inc1");
  const d = { C: 3, H: 8, W: 8 };
  const img = image(192, 11);
  const trace: RandAugmentTrace = { ops: [], applied: [], magnitudes: [] };
  const N = 3000;
  for (let seed = 0; seed < N; seed++) {
    const out = randAugment(img, d, { spec, rng: new Rng(seed), fill: [0.5, 0.5, 0.5], trace });
    assert(out.length === img.length && out.every((v) => v >= 0 && v <= 1), "shape/range");
  }
  assertEquals(trace.ops.length, 2 * N);
  const counts = new Map<string, number>();
  for (const o of trace.ops) counts.set(o, (counts.get(o) ?? 0) + 1);
  assertEquals(counts.size, 15);
  for (const [o, n] of counts) {
    assert(Math.abs(n - (2 * N) / 15) < 0.25 * (2 * N) / 15, `${o}: ${n}`);
  }
  const on = trace.applied.filter(Boolean).length / trace.applied.length;
  assert(Math.abs(on - 0.5) < 0.03, `applied ${on}`);
  const mags = trace.magnitudes.filter((m) => !Number.isNaN(m));
  const [m, s] = meanStd(mags);
  assert(Math.abs(m - 9) < 0.03 && Math.abs(s - 0.5) < 0.03, `magnitude mean ${m} std ${s}`);
  assert(mags.every((x) => x >= 0 && x <= 10), "magnitude outside [0, 10]");
  // determinism per seed
  const a = randAugment(img, d, { spec, rng: new Rng(3), fill: [0.5, 0.5, 0.5] });
  const b = randAugment(img, d, { spec, rng: new Rng(3), fill: [0.5, 0.5, 0.5] });
  assertEquals(Array.from(a), Array.from(b));
  assertThrows(
    () => randAugment(img, d, { spec, rng: new Rng(1), fill: [0.5] }),
    RangeError,
    "one fill value per channel",
  );
});

Deno.test("RandAugment ops follow PIL/timm on 0–255 levels", () => {
  const d = { C: 1, H: 4, W: 4 };
  const levels = Float32Array.from({ length: 16 }, (_, i) => (i * 17) / 255); // 0, 17, …, 255
  // posterize to 1 bit: 0 below 128, 128 above
  assertEquals(
    Array.from(posterize(levels, 1), (v) => Math.round(v * 255)),
    Array.from({ length: 16 }, (_, i) => i * 17 >= 128 ? 128 : 0),
  );
  assertEquals(Array.from(posterize(levels, 8)), Array.from(levels));
  // solarize at 26 (m = 9: 256 − ⌊0.9·256⌋): levels ≥ 26 inverted
  assertAllClose(
    solarize(levels, 26),
    Array.from(levels, (v) => Math.round(v * 255) >= 26 ? 1 - v : v),
  );
  // solarize-add 99 (m = 9: ⌊0.9·110⌋) below 128, capped at 255
  assertAllClose(
    solarizeAdd(levels, 99),
    Array.from(levels, (v) => v * 255 < 128 ? Math.min(1, v + 99 / 255) : v),
  );
  // autocontrast stretches [34, 102] to [0, 255]; a flat channel is kept
  const mid = Float32Array.from({ length: 16 }, (_, i) => (34 + (i % 5) * 17) / 255);
  const ac = autoContrast(mid, d);
  assertAllClose([Math.min(...ac), Math.max(...ac)], [0, 1], { atol: 1e-6, rtol: 0 });
  const flat = new Float32Array(16).fill(0.3);
  assertEquals(Array.from(autoContrast(flat, d)), Array.from(flat));
  // equalize: PIL's step = ⌊(pixels − count of the top level) / 255⌋; 0 leaves the image
  assertEquals(Array.from(equalize(levels, d)), Array.from(levels));
  const two = Float32Array.from({ length: 1024 }, (_, i) => (i < 512 ? 10 : 20) / 255);
  const eq = equalize(two, { C: 1, H: 32, W: 32 }); // step 2: level 10 → 0, level 20 → 255
  assertEquals([eq[0], eq[1023]], [0, 1]);
  // enhancers: factor 1 is the identity, factor 0 the degenerate image
  const rgb = image(3 * 16, 12);
  const d3 = { C: 3, H: 4, W: 4 };
  for (
    const f of [brightness(rgb, 1), contrast(rgb, d3, 1), color(rgb, d3, 1), sharpness(rgb, d3, 1)]
  ) {
    assertAllClose(f, rgb, { atol: 1e-6, rtol: 0 });
  }
  assert(brightness(rgb, 0).every((v) => v === 0), "brightness 0 is black");
  const c0 = contrast(rgb, d3, 0);
  assert(c0.every((v) => v === c0[0]), "contrast 0 is one gray");
  const g0 = color(rgb, d3, 0);
  for (let j = 0; j < 16; j++) {
    assert(g0[j] === g0[16 + j] && g0[j] === g0[32 + j], "color 0 is gray");
  }
  // sharpness keeps the border and blends the interior with the 3×3 SMOOTH filter
  const s0 = sharpness(rgb, d3, 0);
  assertEquals(s0[0], rgb[0]);
  let want = 4 * rgb[5];
  for (const k of [0, 1, 2, 4, 5, 6, 8, 9, 10]) want += rgb[k];
  assert(Math.abs(s0[5] - Math.round((want / 13) * 255) / 255) < 1e-6, "SMOOTH at (1, 1)");
});

Deno.test("RandAugment geometry: PIL rotate/affine with bicubic sampling and the fill colour", () => {
  const d = { C: 2, H: 6, W: 6 };
  const img = image(72, 13, 0.1, 0.9);
  assertAllClose(rotate(img, d, 0, [0, 0]), img, { atol: 1e-6, rtol: 0 });
  // rotate(90) turns counter-clockwise: out[y][x] = in[x][W−1−y]
  const r = rotate(img, d, 90, [0, 0]);
  const want = new Float32Array(72);
  for (let c = 0; c < 2; c++) {
    for (let y = 0; y < 6; y++) {
      for (let x = 0; x < 6; x++) want[(c * 6 + y) * 6 + x] = img[(c * 6 + x) * 6 + 5 - y];
    }
  }
  assertAllClose(r, want, { atol: 1e-6, rtol: 0 });
  // TranslateXRel at m = 10 moves 45% of the width; uncovered columns get the fill
  const tx = INCREASING_OPS.find((o) => o.name === "TranslateXRel")!;
  const d1 = { C: 1, H: 4, W: 20 };
  const ramp = Float32Array.from({ length: 80 }, (_, i) => (i % 20) / 20);
  const rngs = Array.from({ length: 40 }, (_, s) => new Rng(1000 + 7919 * s));
  const outs = rngs.map((rng) => tx.apply(ramp, d1, { mag: 10, rng, fill: [0.77] }));
  const shifts = new Set<number>();
  for (const o of outs) {
    const left = o[0] === Math.fround(0.77); // shifted right: the left 9 columns are filled
    shifts.add(left ? 1 : -1);
    for (let x = 0; x < 20; x++) {
      const src = left ? x - 9 : x + 9;
      const v = o[x];
      if (src < 0 || src >= 20) assertEquals(v, Math.fround(0.77));
      else assert(Math.abs(v - src / 20) < 1e-6, `x ${x}: ${v} vs ${src / 20}`);
    }
  }
  assertEquals(shifts.size, 2); // both signs occur
});

// ---- the pipeline hook -----------------------------------------------------------------

Deno.test("ImagePipeline.train() is unchanged by default and seeded with the variant's and recipe's augmentations", async () => {
  const ds = await openDataset("shapes:64", "train");
  const mean = [0.5, 0.5, 0.5], std = [0.25, 0.25, 0.25];
  const plain = new ImagePipeline(ds, 32, 3, mean, std);
  const same = new ImagePipeline(ds, 32, 3, mean, std, { cropScale: [0.2, 1] });
  assertEquals(Array.from(plain.train(3, new Rng(4))), Array.from(same.train(3, new Rng(4))));
  const variant = new ImagePipeline(ds, 32, 3, mean, std, {
    cropScale: [0.4, 1],
    colorJitter: 0.4,
  });
  const ft = new ImagePipeline(ds, 32, 3, mean, std, {
    cropScale: [0.08, 1],
    randAugment: "rand-m9-mstd0.5-inc1",
    reprob: 0.25,
    cropPct: 0.875,
  });
  for (const p of [variant, ft]) {
    const a = p.train(3, new Rng(4)), b = p.train(3, new Rng(4)), c = p.train(3, new Rng(5));
    assertEquals(a.length, 3 * 32 * 32);
    assertEquals(Array.from(a), Array.from(b));
    assert(a.some((v, i) => v !== c[i]), "seeds 4 and 5 agree");
    assert(a.some((v, i) => v !== plain.train(3, new Rng(4))[i]), "no augmentation happened");
  }
  assertEquals(
    Array.from(ft.eval(3)),
    Array.from(new ImagePipeline(ds, 32, 3, mean, std, { cropPct: 0.875 }).eval(3)),
  );
  assert(ft.eval(3).some((v, i) => v !== plain.eval(3)[i]), "crop fraction 0.875 changed nothing");
  assertThrows(
    () => new ImagePipeline(ds, 32, 3, mean, std, { randAugment: "rand-m9" }),
    TypeError,
    "inc1",
  );
});

Deno.test("Prefetcher renders the variant's augmentation on its worker exactly as inline", async () => {
  const init = {
    data: "shapes:64",
    strict: false,
    size: 32,
    channels: 3,
    mean: [0.5, 0.5, 0.5],
    std: [0.25, 0.25, 0.25],
    augment: { cropScale: [0.4, 1], colorJitter: 0.4 },
  };
  const pf = Prefetcher.create(init);
  assert(pf, "no data worker here");
  try {
    const indices = new Int32Array([3, 9, 27]);
    const seeds = new Uint32Array([11, 12, 13]);
    pf.request(indices, seeds);
    const got = await pf.next();
    const ds = await openDataset("shapes:64", "train");
    const pipe = new ImagePipeline(ds, 32, 3, init.mean, init.std, init.augment);
    const want = renderBatch(pipe, indices, seeds);
    assertEquals(Array.from(got.images), Array.from(want.images));
    assertEquals(Array.from(got.rngStates!), Array.from(want.rngStates!));
    const plain = renderBatch(new ImagePipeline(ds, 32, 3, init.mean, init.std), indices, seeds);
    assert(
      plain.images.some((v, i) => v !== want.images[i]),
      "the augmentation did not reach the batch",
    );
  } finally {
    pf.dispose();
  }
});

Deno.test("RandAugment ops match PIL (as timm calls it) on a 16×17 image, within PIL's rounding", async () => {
  const g = JSON.parse(
    await Deno.readTextFile(new URL("./fixtures/randaugment_golden.json", import.meta.url)),
  ) as {
    C: number;
    H: number;
    W: number;
    fill: number[];
    input: number[];
    cases: Record<string, number[]>;
  };
  const d = { C: g.C, H: g.H, W: g.W };
  const img = Float32Array.from(g.input, (v) => v / 255);
  const fill = g.fill.map((v) => v / 255);
  const op = (name: string) => INCREASING_OPS.find((o) => o.name === name)!;
  /** An op at magnitude 9 whose sign draw gives `sign` (the first uniform > ½ negates). */
  const signed = (name: string, sign: 1 | -1) => {
    const rng = { uniform: () => (sign < 0 ? 0.9 : 0.1), normal: () => 0 } as unknown as Rng;
    return op(name).apply(img, d, { mag: 9, rng, fill });
  };
  const ours: Record<string, Float32Array> = {
    "AutoContrast": autoContrast(img, d),
    "Equalize": equalize(img, d),
    "Invert": op("Invert").apply(img, d, { mag: 9, rng: new Rng(0), fill }),
    "Rotate+27": signed("Rotate", 1),
    "Rotate-27": signed("Rotate", -1),
    "Posterize1": op("PosterizeIncreasing").apply(img, d, { mag: 9, rng: new Rng(0), fill }),
    "Solarize26": op("SolarizeIncreasing").apply(img, d, { mag: 9, rng: new Rng(0), fill }),
    "SolarizeAdd99": op("SolarizeAdd").apply(img, d, { mag: 9, rng: new Rng(0), fill }),
    "Color1.81": signed("ColorIncreasing", 1),
    "Color0.19": signed("ColorIncreasing", -1),
    "Contrast1.81": signed("ContrastIncreasing", 1),
    "Contrast0.19": signed("ContrastIncreasing", -1),
    "Brightness1.81": signed("BrightnessIncreasing", 1),
    "Brightness0.19": signed("BrightnessIncreasing", -1),
    "Sharpness1.81": signed("SharpnessIncreasing", 1),
    "Sharpness0.19": signed("SharpnessIncreasing", -1),
    "ShearX+0.27": signed("ShearX", 1),
    "ShearY-0.27": signed("ShearY", -1),
    "TranslateXRel+0.405": signed("TranslateXRel", 1),
    "TranslateYRel-0.405": signed("TranslateYRel", -1),
  };
  assertEquals(Object.keys(ours).sort(), Object.keys(g.cases).sort());
  // PIL truncates every result to a uint8 level; we keep floats: truncated, ours must equal
  // PIL's (all but a few pixels a hair from a level boundary), and never differ by > 1 level
  const rows: string[] = [];
  for (const [name, want] of Object.entries(g.cases)) {
    let max = 0, off = 0;
    for (let i = 0; i < want.length; i++) {
      max = Math.max(max, Math.abs(ours[name][i] * 255 - want[i]));
      if (Math.floor(ours[name][i] * 255 + 1e-3) !== want[i]) off++;
    }
    rows.push(
      `${name.padEnd(20)} max |ours − PIL| = ${max.toFixed(3)} levels, ${off} of ${want.length} ` +
        "differ after truncation",
    );
    assert(max <= 1 + 1e-3 && off <= want.length / 200, `${name}: ${rows.at(-1)}`);
  }
  console.log(rows.join("\n"));
});
