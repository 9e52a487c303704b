/**
 * Times OpenBLAS against the pure-TS GEMM on ViT shapes and prints a
 * markdown table of GFLOP/s (one warm-up call, then the median of at least
 * five runs and 300 ms).
 *
 *   deno run --allow-read --allow-env --allow-ffi bench/gemm_table.ts
 *
 * @module
 */
import { type Gemm, type GemmArgs, tsGemm } from "../src/backend/cpu/gemm.ts";
import { loadOpenBlas } from "../src/backend/cpu/openblas.ts";

/** A GEMM shape; `transB` ones are Linear forwards (`x · Wᵀ`, weight stored `[N, K]`). */
export interface GemmShape {
  M: number;
  N: number;
  K: number;
  transB: boolean;
}

/** ViT GEMM shapes, rows = batch·tokens. */
export const GEMM_SHAPES: readonly GemmShape[] = [
  { M: 64, N: 3072, K: 768, transB: true }, // ViT-B MLP fc1, 64 tokens
  { M: 17, N: 192, K: 576, transB: true }, // ViT-Ti MLP fc2, 16 visible patches + cls
  { M: 197, N: 768, K: 768, transB: true }, // ViT-B attention projection, 1 image
  { M: 3136, N: 192, K: 192, transB: false }, // ViT-Ti, 16 images × 196 patches
];

/** Random f32 operands and a zero C for `shape`, packed (lda = K, ldc = N). */
export function gemmArgsFor({ M, N, K, transB }: GemmShape): GemmArgs {
  const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  return {
    transA: false,
    transB,
    M,
    N,
    K,
    alpha: 1,
    a: random(M * K),
    lda: K,
    b: random(K * N),
    ldb: transB ? K : N,
    beta: 0,
    c: new Float32Array(M * N),
    ldc: N,
  };
}

/** Median GFLOP/s of `gemm` on `args` after one warm-up call. */
function gflops(gemm: Gemm, args: GemmArgs, minRuns = 5, minMs = 300): number {
  gemm.sgemm(args);
  const times: number[] = [];
  const start = performance.now();
  while (times.length < minRuns || performance.now() - start < minMs) {
    const t0 = performance.now();
    gemm.sgemm(args);
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  return (2 * args.M * args.N * args.K) / (times[times.length >> 1] * 1e6);
}

if (import.meta.main) {
  const blas = loadOpenBlas();
  const fmt = (x: number) => (Number.isNaN(x) ? "n/a" : x.toFixed(1));
  console.log(`f32 GEMM: ${blas?.name ?? "OpenBLAS not found"} vs ${tsGemm.name}\n`);
  console.log("| shape M×N×K | transB | OpenBLAS GFLOP/s | pure-TS GFLOP/s | ratio |");
  console.log("|---|---|---:|---:|---:|");
  for (const shape of GEMM_SHAPES) {
    const args = gemmArgsFor(shape);
    const ts = gflops(tsGemm, args);
    const ob = blas ? gflops(blas, args) : NaN;
    const { M, N, K, transB } = shape;
    console.log(`| ${M}×${N}×${K} | ${transB} | ${fmt(ob)} | ${fmt(ts)} | ${fmt(ob / ts)}× |`);
  }
}
