/**
 * OpenBLAS's `cblas_sgemm` through `Deno.dlopen` (needs `--allow-ffi`).
 *
 * Search order: `$DBOT_OPENBLAS` (a path; a failure to load it throws), then
 * the usual Debian, Ubuntu and Homebrew locations (see
 * {@link openBlasSearchPaths}).
 *
 * @module
 */
import { ffiGranted, isPermissionError, libraryPathFromEnv } from "../../util/ffi.ts";
import { type Gemm, type GemmArgs, scaleC, validateGemmArgs } from "./gemm_types.ts";

// CBLAS enum values.
const CBLAS_ROW_MAJOR = 101;
const CBLAS_NO_TRANS = 111;
const CBLAS_TRANS = 112;

const SYMBOLS = {
  cblas_sgemm: {
    // order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
    ],
    result: "void",
  },
  // Optional so that another CBLAS without it still loads; then the name says "? threads".
  openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
  // The kernel set a DYNAMIC_ARCH build picked for this CPU ("Zen", "SkylakeX", "Haswell", …).
  openblas_get_corename: { parameters: [], result: "pointer", optional: true },
  cblas_sgemv: {
    // order, trans, M, N, alpha, A, lda, X, incX, beta, Y, incY
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
    ],
    result: "void",
    optional: true,
  },
} as const;

/** Library names and paths tried after `$DBOT_OPENBLAS`, in order. */
export const OPENBLAS_DEFAULT_PATHS: readonly string[] = Object.freeze([
  // Absolute paths first: tasks scope --allow-ffi to library directories, which
  // a bare name (resolved by the dynamic loader) never matches.
  "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
  "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
  "/usr/lib64/libopenblas.so.0",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "libopenblas.so.0",
  "libopenblas.dylib",
]);

/** The paths {@link loadOpenBlas} tries, in order: `$DBOT_OPENBLAS` first when set. */
export function openBlasSearchPaths(): string[] {
  const env = libraryPathFromEnv("DBOT_OPENBLAS");
  return env ? [env, ...OPENBLAS_DEFAULT_PATHS] : [...OPENBLAS_DEFAULT_PATHS];
}

const loaded = new Map<string, Gemm>();

type SgemvTArgs = Parameters<NonNullable<Gemm["sgemvT"]>>[0];

function reasonOf(e: unknown): string {
  if (isPermissionError(e)) return "no FFI permission (run with --allow-ffi)";
  return e instanceof Error ? e.message : String(e);
}

/**
 * `", Zen kernels"`: the kernel set a DYNAMIC_ARCH OpenBLAS picked, read from its C string
 * only where FFI is granted without a path scope (reading memory through a pointer needs
 * it; a scoped `--allow-ffi` would otherwise prompt or fail), else "".
 */
function coreName(core: Deno.PointerValue): string {
  if (!core || Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return "";
  return `, ${Deno.UnsafePointerView.getCString(core)} kernels`;
}

/**
 * Opens OpenBLAS at `path` (cached per path; a pool worker opens the library the main
 * thread found). Throws when it does not load.
 */
export function openOpenBlas(path: string): Gemm {
  const cached = loaded.get(path);
  if (cached) return cached;
  const lib = Deno.dlopen(path, SYMBOLS);
  const threads = lib.symbols.openblas_get_num_threads?.();
  const setThreads = lib.symbols.openblas_set_num_threads;
  const sgemv = lib.symbols.cblas_sgemv;
  const kernels = coreName(lib.symbols.openblas_get_corename?.() ?? null);
  const gemm: Gemm = Object.freeze({
    name: `OpenBLAS (${path}, ${threads ?? "?"} threads${kernels})`,
    path,
    threads,
    setThreads: setThreads ? (n: number) => setThreads(n) : undefined,
    sgemvT: sgemv
      ? ({ rows, cols, a, x, beta, y }: SgemvTArgs) => {
        if (a.length < rows * cols || x.length < rows || y.length < cols) {
          throw new RangeError(
            `Cannot run sgemv: a [${rows}, ${cols}], x [${rows}] and y [${cols}] need ` +
              `${
                rows * cols
              }, ${rows} and ${cols} elements; got ${a.length}, ${x.length}, ${y.length}`,
          );
        }
        if (cols === 0) return;
        if (rows === 0) {
          for (let i = 0; i < cols; i++) y[i] = beta === 0 ? 0 : beta * y[i];
          return;
        }
        sgemv(CBLAS_ROW_MAJOR, CBLAS_TRANS, rows, cols, 1, a, cols, x, 1, beta, y, 1);
      }
      : undefined,
    sgemm(args: GemmArgs): void {
      validateGemmArgs(args);
      const { transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc } = args;
      if (!(a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array)) {
        throw new TypeError(
          `Cannot run sgemm as a, b and c must be Float32Arrays: current types are ` +
            `${a.constructor.name}, ${b.constructor.name} and ${c.constructor.name}`,
        );
      }
      // BLAS rejects ld < 1, which zero-size calls would otherwise pass.
      if (M === 0 || N === 0) return;
      if (K === 0) {
        scaleC(c, M, N, ldc, beta);
        return;
      }
      lib.symbols.cblas_sgemm(
        CBLAS_ROW_MAJOR,
        transA ? CBLAS_TRANS : CBLAS_NO_TRANS,
        transB ? CBLAS_TRANS : CBLAS_NO_TRANS,
        M,
        N,
        K,
        alpha,
        a,
        lda,
        b,
        ldb,
        beta,
        c,
        ldc,
      );
    },
  });
  loaded.set(path, gemm);
  return gemm;
}

/**
 * Loads OpenBLAS's `cblas_sgemm` as a {@link Gemm}, or returns null when no
 * candidate library loads. Each failed candidate appends `"path: reason"` to
 * `failures` when given.
 *
 * Throws an `Error` when `DBOT_OPENBLAS` is set and that library fails to load.
 *
 * @example
 * ```ts
 * import { loadOpenBlas } from "./openblas.ts";
 * const blas = loadOpenBlas();
 * console.log(blas?.name ?? "OpenBLAS not found");
 * ```
 */
export function loadOpenBlas(failures: string[] = []): Gemm | null {
  const env = libraryPathFromEnv("DBOT_OPENBLAS");
  if (env) {
    if (!ffiGranted(env)) {
      throw new Error(
        `Cannot load OpenBLAS from DBOT_OPENBLAS=${env}: no FFI permission for it (grant ` +
          `--allow-ffi to its directory)`,
      );
    }
    try {
      return openOpenBlas(env);
    } catch (e) {
      throw new Error(`Cannot load OpenBLAS from DBOT_OPENBLAS=${env}: ${reasonOf(e)}`, {
        cause: e,
      });
    }
  }
  for (const path of OPENBLAS_DEFAULT_PATHS) {
    // ask first: opening a path outside the granted --allow-ffi list would prompt in a
    // terminal (a bare name such as libopenblas.so.0 never matches a scoped grant)
    if (!ffiGranted(path)) {
      failures.push(`${path}: no FFI permission (run with --allow-ffi)`);
      continue;
    }
    try {
      return openOpenBlas(path);
    } catch (e) {
      // A permission error may be path-scoped (--allow-ffi=DIR): keep trying.
      failures.push(`${path}: ${reasonOf(e)}`);
    }
  }
  return null;
}
