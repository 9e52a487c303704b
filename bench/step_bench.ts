/**
 * `deno bench` of the full dBOT pre-training step (teacher forward + student
 * forward/backward + AdamW) on each backend.
 *
 * - vit-tiny, 32 px, patch 4, batch 64 on the CPU: the default backend (each large matmul
 *   split over the op threads, one single-threaded OpenBLAS call each, epilogue fused)
 *   against the baseline that leaves the threading of each matmul to OpenBLAS.
 * - vit-micro, 32 px, patch 4, batch 16 on the CPU and, where an adapter exists, on
 *   WebGPU (on a software adapter such as lavapipe this is a correctness platform, not a
 *   speed claim; a hardware GPU runs `deno task step-bench --backend webgpu` instead).
 *
 *   deno bench --allow-read --allow-env --allow-ffi bench/step_bench.ts
 *
 * @module
 */
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { GpuContext } from "../src/backend/webgpu/context.ts";
import { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { prepareStep } from "../src/train/step_bench.ts";

const tiny = { model: "vit-tiny", imgSize: 32, patchSize: 4, batch: 64, dropPath: 0.1 };
const micro = { model: "vit-micro", imgSize: 32, patchSize: 4, batch: 16, dropPath: 0.1 };
const backends: Backend[] = [];
globalThis.addEventListener("unload", () => backends.forEach((be) => be.dispose()));

function benchStep(
  group: string,
  name: string,
  be: Backend,
  o: typeof tiny,
  baseline = false,
): void {
  backends.push(be);
  const { step, loss } = prepareStep(be, o);
  Deno.bench({ name, group, baseline, n: 5, warmup: 2 }, async () => {
    await step();
    await be.download(loss); // waits for the GPU; free on the CPU
  });
}

const tinyGroup = "step vit-tiny 32px/4 B64 (CPU)";
benchStep(
  tinyGroup,
  "OpenBLAS threads per matmul",
  new CpuBackend({ splitGemm: false }),
  tiny,
  true,
);
benchStep(tinyGroup, "matmuls split over op threads", new CpuBackend(), tiny);

const microGroup = "step vit-micro 32px/4 B16";
benchStep(microGroup, "cpu", new CpuBackend(), micro, true);
if (await GpuContext.adapter()) {
  benchStep(microGroup, "webgpu", await WebGpuBackend.create(), micro);
}
