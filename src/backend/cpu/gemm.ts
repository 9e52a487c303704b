/**
 * Where the CPU backend's GEMM is chosen: {@link loadGemm} picks, best first, OpenBLAS's
 * `cblas_sgemm` when the library can be loaded, the WebAssembly SIMD GEMM shipped in the
 * module (`wasm_gemm/`), and the pure-TypeScript GEMM (`gemm_ts.ts`);
 * {@link openThreadGemm} opens the same choice on a pool worker. The contract (argument
 * types, the `Gemm` interface, checks) is in `gemm_types.ts`.
 *
 * @module
 */
import type { Gemm, GemmArgs, GemmEpilogue } from "./gemm_types.ts";
import type { CpuKernels } from "./kernels.ts";
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

/**
 * Floats of one packed block of `op(B)` in the native GEMM (192 KB: it stays in a core's
 * L2; `GEMM_PACK_FLOATS` in `native/dbot_cpu.c`).
 */
export const SMALL_GEMM_PACK_FLOATS = 49152;

/** Largest `K` the native GEMM sums in one packed block (`GEMM_KC_MAX`). */
export const SMALL_GEMM_KC_MAX = 1024;

/**
 * Whether {@link withNativeGemm} (`"small"`) runs `args` on the native GEMM, where `bench/gemm_small_bench.ts`
 * measured it at least level with OpenBLAS: forward products `x·Wᵀ` (`transB`) with
 * `K ≤ 1024`, and input gradients `dY·W` whose `W` packs whole into one block. Weight
 * gradients (`transA`, K = tokens) stay on the base GEMM, which was faster there.
 */
export function smallGemmFits(
  { transA, transB, N, K }: Pick<GemmArgs, "transA" | "transB" | "N" | "K">,
): boolean {
  if (transA) return false;
  return transB ? K <= SMALL_GEMM_KC_MAX : K * (Math.ceil(N / 16) * 16) <= SMALL_GEMM_PACK_FLOATS;
}

/** Which products {@link withNativeGemm} runs on the native GEMM. */
export type NativeGemmUse = "small" | "all";

/**
 * `base` with products run by the native kernels' GEMM: with `"small"` (beside OpenBLAS)
 * those of {@link smallGemmFits}, where it beat OpenBLAS 1.2–1.7× on vit-micro's products;
 * with `"all"` (beside the WebAssembly GEMM, which it beat 1.7–2.4× on every ViT shape)
 * every product. Their fused epilogue goes with them. Everything else (threads, batched
 * calls, `sgemvT`, `path`) is `base`'s. Returns `base` where the kernels have no GEMM or
 * no 256-bit vectors (AVX2 + FMA). Measured by `bench/gemm_small_bench.ts`.
 *
 * @example
 * ```ts
 * import { loadGemm, withNativeGemm } from "./gemm.ts";
 * import { loadKernels } from "./kernels.ts";
 * const gemm = withNativeGemm(loadGemm(), loadKernels().kernels, "small");
 * console.log(gemm.name);
 * ```
 */
export function withNativeGemm(base: Gemm, kernels: CpuKernels | null, use: NativeGemmUse): Gemm {
  const native = kernels?.sgemm;
  if (!native || kernels.gemmVectorBits !== 256) return base;
  const fits = use === "all" ? () => true : smallGemmFits;
  const noBlas = base.note &&
    `OpenBLAS not found (${OPENBLAS_APT_COMMAND}: faster weight gradients)`;
  return Object.freeze({
    ...base,
    // the part before " (" is the backend line's engine: "OpenBLAS + native AVX2 GEMM"
    name: use === "all"
      ? `native AVX2 GEMM (batched products: ${base.name})`
      : `${base.name.replace(/ \(.*$/, "")} + native AVX2 GEMM (small-K products; ${base.name})`,
    ...(use === "all" && noBlas ? { note: noBlas } : {}),
    sgemm: (args: GemmArgs) => fits(args) ? native(args) : base.sgemm(args),
    // a product the native GEMM does not take is fused only where the base fuses it
    sgemmEpilogue(args: GemmArgs, epi: GemmEpilogue) {
      if (!fits(args)) return base.sgemmEpilogue?.(args, epi) ?? false;
      native(args, epi);
      return true;
    },
  });
}

/** Whether `gemm` is OpenBLAS (not the WebAssembly or the TypeScript GEMM). */
export function isOpenBlas(gemm: Gemm): boolean {
  return gemm.path !== undefined && !Object.values<string>(WASM_GEMM_PATHS).includes(gemm.path);
}
