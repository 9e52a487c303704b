/**
 * Random masking exactly as the reference (MAE) code: per sample
 * `ids_shuffle = argsort(noise)`, `ids_restore = argsort(ids_shuffle)`, keep the
 * first `len_keep = floor(L·(1 − ratio))`; `mask = 1` means removed.
 *
 * Done on the host (the noise is tiny); the results become gather indices.
 *
 * @module
 */

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
