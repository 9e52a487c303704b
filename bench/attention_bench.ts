/**
 * Attention forward + backward on the CPU: `Backend.attention` (per (sample, head) GEMMs
 * on q, k, v in place) vs the head-copy composition it replaced (splitHeads, batched
 * matmul, softmax, mergeHeads), on the same backend (`--gemm`, `--kernels`, `--threads`),
 * interleaved rounds; prints the best process CPU ms per forward + backward (the
 * contention-robust figure on a shared machine) and the best wall ms.
 *
 *   deno run --allow-read --allow-env --allow-ffi bench/attention_bench.ts [--B 256 --N 50 --NH 3 --HS 32 --gemm openblas --kernels native --threads 2]
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import type { Backend, Tensor } from "../src/backend/backend.ts";
import { composedAttention, composedAttentionBackward } from "../src/backend/attention.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { Rng } from "../src/util/rng.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    B: { type: "string", default: "256" },
    N: { type: "string", default: "50" },
    NH: { type: "string", default: "3" },
    HS: { type: "string", default: "32" },
    rounds: { type: "string", default: "5" },
    reps: { type: "string", default: "3" },
    gemm: { type: "string", default: "openblas" },
    kernels: { type: "string", default: "auto" },
    threads: { type: "string", default: "2" },
  },
});
const [B, N, NH, HS] = [values.B, values.N, values.NH, values.HS].map(Number);
const D = NH * HS;
const dims = { B, N, NH, HS, scale: 1 / Math.sqrt(HS) };

function setup(be: Backend) {
  const rng = new Rng(1);
  const t = (n: number, lo = -1, hi = 1): Tensor => {
    const x = be.tensor([n]);
    be.upload(x, rng.uniformArray(n, lo, hi));
    return x;
  };
  return {
    qkv: t(3 * B * N * D),
    dout: t(B * N * D),
    out: t(B * N * D),
    att: t(B * NH * N * N),
    dqkv: t(3 * B * N * D),
    dlogits: t(B * NH * N * N),
  };
}

const be = new CpuBackend({
  gemm: values.gemm as "openblas" | "wasm" | "ts",
  kernels: values.kernels as "auto" | "native" | "wasm" | "js",
  threads: Number(values.threads),
});
console.log(be.description);
const cases: [string, CpuBackend, boolean][] = [
  ["in place", be, false],
  ["head copies", be, true],
];
const bufs = cases.map(([, be]) => setup(be));
const work = new Map<string, Tensor>();
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const reps = Number(values.reps);
const results = cases.map(() => [] as [number, number][]);
for (let r = 0; r < Number(values.rounds); r++) {
  cases.forEach(([name, be, compose], i) => {
    const x = bufs[i];
    const w = (n: string, size: number) => {
      const key = `${name}.${n}`;
      if (!work.has(key)) work.set(key, be.tensor([size]));
      return work.get(key)!;
    };
    const [t0, c0] = [performance.now(), cpuMs()];
    for (let k = 0; k < reps; k++) {
      const f = { out: x.out, att: x.att, qkv: x.qkv };
      const g = { dqkv: x.dqkv, dlogits: x.dlogits, dout: x.dout, qkv: x.qkv, att: x.att };
      if (compose) {
        composedAttention(be, f, dims, w);
        composedAttentionBackward(be, g, dims, w);
      } else {
        be.attention(f, dims);
        be.attentionBackward(g, dims);
      }
    }
    results[i].push([(performance.now() - t0) / reps, (cpuMs() - c0) / reps]);
  });
}
const flop = 12 * B * NH * N * N * HS;
console.log(`attention fwd+bwd B=${B} N=${N} NH=${NH} HS=${HS}: ${(flop / 1e9).toFixed(2)} GFLOP`);
cases.forEach(([name], i) => {
  const cpu = Math.min(...results[i].map((x) => x[1]));
  const wall = Math.min(...results[i].map((x) => x[0]));
  console.log(
    `${name.padEnd(13)} best cpu ${cpu.toFixed(1)} ms (${
      (flop / cpu / 1e6).toFixed(1)
    } GFLOP/s), best wall ${wall.toFixed(1)} ms`,
  );
});
be.dispose();
