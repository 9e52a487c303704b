/**
 * WebGPU test harness: one shared backend per test file, and a hard failure
 * (not a skip) when `DBOT_REQUIRE_WEBGPU=1` and no adapter exists (CI sets it).
 *
 * @module
 */
import { GpuContext } from "../src/backend/webgpu/context.ts";
import { WebGpuBackend } from "../src/backend/webgpu/backend.ts";

const adapter = await GpuContext.adapter();
/** Whether a WebGPU adapter was found. */
export const hasGpu: boolean = adapter !== null;
/** CI sets DBOT_REQUIRE_WEBGPU=1 so that a missing adapter fails instead of skipping. */
export const requireGpu: boolean = Deno.env.get("DBOT_REQUIRE_WEBGPU") === "1";

let shared: Promise<WebGpuBackend> | null = null;

/** The file's shared WebGPU backend (created on first use). */
export function gpuBackend(): Promise<WebGpuBackend> {
  shared ??= WebGpuBackend.create();
  return shared;
}

/**
 * Registers a WebGPU test. Without an adapter it is ignored — unless
 * DBOT_REQUIRE_WEBGPU=1, in which case it runs and fails with the reason.
 */
export function gpuTest(name: string, fn: (be: WebGpuBackend) => Promise<void>): void {
  Deno.test({
    name: `[webgpu] ${name}`,
    ignore: !hasGpu && !requireGpu,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      if (!hasGpu) {
        throw new Error(
          "DBOT_REQUIRE_WEBGPU=1 but no WebGPU adapter was found: install mesa-vulkan-drivers " +
            "and set DENO_WEBGPU_BACKEND=vulkan",
        );
      }
      const be = await gpuBackend();
      await fn(be);
      await be.sync();
    },
  });
}
