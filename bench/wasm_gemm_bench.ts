/**
 * `deno bench` of the WebAssembly GEMM's fused and batched calls against what they
 * replace, on the pre-training step's shapes (vit-micro, batch 64: a pool thread's slab of
 * 2080 rows; attention products per head), as ratios within one run:
 * - `sgemmEpilogue` (bias + GELU + pre inside the module) vs `sgemm` then the WebAssembly
 *   kernels' `biasGelu` pass (what a pool thread ran before);
 * - `sgemmBatch` (a block of products copied in and out at once) vs one `sgemm` per product.
 *
 *   deno bench --allow-read bench/wasm_gemm_bench.ts
 *
 * @module
 */
import { wasmGemm } from "../src/backend/cpu/wasm_gemm/wasm_gemm.ts";
import { wasmKernels } from "../src/backend/cpu/simd/simd.ts";
import type { GemmArgs } from "../src/backend/cpu/gemm_types.ts";

const gemm = wasmGemm()!;
const kernels = wasmKernels()!;
const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

/** `x · Wᵀ` operands: x `[M, K]`, W `[N, K]`, C `[M, N]`. */
function linear(M: number, N: number, K: number): GemmArgs & { c: Float32Array } {
  return {
    transA: false,
    transB: true,
    M,
    N,
    K,
    alpha: 1,
    a: random(M * K),
    lda: K,
    b: random(N * K),
    ldb: K,
    beta: 0,
    c: new Float32Array(M * N),
    ldc: N,
  };
}

for (const [M, N, K] of [[2080, 384, 96], [2080, 256, 64], [544, 384, 96]]) {
  const args = linear(M, N, K);
  const bias = random(N);
  const pre = new Float32Array(M * N);
  const group = `matmul +bias +GELU ${M}×${N}×${K}`;
  Deno.bench({ name: "sgemm, then the kernels' biasGelu pass", group, baseline: true }, () => {
    gemm.sgemm(args);
    kernels.biasGelu(args.c, bias, pre, M, N, true);
  });
  Deno.bench({ name: "sgemmEpilogue (fused)", group }, () => {
    gemm.sgemmEpilogue!(args, { bias, pre, gelu: true });
  });
}

// [M, N, K, transA, transB, products]: q·kᵀ, att·v and their gradients, teacher and student
const ATTENTION = [
  [65, 65, 32, false, true, 96],
  [65, 32, 65, false, false, 96],
  [65, 16, 65, true, false, 128],
  [17, 17, 32, false, true, 96],
] as const;
for (const [M, N, K, transA, transB, batch] of ATTENTION) {
  const args: GemmArgs = {
    transA,
    transB,
    M,
    N,
    K,
    alpha: 1,
    a: random(batch * M * K),
    lda: transA ? M : K,
    b: random(batch * K * N),
    ldb: transB ? K : N,
    beta: 0,
    c: new Float32Array(batch * M * N),
    ldc: N,
  };
  const [sa, sb, sc] = [M * K, K * N, M * N];
  const group = `attention ${M}×${N}×${K} ${transA ? "T" : "N"}${transB ? "T" : "N"} ×${batch}`;
  Deno.bench({ name: "one sgemm per product", group, baseline: true }, () => {
    for (let p = 0; p < batch; p++) {
      gemm.sgemm({
        ...args,
        a: args.a.subarray(p * sa, (p + 1) * sa),
        b: args.b.subarray(p * sb, (p + 1) * sb),
        c: args.c.subarray(p * sc, (p + 1) * sc),
      });
    }
  });
  Deno.bench({ name: "sgemmBatch", group }, () => {
    gemm.sgemmBatch!(args, batch);
  });
}
