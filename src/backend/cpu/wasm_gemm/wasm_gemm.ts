/**
 * The CPU backend's WebAssembly SIMD GEMM (`gemm.c`, built by `build.sh` into
 * `gemm_wasm.ts`): packed panels and a 4×8 register-blocked f32 micro-kernel with eight
 * v128 accumulators, in two builds: relaxed SIMD (`f32x4.relaxed_madd`, a fused
 * multiply-add on x64 engines with FMA) and plain SIMD (multiply then add). It ships
 * inside the module, so a machine without OpenBLAS, or a JSR import without
 * `--allow-ffi`, still gets a vectorised GEMM.
 *
 * Each thread (main or pool worker) instantiates its own module with its own memory. A
 * call copies the operands into that memory chunk by chunk (columns of `op(B)`, then
 * rows of `op(A)` and `C`), the module packs and multiplies, and `C` is copied back.
 *
 * @module
 */
import { WasmHeap } from "../wasm_heap.ts";
import type { FloatArray, Gemm, GemmArgs } from "../gemm.ts";
import { scaleC, validateGemmArgs } from "../gemm.ts";
import { GEMM_WASM_RELAXED_BASE64, GEMM_WASM_SIMD_BASE64 } from "./gemm_wasm.ts";

/** Which build: `"relaxed"` (fused multiply-add) or `"simd"` (multiply then add). */
export type WasmGemmVariant = "relaxed" | "simd";

/** The module's exports; pointers are byte offsets into `memory`. */
interface Exports {
  memory: WebAssembly.Memory;
  heap_start(): number;
  tile_nr(): number;
  pack_b(transB: number, K: number, nc: number, b: number, ldb: number, bp: number): void;
  gemm(
    transA: number,
    mc: number,
    nc: number,
    K: number,
    alpha: number,
    a: number,
    lda: number,
    bp: number,
    beta: number,
    c: number,
    ldc: number,
  ): void;
}

/** Most floats of `op(B)` per column chunk (8 MiB raw, as much packed). */
const B_CHUNK = 1 << 21;
/** Most floats of `C` per row chunk (4 MiB; 16 MiB of `op(A)`). */
const C_CHUNK = 1 << 20;

/** `Gemm.path` of each variant: how a pool worker opens the same build (see `../gemm.ts`). */
export const WASM_GEMM_PATHS: Readonly<Record<WasmGemmVariant, string>> = Object.freeze({
  relaxed: "wasm:relaxed",
  simd: "wasm:simd",
});

const NAMES: Record<WasmGemmVariant, string> = {
  relaxed: "WebAssembly SIMD GEMM (relaxed-SIMD FMA)",
  simd: "WebAssembly SIMD GEMM (SIMD mul+add)",
};

const cache = new Map<WasmGemmVariant, Gemm | null>();

function decode(b64: string): Uint8Array {
  return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
}

function instantiate(variant: WasmGemmVariant): Exports | null {
  if (typeof WebAssembly === "undefined") return null;
  try {
    const bytes = decode(variant === "relaxed" ? GEMM_WASM_RELAXED_BASE64 : GEMM_WASM_SIMD_BASE64);
    const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
    return new WebAssembly.Instance(module).exports as unknown as Exports;
  } catch {
    return null; // an engine without (relaxed) SIMD rejects the module
  }
}

/**
 * This thread's WebAssembly GEMM: `variant` when given (null when the engine rejects that
 * build), else the relaxed-SIMD build when the engine takes it, else the plain-SIMD one,
 * else null (no WebAssembly SIMD). Cached per variant.
 *
 * @example
 * ```ts
 * import { wasmGemm } from "./wasm_gemm.ts";
 * const gemm = wasmGemm();
 * console.log(gemm?.name); // "WebAssembly SIMD GEMM (relaxed-SIMD FMA)"
 * ```
 */
export function wasmGemm(variant?: WasmGemmVariant): Gemm | null {
  if (!variant) return wasmGemm("relaxed") ?? wasmGemm("simd");
  if (!cache.has(variant)) cache.set(variant, createWasmGemm(variant));
  return cache.get(variant)!;
}

/** Chunk sizes of a {@link createWasmGemm} instance, in floats. */
export interface WasmGemmChunks {
  /** Most floats of `op(B)` per column chunk (default 2²¹). */
  bFloats?: number;
  /** Most floats of `C` per row chunk (default 2²⁰). */
  cFloats?: number;
}

/**
 * A new instance of the `variant` build (not cached; null when the engine rejects it).
 * Tests pass small `chunks` to cross the chunk boundaries with small products.
 */
export function createWasmGemm(
  variant: WasmGemmVariant,
  { bFloats = B_CHUNK, cFloats = C_CHUNK }: WasmGemmChunks = {},
): Gemm | null {
  const ex = instantiate(variant);
  return ex && makeGemm(ex, variant, bFloats, cFloats);
}

function makeGemm(ex: Exports, variant: WasmGemmVariant, bChunk: number, cChunk: number): Gemm {
  const base = ex.heap_start() >> 2; // floats
  const NR = ex.tile_nr(); // packed B is padded to a multiple of the tile's columns
  const heap = new WasmHeap(ex.memory, base);
  const regions = (...sizes: number[]): number[] => heap.regions(...sizes);

  /**
   * Copies `rows × cols` of `src` (row stride `ld`, from `off`) to `heap.f32[at…]` densely
   * (row stride `cols`).
   */
  const put = (
    src: FloatArray,
    off: number,
    rows: number,
    cols: number,
    ld: number,
    at: number,
  ) => {
    if (ld === cols || rows === 1) {
      heap.f32.set(src.subarray(off, off + rows * cols), at);
      return;
    }
    for (let r = 0; r < rows; r++) {
      heap.f32.set(src.subarray(off + r * ld, off + r * ld + cols), at + r * cols);
    }
  };
  /** The reverse of `put`: dense `heap.f32[at…]` to `rows × cols` of `dst` at `off`, stride `ld`. */
  const get = (
    dst: FloatArray,
    off: number,
    rows: number,
    cols: number,
    ld: number,
    at: number,
  ) => {
    if (ld === cols || rows === 1) {
      dst.set(heap.f32.subarray(at, at + rows * cols), off);
      return;
    }
    for (let r = 0; r < rows; r++) {
      dst.set(heap.f32.subarray(at + r * cols, at + (r + 1) * cols), off + r * ld);
    }
  };

  function sgemm(args: GemmArgs): void {
    validateGemmArgs(args);
    const { transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc } = args;
    if (M === 0 || N === 0) return;
    if (K === 0 || alpha === 0) {
      scaleC(c, M, N, ldc, beta);
      return;
    }
    // Equal chunks: columns within bChunk (a multiple of NR); rows within cChunk of C and
    // 4·cChunk of A (one copy of a transposed A where it fits).
    const nMax = Math.max(NR, Math.floor(bChunk / K / NR) * NR);
    const nch = Math.min(N, Math.ceil(N / Math.ceil(N / nMax) / NR) * NR);
    const ncp = Math.ceil(nch / NR) * NR;
    const mMax = Math.max(1, Math.min(Math.floor(cChunk / nch), Math.floor((4 * cChunk) / K)));
    const mch = Math.ceil(M / Math.ceil(M / mMax));
    const [braw, bp, araw, cb] = regions(K * nch, K * ncp, mch * K, mch * nch);
    for (let j0 = 0; j0 < N; j0 += nch) {
      const nc = Math.min(nch, N - j0);
      // op(B)[:, j0:j0+nc]: stored [N, K] rows (transB) or [K, N] columns.
      if (transB) put(b, j0 * ldb, nc, K, ldb, braw);
      else put(b, j0, K, nc, ldb, braw);
      ex.pack_b(transB ? 1 : 0, K, nc, 4 * braw, transB ? K : nc, 4 * bp);
      for (let i0 = 0; i0 < M; i0 += mch) {
        const mc = Math.min(mch, M - i0);
        // op(A)[i0:i0+mc, :]: stored [K, M] columns (transA) or [M, K] rows; one row chunk
        // stays in place across the column chunks.
        if (j0 === 0 || mch < M) {
          if (transA) put(a, i0, K, mc, lda, araw);
          else put(a, i0 * lda, mc, K, lda, araw);
        }
        if (beta !== 0) put(c, i0 * ldc + j0, mc, nc, ldc, cb);
        ex.gemm(
          transA ? 1 : 0,
          mc,
          nc,
          K,
          alpha,
          4 * araw,
          transA ? mc : K,
          4 * bp,
          beta,
          4 * cb,
          nc,
        );
        get(c, i0 * ldc + j0, mc, nc, ldc, cb);
      }
    }
  }

  return Object.freeze({
    name: NAMES[variant],
    path: WASM_GEMM_PATHS[variant],
    sgemm,
  });
}
