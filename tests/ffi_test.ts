/**
 * No library loader opens a path outside the granted `--allow-ffi` list: in a terminal such
 * a `Deno.dlopen` stops the task at a permission prompt (seen on a machine without
 * OpenBLAS, where the search reached the bare name `libopenblas.so.0`). The test task
 * scopes `--allow-ffi` to the library directories, as the tasks do.
 */
import { loadOpenBlas } from "../src/backend/cpu/openblas.ts";
import { loadKernels } from "../src/backend/cpu/kernels.ts";
import { loadMpi } from "../src/parallel/mpi.ts";
import { limitOpenBlasThreads } from "../src/backend/cpu/blas_threads.ts";
import { ffiGranted } from "../src/util/ffi.ts";
import { assert } from "../src/util/assert.ts";

/** Runs `fn` with every `Deno.dlopen` failing as "not found", and returns the paths tried. */
function pathsTried(fn: () => unknown): string[] {
  const tried: string[] = [];
  const real = Deno.dlopen;
  Object.defineProperty(Deno, "dlopen", {
    configurable: true,
    writable: true,
    value: (path: string | URL) => {
      tried.push(String(path));
      throw new Error(`${path}: cannot open shared object file (test)`);
    },
  });
  try {
    fn();
  } catch {
    /* every loader reports its failure in its own way */
  } finally {
    Object.defineProperty(Deno, "dlopen", { configurable: true, writable: true, value: real });
  }
  return tried;
}

for (
  const [name, load] of [
    ["loadOpenBlas()", () => loadOpenBlas()],
    ['loadKernels("native")', () => loadKernels("native", "libdbot_cpu.so")],
    ["loadMpi()", () => loadMpi(["libmpi.so.40", "/usr/lib/x86_64-linux-gnu/libmpi.so.40"])],
    ["limitOpenBlasThreads()", () => limitOpenBlasThreads(1)],
  ] as const
) {
  Deno.test(`${name} opens no library outside the granted --allow-ffi paths`, () => {
    const tried = pathsTried(load);
    const outside = tried.filter((p) => !ffiGranted(p));
    assert(outside.length === 0, `${name} tried ${outside.join(", ")}, which would prompt`);
  });
}
