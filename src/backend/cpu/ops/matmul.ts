/**
 * `Backend.matmul` on the CPU: batching, bias, GELU epilogue and accumulation around a
 * row-major GEMM (`gemmTs` by default, OpenBLAS's `sgemm` from the backend).
 *
 * @module
 */
import { gemmTs } from "../gemm.ts";
import type { GemmArgs } from "../gemm.ts";
import { checkDims, checkLength } from "./check.ts";
import { geluForward } from "./gelu.ts";
import type { FloatArray } from "./types.ts";
import { simdKernels } from "../simd/simd.ts";

/** Dimensions and flags of {@link matmulForward} (see `MatmulDims` in `backend.ts`). */
export interface MatmulOpDims {
  /** Rows of `op(a)` and of `out`. */
  M: number;
  /** Columns of `op(b)` and of `out`. */
  N: number;
  /** Inner dimension. */
  K: number;
  /** `a` is stored `[K, M]`. Default false. */
  transA?: boolean;
  /** `b` is stored `[N, K]` (a Linear weight). Default false. */
  transB?: boolean;
  /** Contiguously stored products. Default 1. */
  batch?: number;
  /** `out += …` (GEMM `beta = 1`). */
  accumulate?: boolean;
  /** Epilogue `out = gelu(z)`. */
  gelu?: boolean;
}

/**
 * `out[M,N] (=|+=) epilogue(op(a)[M,K]·op(b)[K,N] + bias[N])`, `batch` times; per batch
 * `a`, `b`, `out` (and `pre`) advance by one matrix, `bias` is shared. With `gelu`,
 * `out = gelu(z)` and `pre = z` when given. `accumulate` and `gelu` exclude each other.
 * `epilogue` does the bias and GELU part per product (the backend passes a parallel one).
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
  { out, a, b, bias, pre }: {
    out: FloatArray;
    a: FloatArray;
    b: FloatArray;
    bias?: FloatArray;
    pre?: FloatArray;
  },
  { M, N, K, transA = false, transB = false, batch = 1, accumulate = false, gelu = false }:
    MatmulOpDims,
  gemm: (args: GemmArgs) => void = gemmTs,
  epilogue: MatmulEpilogue = matmulEpilogue,
  split?: SplitMatmul,
): void {
  // out, pre: (batch, M, N); a: (batch, M, K) or (batch, K, M); b: (batch, K, N) or (batch, N, K)
  const op = "matmul";
  checkDims(op, { M, N, K, batch });
  if (accumulate && gelu) {
    throw new TypeError(`Cannot run ${op}: accumulate and gelu cannot be combined`);
  }
  if (pre && !gelu) {
    throw new TypeError(`Cannot run ${op}: pre is only written with gelu`);
  }
  checkLength(op, "out", out, batch * M * N, "batch·M·N = ");
  checkLength(op, "a", a, batch * M * K, "batch·M·K = ");
  checkLength(op, "b", b, batch * K * N, "batch·K·N = ");
  if (bias) checkLength(op, "bias", bias, N, "N = ");
  if (pre) checkLength(op, "pre", pre, batch * M * N, "batch·M·N = ");
  const dims = { M, N, K, transA, transB, batch, accumulate, gelu };
  if (K > 0 && split?.({ out, a, b, bias, pre }, dims)) return;
  const mn = M * N;
  for (let i = 0; i < batch; i++) {
    const c = out.subarray(i * mn, (i + 1) * mn);
    if (K === 0) {
      if (!accumulate) c.fill(0);
    } else gemmProduct(gemm, { out, a, b }, dims, i);
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
  { M, N, K, transA, transB, accumulate }: Required<Omit<MatmulOpDims, "batch" | "gelu">>,
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
  bufs: { out: FloatArray; a: FloatArray; b: FloatArray; bias?: FloatArray; pre?: FloatArray },
  dims: Required<MatmulOpDims>,
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
  const simd = simdKernels();
  if (
    simd && c instanceof Float32Array && (!bias || bias instanceof Float32Array) &&
    (!pre || pre instanceof Float32Array)
  ) {
    simd.biasGelu(c, bias, pre, M, N, gelu);
    return;
  }
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
