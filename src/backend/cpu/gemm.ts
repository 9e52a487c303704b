/**
 * Where the CPU backend's GEMM is chosen: {@link loadGemm} picks, best first, OpenBLAS's
 * `cblas_sgemm` when the library can be loaded, the WebAssembly SIMD GEMM shipped in the
 * module (`wasm_gemm/`), and the pure-TypeScript GEMM (`gemm_ts.ts`);
 * {@link openThreadGemm} opens the same choice on a pool worker. The contract (argument
 * types, the `Gemm` interface, checks) is in `gemm_types.ts`.
 *
 * @module
 */
import type { Gemm } from "./gemm_types.ts";
import { tsGemm } from "./gemm_ts.ts";
import { loadOpenBlas, openOpenBlas } from "./openblas.ts";
import { WASM_GEMM_PATHS, wasmGemm, type WasmGemmVariant } from "./wasm_gemm/wasm_gemm.ts";

/**
 * Matmul speed-up of OpenBLAS over the WebAssembly GEMM, measured by
 * `bench/gemm_table.ts` on the ViT-Tiny/Base shapes: geometric means of 2.4–3.1× over
 * four runs on a 2-thread `CpuBackend` (2-core AMD EPYC, family 25, 2026-12-02; 2.4× on a
 * quiet host, where the WebAssembly GEMM reaches 86–97% of its 128-bit peak; OpenBLAS uses
 * 256-bit FMA where WebAssembly has 128-bit SIMD).
 */
export const OPENBLAS_SPEEDUP_OVER_WASM = 2.5;

/** The one command that installs OpenBLAS where {@link loadGemm} looks for it (Debian/Ubuntu). */
export const OPENBLAS_APT_COMMAND = "apt-get install libopenblas0-pthread";

/** Which GEMM {@link loadGemm} picks. */
export type GemmChoice = "auto" | "openblas" | "wasm" | "ts";

/**
 * Picks a single-precision GEMM.
 *
 * - `"auto"` (default): OpenBLAS when it loads, else the WebAssembly SIMD GEMM (relaxed
 *   SIMD when the engine has it), else the pure-TS GEMM. Without OpenBLAS the result's
 *   `note` says why and what installing it would bring.
 * - `"openblas"`: OpenBLAS or an `Error` saying where it was looked for and how to install it.
 * - `"wasm"`: the WebAssembly SIMD GEMM, or an `Error` when the engine has no WebAssembly SIMD.
 * - `"ts"`: the pure-TS GEMM.
 *
 * Throws when `DBOT_OPENBLAS` names a library that fails to load.
 *
 * @example
 * ```ts
 * import { loadGemm } from "./gemm.ts";
 * const gemm = loadGemm();
 * console.log(gemm.name); // "OpenBLAS (libopenblas.so.0, 2 threads)" or "WebAssembly SIMD GEMM (…)"
 * ```
 */
export function loadGemm(prefer: GemmChoice = "auto"): Gemm {
  if (prefer === "ts") return tsGemm;
  if (prefer === "wasm") {
    const wasm = wasmGemm();
    if (wasm) return wasm;
    throw new Error(
      "Cannot load the WebAssembly GEMM as this engine rejects WebAssembly SIMD modules",
    );
  }
  const failures: string[] = [];
  const blas = loadOpenBlas(failures);
  if (blas) return blas;
  if (prefer === "auto") {
    const noFfi = failures.length > 0 && failures.every((f) => f.includes("no FFI permission"));
    const gain = `~${OPENBLAS_SPEEDUP_OVER_WASM}× faster matmul`;
    const note = noFfi
      ? `OpenBLAS not loaded: no FFI permission (grant --allow-ffi, and ${OPENBLAS_APT_COMMAND} if missing: ${gain})`
      : `OpenBLAS not found (${OPENBLAS_APT_COMMAND}: ${gain})`;
    const wasm = wasmGemm();
    return Object.freeze({ ...(wasm ?? tsGemm), note, tried: failures });
  }
  throw new Error(
    `Cannot load OpenBLAS as the library was not found; tried ${failures.join("; ")}. ` +
      `Install it (${OPENBLAS_APT_COMMAND}) or set DBOT_OPENBLAS to its path.`,
  );
}

/**
 * Opens the GEMM that another thread loaded, from its {@link Gemm.path}: a pool worker
 * runs its share of a split matmul with it (its own WebAssembly instance, or the same
 * OpenBLAS library). Throws when it does not load.
 */
export function openThreadGemm(path: string): Gemm {
  for (const [variant, p] of Object.entries(WASM_GEMM_PATHS)) {
    if (path !== p) continue;
    const gemm = wasmGemm(variant as WasmGemmVariant);
    if (!gemm) throw new Error(`Cannot load the WebAssembly GEMM (${variant}) on this thread`);
    return gemm;
  }
  return openOpenBlas(path);
}
