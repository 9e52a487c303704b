/**
 * Random masking exactly as the reference (MAE) code: per sample
 * `ids_shuffle = argsort(noise)`, `ids_restore = argsort(ids_shuffle)`, keep the
 * first `len_keep = floor(L·(1 − ratio))`; `mask = 1` means removed.
 *
 * Done on the host (the noise is tiny); the results become gather indices.
 *
 * Block-wise masking (BEiT's `MaskingGenerator`, the symmetric student): {@link blockMasking}.
 *
 * @module
 */
import type { Rng } from "../util/rng.ts";

/** Result of {@link randomMasking} for B samples of L patches. */
export interface Masking {
  /** Kept patches per sample. */
  keep: number;
  /** `[B, L]` patch order by ascending noise. */
  idsShuffle: Int32Array;
  /** `[B, L]` position of each patch in `idsShuffle`. */
  idsRestore: Int32Array;
  /** `[B, L]` 1 = removed, 0 = kept (original patch order). */
  mask: Float32Array;
}

/** Number of kept patches: `floor(L·(1 − ratio))`. */
export function keptPatches(L: number, ratio: number): number {
  if (!(ratio >= 0 && ratio < 1)) {
    throw new RangeError(
      `Cannot mask patches as the mask ratio must be in [0, 1): current value is ${ratio}`,
    );
  }
  return Math.floor(L * (1 - ratio));
}

/**
 * Masks B samples of L patches from `noise [B, L]` (uniform [0, 1) draws), removing the
 * share `ratio` of each sample's patches.
 */
export function randomMasking(
  noise: Float32Array,
  { B, L }: { B: number; L: number },
  ratio: number,
): Masking {
  if (noise.length !== B * L) {
    throw new RangeError(`Cannot mask: noise has ${noise.length} values but B·L = ${B * L}`);
  }
  const keep = keptPatches(L, ratio);
  const idsShuffle = new Int32Array(B * L);
  const idsRestore = new Int32Array(B * L);
  const mask = new Float32Array(B * L);
  const order = Array.from({ length: L }, (_, i) => i);
  for (let b = 0; b < B; b++) {
    const n = noise.subarray(b * L, (b + 1) * L);
    order.sort((i, j) => n[i] - n[j] || i - j);
    for (let j = 0; j < L; j++) {
      idsShuffle[b * L + j] = order[j];
      idsRestore[b * L + order[j]] = j;
      mask[b * L + order[j]] = j < keep ? 0 : 1;
    }
  }
  return { keep, idsShuffle, idsRestore, mask };
}

/** Student-encoder gather index `[B·(1+keep)]`: cls (−1), then the kept patches' rows `b·L + l`. */
export function encoderIndex(m: Masking, B: number, L: number): Int32Array {
  const N = 1 + m.keep;
  const idx = new Int32Array(B * N);
  for (let b = 0; b < B; b++) {
    idx[b * N] = -1;
    for (let j = 0; j < m.keep; j++) idx[b * N + 1 + j] = b * L + m.idsShuffle[b * L + j];
  }
  return idx;
}

/**
 * Decoder unshuffle index `[B·(1+L)]` into the decoder-embedded tokens `[B·(1+keep)]`:
 * cls row, then per patch l its kept token (`1 + ids_restore`) or −1 for a mask token.
 */
export function decoderIndex(m: Masking, B: number, L: number): Int32Array {
  const Nk = 1 + m.keep;
  const idx = new Int32Array(B * (1 + L));
  for (let b = 0; b < B; b++) {
    idx[b * (1 + L)] = b * Nk;
    for (let l = 0; l < L; l++) {
      const r = m.idsRestore[b * L + l];
      idx[b * (1 + L) + 1 + l] = r < m.keep ? b * Nk + 1 + r : -1;
    }
  }
  return idx;
}

/** Loss weights `[B·(1+L)]` = `[1, mask]` per sample: cls counts as masked. */
export function lossWeights(m: Masking, B: number, L: number, clsWeight = 1): Float32Array {
  const w = new Float32Array(B * (1 + L));
  for (let b = 0; b < B; b++) {
    w[b * (1 + L)] = clsWeight;
    w.set(m.mask.subarray(b * L, (b + 1) * L), b * (1 + L) + 1);
  }
  return w;
}

/** Patches BEiT masks at 224/16: 78 of the 14 × 14 = 196. */
const BLOCK_MASK_PATCHES = 78;
/** Smallest target area of one block (BEiT `min_num_patches`). */
export const BLOCK_MIN_PATCHES = 16;
/** Aspect-ratio range of a block (BEiT `min_aspect`, `1 / min_aspect`). */
const BLOCK_MIN_ASPECT = 0.3;
/** Tries per block before giving up (BEiT `_mask`). */
const BLOCK_TRIES = 10;

/** Patches masked by {@link blockMasking} on a grid of `L` patches: `round(L·78/196)`. */
export function blockMaskCount(L: number): number {
  if (!Number.isInteger(L) || L < 1) {
    throw new RangeError(`Cannot count masked patches: L must be a positive integer, got ${L}`);
  }
  return Math.round((L * BLOCK_MASK_PATCHES) / 196);
}

/**
 * Block-wise masking, BEiT's `MaskingGenerator` step for step (min block 16 patches,
 * max = `count`, aspect ratio log-uniform in [0.3, 1/0.3], 10 tries per block):
 * repeat { target area `U(16, remaining)`, aspect `exp(U(log 0.3, log 1/0.3))`,
 * `h = round(√(area·aspect))`, `w = round(√(area/aspect))`; if `h < gh` and `w < gw`,
 * a random top-left; accept when it adds `0 < new ≤ remaining` cells } until `count`
 * cells are masked or a block's 10 tries add nothing. Python's `random.uniform(a, b)` is
 * `a + (b − a)·u` and `randint(a, b)` is `a + ⌊u·(b − a + 1)⌋` with `u` from `rng`.
 *
 * Returns `[gh·gw]`, 1 = masked, row-major; at most `count` cells are masked (fewer on
 * grids too small for the blocks, as in BEiT).
 */
export function blockMasking(
  rng: Rng,
  { gh, gw, count }: { gh: number; gw: number; count: number },
): Float32Array {
  for (const [k, v] of [["gh", gh], ["gw", gw]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`Cannot block-mask: ${k} must be a positive integer, got ${v}`);
    }
  }
  if (!Number.isInteger(count) || count < 0 || count > gh * gw) {
    throw new RangeError(
      `Cannot block-mask: count must be an integer in [0, ${gh * gw}], got ${count}`,
    );
  }
  const mask = new Float32Array(gh * gw);
  const logLo = Math.log(BLOCK_MIN_ASPECT);
  const logHi = Math.log(1 / BLOCK_MIN_ASPECT);
  const uniform = (a: number, b: number) => a + (b - a) * rng.uniform();
  const randint = (a: number, b: number) => a + Math.floor(rng.uniform() * (b - a + 1));
  // one block (BEiT `_mask`): the cells it newly masks, 0 when every try failed
  const block = (maxPatches: number): number => {
    let delta = 0;
    for (let attempt = 0; attempt < BLOCK_TRIES; attempt++) {
      const area = uniform(BLOCK_MIN_PATCHES, maxPatches);
      const aspect = Math.exp(uniform(logLo, logHi));
      const h = pyRound(Math.sqrt(area * aspect));
      const w = pyRound(Math.sqrt(area / aspect));
      if (w < gw && h < gh) {
        const top = randint(0, gh - h);
        const left = randint(0, gw - w);
        let masked = 0;
        for (let i = top; i < top + h; i++) {
          for (let j = left; j < left + w; j++) masked += mask[i * gw + j];
        }
        const fresh = h * w - masked;
        if (fresh > 0 && fresh <= maxPatches) {
          for (let i = top; i < top + h; i++) {
            for (let j = left; j < left + w; j++) {
              if (mask[i * gw + j] === 0) {
                mask[i * gw + j] = 1;
                delta++;
              }
            }
          }
        }
        if (delta > 0) break;
      }
    }
    return delta;
  };
  let done = 0;
  while (done < count) {
    const delta = block(count - done); // max_num_patches = count, so the remainder bounds it
    if (delta === 0) break;
    done += delta;
  }
  return mask;
}

/** Python 3's `round()` (half to even) for the non-negative values of block sides. */
function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}
