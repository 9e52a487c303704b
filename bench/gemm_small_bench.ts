/**
 * The native GEMM (`native/dbot_cpu.c`, `CpuKernels.sgemm`) against OpenBLAS, both on one
 * thread, on the products of the reproduction's vit-micro step (28 px, patch 4, batch 256:
 * 12 800 teacher/decoder rows, 3 328 student rows) and of vit-tiny (32 px, batch 64: 4 160
 * rows), with the bias/GELU epilogue where the step has one (OpenBLAS then runs the
 * kernels' separate epilogue pass, as the backend did before). Each row alternates the two
 * GEMMs five times and keeps each one's best, so a busy spell on a shared machine hits both;
 * printed: GFLOP/s of each, the ratio, and whether `smallGemmFits` routes the product to
 * the native GEMM in a `CpuBackend` (the weight gradients, `transA`, stay on OpenBLAS).
 *
 *   deno run --allow-read --allow-env --allow-ffi bench/gemm_small_bench.ts
 *
 * @module
 */
import { loadOpenBlas } from "../src/backend/cpu/openblas.ts";
import { loadNativeKernels } from "../src/backend/cpu/native.ts";
import { smallGemmFits } from "../src/backend/cpu/gemm.ts";
import type { GemmArgs } from "../src/backend/cpu/gemm_types.ts";
import { Rng } from "../src/util/rng.ts";

const blas = loadOpenBlas([]);
const native = loadNativeKernels();
if (!blas || "reason" in native || !native.sgemm) {
  console.error("needs OpenBLAS and the native kernels (deno task build-native)");
  Deno.exit(1);
}
blas.setThreads?.(1);

/** [M, N, K, transA, transB, epilogue] */
type Shape = [number, number, number, boolean, boolean, "" | "bias" | "gelu"];
const SHAPES: Shape[] = [
  [12800, 288, 96, false, true, "bias"], // teacher qkv
  [12800, 384, 96, false, true, "gelu"], // teacher fc1
  [12800, 96, 384, false, true, "bias"], // teacher fc2
  [12800, 96, 96, false, true, "bias"], // teacher proj
  [12800, 256, 64, false, true, "gelu"], // decoder fc1
  [3328, 384, 96, false, true, "gelu"], // student fc1
  [12800, 96, 384, false, false, ""], // teacher-sized fc2 dX
  [3328, 384, 96, false, false, ""], // student fc1 dX
  [12800, 256, 64, false, false, ""], // decoder fc1 dX
  [96, 384, 3328, true, false, ""], // student fc1 dW
  [64, 256, 12800, true, false, ""], // decoder fc1 dW
  [4160, 576, 192, false, true, "bias"], // vit-tiny qkv
  [4160, 768, 192, false, true, "gelu"], // vit-tiny fc1
  [4160, 192, 768, false, true, "bias"], // vit-tiny fc2
  [4160, 192, 768, false, false, ""], // vit-tiny fc1 dX
  [4160, 768, 192, false, false, ""], // vit-tiny fc2 dX
  [192, 576, 4160, true, false, ""], // vit-tiny qkv dW
];

const rand = (n: number, seed: number) => new Rng(seed).uniformArray(n, -1, 1);

console.log(`OpenBLAS: ${blas.name}, 1 thread; native GEMM: ${native.gemmVectorBits}-bit vectors`);
console.log(
  "| M×N×K | op | epilogue | OpenBLAS GFLOP/s | native GFLOP/s | native/OpenBLAS | routed |",
);
console.log("|---|---|---|---:|---:|---:|---|");
for (const [M, N, K, transA, transB, epi] of SHAPES) {
  const a = rand(M * K, 1), b = rand(N * K, 2), bias = rand(N, 3);
  const c = new Float32Array(M * N), pre = new Float32Array(M * N);
  const args: GemmArgs = {
    transA,
    transB,
    M,
    N,
    K,
    alpha: 1,
    a,
    lda: transA ? M : K,
    b,
    ldb: transB ? K : N,
    beta: transA ? 1 : 0,
    c,
    ldc: N,
  };
  const gelu = epi === "gelu";
  const withBias = epi !== "";
  const runBlas = () => {
    blas.sgemm(args);
    if (withBias) native.biasGelu(c, bias, gelu ? pre : undefined, M, N, gelu);
  };
  const runNative = () => native.sgemm!(args, withBias ? { bias, pre, gelu } : {});
  let [tb, tn] = [Infinity, Infinity];
  for (let r = 0; r < 5; r++) {
    let t = performance.now();
    runBlas();
    tb = Math.min(tb, performance.now() - t);
    t = performance.now();
    runNative();
    tn = Math.min(tn, performance.now() - t);
  }
  const gflop = 2 * M * N * K / 1e9;
  console.log(
    `| ${M}×${N}×${K} | ${transA ? "T" : "N"}${transB ? "T" : "N"} | ${epi || "-"} | ${
      (gflop / tb * 1e3).toFixed(1)
    } | ${(gflop / tn * 1e3).toFixed(1)} | ${(tb / tn).toFixed(2)} | ${
      smallGemmFits(args) ? "native" : "OpenBLAS"
    } |`,
  );
}
