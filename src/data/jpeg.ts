/**
 * JPEG decoding with libjpeg-turbo compiled to WebAssembly (the `@cwasm/jpeg-turbo`
 * package's module, driven here through its TurboJPEG exports so that pixels land as
 * RGB or grey without an RGBA copy, and so that a decode can ask for DCT scaling).
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

/** Loads libjpeg-turbo now (throws if it cannot), so that no decode fails for that reason. */
export function loadJpegDecoder(): void {
  instance();
}

/** The scale (1, 2, 4 or 8) that keeps a `W × H` image at least `minW × minH`. */
export function dctScale(W: number, H: number, minW: number, minH: number): number {
  let s = 1;
  while (s < 8 && Math.ceil(W / (2 * s)) >= minW && Math.ceil(H / (2 * s)) >= minH) s *= 2;
  return s;
}

/**
 * Decodes a JPEG; with `min`, at the smallest 1/2ᵏ scale (k ≤ 3) at least `min` in both
 * dimensions. `maxPixels` refuses a header that claims more pixels, before allocation.
 */
export function decodeJpeg(
  bytes: Uint8Array,
  opts: { minWidth?: number; minHeight?: number; maxPixels: number },
): DecodedJpeg {
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
    if (W <= 0 || H <= 0) throw new Error(`the header says ${W}×${H} pixels`);
    if (W * H > opts.maxPixels) {
      throw new Error(
        `the header says ${W}×${H} pixels, over the limit of ${opts.maxPixels}; ` +
          `the file is corrupt or far too large`,
      );
    }
    const s = opts.minWidth && opts.minHeight ? dctScale(W, H, opts.minWidth, opts.minHeight) : 1;
    const w = Math.ceil(W / s), ht = Math.ceil(H / s);
    const C = cs === TJCS_GRAY ? 1 : 3;
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
