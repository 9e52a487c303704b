/**
 * OpenBLAS's own thread count, set before the CPU backend loads the library (it keeps the
 * count it finds at load): N data-parallel ranks on a node must not each start one BLAS
 * thread per core. The task that starts a rank calls this; no trainer does.
 *
 * @module
 */
import { ffiGranted } from "../../util/ffi.ts";
import { openBlasSearchPaths } from "./openblas.ts";

/**
 * Sets OpenBLAS's own thread count before the CPU backend loads it (it keeps the count it
 * finds at load), so that N ranks on a node do not each start one BLAS thread per core.
 * Returns false when OpenBLAS is not found (nothing to limit).
 */
export function limitOpenBlasThreads(n: number): boolean {
  for (const path of openBlasSearchPaths()) {
    if (!ffiGranted(path)) continue;
    try {
      const lib = Deno.dlopen(path, {
        openblas_set_num_threads: { parameters: ["i32"], result: "void" },
      });
      lib.symbols.openblas_set_num_threads(n);
      return true; // the library stays loaded: the backend's dlopen finds this instance
    } catch {
      // next
    }
  }
  return false;
}
