/**
 * WebGPU test harness: one shared backend per test file (so each pipeline is compiled
 * once per file), and the skip-or-fail rule of {@link requires}: without an adapter the
 * tests are skipped with the reason printed, unless `DBOT_REQUIRE_WEBGPU=1` (CI sets it),
 * which makes them fail.
 *
 * @module
 */
import { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { requires } from "./requires.ts";

const webgpu = await requires("webgpu");
/** Whether a WebGPU adapter was found. */
export const hasGpu: boolean = webgpu.available;
/** CI sets DBOT_REQUIRE_WEBGPU=1 so that a missing adapter fails instead of skipping. */
export const requireGpu: boolean = webgpu.required;

let shared: Promise<WebGpuBackend> | null = null;

/** The file's shared WebGPU backend (created on first use). */
export function gpuBackend(): Promise<WebGpuBackend> {
  shared ??= WebGpuBackend.create();
  return shared;
}

/**
 * Registers a WebGPU test on the file's shared backend. Without an adapter it is
 * skipped (the reason printed once) — unless DBOT_REQUIRE_WEBGPU=1, which makes it fail.
 */
export function gpuTest(name: string, fn: (be: WebGpuBackend) => Promise<void>): void {
  webgpu.test({
    name: `[webgpu] ${name}`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const be = await gpuBackend();
      await fn(be);
      await be.sync();
    },
  });
}
