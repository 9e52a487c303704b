/**
 * `deno bench` of f32 GEMM on ViT shapes: the WebAssembly SIMD GEMM and OpenBLAS against
 * the pure-TS GEMM (the baseline). `bench/gemm_table.ts` prints the same comparison as GFLOP/s.
 *
 *   deno bench --allow-read --allow-env --allow-ffi bench/gemm_bench.ts
 *
 * @module
 */
import { tsGemm } from "../src/backend/cpu/gemm_ts.ts";
import { loadOpenBlas } from "../src/backend/cpu/openblas.ts";
import { wasmGemm } from "../src/backend/cpu/wasm_gemm/wasm_gemm.ts";
import { GEMM_SHAPES, gemmArgsFor } from "./gemm_table.ts";

const blas = loadOpenBlas();
const wasm = wasmGemm()!;

for (const shape of GEMM_SHAPES) {
  const args = gemmArgsFor(shape);
  const { M, N, K } = shape;
  const group = `gemm ${M}×${N}×${K}`;
  const gflop = (2 * M * N * K) / 1e9;
  Deno.bench({ name: `${tsGemm.name} (${gflop.toFixed(3)} GFLOP)`, group, baseline: true }, () => {
    tsGemm.sgemm(args);
  });
  Deno.bench({ name: `${wasm.name} (${gflop.toFixed(3)} GFLOP)`, group }, () => {
    wasm.sgemm(args);
  });
  Deno.bench({
    name: `${blas?.name ?? "OpenBLAS (not found)"} (${gflop.toFixed(3)} GFLOP)`,
    group,
    ignore: blas === null,
  }, () => {
    blas!.sgemm(args);
  });
}
