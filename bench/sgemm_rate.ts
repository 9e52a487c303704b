/**
 * The machine's large-SGEMM rate: `C = A·B` on 2048×2048 f32 matrices with OpenBLAS at
 * its default thread count (2 on the 2-core bench machine), best of `--rounds`, one JSON
 * line. `bench/compare_step.sh` prints it next to the step's rate.
 *
 *   deno run --allow-read --allow-env --allow-ffi bench/sgemm_rate.ts [--size 2048 --rounds 5]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadGemm } from "../src/backend/cpu/gemm.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "2048" },
    rounds: { type: "string", default: "5" },
  },
});
const n = Number(values.size);
const gemm = loadGemm("openblas");
const a = new Float32Array(n * n).map((_, i) => (i % 7) / 7 - 0.5);
const b = new Float32Array(n * n).map((_, i) => (i % 5) / 5 - 0.5);
const c = new Float32Array(n * n);
const run = () =>
  gemm.sgemm({
    transA: false,
    transB: false,
    M: n,
    N: n,
    K: n,
    alpha: 1,
    a,
    lda: n,
    b,
    ldb: n,
    beta: 0,
    c,
    ldc: n,
  });
run(); // warm-up
let best = Infinity;
for (let r = 0; r < Number(values.rounds); r++) {
  const t = performance.now();
  run();
  best = Math.min(best, performance.now() - t);
}
console.log(JSON.stringify({
  gemm: gemm.name,
  size: n,
  best_ms: best,
  gflop_per_s: (2 * n ** 3) / (best / 1000) / 1e9,
}));
