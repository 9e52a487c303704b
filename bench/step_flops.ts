/**
 * The GEMM work of one CPU pre-training step: counts the floating-point operations of
 * every matmul and attention call (`2·M·N·K` per product; attention's four products
 * forward and eight backward per (sample, head)) on one step, and prints one JSON line.
 * `bench/compare_step.sh` divides it by the step time to put the step next to the
 * machine's large-SGEMM rate; `bench/step_profile.ts` uses {@link opFlops} per op.
 *
 *   deno run --allow-read --allow-env --allow-ffi bench/step_flops.ts --model vit-micro --img-size 28 --patch-size 4 --batch 256
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { AttentionDims, Backend, MatmulDims } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { prepareStep } from "../src/train/step_bench.ts";

/** Floating-point operations of backend op `name` called with `args` (0 for non-GEMM ops). */
export function opFlops(name: string, args: unknown[]): number {
  if (name === "matmul") {
    const d = args[1] as MatmulDims;
    return 2 * d.M * d.N * d.K * (d.batch ?? 1);
  }
  if (name === "attention" || name === "attentionBackward") {
    const { B, N, NH, HS } = args[1] as AttentionDims;
    // q·kᵀ and att·v forward; datt, dv, dq, dk backward: 2·N·N·HS each
    return (name === "attention" ? 2 : 4) * 2 * B * NH * N * N * HS;
  }
  return 0;
}

/** GEMM floating-point operations of one step of `o` (counted on a one-thread CPU run). */
export async function stepFlops(
  o: { model: string; imgSize: number; patchSize: number; batch: number },
): Promise<number> {
  const be = new CpuBackend({ threads: 1 });
  let flops = 0;
  for (const name of ["matmul", "attention", "attentionBackward"] as const) {
    const fn = be[name].bind(be) as (...a: unknown[]) => void;
    (be as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
      flops += opFlops(name, a);
      fn(...a);
    };
  }
  const { step, loss } = prepareStep(be as Backend, { ...o, dropPath: 0.1 });
  await step();
  await be.download(loss);
  be.dispose();
  return flops;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string", default: "vit-tiny" },
      "img-size": { type: "string", default: "32" },
      "patch-size": { type: "string", default: "4" },
      batch: { type: "string", default: "64" },
    },
  });
  const o = {
    model: values.model!,
    imgSize: Number(values["img-size"]),
    patchSize: Number(values["patch-size"]),
    batch: Number(values.batch),
  };
  const flops = await stepFlops(o);
  console.log(
    JSON.stringify({ ...o, gflop_per_step: flops / 1e9, mflop_per_image: flops / o.batch / 1e6 }),
  );
}
