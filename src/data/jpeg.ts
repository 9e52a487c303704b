/**
 * JPEG decoding with libjpeg-turbo: the system's native library when it loads
 * ({@link "./jpeg_native.ts"}, `apt-get install libturbojpeg0`, with its SIMD kernels),
 * else libjpeg-turbo compiled to WebAssembly (the `@cwasm/jpeg-turbo` package's module).
 * Both are driven through the TurboJPEG API so that pixels land as RGB or grey without
 * an RGBA copy, and so that a decode can ask for DCT scaling. Both run libjpeg-turbo's
 * default decode (accurate integer IDCT, fancy upsampling), which gives the same pixels
 * (`tests/data_stream_test.ts` checks it on the test JPEGs); {@link jpegDecoder} says
 * which one runs.
 *
 * DCT scaling: `decodeJpeg(bytes, { minWidth, minHeight })` decodes at the smallest of
 * 1/8, 1/4, 1/2 or 1 of the full size that is still at least `minWidth × minHeight`
 * (what PIL's `Image.draft` and DALI do); the IDCT does the shrinking, so it costs a
 * fraction of a full decode. Without the option the decode is full size.
 *
 * A decode error resets the module (libjpeg's error exit unwinds through a JavaScript
 * throw, which leaves the WebAssembly stack pointer where the error was).
 *
 * @module
 */
import { DataError } from "./error.ts";
import {
  loadTurboJpeg,
  type NativeTurbo,
  resetTurboJpeg,
  TURBOJPEG_APT_COMMAND,
} from "./jpeg_native.ts";

/** A decoded JPEG: interleaved `[H, W, channels]` bytes, channels 1 (grey) or 3 (RGB). */
export interface DecodedJpeg {
  /** Interleaved pixels. */
  data: Uint8Array;
  /** Width after scaling. */
  width: number;
  /** Height after scaling. */
  height: number;
  /** 1 or 3. */
  channels: number;
  /** Full width as stored. */
  fullWidth: number;
  /** Full height as stored. */
  fullHeight: number;
}

interface TurboExports {
  memory: WebAssembly.Memory;
  malloc(n: number): number;
  free(p: number): void;
  tjInitDecompress(): number;
  tjDestroy(h: number): number;
  tjDecompressHeader3(
    h: number,
    src: number,
    n: number,
    w: number,
    ht: number,
    sub: number,
    cs: number,
  ): number;
  tjDecompress2(
    h: number,
    src: number,
    n: number,
    dst: number,
    w: number,
    pitch: number,
    ht: number,
    fmt: number,
    flags: number,
  ): number;
}

const TJPF_RGB = 0;
const TJPF_GRAY = 6;
const TJCS_GRAY = 2;

let compiled: WebAssembly.Module | null = null;
let turbo: TurboExports | null = null;

function instance(): TurboExports {
  if (turbo) return turbo;
  if (!compiled) {
    const url = new URL(import.meta.resolve("@cwasm/jpeg-turbo/jpeg-turbo.wasm"));
    if (url.protocol !== "file:") {
      throw new Error(
        `Cannot load libjpeg-turbo's WebAssembly from ${url}: it must be a local file; ` +
          `set "nodeModulesDir": "auto" in deno.json so that npm packages are installed`,
      );
    }
    compiled = new WebAssembly.Module(Deno.readFileSync(url));
  }
  const fail = (what: string) => () => {
    throw new Error(`libjpeg-turbo called ${what}`);
  };
  const inst = new WebAssembly.Instance(compiled, {
    env: { setjmp: () => 0, longjmp: fail("longjmp (a decode error)") },
    wasi_snapshot_preview1: {
      environ_sizes_get: () => 0,
      environ_get: fail("environ_get"),
      proc_exit: fail("proc_exit"),
      fd_close: fail("fd_close"),
      fd_seek: fail("fd_seek"),
      fd_write: fail("fd_write"),
    },
  });
  turbo = inst.exports as unknown as TurboExports;
  return turbo;
}

/** Which decoder runs: its name, and a hint when a faster one could. */
export interface JpegDecoderInfo {
  /** "native" (the system's libturbojpeg) or "wasm" (the WebAssembly build). */
  kind: "native" | "wasm";
  /** What runs, e.g. `libjpeg-turbo native (/usr/lib/x86_64-linux-gnu/libturbojpeg.so.0)`. */
  name: string;
  /** Why the native decoder does not run, and how to get it; absent when it runs. */
  hint?: string;
}

let native: NativeTurbo | null = null;
let chosen: JpegDecoderInfo | null = null;

/**
 * Loads libjpeg-turbo now (throws if no decoder can load), so that no decode fails for
 * that reason: the native library when it loads, else the WebAssembly build.
 */
export function loadJpegDecoder(): JpegDecoderInfo {
  if (chosen) return chosen;
  const n = loadTurboJpeg();
  if ("reason" in n) {
    instance();
    chosen = {
      kind: "wasm",
      name: "libjpeg-turbo WebAssembly",
      hint: `${n.reason}: native decode is ~2.5× faster`,
    };
  } else {
    native = n;
    chosen = { kind: "native", name: `libjpeg-turbo native (${n.path})` };
  }
  return chosen;
}

/** The decoder {@link decodeJpeg} uses (loading it first if needed). */
export function jpegDecoder(): JpegDecoderInfo {
  return loadJpegDecoder();
}

/** Whether the system's libturbojpeg can load here (for tests and benches). */
export function nativeJpegAvailable(): boolean {
  loadJpegDecoder();
  return native !== null;
}

/** The scale (1, 2, 4 or 8) that keeps a `W × H` image at least `minW × minH`. */
export function dctScale(W: number, H: number, minW: number, minH: number): number {
  let s = 1;
  while (s < 8 && Math.ceil(W / (2 * s)) >= minW && Math.ceil(H / (2 * s)) >= minH) s *= 2;
  return s;
}

/** Options of {@link decodeJpeg}. */
export interface JpegDecodeOptions {
  /** Decode at the smallest 1/2ᵏ scale (k ≤ 3) at least this wide (with minHeight). */
  minWidth?: number;
  /** Decode at the smallest 1/2ᵏ scale (k ≤ 3) at least this high (with minWidth). */
  minHeight?: number;
  /** A header claiming more pixels is refused before allocation. */
  maxPixels: number;
  /** Which decoder (default: the one {@link loadJpegDecoder} chose). */
  decoder?: "native" | "wasm";
}

/** The full size and colour from the header, checked against `maxPixels`; then the output size. */
function plan(
  W: number,
  H: number,
  cs: number,
  opts: JpegDecodeOptions,
): { w: number; ht: number; C: number } {
  if (W <= 0 || H <= 0) throw new Error(`the header says ${W}×${H} pixels`);
  if (W * H > opts.maxPixels) {
    throw new Error(
      `the header says ${W}×${H} pixels, over the limit of ${opts.maxPixels}; ` +
        `the file is corrupt or far too large`,
    );
  }
  const s = opts.minWidth && opts.minHeight ? dctScale(W, H, opts.minWidth, opts.minHeight) : 1;
  return { w: Math.ceil(W / s), ht: Math.ceil(H / s), C: cs === TJCS_GRAY ? 1 : 3 };
}

/**
 * Decodes a JPEG; with `minWidth`/`minHeight`, at the smallest 1/2ᵏ scale (k ≤ 3) at
 * least that size. `maxPixels` refuses a header that claims more pixels, before allocation.
 */
export function decodeJpeg(bytes: Uint8Array, opts: JpegDecodeOptions): DecodedJpeg {
  const which = opts.decoder ?? loadJpegDecoder().kind;
  if (which === "native") {
    loadJpegDecoder();
    if (!native) throw new Error("Cannot decode with the native libturbojpeg: it did not load");
    return decodeNative(native, bytes, opts);
  }
  return decodeWasm(bytes, opts);
}

function decodeNative(t: NativeTurbo, bytes: Uint8Array, opts: JpegDecodeOptions): DecodedJpeg {
  try {
    const meta = new Int32Array(4);
    const m = new Uint8Array(meta.buffer);
    const n = BigInt(bytes.length);
    const hdr = t.lib.tjDecompressHeader3(
      t.handle,
      bytes,
      n,
      m.subarray(0, 4),
      m.subarray(4, 8),
      m.subarray(8, 12),
      m.subarray(12, 16),
    );
    if (hdr !== 0) throw new Error("not a readable JPEG header");
    const [W, H, , cs] = meta;
    const { w, ht, C } = plan(W, H, cs, opts);
    const data = new Uint8Array(w * ht * C);
    const fmt = C === 1 ? TJPF_GRAY : TJPF_RGB;
    if (t.lib.tjDecompress2(t.handle, bytes, n, data, w, w * C, ht, fmt, 0) !== 0) {
      throw new Error("the JPEG data is corrupt or truncated");
    }
    return { data, width: w, height: ht, channels: C, fullWidth: W, fullHeight: H };
  } catch (e) {
    // a decompressor that stopped on an error can refuse the next header: start afresh
    resetTurboJpeg(t);
    throw e;
  }
}

function decodeWasm(bytes: Uint8Array, opts: JpegDecodeOptions): DecodedJpeg {
  const t = instance();
  let src = 0, meta = 0, dst = 0, h = 0;
  try {
    src = t.malloc(bytes.length);
    new Uint8Array(t.memory.buffer, src, bytes.length).set(bytes);
    h = t.tjInitDecompress();
    if (h === 0) throw new Error("libjpeg-turbo could not allocate a decompressor");
    meta = t.malloc(16);
    if (t.tjDecompressHeader3(h, src, bytes.length, meta, meta + 4, meta + 8, meta + 12) !== 0) {
      throw new Error("not a readable JPEG header");
    }
    const [W, H, , cs] = new Int32Array(t.memory.buffer, meta, 4);
    const { w, ht, C } = plan(W, H, cs, opts);
    dst = t.malloc(w * ht * C);
    if (dst === 0) throw new Error(`cannot allocate ${w}×${ht}×${C} bytes`);
    const rc = t.tjDecompress2(
      h,
      src,
      bytes.length,
      dst,
      w,
      w * C,
      ht,
      C === 1 ? TJPF_GRAY : TJPF_RGB,
      0,
    );
    if (rc !== 0) throw new Error("the JPEG data is corrupt or truncated");
    const data = new Uint8Array(t.memory.buffer, dst, w * ht * C).slice();
    return { data, width: w, height: ht, channels: C, fullWidth: W, fullHeight: H };
  } catch (e) {
    if (e instanceof Error && e.message.startsWith("libjpeg-turbo called")) {
      turbo = null; // the module's stack is where the error left it: start afresh
      throw new DataError("the JPEG data is corrupt (libjpeg-turbo stopped on an error)");
    }
    throw e;
  } finally {
    if (turbo === t) {
      if (h) t.tjDestroy(h);
      for (const p of [src, meta, dst]) if (p) t.free(p);
    }
  }
}

export { TURBOJPEG_APT_COMMAND };
