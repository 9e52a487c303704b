/**
 * Small valid PNG files for tests (no image library): 8-bit grey, RGB and alpha variants
 * with correct CRCs, made with the platform's deflate.
 *
 * @module
 */

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const x of bytes) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

async function zlib(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * An 8-bit PNG with valid CRCs: `colorType` 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA.
 * `rows` overrides the pixel rows encoded (to let the header lie about the size); `seed`
 * shifts the pixel pattern (images that differ).
 */
export async function png(
  w: number,
  h: number,
  colorType: number,
  channels: number,
  rows = h,
  seed = 0,
): Promise<Uint8Array> {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, w);
  v.setUint32(4, h);
  ihdr[8] = 8;
  ihdr[9] = colorType;
  const stride = 1 + w * channels;
  const raw = new Uint8Array(rows * stride);
  for (let i = 0; i < raw.length; i++) raw[i] = i % stride === 0 ? 0 : (i * 37 + seed * 101) & 0xff;
  const parts = [
    new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", await zlib(raw)),
    pngChunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
