/**
 * `Backend.matmul` on the CPU: batching, bias, GELU epilogue and accumulation around a
 * row-major GEMM. The reference runs {@link gemmRef} (plain loops, f64 sums); the CPU
 * backend passes its own GEMM, epilogue and thread split as {@link MatmulHooks}.
 *
 * @module
 */
import type { GemmArgs } from "../gemm_types.ts";
import type { MatmulBufs, MatmulDims } from "../../backend.ts";
import { checkMatmul } from "../../checks.ts";
import { geluForward } from "./gelu.ts";
import type { FloatArray } from "./types.ts";

/**
 * The reference GEMM, row-major BLAS semantics: `C = alpha·op(A)·op(B) + beta·C`, each
 * element one f64 dot product in `k` order (`beta = 0` overwrites C, NaN included).
 * Arguments are not checked (its caller, {@link matmulForward}, checks the operands).
 *
 * @example
 * ```ts
 * import { gemmRef } from "./matmul.ts";
 * const c = new Float64Array(1);
 * const [a, b] = [new Float64Array([1, 2]), new Float64Array([3, 4])];
 * gemmRef({ transA: false, transB: true, M: 1, N: 1, K: 2, alpha: 1, a, lda: 2, b, ldb: 2, beta: 0, c, ldc: 1 });
 * // c is [11]
 * ```
 */
export function gemmRef(
  { transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc }: GemmArgs,
): void {
  // strides of op(A)[i, k] and op(B)[k, j] in the stored arrays
  const [ai, ak] = transA ? [1, lda] : [lda, 1];
  const [bk, bj] = transB ? [1, ldb] : [ldb, 1];
  // op(B) column j and op(A) row i copied contiguous (f64, exact), so each dot product
  // reads two contiguous rows whatever the transposes
  const bt = new Float64Array(N * K);
  for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) bt[j * K + k] = b[k * bk + j * bj];
  const ar = new Float64Array(K);
  for (let i = 0; i < M; i++) {
    for (let k = 0; k < K; k++) ar[k] = a[i * ai + k * ak];
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0, o = j * K; k < K; k++) s += ar[k] * bt[o + k];
      const o = i * ldc + j;
      c[o] = beta === 0 ? alpha * s : alpha * s + beta * c[o];
    }
  }
}

/** What {@link matmulForward} runs its products and epilogue with (the CPU backend's fast paths). */
export interface MatmulHooks {
  /** The GEMM of each product (default {@link gemmRef}). */
  gemm?: (args: GemmArgs) => void;
  /** The bias/GELU epilogue of each product (default {@link matmulEpilogue}). */
  epilogue?: MatmulEpilogue;
  /** Runs a whole checked matmul some faster way, or returns false (default: none). */
  split?: SplitMatmul;
}

/**
 * `out[M,N] (=|+=) epilogue(op(a)[M,K]·op(b)[K,N] + bias[N])`, `batch` times; per batch
 * `a`, `b`, `out` (and `pre`) advance by one matrix, `bias` is shared. With `gelu`,
 * `out = gelu(z)` and `pre = z` when given. `accumulate` and `gelu` exclude each other.
 *
 * @example
 * ```ts
 * import { matmulForward } from "./matmul.ts";
 * const out = new Float32Array(1);
 * const [a, b] = [new Float32Array([1, 2]), new Float32Array([3, 4])];
 * matmulForward({ out, a, b }, { M: 1, N: 1, K: 2, transB: true }); // out = [11]
 * ```
 */
export function matmulForward(
  bufs: MatmulBufs<FloatArray>,
  dims: MatmulDims,
  hooks: MatmulHooks = {},
): void {
  // out, pre: (batch, M, N); a: (batch, M, K) or (batch, K, M); b: (batch, K, N) or (batch, N, K)
  checkMatmul(bufs, dims);
  const { out, a, b, bias, pre } = bufs;
  const { M, N, K, transA = false, transB = false, batch = 1 } = dims;
  const { accumulate = false, gelu = false } = dims;
  const { gemm = gemmRef, epilogue = matmulEpilogue, split } = hooks;
  const full = { M, N, K, transA, transB, batch, accumulate, gelu };
  if (K > 0 && split?.(bufs, full)) return;
  const mn = M * N;
  for (let i = 0; i < batch; i++) {
    const c = out.subarray(i * mn, (i + 1) * mn);
    if (K === 0) {
      if (!accumulate) c.fill(0);
    } else gemmProduct(gemm, { out, a, b }, full, i);
    if (bias || gelu) {
      epilogue({ c, bias, pre: pre?.subarray(i * mn, (i + 1) * mn) }, { M, N, gelu });
    }
  }
}

/**
 * `out[i] = op(a[i])·op(b[i])` (or `+=` with `accumulate`) for product `i` of a batch:
 * one GEMM call on the contiguous `[batch, …]` operands (the epilogue is not applied).
 */
export function gemmProduct(
  gemm: (args: GemmArgs) => void,
  { out, a, b }: { out: FloatArray; a: FloatArray; b: FloatArray },
  { M, N, K, transA, transB, accumulate }: Required<Omit<MatmulDims, "batch" | "gelu">>,
  i: number,
): void {
  gemm({
    transA,
    transB,
    M,
    N,
    K,
    alpha: 1,
    a: a.subarray(i * M * K, (i + 1) * M * K),
    lda: transA ? M : K,
    b: b.subarray(i * K * N, (i + 1) * K * N),
    ldb: transB ? K : N,
    beta: accumulate ? 1 : 0,
    c: out.subarray(i * M * N, (i + 1) * M * N),
    ldc: N,
  });
}

/**
 * Runs a checked matmul with `K > 0` some faster way — the CPU backend splits it over its
 * threads — or returns false (having run nothing) so that {@link matmulForward} runs it.
 */
export type SplitMatmul = (
  bufs: MatmulBufs<FloatArray>,
  dims: Required<MatmulDims>,
) => boolean;

/** The bias/GELU epilogue of {@link matmulForward} (see {@link matmulEpilogue}). */
export type MatmulEpilogue = (
  bufs: { c: FloatArray; bias?: FloatArray; pre?: FloatArray },
  dims: { M: number; N: number; gelu: boolean },
) => void;

/**
 * The epilogue of one product `c [M, N]`: `c += bias` (per row), then with `gelu`
 * `pre = c` (when given) and `c = gelu(c)`. Rows are independent, so any row range
 * of `c` and `pre` can be done separately (the CPU pool splits it by rows).
 *
 * @example
 * ```ts
 * import { matmulEpilogue } from "./matmul.ts";
 * const c = new Float32Array([1, -1]);
 * matmulEpilogue({ c, bias: new Float32Array([0.5, 0.5]) }, { M: 1, N: 2, gelu: true });
 * ```
 */
export function matmulEpilogue(
  { c, bias, pre }: { c: FloatArray; bias?: FloatArray; pre?: FloatArray },
  { M, N, gelu }: { M: number; N: number; gelu: boolean },
): void {
  // c, pre: (M, N); bias: (N)
  if (bias) {
    for (let r = 0; r < M; r++) {
      for (let j = 0; j < N; j++) c[r * N + j] += bias[j];
    }
  }
  if (gelu) {
    if (pre) pre.set(c);
    geluForward({ out: c, inp: c });
  }
}
