/**
 * timm's RandAugment (`rand_augment_transform`) on [C, H, W] images with values in [0, 1],
 * for the fine-tuning recipe `rand-m9-mstd0.5-inc1`: 2 ops a image, drawn uniformly with
 * replacement from the 15 "increasing" ops; each applies with probability 0.5 at magnitude
 * `N(9, 0.5)` clipped to [0, 10], signed ops negated with probability 0.5.
 *
 * All 15 ops are implemented (every one is meaningful on our float images):
 * AutoContrast, Equalize, Invert, Rotate, PosterizeIncreasing, SolarizeIncreasing,
 * SolarizeAdd, ColorIncreasing, ContrastIncreasing, BrightnessIncreasing,
 * SharpnessIncreasing, ShearX, ShearY, TranslateXRel, TranslateYRel. Differences from
 * PIL-on-uint8: pixel values stay floats (no rounding to 1/255 after an op, except that
 * Posterize, Solarize, SolarizeAdd, Equalize and AutoContrast read the value on the
 * 0–255 scale as PIL does, and the enhancers' degenerate images — gray, mean, SMOOTH — are
 * whole levels as PIL's are; PIL truncates each result to a level, and on uint8 input ours,
 * truncated, equal PIL's on all but ≤ 2 of 816 values: tests/transforms_test.ts); the geometric ops sample with PIL's affine bicubic
 * (its `a = −1` cubic, source pixels outside the image give the fill colour, the dataset
 * mean rounded to 1/255 as timm's `img_mean`), and the result is clamped to [0, 1].
 * On a 1-channel image Color is the identity (as PIL on mode "L").
 *
 * @example
 * ```ts
 * import { parseRandAugment, randAugment } from "./randaugment.ts";
 * import { Rng } from "../util/rng.ts";
 * const spec = parseRandAugment("rand-m9-mstd0.5-inc1"); // 2 ops, m 9 ± 0.5, p 0.5
 * const img = new Rng(0).uniformArray(3 * 8 * 8); // [C, H, W] in [0, 1]
 * const out = randAugment(img, { C: 3, H: 8, W: 8 }, { spec, rng: new Rng(1), fill: [0.5, 0.5, 0.5] });
 * if (out.length !== img.length) throw new Error("same shape");
 * ```
 *
 * @module
 */
import type { Rng } from "../util/rng.ts";

/** Image dimensions. */
export interface ImageDims {
  /** Channels. */
  C: number;
  /** Rows. */
  H: number;
  /** Columns. */
  W: number;
}

/** A parsed timm RandAugment spec such as `rand-m9-mstd0.5-inc1`. */
export interface RandAugmentSpec {
  /** Ops per image (`n`, default 2). */
  layers: number;
  /** Magnitude on timm's 0–10 scale (`m`). */
  magnitude: number;
  /** Std of the Gaussian noise on the magnitude (`mstd`; 0: none). */
  magnitudeStd: number;
  /** Probability each op applies (`p`, default 0.5). */
  prob: number;
  /** The "increasing" op set (`inc1`); this module implements only it. */
  increasing: boolean;
}

/** Parses a timm RandAugment string (`rand-m9-mstd0.5-inc1`); a bad one is a TypeError naming the fix. */
export function parseRandAugment(spec: string): RandAugmentSpec {
  const bad = (why: string) =>
    new TypeError(
      `Cannot use RandAugment "${spec}": ${why}; give a timm spec such as rand-m9-mstd0.5-inc1`,
    );
  const parts = spec.split("-");
  if (parts[0] !== "rand") throw bad('it must start with "rand"');
  const out: RandAugmentSpec = {
    layers: 2,
    magnitude: 10,
    magnitudeStd: 0,
    prob: 0.5,
    increasing: false,
  };
  for (const p of parts.slice(1)) {
    const m = /^(mstd|mmax|inc|m|n|p|w)([0-9.]+)$/.exec(p);
    if (!m) throw bad(`unknown part "${p}"`);
    const v = Number(m[2]);
    if (!Number.isFinite(v)) throw bad(`"${p}" has no number`);
    if (m[1] === "m") out.magnitude = v;
    else if (m[1] === "mstd") out.magnitudeStd = v;
    else if (m[1] === "n") out.layers = v;
    else if (m[1] === "p") out.prob = v;
    else if (m[1] === "inc") out.increasing = v !== 0;
    else throw bad(`"${m[1]}" is not supported`);
  }
  if (!out.increasing) throw bad("only the increasing op set (inc1) is implemented");
  if (!(Number.isInteger(out.layers) && out.layers >= 1)) throw bad("n must be a positive integer");
  if (!(out.magnitude >= 0 && out.magnitude <= 10)) throw bad("m must be in [0, 10]");
  if (!(out.prob >= 0 && out.prob <= 1)) throw bad("p must be in [0, 1]");
  return out;
}

// ---- the ops -------------------------------------------------------------------------

/** `v` clamped to [0, 1]. */
function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

/** A pixel value on PIL's 0–255 integer scale. */
function level(v: number): number {
  return Math.min(255, Math.max(0, Math.round(v * 255)));
}

/** Per-pixel map of every value. */
function mapValues(img: Float32Array, f: (v: number) => number): Float32Array {
  const out = new Float32Array(img.length);
  for (let k = 0; k < img.length; k++) out[k] = f(img[k]);
  return out;
}

/**
 * `clamp(degenerate + factor·(img − degenerate))`, PIL `ImageEnhance`; the degenerate image
 * is a number (one value), a [H, W] plane shared by the channels, or a [C, H, W] image.
 */
function blend(img: Float32Array, degenerate: number | Float32Array, factor: number): Float32Array {
  const out = new Float32Array(img.length);
  if (typeof degenerate === "number") {
    for (let k = 0; k < img.length; k++) {
      out[k] = clamp01(degenerate + factor * (img[k] - degenerate));
    }
    return out;
  }
  const n = degenerate.length;
  for (let k = 0; k < img.length; k++) {
    const d = degenerate[k % n];
    out[k] = clamp01(d + factor * (img[k] - d));
  }
  return out;
}

/** PIL's mode-"L" conversion of pixel j (the channel itself when C = 1). */
function gray(img: Float32Array, d: ImageDims, j: number): number {
  const HW = d.H * d.W;
  return d.C === 3 ? 0.299 * img[j] + 0.587 * img[HW + j] + 0.114 * img[2 * HW + j] : img[j];
}

/** PIL `ImageOps.autocontrast`: each channel's min..max stretched to 0..1 (flat channels kept). */
export function autoContrast(img: Float32Array, d: ImageDims): Float32Array {
  const HW = d.H * d.W;
  const out = img.slice();
  for (let c = 0; c < d.C; c++) {
    let lo = 255, hi = 0;
    for (let j = c * HW; j < (c + 1) * HW; j++) {
      const v = level(img[j]);
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    if (hi <= lo) continue;
    const scale = 255 / (hi - lo);
    for (let j = c * HW; j < (c + 1) * HW; j++) {
      out[j] = clamp01((img[j] * 255 - lo) * scale / 255);
    }
  }
  return out;
}

/** PIL `ImageOps.equalize`: per-channel histogram equalisation of the 0–255 levels. */
export function equalize(img: Float32Array, d: ImageDims): Float32Array {
  const HW = d.H * d.W;
  const out = img.slice();
  for (let c = 0; c < d.C; c++) {
    const h = new Array<number>(256).fill(0);
    for (let j = c * HW; j < (c + 1) * HW; j++) h[level(img[j])]++;
    const used = h.filter((n) => n > 0);
    if (used.length <= 1) continue;
    const step = Math.floor((HW - used[used.length - 1]) / 255);
    if (step === 0) continue;
    const lut = new Array<number>(256);
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[i] = Math.min(255, Math.floor(n / step));
      n += h[i];
    }
    for (let j = c * HW; j < (c + 1) * HW; j++) out[j] = lut[level(img[j])] / 255;
  }
  return out;
}

/** PIL `ImageOps.posterize`: keep the top `bits` bits of each 0–255 level. */
export function posterize(img: Float32Array, bits: number): Float32Array {
  if (bits >= 8) return img.slice();
  const mask = ~(2 ** (8 - bits) - 1) & 255;
  return mapValues(img, (v) => (level(v) & mask) / 255);
}

/** PIL `ImageOps.solarize`: levels ≥ `thresh` (0–256) inverted. */
export function solarize(img: Float32Array, thresh: number): Float32Array {
  return mapValues(img, (v) => level(v) >= thresh ? 1 - v : v);
}

/** timm `solarize_add`: levels < `thresh` raised by `add` levels (capped at 255). */
export function solarizeAdd(img: Float32Array, add: number, thresh = 128): Float32Array {
  return mapValues(img, (v) => level(v) < thresh ? Math.min(1, v + add / 255) : v);
}

/** PIL `ImageEnhance.Color`: blend with the grayscale image (a mode-"L" image: whole levels). */
export function color(img: Float32Array, d: ImageDims, factor: number): Float32Array {
  if (d.C !== 3) return img.slice();
  const HW = d.H * d.W;
  const g = new Float32Array(HW);
  for (let j = 0; j < HW; j++) g[j] = level(gray(img, d, j)) / 255;
  return blend(img, g, factor);
}

/** PIL `ImageEnhance.Contrast`: blend with the mean gray level (rounded to 1/255). */
export function contrast(img: Float32Array, d: ImageDims, factor: number): Float32Array {
  const HW = d.H * d.W;
  let sum = 0;
  for (let j = 0; j < HW; j++) sum += gray(img, d, j) * 255;
  const mean = Math.floor(sum / HW + 0.5) / 255;
  return blend(img, mean, factor);
}

/** PIL `ImageEnhance.Brightness`: blend with black. */
export function brightness(img: Float32Array, factor: number): Float32Array {
  return blend(img, 0, factor);
}

/**
 * PIL `ImageEnhance.Sharpness`: blend with `ImageFilter.SMOOTH` (3×3 kernel, 5 in the
 * centre and 1 around, ÷13), whose border pixels are the image's own.
 */
export function sharpness(img: Float32Array, d: ImageDims, factor: number): Float32Array {
  const { C, H, W } = d;
  const smooth = img.slice();
  for (let c = 0; c < C; c++) {
    for (let y = 1; y < H - 1; y++) {
      for (let x = 1; x < W - 1; x++) {
        let s = 4 * img[(c * H + y) * W + x];
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) s += img[(c * H + y + dy) * W + x + dx];
        }
        smooth[(c * H + y) * W + x] = level(s / 13) / 255; // a uint8 image in PIL
      }
    }
  }
  return blend(img, smooth, factor);
}

/** PIL `Image.AFFINE` data `(a, b, c, d, e, f)`: output (x, y) reads input (ax+by+c, dx+ey+f). */
export type AffineMatrix = readonly [number, number, number, number, number, number];

/** PIL's bicubic interpolation step (Geometry.c `BICUBIC`, the a = −1 cubic). */
function cubicPil(v1: number, v2: number, v3: number, v4: number, t: number): number {
  const p2 = -v1 + v3;
  const p3 = 2 * (v1 - v2) + v3 - v4;
  const p4 = -v1 + v2 - v3 + v4;
  return v2 + t * (p2 + t * (p3 + t * p4));
}

/**
 * PIL `img.transform(size, AFFINE, m, BICUBIC, fillcolor=fill)`: output pixel centre
 * (x + ½, y + ½) maps through `m` to the input; a point outside the input gives `fill[c]`,
 * else the 4×4 bicubic of the (edge-clamped) neighbours, clamped to [0, 1].
 */
export function affine(
  img: Float32Array,
  d: ImageDims,
  m: AffineMatrix,
  fill: readonly number[],
): Float32Array {
  const { C, H, W } = d;
  const out = new Float32Array(img.length);
  const HW = H * W;
  const xs = new Int32Array(4), ys = new Int32Array(4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const xin = m[0] * (x + 0.5) + m[1] * (y + 0.5) + m[2];
      const yin = m[3] * (x + 0.5) + m[4] * (y + 0.5) + m[5];
      const o = y * W + x;
      if (!(xin >= 0 && xin < W && yin >= 0 && yin < H)) {
        for (let c = 0; c < C; c++) out[c * HW + o] = fill[c];
        continue;
      }
      // the 4×4 neighbourhood, clamped at the edges (PIL XCLIP/YCLIP)
      const x0 = Math.floor(xin - 0.5), y0 = Math.floor(yin - 0.5);
      const tx = xin - 0.5 - x0, ty = yin - 0.5 - y0;
      for (let k = 0; k < 4; k++) {
        xs[k] = Math.min(Math.max(x0 - 1 + k, 0), W - 1);
        ys[k] = Math.min(Math.max(y0 - 1 + k, 0), H - 1) * W;
      }
      for (let c = 0; c < C; c++) {
        const p = c * HW;
        const r0 = p + ys[0], r1 = p + ys[1], r2 = p + ys[2], r3 = p + ys[3];
        const v0 = cubicPil(img[r0 + xs[0]], img[r0 + xs[1]], img[r0 + xs[2]], img[r0 + xs[3]], tx);
        const v1 = cubicPil(img[r1 + xs[0]], img[r1 + xs[1]], img[r1 + xs[2]], img[r1 + xs[3]], tx);
        const v2 = cubicPil(img[r2 + xs[0]], img[r2 + xs[1]], img[r2 + xs[2]], img[r2 + xs[3]], tx);
        const v3 = cubicPil(img[r3 + xs[0]], img[r3 + xs[1]], img[r3 + xs[2]], img[r3 + xs[3]], tx);
        out[p + o] = clamp01(cubicPil(v0, v1, v2, v3, ty));
      }
    }
  }
  return out;
}

/** PIL `img.rotate(degrees)` about the image centre (counter-clockwise, same size). */
export function rotate(
  img: Float32Array,
  d: ImageDims,
  degrees: number,
  fill: readonly number[],
): Float32Array {
  const a = -((degrees % 360) * Math.PI) / 180;
  const r15 = (v: number) => Math.round(v * 1e15) / 1e15;
  const [m0, m1, m3, m4] = [
    r15(Math.cos(a)),
    r15(Math.sin(a)),
    r15(-Math.sin(a)),
    r15(Math.cos(a)),
  ];
  const [ox, oy] = [d.W / 2, d.H / 2];
  const m2 = m0 * -ox + m1 * -oy + ox;
  const m5 = m3 * -ox + m4 * -oy + oy;
  return affine(img, d, [m0, m1, m2, m3, m4, m5], fill);
}

/** One RandAugment op: its name and what it does at magnitude `mag` (0–10). */
export interface AugmentOp {
  /** timm's name. */
  name: string;
  /** Applies the op at `mag`; `rng` draws the sign of signed ops. */
  apply(
    img: Float32Array,
    d: ImageDims,
    o: { mag: number; rng: Rng; fill: readonly number[] },
  ): Float32Array;
}

/** timm `_randomly_negate`: −v with probability ½. */
function negate(v: number, rng: Rng): number {
  return rng.uniform() > 0.5 ? -v : v;
}

/** timm `_enhance_increasing_level_to_arg`: 1 ± mag/10·0.9, at least 0.1. */
function enhanceFactor(mag: number, rng: Rng): number {
  return Math.max(0.1, 1 + negate((mag / 10) * 0.9, rng));
}

/** timm's `_RAND_INCREASING_TRANSFORMS`, in its order, with its level functions. */
export const INCREASING_OPS: readonly AugmentOp[] = [
  { name: "AutoContrast", apply: (img, d) => autoContrast(img, d) },
  { name: "Equalize", apply: (img, d) => equalize(img, d) },
  { name: "Invert", apply: (img) => mapValues(img, (v) => 1 - v) },
  {
    name: "Rotate",
    apply: (img, d, o) => rotate(img, d, negate((o.mag / 10) * 30, o.rng), o.fill),
  },
  {
    name: "PosterizeIncreasing",
    apply: (img, _d, o) => posterize(img, 4 - Math.trunc((o.mag / 10) * 4)),
  },
  {
    name: "SolarizeIncreasing",
    apply: (img, _d, o) => solarize(img, 256 - Math.trunc((o.mag / 10) * 256)),
  },
  { name: "SolarizeAdd", apply: (img, _d, o) => solarizeAdd(img, Math.trunc((o.mag / 10) * 110)) },
  { name: "ColorIncreasing", apply: (img, d, o) => color(img, d, enhanceFactor(o.mag, o.rng)) },
  {
    name: "ContrastIncreasing",
    apply: (img, d, o) => contrast(img, d, enhanceFactor(o.mag, o.rng)),
  },
  {
    name: "BrightnessIncreasing",
    apply: (img, _d, o) => brightness(img, enhanceFactor(o.mag, o.rng)),
  },
  {
    name: "SharpnessIncreasing",
    apply: (img, d, o) => sharpness(img, d, enhanceFactor(o.mag, o.rng)),
  },
  {
    name: "ShearX",
    apply: (img, d, o) =>
      affine(img, d, [1, negate((o.mag / 10) * 0.3, o.rng), 0, 0, 1, 0], o.fill),
  },
  {
    name: "ShearY",
    apply: (img, d, o) =>
      affine(img, d, [1, 0, 0, negate((o.mag / 10) * 0.3, o.rng), 1, 0], o.fill),
  },
  {
    name: "TranslateXRel",
    apply: (img, d, o) =>
      affine(img, d, [1, 0, negate((o.mag / 10) * 0.45, o.rng) * d.W, 0, 1, 0], o.fill),
  },
  {
    name: "TranslateYRel",
    apply: (img, d, o) =>
      affine(img, d, [1, 0, 0, 0, 1, negate((o.mag / 10) * 0.45, o.rng) * d.H], o.fill),
  },
];

/** What {@link randAugment} did: the ops drawn, whether each applied, and at what magnitude. */
export interface RandAugmentTrace {
  /** The drawn ops' names. */
  ops: string[];
  /** Whether each applied (probability `prob`). */
  applied: boolean[];
  /** Each applied op's magnitude after the noise and clipping (NaN when skipped). */
  magnitudes: number[];
}

/**
 * timm `RandAugment.__call__` on a [0, 1] image, in a new array: `layers` ops drawn
 * uniformly with replacement from {@link INCREASING_OPS}; each applies when a uniform draw is
 * ≤ `prob`, at magnitude `N(m, mstd)` clipped to [0, 10]. `fill` is the per-channel fill of
 * the geometric ops (timm: the dataset mean rounded to 1/255). `trace`, when given, records
 * what happened (for tests).
 */
export function randAugment(
  img: Float32Array, // [C, H, W]
  d: ImageDims,
  o: { spec: RandAugmentSpec; rng: Rng; fill: readonly number[]; trace?: RandAugmentTrace },
): Float32Array /* [C, H, W] */ {
  const { spec, rng, fill, trace } = o;
  if (img.length !== d.C * d.H * d.W || fill.length !== d.C) {
    throw new RangeError(
      `Cannot RandAugment a ${img.length}-value image as C·H·W = ${d.C * d.H * d.W} with ` +
        `${fill.length} fill values: give one fill value per channel`,
    );
  }
  const picks = Array.from(
    { length: spec.layers },
    () => INCREASING_OPS[Math.floor(rng.uniform() * INCREASING_OPS.length)],
  );
  let out = img;
  for (const op of picks) {
    trace?.ops.push(op.name);
    const on = !(spec.prob < 1 && rng.uniform() > spec.prob);
    trace?.applied.push(on);
    if (!on) {
      trace?.magnitudes.push(NaN);
      continue;
    }
    const noisy = spec.magnitudeStd > 0
      ? spec.magnitude + spec.magnitudeStd * rng.normal()
      : spec.magnitude;
    const mag = Math.max(0, Math.min(10, noisy));
    trace?.magnitudes.push(mag);
    out = op.apply(out, d, { mag, rng, fill });
  }
  return out === img ? img.slice() : out;
}
