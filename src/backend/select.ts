/**
 * Backend selection: `auto` picks WebGPU on real hardware and the CPU when the
 * only adapter is a software fallback (or there is none), and says why.
 *
 * @module
 */
import { type Backend, type BackendFacts, describeBackend } from "./backend.ts";
import { CpuBackend, type CpuBackendOptions } from "./cpu/backend.ts";
import { GpuContext, GpuUnavailableError } from "./webgpu/context.ts";
import { quietWaylandProbe } from "./webgpu/headless.ts";
import { WebGpuBackend } from "./webgpu/backend.ts";

/** What `--backend` accepts. */
export type BackendKind = "auto" | "cpu" | "webgpu";

/** A created backend and the reason it was chosen. */
export interface SelectedBackend {
  /** The backend, ready to use. */
  backend: Backend;
  /** How it was chosen, e.g. `"auto: no WebGPU adapter"` or `"--backend cpu"`. */
  chosen: string;
  /**
   * One short line: {@link describeBackend} with `chosen`, e.g. `cpu (auto: no WebGPU
   * adapter): WebAssembly SIMD GEMM, 2 threads, native kernels; OpenBLAS not found (…)`.
   */
  reason: string;
  /** The backend's facts (its `details` say what was tried: paths, loader errors). */
  facts: BackendFacts;
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
  quietWaylandProbe();
  const cpu = () => new CpuBackend({ nativeLibrary: options.nativeLibrary });
  const selected = (backend: Backend, chosen: string, detail?: string): SelectedBackend => {
    const facts = backend.facts;
    if (detail) facts.details.push(detail);
    return { backend, chosen, reason: describeBackend(facts, chosen), facts };
  };
  if (kind === "cpu") return selected(cpu(), "--backend cpu");
  if (kind === "webgpu") return selected(await WebGpuBackend.create(), "--backend webgpu");
  const adapter = await GpuContext.adapter();
  if (adapter && !adapter.info.isFallbackAdapter) {
    return selected(await WebGpuBackend.create(), "auto: hardware WebGPU adapter");
  }
  return adapter
    ? selected(
      cpu(),
      "auto: the only WebGPU adapter is software",
      `WebGPU adapter: ${adapter.info.description} (software fallback)`,
    )
    : selected(cpu(), "auto: no WebGPU adapter");
}

export { GpuUnavailableError };
