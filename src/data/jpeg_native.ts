/**
 * JPEG decoding with the system's libjpeg-turbo (its TurboJPEG API, `libturbojpeg.so.0`:
 * Debian/Ubuntu `libturbojpeg0`) through `Deno.dlopen` — the decoder PIL uses, with its
 * SIMD kernels. Optional, as OpenBLAS is for GEMM: {@link "./jpeg.ts"} falls back to the
 * WebAssembly build when it does not load. Needs `--allow-ffi` for the library's path.
 *
 * Search order: `$DBOT_TURBOJPEG` (a path; a failure to load it throws), then the usual
 * Debian, Ubuntu, Fedora and Homebrew locations ({@link TURBOJPEG_DEFAULT_PATHS}).
 *
 * @module
 */
import { ffiGranted, isPermissionError, libraryPathFromEnv } from "../util/ffi.ts";

/** The Debian package that installs `libturbojpeg.so.0`. */
export const TURBOJPEG_APT_COMMAND = "apt-get install libturbojpeg0";

/** Library paths tried after `$DBOT_TURBOJPEG`, in order (absolute: `--allow-ffi` is scoped). */
export const TURBOJPEG_DEFAULT_PATHS: readonly string[] = Object.freeze([
  "/usr/lib/x86_64-linux-gnu/libturbojpeg.so.0",
  "/usr/lib/aarch64-linux-gnu/libturbojpeg.so.0",
  "/usr/lib64/libturbojpeg.so.0",
  "/usr/lib/libturbojpeg.so.0",
  "/usr/local/lib/libturbojpeg.so.0",
  "/opt/homebrew/opt/jpeg-turbo/lib/libturbojpeg.dylib",
]);

const SYMBOLS = {
  tjInitDecompress: { parameters: [], result: "pointer" },
  tjDestroy: { parameters: ["pointer"], result: "i32" },
  // handle, jpegBuf, jpegSize (unsigned long), &width, &height, &subsamp, &colorspace
  tjDecompressHeader3: {
    parameters: ["pointer", "buffer", "u64", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  // handle, jpegBuf, jpegSize, dstBuf, width, pitch, height, pixelFormat, flags
  tjDecompress2: {
    parameters: ["pointer", "buffer", "u64", "buffer", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
} as const;

type TurboLib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** An open libturbojpeg with one decompressor handle (per thread: workers open their own). */
export interface NativeTurbo {
  /** The library's path. */
  path: string;
  /** Its symbols. */
  lib: TurboLib;
  /** The decompressor handle, reused for every decode on this thread (replaced after an error). */
  handle: Deno.PointerObject;
}

/** Opens libturbojpeg at `path` and makes a decompressor. Throws when it does not load. */
export function openTurboJpeg(path: string): NativeTurbo {
  const lib = Deno.dlopen(path, SYMBOLS).symbols;
  const handle = lib.tjInitDecompress();
  if (handle === null) throw new Error(`${path}: tjInitDecompress() returned no handle`);
  return { path, lib, handle };
}

/**
 * The first libturbojpeg that loads, or why none did: `$DBOT_TURBOJPEG` when set (its
 * failure throws: the user asked for it), else the default paths where `--allow-ffi`
 * allows them.
 */
export function loadTurboJpeg(): NativeTurbo | { reason: string } {
  const env = libraryPathFromEnv("DBOT_TURBOJPEG");
  if (env) {
    try {
      return openTurboJpeg(env);
    } catch (e) {
      throw new Error(
        `Cannot load libturbojpeg from DBOT_TURBOJPEG=${env}: ${(e as Error).message}; ` +
          `unset DBOT_TURBOJPEG to use the WebAssembly decoder`,
      );
    }
  }
  if (typeof Deno?.dlopen !== "function") return { reason: "this runtime has no Deno.dlopen" };
  let denied = false;
  const failures: string[] = [];
  for (const path of TURBOJPEG_DEFAULT_PATHS) {
    try {
      if (!ffiGranted(path)) {
        denied = true;
        continue;
      }
      return openTurboJpeg(path);
    } catch (e) {
      if (isPermissionError(e)) denied = true;
      else failures.push(`${path}: ${(e as Error).message.slice(0, 120)}`);
    }
  }
  if (failures.length === 0 && denied) {
    return { reason: "no FFI permission for /usr/lib (run with --allow-ffi)" };
  }
  return { reason: `libturbojpeg not found (${TURBOJPEG_APT_COMMAND})` };
}

/** Replaces `t`'s decompressor with a fresh one (after a decode error). */
export function resetTurboJpeg(t: NativeTurbo): void {
  t.lib.tjDestroy(t.handle);
  const h = t.lib.tjInitDecompress();
  if (h === null) throw new Error(`${t.path}: tjInitDecompress() returned no handle`);
  t.handle = h;
}
