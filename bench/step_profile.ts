/**
 * Where the CPU pre-training step's time goes: wraps every backend op with a timer
 * (matmul split by its epilogue and by which model part called it), runs the step
 * benchmark, and prints a table of milliseconds per step by op.
 *
 *   deno run --allow-read --allow-env --allow-ffi bench/step_profile.ts [--model vit-tiny --img-size 32 --patch-size 4 --batch 64]
 *
 * CPU only: the WebGPU backend records work and times nothing on the host. Each op gets
 * its wall time and the process's CPU time over the call (all threads: the pool blocks
 * rather than spins, so this is the work done), which other processes on a shared
 * machine inflate far less than wall time; `--gemm` and `--kernels` force the paths, e.g.
 * `--gemm wasm --kernels wasm` is what a machine with nothing installed runs.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import type { Backend, MatmulDims } from "../src/backend/backend.ts";
import { stepBench } from "../src/train/step_bench.ts";
import { opFlops } from "./step_flops.ts";
import process from "node:process";

/** Process CPU time (user + system, all threads) in ms. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "vit-tiny" },
    "img-size": { type: "string", default: "32" },
    shapes: { type: "boolean", default: false },
    threads: { type: "string", default: String(navigator.hardwareConcurrency ?? 1) },
    "no-split": { type: "boolean", default: false },
    "patch-size": { type: "string", default: "4" },
    batch: { type: "string", default: "64" },
    steps: { type: "string", default: "5" },
    gemm: { type: "string", default: "auto" },
    kernels: { type: "string", default: "auto" },
  },
});

const be = new CpuBackend({
  threads: Number(values.threads),
  splitGemm: !values["no-split"],
  gemm: values.gemm as "auto" | "openblas" | "native" | "wasm" | "ts",
  kernels: values.kernels as "auto" | "native" | "wasm" | "js",
});
const totals = new Map<string, { ms: number; cpu: number; calls: number; flop: number }>();
let active = false;
let depth = 0;
let cpu0 = 0;
let dispatches0 = 0;
const SKIP = new Set(["tensor", "upload", "download", "submit", "sync", "dispose", "description"]);
// Count the warm-up step's submit, then time everything after it.
const WARMUP = 1;
let submits = 0;
const submit = be.submit.bind(be);
be.submit = () => {
  submit();
  if (++submits === WARMUP) {
    active = true;
    cpu0 = cpuMs();
    dispatches0 = be.poolDispatches;
  }
};
const proto = Object.getPrototypeOf(be);
for (const name of Object.getOwnPropertyNames(proto)) {
  const fn = (be as unknown as Record<string, unknown>)[name];
  if (typeof fn !== "function" || name === "constructor" || SKIP.has(name)) continue;
  (be as unknown as Record<string, unknown>)[name] = function (this: unknown, ...args: unknown[]) {
    // nested calls (the composed attention's splitHeads, matmul, ...) count in their caller
    if (!active || depth > 0) return (fn as (...a: unknown[]) => unknown).apply(be, args);
    let key = name;
    const flop = opFlops(name, args);
    if (name === "matmul") {
      const dims = args[1] as MatmulDims;
      key = `matmul${(dims.batch ?? 1) > 1 ? " batched" : ""}${dims.gelu ? " +gelu" : ""}`;
      if (values.shapes) {
        key +=
          ` ${dims.M}x${dims.N}x${dims.K} ${dims.transA ? "T" : "N"}${dims.transB ? "T" : "N"}` +
          `${(dims.batch ?? 1) > 1 ? ` b${dims.batch}` : ""}${dims.accumulate ? " acc" : ""}`;
      }
    }
    const [t, c] = [performance.now(), cpuMs()];
    depth++;
    let r: unknown;
    try {
      r = (fn as (...a: unknown[]) => unknown).apply(be, args);
    } finally {
      depth--;
    }
    const e = totals.get(key) ?? { ms: 0, cpu: 0, calls: 0, flop: 0 };
    e.ms += performance.now() - t;
    e.cpu += cpuMs() - c;
    e.calls++;
    e.flop += flop;
    totals.set(key, e);
    return r;
  };
}

const steps = Number(values.steps);
const bench = stepBench(be as Backend, {
  model: values.model!,
  imgSize: Number(values["img-size"]),
  patchSize: Number(values["patch-size"]),
  batch: Number(values.batch),
  steps,
  warmup: WARMUP,
  dropPath: 0.1,
});
const r = await bench;
const cpuStep = (cpuMs() - cpu0) / steps;
const dispatchesStep = (be.poolDispatches - dispatches0) / steps;
active = false;
const all = [...totals.values()].reduce((s, e) => s + e.ms, 0) / steps;
console.log(
  `step ${r.step_ms.toFixed(1)} ms (${r.images_per_s.toFixed(1)} img/s), cpu ${
    cpuStep.toFixed(1)
  } ms/step, ops ${all.toFixed(1)} ms, other ${(r.step_ms - all).toFixed(1)} ms  [${r.backend}]`,
);
// GFLOP/s over wall time, and over CPU time (all threads): the rate per busy core, which
// other processes on a shared machine depress far less
console.log(
  "op                        ms/step   share  cpu ms/step  calls/step  GFLOP/s  per core",
);
for (const [k, e] of [...totals].sort((a, b) => b[1].ms - a[1].ms)) {
  const g = e.flop ? (e.flop / (e.ms / 1000) / 1e9).toFixed(1) : "";
  const gc = e.flop ? (e.flop / (e.cpu / 1000) / 1e9).toFixed(1) : "";
  console.log(
    `${k.padEnd(24)} ${(e.ms / steps).toFixed(1).padStart(8)} ${
      (100 * e.ms / steps / r.step_ms).toFixed(1).padStart(6)
    }% ${(e.cpu / steps).toFixed(1).padStart(12)} ${(e.calls / steps).toFixed(0).padStart(10)} ${
      g.padStart(8)
    } ${gc.padStart(9)}`,
  );
}
// The products' share, and the step they bound: with every other op free, the step would
// take the products' time alone (compare its GFLOP/s with bench/sgemm_rate.ts in one run).
const products = [...totals].filter(([k]) => k.startsWith("matmul")).map(([, e]) => e);
const prodMs = products.reduce((s, e) => s + e.ms, 0) / steps;
const prodFlop = products.reduce((s, e) => s + e.flop, 0) / steps;
const stepFlop = [...totals.values()].reduce((s, e) => s + e.flop, 0) / steps;
console.log(
  `products: ${prodMs.toFixed(1)} ms/step (${(100 * prodMs / r.step_ms).toFixed(1)}%) at ${
    (prodFlop / prodMs / 1e6).toFixed(1)
  } GFLOP/s; the step's ${(stepFlop / 1e9).toFixed(2)} GFLOP at ${
    (stepFlop / r.step_ms / 1e6).toFixed(1)
  } GFLOP/s; with every other op free: ${(r.images_per_s * r.step_ms / prodMs).toFixed(0)} img/s ` +
    `at ${(stepFlop / prodMs / 1e6).toFixed(1)} GFLOP/s`,
);
const opsStep = [...totals.values()].reduce((s, e) => s + e.calls, 0) / steps;
console.log(
  `pool: ${dispatchesStep.toFixed(0)} dispatches/step for ${opsStep.toFixed(0)} top-level ops ` +
    "(GEMM splits and nested ops count as dispatches; ops under the work threshold run " +
    "inline; the cost of one: bench/pool_sync_bench.ts)",
);
be.dispose();
