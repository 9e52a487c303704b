/**
 * Backend selection: `auto` picks WebGPU on real hardware and the CPU when the
 * only adapter is a software fallback (or there is none), and says why.
 *
 * @module
 */
import type { Backend } from "./backend.ts";
import { CpuBackend, type CpuBackendOptions } from "./cpu/backend.ts";
import { GpuContext, GpuUnavailableError } from "./webgpu/context.ts";
import { WebGpuBackend } from "./webgpu/backend.ts";

/** What `--backend` accepts. */
export type BackendKind = "auto" | "cpu" | "webgpu";

/** A created backend and the reason it was chosen. */
export interface SelectedBackend {
  /** The backend, ready to use. */
  backend: Backend;
  /** One sentence: which backend and why. */
  reason: string;
}

/** Options of {@link selectBackend}: how a CPU backend is built when one is chosen. */
export type SelectBackendOptions = Pick<CpuBackendOptions, "nativeLibrary">;

/** Parses a `--backend` value; throws a TypeError naming the accepted values. */
export function parseBackendKind(value: string): BackendKind {
  if (value === "auto" || value === "cpu" || value === "webgpu") return value;
  throw new TypeError(`Cannot select backend "${value}": use one of auto, cpu, webgpu`);
}

/**
 * Creates the backend for `kind`. `webgpu` never falls back silently: without an
 * adapter it throws {@link GpuUnavailableError}. `options.nativeLibrary` is where a CPU
 * backend looks for its native kernels (the tasks' `--native-lib`; default: the
 * checkout's `native/build/`).
 *
 * @example
 * ```ts ignore
 * const { backend, reason } = await selectBackend("auto");
 * console.log(reason);
 * ```
 */
export async function selectBackend(
  kind: BackendKind,
  options: SelectBackendOptions = {},
): Promise<SelectedBackend> {
  const cpu = () => new CpuBackend({ nativeLibrary: options.nativeLibrary });
  if (kind === "cpu") {
    const backend = cpu();
    return { backend, reason: `${backend.description}: --backend cpu was asked for` };
  }
  if (kind === "webgpu") {
    const backend = await WebGpuBackend.create();
    return { backend, reason: `${backend.description}: --backend webgpu was asked for` };
  }
  const adapter = await GpuContext.adapter();
  if (adapter && !adapter.info.isFallbackAdapter) {
    const backend = await WebGpuBackend.create();
    return { backend, reason: `${backend.description}: auto found a hardware WebGPU adapter` };
  }
  const backend = cpu();
  const why = adapter
    ? `the only WebGPU adapter (${adapter.info.description}) is a software fallback`
    : "no WebGPU adapter was found";
  return { backend, reason: `${backend.description}: auto chose the CPU as ${why}` };
}

export { GpuUnavailableError };
