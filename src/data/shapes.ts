/**
 * `shapes`: a procedural, labelled RGB dataset that needs no download.
 *
 * Each 32×32 image holds one bright shape of a class (centre jittered by up
 * to 4 px, random size, rotation within ±0.5 rad, random colour) on a darker
 * cluttered background (two-colour gradient, stripes, distractor strokes and
 * dots, pixel noise). Image `i` of a split is rendered from a
 * seed derived from (split, i) alone, so nothing is stored and any subset is
 * reproducible. Labels cycle `i % 10`, so every prefix is balanced.
 *
 * @module
 */
import { Rng } from "../util/rng.ts";
import type { Dataset, Split } from "./dataset.ts";
import { DataError } from "./error.ts";

/** The ten classes, in label order. */
export const SHAPE_CLASSES: readonly string[] = Object.freeze([
  "circle",
  "square",
  "triangle",
  "plus",
  "ring",
  "bar",
  "star",
  "ellipse",
  "crescent",
  "frame",
]);

const SIZE = 32;
// Difficulty knobs, tuned so raw-pixel k-NN (cosine, k 20, 5000 → 1000) scores
// about 56%: far above chance, far below what shape-aware features reach.
const JITTER = 4; // max centre offset, pixels
const MAX_ROT = 0.5; // max rotation, radians either way
const BG_SAT = 0.5; // max background saturation
const DEFAULT_TRAIN = 5000;
const DEFAULT_TEST = 1000;
const SPLIT_SALT: Record<Split, number> = { train: 0x5eed0001, test: 0x7e570002 };

/** Opens `shapes` (5000 train images) or `shapes:N` (N train images); test has 1000. */
export function openShapes(spec: string, split: Split): Dataset {
  let trainCount = DEFAULT_TRAIN;
  if (spec !== "shapes") {
    const arg = spec.slice("shapes:".length);
    const n = Number(arg);
    if (!/^\d+$/.test(arg) || !Number.isSafeInteger(n) || n < 1) {
      throw new DataError(
        `Cannot open dataset "${spec}": the train count must be a positive integer, got "${arg}"; ` +
          `use "shapes" or e.g. "shapes:5000"`,
      );
    }
    trainCount = n;
  }
  return new ShapesDataset(split, split === "train" ? trainCount : DEFAULT_TEST);
}

/** The procedural dataset; see the module doc. */
export class ShapesDataset implements Dataset {
  readonly name: string = "shapes";
  readonly channels: number = 3;
  readonly height: number = SIZE;
  readonly width: number = SIZE;
  readonly classNames: readonly string[] = SHAPE_CLASSES;
  readonly labels: Int32Array;

  /** A split of `count` images. */
  constructor(readonly split: Split, readonly count: number) {
    this.labels = new Int32Array(count);
    for (let i = 0; i < count; i++) this.labels[i] = i % SHAPE_CLASSES.length;
  }

  /** Renders image `i`: [3, 32, 32] in [0, 1]. */
  image(i: number): Float32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new RangeError(
        `Cannot read shapes image ${i}: the ${this.split} split has ${this.count}`,
      );
    }
    return renderShape(this.labels[i], imageSeed(SPLIT_SALT[this.split], i));
  }

  /** Every image is 32×32. */
  size(_i: number): { height: number; width: number } {
    return { height: SIZE, width: SIZE };
  }
}

/** murmur3's 32-bit finaliser: a bijective mix so nearby indices get unrelated seeds. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function imageSeed(salt: number, i: number): number {
  return fmix32(fmix32(salt) ^ Math.imul(i + 1, 0x9e3779b9));
}

type Rgb = [number, number, number];

function luma(c: Rgb): number {
  return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

/** A random colour from HSV, saturation in [s0, s1), value in [v0, v1). */
function randomColour(rng: Rng, s0 = 0.2, s1 = 1, v0 = 0.15, v1 = 1): Rgb {
  const h = rng.uniform() * 6;
  const s = s0 + (s1 - s0) * rng.uniform();
  const v = v0 + (v1 - v0) * rng.uniform();
  const f = h - Math.floor(h);
  const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (Math.floor(h) % 6) {
    case 0:
      return [v, t, p];
    case 1:
      return [q, v, p];
    case 2:
      return [p, v, t];
    case 3:
      return [p, q, v];
    case 4:
      return [t, p, v];
    default:
      return [v, p, q];
  }
}

// Signed distances in pixels (negative inside) for shapes centred at the
// origin with "radius" r; (x, y) is already rotated into the shape's frame.
function sdBox(x: number, y: number, hx: number, hy: number): number {
  const dx = Math.abs(x) - hx, dy = Math.abs(y) - hy;
  return Math.hypot(Math.max(dx, 0), Math.max(dy, 0)) + Math.min(Math.max(dx, dy), 0);
}

function sdTriangle(x: number, y: number, r: number): number {
  // Equilateral triangle with circumradius r (Inigo Quilez's exact form).
  const k = Math.sqrt(3);
  const a = r * k / 2; // half the side
  x = Math.abs(x) - a;
  y = y + r / 2;
  if (x + k * y > 0) [x, y] = [(x - k * y) / 2, (-k * x - y) / 2];
  x -= Math.min(Math.max(x, -2 * a), 0);
  return -Math.hypot(x, y) * Math.sign(y);
}

function sdStar5(x: number, y: number, r: number, inner: number): number {
  // Distance to a 5-point star: fold into one sector and measure to its edge.
  const an = Math.PI / 5;
  let a = Math.atan2(x, y);
  a = ((a % (2 * an)) + 2 * an) % (2 * an) - an;
  const len = Math.hypot(x, y);
  const px = len * Math.abs(Math.sin(a)), py = len * Math.cos(a);
  // Edge from the tip (0, r) to the inner vertex at angle an, radius inner.
  const ex = inner * Math.sin(an), ey = inner * Math.cos(an);
  const dx = ex, dy = ey - r;
  const t = Math.min(Math.max((px * dx + (py - r) * dy) / (dx * dx + dy * dy), 0), 1);
  const d = Math.hypot(px - t * dx, py - r - t * dy);
  const side = dx * (py - r) - dy * px; // > 0 outside
  return side > 0 ? d : -d;
}

function shapeSdf(label: number, x: number, y: number, r: number, aspect: number): number {
  switch (label) {
    case 0: // circle
      return Math.hypot(x, y) - r;
    case 1: // square
      return sdBox(x, y, 0.8 * r, 0.8 * r);
    case 2: // triangle
      return sdTriangle(x, y, 1.1 * r);
    case 3: // plus
      return Math.min(sdBox(x, y, r, 0.3 * r), sdBox(x, y, 0.3 * r, r));
    case 4: // ring
      return Math.abs(Math.hypot(x, y) - 0.75 * r) - Math.max(0.22 * r, 0.9);
    case 5: // bar
      return sdBox(x, y, 1.1 * r, Math.max(0.22 * r, 1));
    case 6: // star
      return sdStar5(x, y, 1.15 * r, 0.5 * r);
    case 7: { // ellipse: distance approximated by the scaled circle
      const a = r, b = aspect * r;
      return (Math.hypot(x / a, y / b) - 1) * b;
    }
    case 8: // crescent: a disc minus an offset disc
      return Math.max(Math.hypot(x, y) - r, -(Math.hypot(x - 0.5 * r, y) - 0.8 * r));
    default: // frame: a square outline
      return Math.abs(sdBox(x, y, 0.7 * r, 0.7 * r)) - Math.max(0.16 * r, 0.8);
  }
}

/** Renders one [3, 32, 32] image of class `label` from `seed`. */
export function renderShape(label: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const S = SIZE;
  const out = new Float32Array(3 * S * S);

  // Background: a gradient between two colours plus stripes.
  const bg0 = randomColour(rng, 0, BG_SAT, 0.1, 0.55),
    bg1 = randomColour(rng, 0, BG_SAT, 0.1, 0.55);
  const ga = rng.uniform() * 2 * Math.PI;
  const gcos = Math.cos(ga), gsin = Math.sin(ga);
  const sa = rng.uniform() * Math.PI;
  const sfreq = 0.1 + 0.25 * rng.uniform(); // cycles per pixel
  const sphase = rng.uniform() * 2 * Math.PI;
  const samp = 0.12 * rng.uniform();
  const scos = Math.cos(sa), ssin = Math.sin(sa);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const u = (x - S / 2) / S, v = (y - S / 2) / S;
      const t = Math.min(Math.max(0.5 + u * gcos + v * gsin, 0), 1);
      const stripe = samp * Math.sin(2 * Math.PI * sfreq * (x * scos + y * ssin) + sphase);
      for (let c = 0; c < 3; c++) {
        out[c * S * S + y * S + x] = bg0[c] * (1 - t) + bg1[c] * t + stripe;
      }
    }
  }

  // Distractors: a few thin strokes and dots in random colours.
  const strokes = 1 + Math.floor(rng.uniform() * 4);
  for (let k = 0; k < strokes; k++) {
    const col = randomColour(rng);
    const x0 = rng.uniform() * S, y0 = rng.uniform() * S;
    const isDot = rng.uniform() < 0.4;
    const len = isDot ? 0 : 4 + 10 * rng.uniform();
    const ang = rng.uniform() * 2 * Math.PI;
    const x1 = x0 + len * Math.cos(ang), y1 = y0 + len * Math.sin(ang);
    const half = isDot ? 1 + rng.uniform() : 0.5 + 0.3 * rng.uniform();
    const alpha = 0.5 + 0.4 * rng.uniform();
    paint(out, col, alpha, (px, py) => segmentDistance(px, py, x0, y0, x1, y1) - half);
  }

  // The shape, in a colour that stands out from the local background.
  const r = 6 + 5 * rng.uniform();
  const cx = S / 2 + JITTER * (2 * rng.uniform() - 1);
  const cy = S / 2 + JITTER * (2 * rng.uniform() - 1);
  const rot = MAX_ROT * (2 * rng.uniform() - 1);
  const aspect = 0.45 + 0.2 * rng.uniform();
  const bgLuma = (luma(bg0) + luma(bg1)) / 2;
  let fg = randomColour(rng, 0.2, 1, 0.6, 1);
  for (let tries = 0; tries < 20 && Math.abs(luma(fg) - bgLuma) < 0.3; tries++) {
    fg = randomColour(rng, 0.2, 1, 0.6, 1);
  }
  if (Math.abs(luma(fg) - bgLuma) < 0.3) {
    fg = bgLuma > 0.5 ? [0.05, 0.05, 0.05] : [0.95, 0.95, 0.95];
  }
  const cr = Math.cos(rot), sr = Math.sin(rot);
  paint(out, fg, 1, (px, py) => {
    const dx = px - cx, dy = py - cy;
    return shapeSdf(label, cr * dx + sr * dy, -sr * dx + cr * dy, r, aspect);
  });

  // Pixel noise, then clamp to [0, 1].
  const sigma = 0.02 + 0.04 * rng.uniform();
  for (let j = 0; j < out.length; j++) {
    out[j] = Math.min(Math.max(out[j] + sigma * rng.normal(), 0), 1);
  }
  return out;
}

function segmentDistance(
  px: number,
  py: number,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
): number {
  const dx = x1 - x0, dy = y1 - y0;
  const l2 = dx * dx + dy * dy;
  const t = l2 === 0 ? 0 : Math.min(Math.max(((px - x0) * dx + (py - y0) * dy) / l2, 0), 1);
  return Math.hypot(px - x0 - t * dx, py - y0 - t * dy);
}

/** Alpha-blends `col` where `sdf` (at pixel centres) is inside, with one pixel of anti-aliasing. */
function paint(
  out: Float32Array,
  col: Rgb,
  alpha: number,
  sdf: (x: number, y: number) => number,
): void {
  const S = SIZE;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const cov = Math.min(Math.max(0.5 - sdf(x + 0.5, y + 0.5), 0), 1) * alpha;
      if (cov === 0) continue;
      for (let c = 0; c < 3; c++) {
        const j = c * S * S + y * S + x;
        out[j] = out[j] * (1 - cov) + col[c] * cov;
      }
    }
  }
}
