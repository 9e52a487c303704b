/**
 * WebGPU test harness: one shared backend per test file (so each pipeline is compiled
 * once per file), and the skip-or-fail rule of {@link requires}: without an adapter the
 * tests are skipped with the reason printed, unless `DBOT_REQUIRE_WEBGPU=1` (CI sets it),
 * which makes them fail.
 *
 * @module
 */
import { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { GpuContext } from "../src/backend/webgpu/context.ts";
import { requires } from "./requires.ts";

const webgpu = await requires("webgpu");
/** Whether a WebGPU adapter was found. */
export const hasGpu: boolean = webgpu.available;
/** CI sets DBOT_REQUIRE_WEBGPU=1 so that a missing adapter fails instead of skipping. */
export const requireGpu: boolean = webgpu.required;

/**
 * The adapter is Mesa's software OpenGL driver (llvmpipe through EGL): what wgpu finds on a
 * Linux machine with Mesa's GL but no Vulkan driver (most desktop and CI images as they
 * ship). wgpu's GL path reports no subgroup sizes of its own (its placeholders 4 and 128;
 * Vulkan reports the driver's, 8 and 8 on lavapipe); `DENO_WEBGPU_BACKEND=gl` says it too.
 *
 * There, a pipeline pays for its workgroup arrays when it is compiled: naga's GLSL writer
 * zero-initialises each with one array constructor (`As = vec4[512](vec4(0.0), …)`) and
 * Mesa's GLSL compiler takes time quadratic in its length (measured on this 2-core VM,
 * CPU time per pipeline: array<vec4f, 256> 0.9 s, array<vec4f, 1024> 16 s; on lavapipe
 * 0.03 s). A tiled matmul pipeline (2 × 512 vec4) costs ~13 s there, ~0.5 s on lavapipe.
 */
export const softwareGl: boolean = await isSoftwareGl();

async function isSoftwareGl(): Promise<boolean> {
  if (!hasGpu) return false;
  let asked: string | undefined;
  try {
    asked = Deno.env.get("DENO_WEBGPU_BACKEND");
  } catch {
    asked = undefined; // no --allow-env
  }
  if (asked !== undefined) return asked === "gl";
  const info = (await GpuContext.adapter())?.info as
    | (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number })
    | undefined;
  return Boolean(
    info?.isFallbackAdapter && info.subgroupMinSize === 4 && info.subgroupMaxSize === 128,
  );
}

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
