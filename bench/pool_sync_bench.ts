/**
 * The CPU pool's per-op synchronisation: one `add` of `--n` elements run through the pool
 * (2 threads, every op dispatched) vs inline (1 thread), best of `--rounds` interleaved
 * rounds of `--ops` ops; prints microseconds per op of each and their difference, the cost
 * of one command's post, wake-up and join. `DEFAULT_MIN_PARALLEL_WORK` in `cpu/backend.ts`
 * keeps ops below it inline.
 *
 *   deno run --allow-read --allow-env bench/pool_sync_bench.ts [--n 64 --ops 2000 --rounds 5]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CpuBackend } from "../src/backend/cpu/backend.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    n: { type: "string", default: "64" },
    ops: { type: "string", default: "2000" },
    rounds: { type: "string", default: "5" },
  },
});
const [n, ops] = [Number(values.n), Number(values.ops)];
const pooled = new CpuBackend({ gemm: "ts", kernels: "wasm", threads: 2, minParallelWork: 1 });
const inline = new CpuBackend({ gemm: "ts", kernels: "wasm", threads: 1 });
const best = new Map<string, number>();
for (let r = 0; r < Number(values.rounds); r++) {
  for (const [name, be] of [["pooled", pooled], ["inline", inline]] as const) {
    const [a, b] = [be.tensor([n]), be.tensor([n])];
    const t = performance.now();
    for (let i = 0; i < ops; i++) be.add({ out: a, a, b });
    const us = ((performance.now() - t) * 1000) / ops;
    best.set(name, Math.min(best.get(name) ?? Infinity, us));
  }
}
const [p, i] = [best.get("pooled")!, best.get("inline")!];
console.log(
  `add of ${n} elements: pooled ${p.toFixed(1)} µs/op, inline ${i.toFixed(1)} µs/op: ` +
    `${(p - i).toFixed(1)} µs of synchronisation per pooled op (best of ${values.rounds} rounds)`,
);
pooled.dispose();
inline.dispose();
