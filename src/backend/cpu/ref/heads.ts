/**
 * Attention head layout changes: split a fused `qkv` into per-head `q, k, v`, and merge
 * per-head outputs back into tokens; each with its backward (the inverse permutation).
 *
 * @module
 */
import type {
  HeadDims,
  MergeHeadsBackwardBufs,
  OutInpBufs,
  SplitHeadsBackwardBufs,
  SplitHeadsBufs,
} from "../../backend.ts";
import {
  checkMergeHeads,
  checkMergeHeadsBackward,
  checkSplitHeads,
  checkSplitHeadsBackward,
} from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/**
 * Copies between `qkv [B, N, 3·NH·HS]` and `q, k, v [B, NH, N, HS]` in the direction given.
 * One loop for both directions keeps the two index maps identical by construction.
 */
function permuteQkv(
  { q, k, v, qkv }: SplitHeadsBufs<FloatArray>,
  { B, N, NH, HS }: HeadDims,
  toHeads: boolean,
): void {
  const C = NH * HS;
  const parts = [q, k, v];
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < N; n++) {
      const src = (b * N + n) * 3 * C; // qkv[b, n, :]
      for (let p = 0; p < 3; p++) {
        const part = parts[p];
        for (let h = 0; h < NH; h++) {
          const s = src + p * C + h * HS;
          const d = ((b * NH + h) * N + n) * HS; // part[b, h, n, :]
          if (toHeads) { for (let i = 0; i < HS; i++) part[d + i] = qkv[s + i]; }
          else for (let i = 0; i < HS; i++) qkv[s + i] = part[d + i];
        }
      }
    }
  }
}

/**
 * `qkv [B, N, 3·NH·HS]` (order `[q|k|v]`, heads contiguous) → `q, k, v [B, NH, N, HS]`.
 *
 * @example
 * ```ts
 * import { splitHeadsForward } from "./heads.ts";
 * const [q, k, v] = [new Float32Array(2), new Float32Array(2), new Float32Array(2)];
 * const qkv = new Float32Array([1, 2, 3, 4, 5, 6]);
 * splitHeadsForward({ q, k, v, qkv }, { B: 1, N: 1, NH: 2, HS: 1 });
 * ```
 */
export function splitHeadsForward(bufs: SplitHeadsBufs<FloatArray>, dims: HeadDims): void {
  // q, k, v: (B, NH, N, HS); qkv: (B, N, 3·NH·HS)
  checkSplitHeads(bufs, dims);
  permuteQkv(bufs, dims, true);
}

/**
 * Inverse of {@link splitHeadsForward}: `dqkv = join(dq, dk, dv)` (assign).
 *
 * @example
 * ```ts
 * import { splitHeadsBackward } from "./heads.ts";
 * const dqkv = new Float32Array(6);
 * const [dq, dk, dv] = [new Float32Array(2), new Float32Array(2), new Float32Array(2)];
 * splitHeadsBackward({ dqkv, dq, dk, dv }, { B: 1, N: 1, NH: 2, HS: 1 });
 * ```
 */
export function splitHeadsBackward(
  bufs: SplitHeadsBackwardBufs<FloatArray>,
  dims: HeadDims,
): void {
  // dqkv: (B, N, 3·NH·HS); dq, dk, dv: (B, NH, N, HS)
  checkSplitHeadsBackward(bufs, dims);
  const { dqkv, dq, dk, dv } = bufs;
  permuteQkv({ q: dq, k: dk, v: dv, qkv: dqkv }, dims, false);
}

/** Copies between `tok [B, N, NH·HS]` and `heads [B, NH, N, HS]` in the direction given. */
function permuteHeads(
  { tok, heads }: { tok: FloatArray; heads: FloatArray },
  { B, N, NH, HS }: HeadDims,
  toTokens: boolean,
): void {
  const C = NH * HS;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let n = 0; n < N; n++) {
        const s = ((b * NH + h) * N + n) * HS; // heads[b, h, n, :]
        const d = (b * N + n) * C + h * HS; // tok[b, n, h·HS:]
        if (toTokens) { for (let i = 0; i < HS; i++) tok[d + i] = heads[s + i]; }
        else for (let i = 0; i < HS; i++) heads[s + i] = tok[d + i];
      }
    }
  }
}

/**
 * `inp [B, NH, N, HS]` → `out [B, N, NH·HS]`.
 *
 * @example
 * ```ts
 * import { mergeHeadsForward } from "./heads.ts";
 * const out = new Float32Array(4);
 * mergeHeadsForward({ out, inp: new Float32Array([1, 2, 3, 4]) }, { B: 1, N: 2, NH: 2, HS: 1 });
 * ```
 */
export function mergeHeadsForward(bufs: OutInpBufs<FloatArray>, dims: HeadDims): void {
  // out: (B, N, NH·HS); inp: (B, NH, N, HS)
  checkMergeHeads(bufs, dims);
  permuteHeads({ tok: bufs.out, heads: bufs.inp }, dims, true);
}

/**
 * Inverse of {@link mergeHeadsForward}: `dinp [B, NH, N, HS] = split(dout [B, N, NH·HS])`.
 *
 * @example
 * ```ts
 * import { mergeHeadsBackward } from "./heads.ts";
 * const dinp = new Float32Array(4);
 * mergeHeadsBackward({ dinp, dout: new Float32Array([1, 2, 3, 4]) }, { B: 1, N: 2, NH: 2, HS: 1 });
 * ```
 */
export function mergeHeadsBackward(
  bufs: MergeHeadsBackwardBufs<FloatArray>,
  dims: HeadDims,
): void {
  // dinp: (B, NH, N, HS); dout: (B, N, NH·HS)
  checkMergeHeadsBackward(bufs, dims);
  permuteHeads({ tok: bufs.dout, heads: bufs.dinp }, dims, false);
}
