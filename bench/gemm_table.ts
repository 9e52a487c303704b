/**
 * The CPU GEMMs on ViT-Tiny and ViT-Base shapes (224 px, patch 16: 197 tokens, 8 images):
 * pure TS, the WebAssembly SIMD GEMM (plain and relaxed-SIMD builds) and OpenBLAS, on one
 * thread and on a 2-thread `CpuBackend` (row/column slabs on the pool), as a markdown
 * table of GFLOP/s (one warm-up call, then the best of at least three runs and 300 ms;
 * single-thread columns per second of process CPU time, 2-thread columns per second of
 * wall clock),
 * with the WebAssembly GEMM's fraction of the 128-bit SIMD peak (4 lanes × 2 FMA pipes ×
 * 2 flops per cycle and core, at the clock /proc/cpuinfo reports).
 *
 *   deno run --allow-all bench/gemm_table.ts [--quick] [--ghz 2.445]
 *
 * (`--allow-read --allow-env --allow-ffi` suffice with `--ghz`: reading /proc needs all.)
 * `--quick` drops the pure-TS column's slow ViT-Base rows. Run it on a quiet machine; on
 * a shared one compare ratios within one run.
 *
 * @module
 */
import type { Gemm, GemmArgs } from "../src/backend/cpu/gemm_types.ts";
import { tsGemm } from "../src/backend/cpu/gemm_ts.ts";
import { loadOpenBlas } from "../src/backend/cpu/openblas.ts";
import { wasmGemm } from "../src/backend/cpu/wasm_gemm/wasm_gemm.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import process from "node:process";

/** A GEMM shape; `transB` ones are Linear forwards (`x · Wᵀ`, weight stored `[N, K]`). */
export interface GemmShape {
  /** What it is, e.g. `"ViT-B MLP fc1"`. */
  what?: string;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB: boolean;
}

const T = 8 * 197; // rows: 8 images × 197 tokens

/** ViT GEMM shapes, rows = batch·tokens. */
export const GEMM_SHAPES: readonly GemmShape[] = [
  { what: "ViT-Ti qkv", M: T, N: 576, K: 192, transB: true },
  { what: "ViT-Ti MLP fc1", M: T, N: 768, K: 192, transB: true },
  { what: "ViT-Ti MLP fc2", M: T, N: 192, K: 768, transB: true },
  { what: "ViT-Ti fc1 dW", M: 768, N: 192, K: T, transA: true, transB: false },
  { what: "attention q·kᵀ, 1 head", M: 197, N: 197, K: 64, transB: true },
  { what: "ViT-B qkv", M: T, N: 2304, K: 768, transB: true },
  { what: "ViT-B MLP fc1", M: T, N: 3072, K: 768, transB: true },
  { what: "ViT-B MLP fc2", M: T, N: 768, K: 3072, transB: true },
  { what: "ViT-B fc2 dX", M: T, N: 3072, K: 768, transB: false },
  { what: "ViT-B fc1 dW", M: 3072, N: 768, K: T, transA: true, transB: false },
];

/** Random f32 operands and a zero C for `shape`, packed (lda, ldb, ldc minimal). */
export function gemmArgsFor({ M, N, K, transA = false, transB }: GemmShape): GemmArgs {
  const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  return {
    transA,
    transB,
    M,
    N,
    K,
    alpha: 1,
    a: random(M * K),
    lda: transA ? M : K,
    b: random(K * N),
    ldb: transB ? K : N,
    beta: 0,
    c: new Float32Array(M * N),
    ldc: N,
  };
}

/** Milliseconds now: process CPU time (user + system, all threads) or wall clock. */
function now(clock: "cpu" | "wall"): number {
  if (clock === "wall") return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * GFLOP/s of `run`'s fastest call after one warm-up call (the best of at least `minRuns`
 * calls and `minMs`). `clock` "cpu" counts the process's CPU time, which time slices
 * lost to other processes on a shared machine do not inflate (single-threaded runs only).
 */
function gflops(
  flop: number,
  run: () => void,
  clock: "cpu" | "wall",
  minRuns = 3,
  minMs = 300,
): number {
  run();
  let best = Infinity;
  const start = performance.now();
  for (let n = 0; n < minRuns || performance.now() - start < minMs; n++) {
    const t0 = now(clock);
    run();
    best = Math.min(best, now(clock) - t0);
  }
  return flop / (best * 1e6);
}

/** A product on `be`'s matmul (split over its pool when it has one). */
function backendRun(be: CpuBackend, args: GemmArgs): () => void {
  const { M, N, K, transA, transB } = args;
  const up = (data: Float32Array) => {
    const t = be.tensor([data.length]);
    be.upload(t, data);
    return t;
  };
  const [a, b, out] = [up(args.a as Float32Array), up(args.b as Float32Array), be.tensor([M * N])];
  return () => be.matmul({ out, a, b }, { M, N, K, transA, transB });
}

/**
 * The CPU's model and clock in GHz as /proc/cpuinfo reports them (first core; Deno needs
 * `--allow-all` to read /proc), else `--ghz X` from the command line, else NaN.
 */
function cpuInfo(): { model: string; ghz: number } {
  const flag = Deno.args.indexOf("--ghz");
  const given = flag >= 0 ? Number(Deno.args[flag + 1]) : NaN;
  try {
    const text = Deno.readTextFileSync("/proc/cpuinfo");
    const mhz = text.match(/cpu MHz\s*:\s*([\d.]+)/);
    const model = text.match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
    return { model, ghz: mhz ? Number(mhz[1]) / 1000 : given };
  } catch {
    return { model: "?", ghz: given };
  }
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const blas = loadOpenBlas();
  const relaxed = wasmGemm("relaxed");
  const simd = wasmGemm("simd")!;
  const wasm = relaxed ?? simd;
  const { model, ghz } = cpuInfo();
  const peak1 = 4 * 2 * 2 * ghz; // GFLOP/s of one core, 128-bit FMA
  const wasm2 = new CpuBackend({ gemm: "wasm", threads: 2 });
  const blas2 = blas ? new CpuBackend({ gemm: "openblas", threads: 2 }) : null;
  const fmt = (x: number) => (Number.isNaN(x) ? "n/a" : x.toFixed(1));
  const pct = (x: number) => (Number.isNaN(x) ? "n/a" : `${Math.round(100 * x)}%`);
  console.log(
    `f32 GEMM, ${model} at ${ghz.toFixed(3)} GHz, ` +
      `${navigator.hardwareConcurrency} cores; 128-bit peak ${fmt(peak1)} GFLOP/s per core`,
  );
  console.log(`WebAssembly: ${wasm.name}; OpenBLAS: ${blas?.name ?? "not found"}`);
  console.log(`2 threads: ${wasm2.description}`);
  console.log("1-thread columns: GFLOP per CPU second; 2T columns: per wall-clock second\n");
  console.log(
    "| shape | M×N×K | pure TS | wasm SIMD | wasm relaxed | OpenBLAS | wasm 2T | OpenBLAS 2T " +
      "| wasm / TS | OpenBLAS / wasm 2T | wasm peak 1T | wasm peak 2T |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  const ratios: number[] = [];
  const speedups: number[] = [];
  for (const shape of GEMM_SHAPES) {
    const args = gemmArgsFor(shape);
    const { M, N, K } = shape;
    const flop = 2 * M * N * K;
    const one = (g: Gemm) => () => g.sgemm(args);
    const slowTs = quick && flop > 2e9;
    const ts = slowTs ? NaN : gflops(flop, one(tsGemm), "cpu", 2, 0);
    const ws = gflops(flop, one(simd), "cpu");
    const wr = relaxed ? gflops(flop, one(relaxed), "cpu") : NaN;
    let ob = NaN;
    if (blas) {
      blas.setThreads?.(1);
      ob = gflops(flop, one(blas), "cpu");
      blas.setThreads?.(blas.threads ?? 1);
    }
    const w2 = gflops(flop, backendRun(wasm2, args), "wall");
    const o2 = blas2 ? gflops(flop, backendRun(blas2, args), "wall") : NaN;
    const w1 = Math.max(ws, Number.isNaN(wr) ? 0 : wr);
    if (!Number.isNaN(ts)) ratios.push(w1 / ts);
    if (!Number.isNaN(o2)) speedups.push(o2 / w2);
    const t = `${shape.transA ? "T" : "N"}${shape.transB ? "T" : "N"}`;
    console.log(
      `| ${shape.what ?? ""} | ${M}×${N}×${K} ${t} | ${fmt(ts)} | ${fmt(ws)} | ${fmt(wr)} | ` +
        `${fmt(ob)} | ${fmt(w2)} | ${fmt(o2)} | ${fmt(w1 / ts)}× | ${fmt(o2 / w2)}× | ` +
        `${pct(w1 / peak1)} | ${pct(w2 / (2 * peak1))} |`,
    );
  }
  const geo = (xs: number[]) => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
  console.log(
    `\ngeometric means: WebAssembly / pure TS (1 thread) ${fmt(geo(ratios))}×, ` +
      `OpenBLAS / WebAssembly (2 threads) ${fmt(geo(speedups))}×`,
  );
  wasm2.dispose();
  blas2?.dispose();
}
