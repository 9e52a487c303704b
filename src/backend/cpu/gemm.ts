/**
 * General matrix multiply for the CPU backend: a blocked pure-TypeScript
 * GEMM (f32 and f64) and {@link loadGemm}, which picks, best first, OpenBLAS's
 * `cblas_sgemm` when the library can be loaded, the WebAssembly SIMD GEMM shipped
 * in the module (`wasm_gemm/`), and the TypeScript GEMM.
 *
 * Conventions are row-major BLAS: `C[M,N] = alpha·op(A)·op(B) + beta·C`,
 * `lda`/`ldb`/`ldc` are row strides in elements.
 *
 * @module
 */
import type { FloatArray } from "./ref/types.ts";
import { loadOpenBlas, openOpenBlas } from "./openblas.ts";
import { WASM_GEMM_PATHS, wasmGemm, type WasmGemmVariant } from "./wasm_gemm/wasm_gemm.ts";

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
   * out of its memory); absent where the GEMM cannot fuse it.
   */
  sgemmEpilogue?(args: GemmArgs, epilogue: GemmEpilogue): void;
  /**
   * `batch` products stored one after another, each `args` shifted by one stored matrix:
   * product `p` reads `a` from `p·rows·lda` (`rows` = K when `transA`, else M), `b` from
   * `p·rows·ldb` (N when `transB`, else K) and writes `c` from `p·M·ldc`. Absent where the
   * GEMM has no batched call (the WebAssembly GEMM copies a block of products in at once).
   */
  sgemmBatch?(args: GemmArgs, batch: number): void;
  /**
   * Where another thread can open the same GEMM ({@link openThreadGemm}): OpenBLAS's
   * library path, or `"wasm:relaxed"` / `"wasm:simd"`; absent for pure TS.
   */
  readonly path?: string;
  /**
   * Why a faster GEMM is not in use and how to get it (set by {@link loadGemm} when
   * OpenBLAS did not load), e.g. the apt command and the speed-up it measured.
   */
  readonly note?: string;
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
 * import { gemmTs } from "./gemm.ts";
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

/**
 * Matmul speed-up of OpenBLAS over the WebAssembly GEMM, measured by
 * `bench/gemm_table.ts` on the ViT-Tiny/Base shapes: geometric means of 2.4–3.1× over
 * four runs on a 2-thread `CpuBackend` (2-core AMD EPYC, family 25, 2026-12-02; 2.4× on a
 * quiet host, where the WebAssembly GEMM reaches 86–97% of its 128-bit peak; OpenBLAS uses
 * 256-bit FMA where WebAssembly has 128-bit SIMD).
 */
export const OPENBLAS_SPEEDUP_OVER_WASM = 2.5;

/** The one command that installs OpenBLAS where {@link loadGemm} looks for it (Debian/Ubuntu). */
export const OPENBLAS_APT_COMMAND = "apt-get install libopenblas0-pthread";

/** Which GEMM {@link loadGemm} picks. */
export type GemmChoice = "auto" | "openblas" | "wasm" | "ts";

/**
 * Picks a single-precision GEMM.
 *
 * - `"auto"` (default): OpenBLAS when it loads, else the WebAssembly SIMD GEMM (relaxed
 *   SIMD when the engine has it), else the pure-TS GEMM. Without OpenBLAS the result's
 *   `note` says why and what installing it would bring.
 * - `"openblas"`: OpenBLAS or an `Error` saying where it was looked for and how to install it.
 * - `"wasm"`: the WebAssembly SIMD GEMM, or an `Error` when the engine has no WebAssembly SIMD.
 * - `"ts"`: the pure-TS GEMM.
 *
 * Throws when `DBOT_OPENBLAS` names a library that fails to load.
 *
 * @example
 * ```ts
 * import { loadGemm } from "./gemm.ts";
 * const gemm = loadGemm();
 * console.log(gemm.name); // "OpenBLAS (libopenblas.so.0, 2 threads)" or "WebAssembly SIMD GEMM (…)"
 * ```
 */
export function loadGemm(prefer: GemmChoice = "auto"): Gemm {
  if (prefer === "ts") return tsGemm;
  if (prefer === "wasm") {
    const wasm = wasmGemm();
    if (wasm) return wasm;
    throw new Error(
      "Cannot load the WebAssembly GEMM as this engine rejects WebAssembly SIMD modules",
    );
  }
  const failures: string[] = [];
  const blas = loadOpenBlas(failures);
  if (blas) return blas;
  if (prefer === "auto") {
    const noFfi = failures.length > 0 && failures.every((f) => f.includes("no FFI permission"));
    const fix = noFfi
      ? `grant --allow-ffi, and ${OPENBLAS_APT_COMMAND} if it is missing`
      : `OpenBLAS not found: ${OPENBLAS_APT_COMMAND}`;
    const note = `OpenBLAS would make matmul ~${OPENBLAS_SPEEDUP_OVER_WASM}× faster; ${fix}`;
    const wasm = wasmGemm();
    return Object.freeze({ ...(wasm ?? tsGemm), note });
  }
  throw new Error(
    `Cannot load OpenBLAS as the library was not found; tried ${failures.join("; ")}. ` +
      `Install it (${OPENBLAS_APT_COMMAND}) or set DBOT_OPENBLAS to its path.`,
  );
}

/**
 * Opens the GEMM that another thread loaded, from its {@link Gemm.path}: a pool worker
 * runs its share of a split matmul with it (its own WebAssembly instance, or the same
 * OpenBLAS library). Throws when it does not load.
 */
export function openThreadGemm(path: string): Gemm {
  for (const [variant, p] of Object.entries(WASM_GEMM_PATHS)) {
    if (path !== p) continue;
    const gemm = wasmGemm(variant as WasmGemmVariant);
    if (!gemm) throw new Error(`Cannot load the WebAssembly GEMM (${variant}) on this thread`);
    return gemm;
  }
  return openOpenBlas(path);
}
