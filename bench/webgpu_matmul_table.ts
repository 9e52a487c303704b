/**
 * Times the WebGPU matmul variants on a list of shapes and prints a markdown
 * table `shape | form | batch | variant | ms | GFLOP/s`, naming the adapter.
 * Each timing records `--iters` dispatches between two syncs, so the ≥ 10 ms
 * cost of awaiting the GPU in Deno is amortised; the best of `--reps` is kept.
 *
 *   deno run --allow-read --allow-env --allow-ffi bench/webgpu_matmul_table.ts \
 *     --shapes 4096x4096x4096,12608x2304x768:NT --variants auto,tiled128,tiled64,simple
 *
 * Shape syntax: `MxNxK[:FORM][@BATCH]`, FORM one of NN (default), NT (`x·Wᵀ`),
 * TN (`dYᵀ·X`), TT. `--quick` runs a few tiny shapes (for a software adapter).
 *
 * @module
 */
import { type GpuStorage, WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { matmul, type MatmulKernel, type MatmulOptions } from "../src/backend/webgpu/ops/matmul.ts";
import { chooseMatmul } from "../src/backend/webgpu/ops/matmul.ts";
import type { MatmulDims } from "../src/backend/backend.ts";
import { Rng } from "../src/util/rng.ts";

/** One benchmark shape. */
export interface BenchShape {
  /** As written on the command line. */
  name: string;
  /** Dimensions and transposes. */
  dims: MatmulDims;
}

/** Parses `MxNxK[:FORM][@BATCH]` (comma-separated). */
export function parseShapes(list: string): BenchShape[] {
  return list.split(",").filter(Boolean).map((s) => {
    const m = /^(\d+)x(\d+)x(\d+)(?::(NN|NT|TN|TT))?(?:@(\d+))?$/i.exec(s.trim());
    if (!m) {
      throw new RangeError(`Cannot parse shape "${s}": expected MxNxK[:NN|NT|TN|TT][@BATCH]`);
    }
    const form = (m[4] ?? "NN").toUpperCase();
    return {
      name: s.trim(),
      dims: {
        M: +m[1],
        N: +m[2],
        K: +m[3],
        transA: form[0] === "T",
        transB: form[1] === "T",
        batch: m[5] ? +m[5] : 1,
      },
    };
  });
}

/** Tiny shapes for `--quick` (a software adapter runs them in seconds). */
export const QUICK_SHAPES = "256x256x256,197x192x64:NT,64x192x197:TN@2,12x384x384:NT";

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < args.length) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`--${name}=`));
  return eq ? eq.slice(name.length + 3) : fallback;
}

/** Best ms per matmul of `reps` timings of `iters` dispatches each (after a warm-up). */
export async function timeMatmul(
  be: WebGpuBackend,
  dims: MatmulDims,
  opts: MatmulOptions,
  iters: number,
  reps: number,
): Promise<number> {
  const { M, N, K } = dims;
  const batch = dims.batch ?? 1;
  const rng = new Rng(1);
  const a = be.tensor([batch * M * K], "f32", "bench-a");
  const b = be.tensor([batch * K * N], "f32", "bench-b");
  const out = be.tensor([batch * M * N], "f32", "bench-out");
  be.upload(a, rng.uniformArray(a.size, -1, 1));
  be.upload(b, rng.uniformArray(b.size, -1, 1));
  matmul(be, { out, a, b }, dims, opts);
  await be.sync();
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) matmul(be, { out, a, b }, dims, opts);
    await be.sync();
    best = Math.min(best, (performance.now() - t0) / iters);
  }
  for (const t of [a, b, out]) (t.storage as GpuStorage).buffer.destroy();
  return best;
}

if (import.meta.main) {
  const args = Deno.args;
  const quick = args.includes("--quick");
  const shapes = parseShapes(flag(args, "shapes", QUICK_SHAPES));
  const variants = flag(args, "variants", "auto,tiled128,tiled64,simple").split(",");
  const iters = +flag(args, "iters", quick ? "2" : "20");
  const reps = +flag(args, "reps", quick ? "2" : "3");
  const be = await WebGpuBackend.create();
  console.log(`# WebGPU matmul, f32, adapter: ${be.description}`);
  console.log(`\n${iters} dispatches between syncs, best of ${reps}.\n`);
  console.log("| shape M×N×K | form | batch | variant | ms | GFLOP/s |");
  console.log("|---|---|---:|---|---:|---:|");
  for (const { name, dims } of shapes) {
    const batch = dims.batch ?? 1;
    const flops = 2 * dims.M * dims.N * dims.K * batch;
    const form = `${dims.transA ? "T" : "N"}${dims.transB ? "T" : "N"}`;
    const [mnk] = name.split(/[:@]/);
    for (const v of variants) {
      let opts: MatmulOptions = {};
      let label = v;
      if (v === "auto") {
        const p = chooseMatmul(dims);
        label = `auto (${p.kernel}${p.splits > 1 ? `, split ${p.splits}` : ""})`;
      } else {
        const [kernel, split] = v.split("/");
        opts = { kernel: kernel as MatmulKernel, splits: split ? +split : 1 };
      }
      const ms = await timeMatmul(be, dims, opts, iters, reps);
      const gf = flops / (ms * 1e6);
      console.log(
        `| ${mnk} | ${form} | ${batch} | ${label} | ${ms.toFixed(3)} | ${gf.toFixed(1)} |`,
      );
    }
  }
  be.dispose();
}
