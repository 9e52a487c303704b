/**
 * Backend selection in a web page: WebGPU over `navigator.gpu`, the browser's only
 * backend (the CPU backends need FFI or workers from files). Browser-safe: no Deno API.
 *
 * @module
 */
import { GpuContext, GpuUnavailableError } from "./webgpu/context.ts";
import { WebGpuBackend } from "./webgpu/backend.ts";

/** The page's backend, its adapter and one sentence on what was found. */
export interface BrowserBackend {
  /** The WebGPU backend, ready to use. */
  backend: WebGpuBackend;
  /** The adapter it runs on. */
  adapter: GPUAdapter;
  /** E.g. "webgpu (swiftshader, software): navigator.gpu found an adapter". */
  reason: string;
}

/**
 * Creates the WebGPU backend over `navigator.gpu`. Throws {@link GpuUnavailableError}
 * whose message says what is missing ("this browser has no navigator.gpu",
 * "navigator.gpu.requestAdapter() found no adapter") where there is no WebGPU.
 *
 * @example
 * ```ts ignore
 * const { backend, reason } = await selectBrowserBackend();
 * console.log(reason);
 * ```
 */
export async function selectBrowserBackend(): Promise<BrowserBackend> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new GpuUnavailableError("this browser has no navigator.gpu");
  }
  const adapter = await GpuContext.adapter();
  if (!adapter) throw new GpuUnavailableError("navigator.gpu.requestAdapter() found no adapter");
  const backend = await WebGpuBackend.create();
  return { backend, adapter, reason: `${backend.description}: navigator.gpu found an adapter` };
}
