/**
 * The blocked pure-TypeScript GEMM (f32 and f64 operands): the last resort of
 * `loadGemm` when neither OpenBLAS nor WebAssembly SIMD is available.
 *
 * @module
 */
import {
  type FloatArray,
  type Gemm,
  type GemmArgs,
  scaleC,
  validateGemmArgs,
} from "./gemm_types.ts";

// Block sizes (elements), tuned on a 2-core EPYC for the ViT shapes in
// bench/gemm_table.ts: the packed A block (256 KiB) and the C tile (128 KiB) live in L2.
const MC = 128;
const KC = 256;
const NC = 128;

// Packing scratch. Always f64 so the hot loops see one array type: V8 code
// that has seen both Float32Array and Float64Array runs at half speed.
let scratchA = new Float64Array(0); // [MC, KC]: alpha · op(A) block
let scratchB = new Float64Array(0); // [KC, NC]: op(B) panel
let scratchC = new Float64Array(0); // [MC, NC]: product of one block, added into C

/**
 * `ap[mb, kb] = alpha · op(A)[i0:i0+mb, k0:k0+kb]`, contiguous.
 */
function packA(
  ap: Float64Array,
  a: FloatArray,
  lda: number,
  transA: boolean,
  alpha: number,
  i0: number,
  k0: number,
  mb: number,
  kb: number,
): void {
  if (transA) {
    // A stored [K, M]: walk stored rows (k) so reads stay contiguous.
    for (let k = 0; k < kb; k++) {
      const src = (k0 + k) * lda + i0;
      for (let i = 0; i < mb; i++) ap[i * kb + k] = alpha * a[src + i];
    }
  } else {
    for (let i = 0; i < mb; i++) {
      const src = (i0 + i) * lda + k0;
      const dst = i * kb;
      for (let k = 0; k < kb; k++) ap[dst + k] = alpha * a[src + k];
    }
  }
}

/** `bp[kb, nb] = op(B)[k0:k0+kb, j0:j0+nb]`, contiguous. */
function packB(
  bp: Float64Array,
  b: FloatArray,
  ldb: number,
  transB: boolean,
  k0: number,
  j0: number,
  kb: number,
  nb: number,
): void {
  if (transB) {
    // B stored [N, K]: read stored rows (j) contiguously, scatter into columns.
    for (let j = 0; j < nb; j++) {
      const src = (j0 + j) * ldb + k0;
      for (let k = 0; k < kb; k++) bp[k * nb + j] = b[src + k];
    }
  } else {
    for (let k = 0; k < kb; k++) {
      const src = (k0 + k) * ldb + j0;
      const dst = k * nb;
      for (let j = 0; j < nb; j++) bp[dst + j] = b[src + j];
    }
  }
}

/**
 * `ct[mb, nb] += ap[mb, kb] · bp[kb, nb]`, all contiguous.
 *
 * Two rows of C by four k per pass: each B element loaded feeds two rows and
 * each C element is read and written once per four k. Measured 1.5× over one
 * row × four k and 3× over the plain i-k-j loop; wider tiles spill registers.
 */
function kernel(
  ct: Float64Array,
  ap: Float64Array,
  bp: Float64Array,
  mb: number,
  nb: number,
  kb: number,
): void {
  let i = 0;
  for (; i + 1 < mb; i += 2) {
    const c0 = i * nb;
    const c1 = c0 + nb;
    const p = i * kb;
    const q = p + kb;
    let k = 0;
    for (; k + 3 < kb; k += 4) {
      const a0 = ap[p + k], a1 = ap[p + k + 1], a2 = ap[p + k + 2], a3 = ap[p + k + 3];
      const e0 = ap[q + k], e1 = ap[q + k + 1], e2 = ap[q + k + 2], e3 = ap[q + k + 3];
      const b0 = k * nb, b1 = b0 + nb, b2 = b1 + nb, b3 = b2 + nb;
      for (let j = 0; j < nb; j++) {
        const x0 = bp[b0 + j], x1 = bp[b1 + j], x2 = bp[b2 + j], x3 = bp[b3 + j];
        ct[c0 + j] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3;
        ct[c1 + j] += e0 * x0 + e1 * x1 + e2 * x2 + e3 * x3;
      }
    }
    for (; k < kb; k++) {
      const a0 = ap[p + k], e0 = ap[q + k];
      const b0 = k * nb;
      for (let j = 0; j < nb; j++) {
        const x = bp[b0 + j];
        ct[c0 + j] += a0 * x;
        ct[c1 + j] += e0 * x;
      }
    }
  }
  if (i < mb) {
    // Odd last row: one row × four k.
    const c0 = i * nb;
    const p = i * kb;
    let k = 0;
    for (; k + 3 < kb; k += 4) {
      const a0 = ap[p + k], a1 = ap[p + k + 1], a2 = ap[p + k + 2], a3 = ap[p + k + 3];
      const b0 = k * nb, b1 = b0 + nb, b2 = b1 + nb, b3 = b2 + nb;
      for (let j = 0; j < nb; j++) {
        ct[c0 + j] += a0 * bp[b0 + j] + a1 * bp[b1 + j] + a2 * bp[b2 + j] + a3 * bp[b3 + j];
      }
    }
    for (; k < kb; k++) {
      const a0 = ap[p + k];
      const b0 = k * nb;
      for (let j = 0; j < nb; j++) ct[c0 + j] += a0 * bp[b0 + j];
    }
  }
}

/**
 * Pure-TypeScript GEMM, row-major BLAS semantics, for `Float32Array` or
 * `Float64Array` operands (types may be mixed).
 *
 * `C[M,N] = alpha·op(A)[M,K]·op(B)[K,N] + beta·C`. Blocked for cache: a
 * KC×NC panel of `op(B)` and an MC×KC block of `alpha·op(A)` are packed
 * contiguous in f64, multiplied by an i-k-j kernel contiguous over N into an
 * f64 tile, and the tile is added into C (so f32 C is rounded once per KC).
 *
 * @example
 * ```ts
 * import { gemmTs } from "./gemm_ts.ts";
 * const a = new Float64Array([1, 2, 3, 4]); // [2, 2]
 * const b = new Float64Array([5, 6, 7, 8]); // [2, 2]
 * const c = new Float64Array(4);
 * gemmTs({ transA: false, transB: false, M: 2, N: 2, K: 2, alpha: 1, a, lda: 2, b, ldb: 2, beta: 0, c, ldc: 2 });
 * // c is [19, 22, 43, 50]
 * ```
 */
export function gemmTs(args: GemmArgs): void {
  validateGemmArgs(args);
  const { transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc } = args;
  if (M === 0 || N === 0) return;
  scaleC(c, M, N, ldc, beta);
  if (K === 0 || alpha === 0) return;
  if (scratchA.length === 0) {
    scratchA = new Float64Array(MC * KC);
    scratchB = new Float64Array(KC * NC);
    scratchC = new Float64Array(MC * NC);
  }
  for (let j0 = 0; j0 < N; j0 += NC) {
    const nb = Math.min(NC, N - j0);
    for (let k0 = 0; k0 < K; k0 += KC) {
      const kb = Math.min(KC, K - k0);
      packB(scratchB, b, ldb, transB, k0, j0, kb, nb);
      for (let i0 = 0; i0 < M; i0 += MC) {
        const mb = Math.min(MC, M - i0);
        packA(scratchA, a, lda, transA, alpha, i0, k0, mb, kb);
        scratchC.fill(0, 0, mb * nb);
        kernel(scratchC, scratchA, scratchB, mb, nb, kb);
        for (let i = 0; i < mb; i++) {
          const dst = (i0 + i) * ldc + j0;
          const src = i * nb;
          for (let j = 0; j < nb; j++) c[dst + j] += scratchC[src + j];
        }
      }
    }
  }
}

/** The pure-TypeScript {@link Gemm}. */
export const tsGemm: Gemm = Object.freeze({
  name: "pure-TS GEMM",
  sgemm(args: GemmArgs): void {
    gemmTs(args);
  },
});
