/**
 * The CPU backend's GEMM contract: the row-major GEMM's arguments ({@link GemmArgs}), the
 * fused epilogue, the {@link Gemm} interface every implementation (OpenBLAS, WebAssembly,
 * TypeScript) provides, and the argument checks they share. Plain TypeScript with no
 * runtime dependency, so browser-safe code (`eval/knn_core.ts`) can name these types.
 *
 * Conventions are row-major BLAS: `C[M,N] = alpha·op(A)·op(B) + beta·C`,
 * `lda`/`ldb`/`ldc` are row strides in elements.
 *
 * @module
 */
import type { FloatArray } from "./ref/types.ts";

export type { FloatArray };

/** Arguments of a row-major GEMM: `C[M,N] = alpha·op(A)·op(B) + beta·C`. */
export interface GemmArgs {
  /** `A` is stored `[K, M]` (row stride `lda`) and used transposed; otherwise stored `[M, K]`. */
  transA: boolean;
  /** `B` is stored `[N, K]` (row stride `ldb`) and used transposed; otherwise stored `[K, N]`. */
  transB: boolean;
  /** Rows of `op(A)` and of `C`. */
  M: number;
  /** Columns of `op(B)` and of `C`. */
  N: number;
  /** Inner dimension. */
  K: number;
  /** Scale of the product. */
  alpha: number;
  /** Left operand, element 0 at index 0. */
  a: FloatArray;
  /** Row stride of `a` as stored. */
  lda: number;
  /** Right operand, element 0 at index 0. */
  b: FloatArray;
  /** Row stride of `b` as stored. */
  ldb: number;
  /** Scale of the old `C`; `beta = 0` overwrites `C`, NaN included. */
  beta: number;
  /** Output `[M, N]`, row stride `ldc`. */
  c: FloatArray;
  /** Row stride of `c`. */
  ldc: number;
}

/**
 * The matmul epilogue a GEMM can fuse (see {@link Gemm.sgemmEpilogue}): after the
 * product, `C += bias` per column, then with `gelu`, `pre = C` (when given) and
 * `C = gelu(C)` — what `matmulEpilogue` in `ref/matmul.ts` does as a separate pass.
 */
export interface GemmEpilogue {
  /** `[N]`, added to every row of `C`. */
  bias?: Float32Array;
  /** `[M, N]` with row stride `ldc`: `C` before the GELU (only with `gelu`). */
  pre?: Float32Array;
  /** Apply GELU (exact, erf form) after the bias. */
  gelu?: boolean;
}

/** A single-precision GEMM implementation. */
export interface Gemm {
  /** Human-readable name, e.g. `"OpenBLAS (libopenblas.so.0, 2 threads)"`. */
  readonly name: string;
  /** `C = alpha·op(A)·op(B) + beta·C` on `Float32Array` operands. */
  sgemm(args: GemmArgs): void;
  /**
   * {@link Gemm.sgemm} followed by `epilogue`, fused (the WebAssembly GEMM applies it to
   * each block of rows of C once it is final, while it is in cache, and before copying C
   * out of its memory): true. False when this GEMM does not fuse this product (nothing
   * ran: the caller runs the GEMM and the epilogue); absent where it fuses none.
   */
  sgemmEpilogue?(args: GemmArgs, epilogue: GemmEpilogue): boolean;
  /**
   * `batch` products stored one after another, each `args` shifted by one stored matrix:
   * product `p` reads `a` from `p·rows·lda` (`rows` = K when `transA`, else M), `b` from
   * `p·rows·ldb` (N when `transB`, else K) and writes `c` from `p·M·ldc`. Absent where the
   * GEMM has no batched call (the WebAssembly GEMM copies a block of products in at once).
   */
  sgemmBatch?(args: GemmArgs, batch: number): void;
  /**
   * Where another thread can open the same GEMM (`openThreadGemm` in `gemm.ts`): OpenBLAS's
   * library path, or `"wasm:relaxed"` / `"wasm:simd"`; absent for pure TS.
   */
  readonly path?: string;
  /**
   * Why a faster GEMM is not in use and how to get it (set by `loadGemm` in `gemm.ts` when
   * OpenBLAS did not load), e.g. the apt command and the speed-up it measured.
   */
  readonly note?: string;
  /** The OpenBLAS candidates that failed to load (`"path: error"`), when {@link Gemm.note} is set. */
  readonly tried?: readonly string[];
  /** The library's own thread count (OpenBLAS); absent when it has no threads. */
  readonly threads?: number;
  /** Sets the library's own thread count (OpenBLAS `openblas_set_num_threads`). */
  setThreads?(n: number): void;
  /**
   * `y = aᵀ·x + beta·y` for `a [rows, cols]` (row stride `cols`), `x [rows]`, `y [cols]`
   * (OpenBLAS `sgemv`); absent for pure TS. The CPU backend's bias gradient is `doutᵀ·1`.
   */
  sgemvT?(
    args: {
      rows: number;
      cols: number;
      a: Float32Array;
      x: Float32Array;
      beta: number;
      y: Float32Array;
    },
  ): void;
}

function checkMatrix(
  name: string,
  arr: FloatArray,
  rows: number,
  cols: number,
  ld: number,
  ldName: string,
): void {
  if (!Number.isInteger(ld) || ld < cols) {
    throw new RangeError(
      `Cannot run GEMM as ${ldName} must be an integer >= ${cols} (columns of ${name} as stored): current value is ${ld}`,
    );
  }
  const need = rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
  if (arr.length < need) {
    throw new RangeError(
      `Cannot run GEMM as ${name} is too short for [${rows}, ${cols}] with ${ldName}=${ld}: ` +
        `needs ${need} elements, has ${arr.length}`,
    );
  }
}

/**
 * Checks dimensions, strides and array lengths of a GEMM call.
 * Throws a `RangeError` naming the offending array or dimension.
 */
export function validateGemmArgs(args: GemmArgs): void {
  const { M, N, K } = args;
  for (const [name, v] of [["M", M], ["N", N], ["K", K]] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new RangeError(
        `Cannot run GEMM as ${name} must be a non-negative integer: current value is ${v}`,
      );
    }
  }
  // a is stored [K, M] when transposed, else [M, K]; b is stored [N, K] or [K, N].
  if (args.transA) checkMatrix("a", args.a, K, M, args.lda, "lda");
  else checkMatrix("a", args.a, M, K, args.lda, "lda");
  if (args.transB) checkMatrix("b", args.b, N, K, args.ldb, "ldb");
  else checkMatrix("b", args.b, K, N, args.ldb, "ldb");
  checkMatrix("c", args.c, M, N, args.ldc, "ldc");
}

/**
 * Checks a batch of `batch` products stored one after another (see {@link Gemm.sgemmBatch}):
 * the first as {@link validateGemmArgs} does, and that every array holds the last one.
 */
export function validateBatch(args: GemmArgs, batch: number): void {
  validateGemmArgs(args);
  if (!Number.isInteger(batch) || batch < 0) {
    throw new RangeError(
      `Cannot run a batched GEMM as batch must be a non-negative integer: current value is ${batch}`,
    );
  }
  if (batch < 2) return;
  const { transA, transB, M, N, K, lda, ldb, ldc } = args;
  const parts: [string, FloatArray, number, number, number][] = [
    ["a", args.a, transA ? K : M, transA ? M : K, lda],
    ["b", args.b, transB ? N : K, transB ? K : N, ldb],
    ["c", args.c, M, N, ldc],
  ];
  for (const [name, arr, rows, cols, ld] of parts) {
    const need = rows === 0 || cols === 0 ? 0 : (batch - 1) * rows * ld + (rows - 1) * ld + cols;
    if (arr.length < need) {
      throw new RangeError(
        `Cannot run a batched GEMM as ${name} is too short for ${batch} products of ` +
          `[${rows}, ${cols}] (row stride ${ld}): needs ${need} elements, has ${arr.length}`,
      );
    }
  }
}

/** `C[M,N] = beta·C`, where `beta = 0` writes zeros regardless of the old contents. */
export function scaleC(c: FloatArray, M: number, N: number, ldc: number, beta: number): void {
  if (beta === 1) return;
  for (let i = 0; i < M; i++) {
    const row = i * ldc;
    if (beta === 0) c.fill(0, row, row + N);
    else for (let j = 0; j < N; j++) c[row + j] *= beta;
  }
}
