/**
 * Image transforms: pure functions on [C, H, W] Float32Arrays (each returns a
 * new array except {@link normalize}); random ones draw from an {@link Rng}
 * argument, so the same seed gives the same crops.
 *
 * Geometry follows torchvision so results line up with the PyTorch recipe:
 * bicubic resampling as `F.interpolate(mode="bicubic", align_corners=False)`
 * (a = −0.75, edge pixels clamped, no antialias, no clamping of the overshoot),
 * `Resize(int)` + `CenterCrop` for evaluation, and `RandomResizedCrop`'s
 * sampling. Python's `round` is round-half-to-even; so is {@link roundHalfEven}.
 *
 * @module
 */
import type { Rng } from "../util/rng.ts";

function checkDims(what: string, img: Float32Array, C: number, H: number, W: number): void {
  if (!(C >= 1 && H >= 1 && W >= 1) || img.length !== C * H * W) {
    throw new RangeError(
      `Cannot ${what} as the image length must be C·H·W ≥ 1: current values are ` +
        `${img.length} and C=${C}, H=${H}, W=${W}`,
    );
  }
}

/** Python's `round()`: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Converts the channel count: 1 → 3 replicates, 3 → 1 takes the plain mean
 * of R, G, B, equal counts copy.
 */
export function toChannels(
  img: Float32Array, // [C, H, W]
  C: number,
  H: number,
  W: number,
  want: number,
): Float32Array /* [want, H, W] */ {
  checkDims("convert channels", img, C, H, W);
  const HW = H * W;
  if (want === C) return img.slice();
  const out = new Float32Array(want * HW);
  if (C === 1) {
    for (let c = 0; c < want; c++) out.set(img, c * HW);
    return out;
  }
  if (want === 1) {
    for (let j = 0; j < HW; j++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += img[c * HW + j];
      out[j] = s / C;
    }
    return out;
  }
  throw new RangeError(
    `Cannot convert an image from ${C} to ${want} channels: only 1 ↔ N is supported`,
  );
}

// Keys's cubic convolution kernel with a = −0.75, as PyTorch's upsample_bicubic2d.
const A = -0.75;
function cubic1(x: number): number { // |x| ≤ 1
  return ((A + 2) * x - (A + 3)) * x * x + 1;
}
function cubic2(x: number): number { // 1 < |x| < 2
  return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

/**
 * For each of `outN` output positions: the 4 clamped source indices and
 * weights along one axis (align_corners=false: src = (dst + ½)·in/out − ½).
 */
export function cubicTaps(inN: number, outN: number): { idx: Int32Array; w: Float64Array } {
  const idx = new Int32Array(4 * outN);
  const w = new Float64Array(4 * outN);
  const scale = inN / outN;
  for (let o = 0; o < outN; o++) {
    const src = (o + 0.5) * scale - 0.5;
    const i0 = Math.floor(src);
    const t = src - i0;
    const ws = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
    for (let k = 0; k < 4; k++) {
      idx[4 * o + k] = Math.min(Math.max(i0 - 1 + k, 0), inN - 1);
      w[4 * o + k] = ws[k];
    }
  }
  return { idx, w };
}

/**
 * Bicubic resize to outH×outW, matching PyTorch's `F.interpolate(…,
 * mode="bicubic", align_corners=False)` without antialias. Separable: rows
 * first into a [C, H, outW] buffer, then columns.
 */
export function resizeBicubic(
  img: Float32Array, // [C, H, W]
  C: number,
  H: number,
  W: number,
  outH: number,
  outW: number,
): Float32Array /* [C, outH, outW] */ {
  checkDims("resize", img, C, H, W);
  if (!(Number.isInteger(outH) && Number.isInteger(outW) && outH >= 1 && outW >= 1)) {
    throw new RangeError(`Cannot resize to ${outH}×${outW}: sizes must be positive integers`);
  }
  if (outH === H && outW === W) return img.slice(); // the taps would be exactly [0, 1, 0, 0]
  const tx = cubicTaps(W, outW), ty = cubicTaps(H, outH);
  const tmp = new Float64Array(C * H * outW); // [C, H, outW]
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < H; y++) {
      const row = (c * H + y) * W;
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let k = 0; k < 4; k++) s += tx.w[4 * x + k] * img[row + tx.idx[4 * x + k]];
        tmp[(c * H + y) * outW + x] = s;
      }
    }
  }
  const out = new Float32Array(C * outH * outW);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let k = 0; k < 4; k++) {
          s += ty.w[4 * y + k] * tmp[(c * H + ty.idx[4 * y + k]) * outW + x];
        }
        out[(c * outH + y) * outW + x] = s;
      }
    }
  }
  return out;
}

/** Copies the window of `outH`×`outW` at (top, left); pixels outside the image are 0. */
export function crop(
  img: Float32Array, // [C, H, W]
  C: number,
  H: number,
  W: number,
  top: number,
  left: number,
  outH: number,
  outW: number,
): Float32Array /* [C, outH, outW] */ {
  checkDims("crop", img, C, H, W);
  const out = new Float32Array(C * outH * outW);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < outH; y++) {
      const sy = top + y;
      if (sy < 0 || sy >= H) continue;
      for (let x = 0; x < outW; x++) {
        const sx = left + x;
        if (sx >= 0 && sx < W) out[(c * outH + y) * outW + x] = img[(c * H + sy) * W + sx];
      }
    }
  }
  return out;
}

/** Centre crop as torchvision's `center_crop`, zero-padding where the crop is larger. */
export function centerCrop(
  img: Float32Array, // [C, H, W]
  C: number,
  H: number,
  W: number,
  outH: number,
  outW: number,
): Float32Array /* [C, outH, outW] */ {
  const offset = (n: number, out: number) =>
    n >= out ? roundHalfEven((n - out) / 2) : -Math.floor((out - n) / 2);
  return crop(img, C, H, W, offset(H, outH), offset(W, outW), outH, outW);
}

/**
 * Evaluation transform: bicubic resize of the shorter side to ⌊size / cropPct⌋
 * (the longer side in proportion, rounded down, as torchvision's `Resize(int)`),
 * then a centre crop to size×size. `cropPct` 1 (default) resizes straight to
 * `size`; the ImageNet recipe uses 0.875 (224 ← 256).
 */
export function evalTransform(
  img: Float32Array, // [C, H, W]
  C: number,
  H: number,
  W: number,
  size: number,
  cropPct = 1,
): Float32Array /* [C, size, size] */ {
  if (!(cropPct > 0 && cropPct <= 1)) {
    throw new RangeError(`Cannot crop a fraction ${cropPct} of the image: give a value in (0, 1]`);
  }
  // timm/MAE: resize the shorter side to ⌊size / crop_pct⌋ (256 for 224 at 0.875)
  const short = Math.floor(size / cropPct);
  const [rh, rw] = H <= W ? [short, Math.floor(short * W / H)] : [Math.floor(short * H / W), short];
  const resized = resizeBicubic(img, C, H, W, rh, rw);
  return centerCrop(resized, C, rh, rw, size, size);
}

/** A crop window: top row, left column, height, width. */
export interface CropBox {
  /** First row of the window. */
  top: number;
  /** First column of the window. */
  left: number;
  /** Rows in the window. */
  height: number;
  /** Columns in the window. */
  width: number;
}

/**
 * torchvision's `RandomResizedCrop.get_params`: up to 10 draws of an area
 * fraction in `scale` and a log-uniform aspect ratio in `ratio`; the first
 * that fits is placed uniformly, else a centre crop clamped to `ratio`.
 */
export function randomResizedCropBox(
  H: number,
  W: number,
  rng: Rng,
  scale: readonly number[] = [0.2, 1],
  ratio: readonly number[] = [3 / 4, 4 / 3],
): CropBox {
  const area = H * W;
  const logR0 = Math.log(ratio[0]), logR1 = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * (scale[0] + (scale[1] - scale[0]) * rng.uniform());
    const aspect = Math.exp(logR0 + (logR1 - logR0) * rng.uniform());
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= W && h > 0 && h <= H) {
      const top = Math.floor(rng.uniform() * (H - h + 1));
      const left = Math.floor(rng.uniform() * (W - w + 1));
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = W / H;
  let w = W, h = H;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  }
  return { top: Math.floor((H - h) / 2), left: Math.floor((W - w) / 2), height: h, width: w };
}

/**
 * `RandomResizedCrop(size, scale, ratio, interpolation=BICUBIC)`: crop the
 * box from {@link randomResizedCropBox}, then bicubic-resize it to size×size.
 */
export function randomResizedCrop(
  img: Float32Array, // [C, H, W]
  C: number,
  H: number,
  W: number,
  size: number,
  rng: Rng,
  scale: readonly number[] = [0.2, 1],
  ratio: readonly number[] = [3 / 4, 4 / 3],
): Float32Array /* [C, size, size] */ {
  checkDims("random-resized-crop", img, C, H, W);
  const b = randomResizedCropBox(H, W, rng, scale, ratio);
  const cropped = crop(img, C, H, W, b.top, b.left, b.height, b.width);
  return resizeBicubic(cropped, C, b.height, b.width, size, size);
}

/** Mirrors left ↔ right. */
export function hflip(
  img: Float32Array, // [C, H, W]
  C: number,
  H: number,
  W: number,
): Float32Array /* [C, H, W] */ {
  checkDims("flip", img, C, H, W);
  const out = new Float32Array(img.length);
  for (let r = 0; r < C * H; r++) {
    for (let x = 0; x < W; x++) out[r * W + x] = img[r * W + W - 1 - x];
  }
  return out;
}

/** In place: `img[c] = (img[c] − mean[c]) / std[c]`; returns `img`. */
export function normalize(
  img: Float32Array, // [C, H, W]
  C: number,
  mean: readonly number[],
  std: readonly number[],
): Float32Array {
  if (mean.length !== C || std.length !== C || img.length % C !== 0) {
    throw new RangeError(
      `Cannot normalize as mean and std need one entry per channel: current values are ` +
        `C=${C}, mean ${mean.length}, std ${std.length}, image length ${img.length}`,
    );
  }
  const HW = img.length / C;
  for (let c = 0; c < C; c++) {
    const m = mean[c], inv = 1 / std[c];
    for (let j = c * HW; j < (c + 1) * HW; j++) img[j] = (img[j] - m) * inv;
  }
  return img;
}

/** ColorJitter strengths (torchvision `ColorJitter(brightness, contrast, saturation)`, no hue). */
export interface JitterStrength {
  /** Brightness factor uniform in [max(0, 1−s), 1+s]; 0: off. */
  brightness: number;
  /** Contrast factor range, likewise. */
  contrast: number;
  /** Saturation factor range, likewise. */
  saturation: number;
}

/** ITU-R 601 luma weights, as torchvision's `rgb_to_grayscale`. */
const LUMA = [0.2989, 0.587, 0.114] as const;

/** Luma of pixel j of an RGB image (the channel itself when C = 1). */
function luma(img: Float32Array, HW: number, C: number, j: number): number {
  return C === 3 ? LUMA[0] * img[j] + LUMA[1] * img[HW + j] + LUMA[2] * img[2 * HW + j] : img[j];
}

/**
 * torchvision's `ColorJitter` on a [0, 1] tensor image, in a new array: draws the order of
 * the four adjustments (`randperm(4)`, hue skipped as it is off), then each enabled factor
 * uniform in [max(0, 1−s), 1+s] (brightness, contrast, saturation), and applies them in that
 * order, each a blend clamped to [0, 1]: brightness with black, contrast with the mean luma
 * of the whole image, saturation with each pixel's luma (a 1-channel image is left as it is).
 */
export function colorJitter(
  img: Float32Array, // [C, H, W], values in [0, 1]
  dims: { C: number; H: number; W: number },
  rng: Rng,
  s: JitterStrength,
): Float32Array /* [C, H, W] */ {
  const { C, H, W } = dims;
  checkDims("color-jitter", img, C, H, W);
  const order = [0, 1, 2, 3];
  for (let i = 3; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const factor = (v: number) =>
    v > 0 ? Math.max(0, 1 - v) + (1 + v - Math.max(0, 1 - v)) * rng.uniform() : null;
  const f = [factor(s.brightness), factor(s.contrast), factor(s.saturation)];
  const out = img.slice();
  const HW = H * W;
  const clamp = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
  for (const op of order) {
    const r = f[op];
    if (op === 3 || r === null) continue;
    if (op === 0) { // brightness: blend with black
      for (let k = 0; k < out.length; k++) out[k] = clamp(r * out[k]);
    } else if (op === 1) { // contrast: blend with the mean luma of the image
      let sum = 0;
      for (let j = 0; j < HW; j++) sum += luma(out, HW, C, j);
      const m = (1 - r) * (sum / HW);
      for (let k = 0; k < out.length; k++) out[k] = clamp(r * out[k] + m);
    } else if (C === 3) { // saturation: blend with each pixel's luma
      const gray = new Float32Array(HW);
      for (let j = 0; j < HW; j++) gray[j] = (1 - r) * luma(out, HW, C, j);
      for (let c = 0; c < C; c++) {
        for (let j = 0; j < HW; j++) out[c * HW + j] = clamp(r * out[c * HW + j] + gray[j]);
      }
    }
  }
  return out;
}

/** timm `RandomErasing` settings (defaults: timm's). */
export interface ErasingOptions {
  /** Probability of erasing an image (fine-tuning recipe 0.25). */
  prob: number;
  /** Erased area range as fractions of the image (timm 0.02–1/3). */
  area?: readonly [number, number];
  /** Aspect ratio range, drawn log-uniform (timm 0.3–1/0.3). */
  aspect?: readonly [number, number];
}

/**
 * timm's `RandomErasing(mode="pixel", max_count=1)` on a normalised image, in place: with
 * probability `prob`, up to 10 tries of a box with area fraction uniform in `area` and a
 * log-uniform aspect ratio; the first box with `h < H` and `w < W` is placed uniformly
 * (ends inclusive, as `random.randint`) and filled with standard normal noise per pixel and
 * channel. Returns the box, or null when nothing was erased.
 */
export function randomErasing(
  img: Float32Array, // [C, H, W], normalised
  dims: { C: number; H: number; W: number },
  rng: Rng,
  o: ErasingOptions,
): CropBox | null {
  const { C, H, W } = dims;
  checkDims("erase", img, C, H, W);
  if (rng.uniform() >= o.prob) return null;
  const [a0, a1] = o.area ?? [0.02, 1 / 3];
  const [r0, r1] = (o.aspect ?? [0.3, 1 / 0.3]).map(Math.log);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = (a0 + (a1 - a0) * rng.uniform()) * H * W;
    const aspect = Math.exp(r0 + (r1 - r0) * rng.uniform());
    const h = roundHalfEven(Math.sqrt(target * aspect));
    const w = roundHalfEven(Math.sqrt(target / aspect));
    if (w < W && h < H) {
      const top = Math.floor(rng.uniform() * (H - h + 1));
      const left = Math.floor(rng.uniform() * (W - w + 1));
      for (let c = 0; c < C; c++) {
        for (let y = top; y < top + h; y++) {
          for (let x = left; x < left + w; x++) img[(c * H + y) * W + x] = rng.normal();
        }
      }
      return { top, left, height: h, width: w };
    }
  }
  return null;
}
