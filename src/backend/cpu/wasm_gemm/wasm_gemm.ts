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
 * rows of `op(A)` and `C`, a few hundred KiB each so that the copies stay in L2), the
 * module packs and multiplies, and `C` is copied back. The bias/GELU epilogue of a
 * matmul runs inside the module on each block of rows once it is final, while it is in
 * L2 (`sgemmEpilogue`), and a batch of small products (attention) is copied in, multiplied
 * and copied out in one call per block of products (`sgemmBatch`).
 *
 * @module
 */
import { WasmHeap } from "../wasm_heap.ts";
import type { FloatArray, Gemm, GemmArgs, GemmEpilogue } from "../gemm_types.ts";
import { scaleC, validateBatch, validateGemmArgs } from "../gemm_types.ts";
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
    bias: number,
    pre: number,
    gelu: number,
  ): void;
  gemm_batch(
    transA: number,
    transB: number,
    count: number,
    M: number,
    N: number,
    K: number,
    alpha: number,
    a: number,
    lda: number,
    sa: number,
    b: number,
    ldb: number,
    sb: number,
    beta: number,
    c: number,
    ldc: number,
    sc: number,
    bp: number,
  ): void;
}

/** Most floats of `op(B)` per column chunk (8 MiB raw, as much packed). */
const B_CHUNK = 1 << 21;
/**
 * Most floats of `C` per row chunk (256 KiB): the module writes the chunk and the copy
 * back reads it while it is still in L2.
 */
const C_CHUNK = 1 << 16;
/** The module's row blocks (`MC` in gemm.c): row chunks are multiples of it when larger. */
const MODULE_MC = 144;
/**
 * Most floats of `op(A)` per row chunk (256 KiB, in L2 with C's chunk). Either limit
 * gives way to {@link MODULE_MC} rows per chunk: every row chunk streams all of the packed
 * `op(B)` (a long K, a wide N), so a few rows per chunk would reread it too often.
 */
const A_CHUNK = 1 << 16;
/**
 * The row-chunk limits of a transposed `A` (C 4 MiB, A 16 MiB): a row chunk of `op(A)` is
 * then a column block of the stored `[K, M]` array, copied one short row at a time, so a
 * few large chunks beat L2-sized ones (measured on weight gradients, 1.3× at 768×192×1576).
 */
const C_CHUNK_T = 1 << 20;
const A_CHUNK_T = 1 << 22;
/** Most floats of a block of batched products (`a`, `b` and `c` together; 1 MiB). */
const BATCH_CHUNK = 1 << 18;

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
  /** Most floats of `C` per row chunk (default 2¹⁶, 2²⁰ with a transposed `A`). */
  cFloats?: number;
  /** Most floats of `op(A)` per row chunk (default 2¹⁶, 2²² transposed; at least 144 rows). */
  aFloats?: number;
  /** Most floats of `a`, `b` and `c` per block of batched products (default 2¹⁸). */
  batchFloats?: number;
}

/**
 * A new instance of the `variant` build (not cached; null when the engine rejects it).
 * Tests pass small `chunks` to cross the chunk boundaries with small products.
 */
export function createWasmGemm(
  variant: WasmGemmVariant,
  chunks: WasmGemmChunks = {},
): Gemm | null {
  const ex = instantiate(variant);
  return ex && makeGemm(ex, variant, chunks);
}

function makeGemm(ex: Exports, variant: WasmGemmVariant, chunks: WasmGemmChunks): Gemm {
  const { bFloats: bChunk = B_CHUNK, cFloats: cChunk = C_CHUNK } = chunks;
  const aChunk = chunks.aFloats ?? A_CHUNK;
  const batchChunk = chunks.batchFloats ?? BATCH_CHUNK;
  const base = ex.heap_start() >> 2; // floats
  const NR = ex.tile_nr(); // packed B is padded to a multiple of the tile's columns
  const heap = new WasmHeap(ex.memory, base);
  const regions = (...sizes: number[]): number[] => heap.regions(...sizes);

  /**
   * Copies `rows × cols` of `src` (row stride `ld`, from `off`) to `heap.f32[at…]` and
   * returns the row stride there: `cols` (dense, one copy per row) unless `span` and
   * `ld ≤ 2·cols`, when the whole span goes in one copy with stride `ld` (a pool thread's
   * slab of a transposed operand: one memcpy of twice the data beats thousands of short
   * ones; the region at `at` then holds `2·rows·cols` floats).
   */
  const put = (
    src: FloatArray,
    off: number,
    rows: number,
    cols: number,
    ld: number,
    at: number,
    span = false,
  ): number => {
    if (ld === cols || rows <= 1) {
      heap.f32.set(src.subarray(off, off + rows * cols), at);
      return cols;
    }
    if (span && ld <= 2 * cols) {
      heap.f32.set(src.subarray(off, off + (rows - 1) * ld + cols), at);
      return ld;
    }
    for (let r = 0; r < rows; r++) {
      heap.f32.set(src.subarray(off + r * ld, off + r * ld + cols), at + r * cols);
    }
    return cols;
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

  /** Rows per chunk of `op(A)` and `C`: `mMax` at most, a multiple of the module's blocks. */
  const chunkRows = (M: number, mMax: number) => {
    if (M <= mMax) return M;
    const unit = mMax >= MODULE_MC ? MODULE_MC : 4; // 4: the register tile's rows
    return Math.max(unit, Math.floor(mMax / unit) * unit);
  };

  /** `sgemm`, with the epilogue `epi` fused when given (see `GemmEpilogue`). */
  function run(args: GemmArgs, epi?: GemmEpilogue): void {
    validateGemmArgs(args);
    const { transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc } = args;
    if (M === 0 || N === 0) return;
    if ((K === 0 || alpha === 0) && !epi) {
      scaleC(c, M, N, ldc, beta);
      return;
    }
    const { bias, pre, gelu = false } = epi ?? {};
    const keepPre = gelu && pre !== undefined;
    // Column chunks within bChunk (a multiple of NR); row chunks within cChunk of C and
    // aChunk of A.
    const nMax = Math.max(NR, Math.floor(bChunk / Math.max(K, 1) / NR) * NR);
    const nch = Math.min(N, Math.ceil(N / Math.ceil(N / nMax) / NR) * NR);
    const ncp = Math.ceil(nch / NR) * NR;
    const [cLimit, aLimit] = transA
      ? [chunks.cFloats ?? C_CHUNK_T, chunks.aFloats ?? A_CHUNK_T]
      : [cChunk, aChunk];
    // at least one module row block per chunk: each chunk streams all of packed op(B)
    const mMax = Math.max(
      MODULE_MC,
      Math.min(Math.floor(cLimit / nch), Math.floor(aLimit / Math.max(K, 1))),
    );
    const mch = chunkRows(M, mMax);
    const [braw, bp, araw, cb, bb, pb] = regions(
      2 * K * nch,
      K * ncp,
      2 * mch * K,
      mch * nch,
      bias ? nch : 0,
      keepPre ? mch * nch : 0,
    );
    let ldaHeap = 0;
    for (let j0 = 0; j0 < N; j0 += nch) {
      const nc = Math.min(nch, N - j0);
      // op(B)[:, j0:j0+nc]: stored [N, K] rows (transB) or [K, N] columns.
      const ldbHeap = transB
        ? put(b, j0 * ldb, nc, K, ldb, braw, true)
        : put(b, j0, K, nc, ldb, braw, true);
      ex.pack_b(transB ? 1 : 0, K, nc, 4 * braw, ldbHeap, 4 * bp);
      if (bias) heap.f32.set(bias.subarray(j0, j0 + nc), bb);
      for (let i0 = 0; i0 < M; i0 += mch) {
        const mc = Math.min(mch, M - i0);
        // op(A)[i0:i0+mc, :]: stored [K, M] columns (transA) or [M, K] rows; one row chunk
        // stays in place across the column chunks.
        if (j0 === 0 || mch < M) {
          ldaHeap = transA
            ? put(a, i0, K, mc, lda, araw, true)
            : put(a, i0 * lda, mc, K, lda, araw, true);
        }
        if (beta !== 0) put(c, i0 * ldc + j0, mc, nc, ldc, cb);
        ex.gemm(
          transA ? 1 : 0,
          mc,
          nc,
          K,
          alpha,
          4 * araw,
          ldaHeap,
          4 * bp,
          beta,
          4 * cb,
          nc,
          bias ? 4 * bb : 0,
          keepPre ? 4 * pb : 0,
          gelu ? 1 : 0,
        );
        get(c, i0 * ldc + j0, mc, nc, ldc, cb);
        if (keepPre) get(pre!, i0 * ldc + j0, mc, nc, ldc, pb);
      }
    }
  }

  /** `batch` products stored one after another (see `Gemm.sgemmBatch`). */
  function sgemmBatch(args: GemmArgs, batch: number): void {
    validateBatch(args, batch);
    const { transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc } = args;
    if (M === 0 || N === 0 || batch === 0) return;
    const [sa, sb, sc] = [(transA ? K : M) * lda, (transB ? N : K) * ldb, M * ldc];
    const per = Math.max(1, Math.floor(batchChunk / (sa + sb + sc)));
    const [ab, bb, cb, bp] = regions(per * sa, per * sb, per * sc, K * Math.ceil(N / NR) * NR);
    /** Elements `[p0·s, (p0+n)·s)` of `x` (the last product's may end early) into the heap. */
    const putBlock = (x: FloatArray, s: number, p0: number, n: number, at: number) =>
      heap.f32.set(x.subarray(p0 * s, Math.min((p0 + n) * s, x.length)), at);
    for (let p0 = 0; p0 < batch; p0 += per) {
      const n = Math.min(per, batch - p0);
      putBlock(a, sa, p0, n, ab);
      putBlock(b, sb, p0, n, bb);
      if (beta !== 0) putBlock(c, sc, p0, n, cb);
      ex.gemm_batch(
        transA ? 1 : 0,
        transB ? 1 : 0,
        n,
        M,
        N,
        K,
        alpha,
        4 * ab,
        lda,
        sa,
        4 * bb,
        ldb,
        sb,
        beta,
        4 * cb,
        ldc,
        sc,
        4 * bp,
      );
      if (ldc === N) get(c, p0 * sc, 1, n * sc, n * sc, cb);
      else {
        // the heap holds the block with row stride ldc: copy rows back, not the gaps
        for (let r = 0; r < n * M; r++) {
          const o = p0 * sc + r * ldc;
          c.set(heap.f32.subarray(cb + r * ldc, cb + r * ldc + N), o);
        }
      }
    }
  }

  return Object.freeze({
    name: NAMES[variant],
    path: WASM_GEMM_PATHS[variant],
    sgemm: (args: GemmArgs) => run(args),
    sgemmEpilogue: (args: GemmArgs, epi: GemmEpilogue) => {
      run(args, epi);
      return true;
    },
    sgemmBatch,
  });
}
