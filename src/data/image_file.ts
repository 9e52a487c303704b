/**
 * One image file to a planar `[C, H, W]` image: JPEG through libjpeg-turbo (WebAssembly,
 * with optional DCT scaling), PNG through image-js. Headers are checked before any
 * allocation from them: an empty file, a zero size, or more than {@link MAX_IMAGE_PIXELS}
 * pixels is refused.
 *
 * @module
 */
import { decodeJpeg, loadJpegDecoder } from "./jpeg.ts";
import type { Pixels } from "./types.ts";

export type { Pixels };

/** Images whose header claims more pixels than this (16384²) are refused before decoding. */
export const MAX_IMAGE_PIXELS = 1 << 28;

/** What a header says: size and whether the image has colour. */
export interface ImageHeader {
  /** Width. */
  width: number;
  /** Height. */
  height: number;
  /** 1 or 3. */
  channels: number;
}

type ImageJs = typeof import("image-js");
let imageJs: ImageJs | null = null;

/**
 * Loads the decoders once (call before {@link decodeImageFile}): image-js for PNG, and
 * libjpeg-turbo, so that a missing decoder is an error here, not a skipped file later.
 */
export async function loadPngDecoder(): Promise<void> {
  loadJpegDecoder();
  imageJs ??= await import("image-js");
}

/** Whether {@link loadPngDecoder} has run. */
export function pngDecoderLoaded(): boolean {
  return imageJs !== null;
}

/** Whether `bytes` start like a JPEG. */
function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/**
 * Decodes a PNG or JPEG file's bytes to interleaved pixels. With `min`, a JPEG may be
 * decoded at 1/2, 1/4 or 1/8 of its size, as long as it stays at least `min` in both
 * dimensions. Throws an Error that says what is wrong with the bytes.
 */
export function decodeImageFile(
  bytes: Uint8Array,
  min?: { width: number; height: number },
): Pixels {
  readHeader(bytes); // throws on an empty file or a lying size
  if (isJpeg(bytes)) {
    const d = decodeJpeg(bytes, {
      maxPixels: MAX_IMAGE_PIXELS,
      minWidth: min?.width,
      minHeight: min?.height,
    });
    const { data, channels, height, width } = d;
    return { data, stride: channels, channels, height, width, maxValue: 255 };
  }
  if (!imageJs) throw new Error("the PNG decoder is not loaded (call loadPngDecoder first)");
  const img = imageJs.decode(bytes);
  const C = img.components;
  if (C !== 1 && C !== 3) throw new Error(`unsupported colour model with ${C} components`);
  const data = img.getRawImage().data as Uint8Array | Uint16Array;
  return {
    data,
    stride: img.channels,
    channels: C,
    height: img.height,
    width: img.width,
    maxValue: img.maxValue,
  };
}

/**
 * Size and colour of a PNG or JPEG from its header; refuses an empty file, a zero size or
 * more than {@link MAX_IMAGE_PIXELS} pixels. Returns null for a header it cannot parse
 * (left to the decoder to refuse).
 */
export function readHeader(bytes: Uint8Array): ImageHeader | null {
  if (bytes.length === 0) throw new Error("the file is empty");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let hdr: ImageHeader | null = null;
  if (bytes.length >= 26 && v.getUint32(0) === 0x89504e47 && v.getUint32(12) === 0x49484452) {
    // PNG IHDR: width, height, bit depth, colour type (0 grey, 4 grey + alpha)
    const type = bytes[25];
    hdr = {
      width: v.getUint32(16),
      height: v.getUint32(20),
      channels: type === 0 || type === 4 ? 1 : 3,
    };
  } else if (bytes.length >= 4 && v.getUint16(0) === 0xffd8) {
    // JPEG: walk the marker segments to the first start-of-frame
    for (let at = 2; at + 10 <= bytes.length;) {
      if (bytes[at] !== 0xff) break;
      const marker = bytes[at + 1];
      if (marker === 0xff) {
        at++; // fill byte
        continue;
      }
      const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
        marker !== 0xcc;
      if (isSof) {
        hdr = {
          width: v.getUint16(at + 7),
          height: v.getUint16(at + 5),
          channels: bytes[at + 9] === 1 ? 1 : 3,
        };
        break;
      }
      at += 2 + v.getUint16(at + 2);
    }
  }
  if (hdr === null) return null;
  const { width: w, height: h } = hdr;
  if (w === 0 || h === 0) throw new Error(`the header says ${w}×${h} pixels`);
  if (w * h > MAX_IMAGE_PIXELS) {
    throw new Error(
      `the header says ${w}×${h} pixels, over the limit of ${MAX_IMAGE_PIXELS}; ` +
        `the file is corrupt or far too large`,
    );
  }
  return hdr;
}
