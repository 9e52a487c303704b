/**
 * WebGPU test harness: one shared backend per test file (so each pipeline is compiled
 * once per file), and the skip-or-fail rule of {@link requires}: without an adapter the
 * tests are skipped with the reason printed, unless `DBOT_REQUIRE_WEBGPU=1` (CI sets it),
 * which makes them fail.
 *
 * @module
 */
import { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { GpuContext, isSoftwareGl } from "../src/backend/webgpu/context.ts";
import { requires } from "./requires.ts";

const webgpu = await requires("webgpu");
/** Whether a WebGPU adapter was found. */
export const hasGpu: boolean = webgpu.available;
/** CI sets DBOT_REQUIRE_WEBGPU=1 so that a missing adapter fails instead of skipping. */
export const requireGpu: boolean = webgpu.required;

/**
 * The adapter is Mesa's software OpenGL driver (llvmpipe through EGL): what wgpu finds on a
 * Linux machine with Mesa's GL but no Vulkan driver (most desktop and CI images as they
 * ship). See `isSoftwareGl` and `AdapterFacts.softwareGl` in the context: there each
 * pipeline with workgroup memory takes seconds to a minute to compile, so the backend uses
 * its kernels without workgroup memory where it has them, and tests that force the others
 * (`notOnSoftwareGl`) are skipped with the reason printed.
 */
export const softwareGl: boolean = await (async () => {
  const adapter = hasGpu ? await GpuContext.adapter() : null;
  return adapter !== null && isSoftwareGl(adapter.info);
})();

let shared: Promise<WebGpuBackend> | null = null;

/** The file's shared WebGPU backend (created on first use). */
export function gpuBackend(): Promise<WebGpuBackend> {
  shared ??= WebGpuBackend.create();
  return shared;
}

const toldGl = new Set<string>();

/**
 * Registers a WebGPU test on the file's shared backend. Without an adapter it is
 * skipped (the reason printed once) — unless DBOT_REQUIRE_WEBGPU=1, which makes it fail.
 * With `notOnSoftwareGl` (a sentence: why, and where it runs instead) it is skipped on a
 * {@link softwareGl} adapter, that sentence printed once per file.
 */
export function gpuTest(
  name: string,
  fn: (be: WebGpuBackend) => Promise<void>,
  opts: { notOnSoftwareGl?: string } = {},
): void {
  const skip = softwareGl && opts.notOnSoftwareGl !== undefined;
  if (skip && !toldGl.has(opts.notOnSoftwareGl!)) {
    toldGl.add(opts.notOnSoftwareGl!);
    console.log(`skipping on this software OpenGL adapter: ${opts.notOnSoftwareGl}`);
  }
  webgpu.test({
    name: `[webgpu] ${name}`,
    ignore: skip,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const be = await gpuBackend();
      await fn(be);
      await be.sync();
    },
  });
}
