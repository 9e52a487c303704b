/**
 * Mixup and CutMix as timm's `Mixup` in mode "batch" (one λ per batch, each image mixed with
 * the batch reversed, switch probability between the two, label smoothing folded into the
 * soft targets): a data augmentation of fine-tuning ({@link mixBatch}).
 *
 * @module
 */
import type { Rng } from "../util/rng.ts";

/** A Gamma(shape, 1) draw (Marsaglia–Tsang; shape < 1 by the boost u^(1/shape)). */
function gamma(rng: Rng, shape: number): number {
  if (shape < 1) return gamma(rng, shape + 1) * Math.pow(1 - rng.uniform(), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number, v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.uniform();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** A Beta(α, α) draw. */
export function betaSample(rng: Rng, alpha: number): number {
  const a = gamma(rng, alpha);
  const b = gamma(rng, alpha);
  return a / (a + b);
}

/** Options of {@link mixBatch}. */
export interface MixOptions {
  /** Mixup α (0: off). */
  mixup: number;
  /** CutMix α (0: off). */
  cutmix: number;
  /** Probability of CutMix when both are on. */
  switchProb: number;
  /** Label smoothing. */
  smoothing: number;
  /** Classes K. */
  numClasses: number;
}

/**
 * Mixes a batch in place as timm's `Mixup` (mode "batch"): one λ per batch, each image mixed
 * with the batch reversed (`x.flip(0)`); CutMix pastes a box of area ≈ 1−λ and corrects λ to
 * the pasted area. Returns the soft targets `[B, K]`:
 * `λ·smooth(y) + (1−λ)·smooth(y.flip(0))`, `smooth(y) = onehot·(1−s) + s/K`.
 */
export function mixBatch(
  images: Float32Array, // [B, C, H, W], mixed in place
  labels: Int32Array, // [B]
  dims: { B: number; C: number; H: number; W: number },
  opts: MixOptions,
  rng: Rng,
): { targets: Float32Array; lam: number; cutmix: boolean } {
  const { B, C, H, W } = dims;
  const K = opts.numClasses;
  let lam = 1;
  let useCut = false;
  if (opts.mixup > 0 && opts.cutmix > 0) {
    useCut = rng.uniform() < opts.switchProb;
    lam = betaSample(rng, useCut ? opts.cutmix : opts.mixup);
  } else if (opts.mixup > 0) {
    lam = betaSample(rng, opts.mixup);
  } else if (opts.cutmix > 0) {
    useCut = true;
    lam = betaSample(rng, opts.cutmix);
  }
  const img = C * H * W;
  if (lam < 1) {
    const src = images.slice(); // x.flip(0) reads the unmixed batch
    if (useCut) {
      // timm rand_bbox: centre uniform over the image, sides ⌊H·√(1−λ)⌋, clipped
      const cutRat = Math.sqrt(1 - lam);
      const ch = Math.floor(H * cutRat);
      const cw = Math.floor(W * cutRat);
      const cy = Math.floor(rng.uniform() * H);
      const cx = Math.floor(rng.uniform() * W);
      const y0 = clamp(cy - (ch >> 1), 0, H), y1 = clamp(cy + (ch >> 1), 0, H);
      const x0 = clamp(cx - (cw >> 1), 0, W), x1 = clamp(cx + (cw >> 1), 0, W);
      for (let b = 0; b < B; b++) {
        const o = (B - 1 - b) * img;
        for (let c = 0; c < C; c++) {
          for (let y = y0; y < y1; y++) {
            const row = b * img + c * H * W + y * W;
            const srow = o + c * H * W + y * W;
            for (let x = x0; x < x1; x++) images[row + x] = src[srow + x];
          }
        }
      }
      lam = 1 - ((y1 - y0) * (x1 - x0)) / (H * W);
    } else {
      for (let b = 0; b < B; b++) {
        const o = (B - 1 - b) * img;
        for (let i = 0; i < img; i++) {
          images[b * img + i] = lam * src[b * img + i] + (1 - lam) * src[o + i];
        }
      }
    }
  }
  const off = opts.smoothing / K;
  const on = 1 - opts.smoothing + off;
  const targets = new Float32Array(B * K).fill(off);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < K; k++) targets[b * K + k] = off;
    targets[b * K + labels[b]] += lam * (on - off);
    targets[b * K + labels[B - 1 - b]] += (1 - lam) * (on - off);
  }
  return { targets, lam, cutmix: useCut };
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v));
}

// ---- the loop --------------------------------------------------------------------
