/**
 * The two JPEG decoders: the system's libjpeg-turbo through FFI (`libturbojpeg0`) and its
 * WebAssembly build give PIL's pixels (torchvision's decoder) bit for bit on JPEGs of
 * every layout PIL writes, and each other's pixels at every DCT scale; both refuse hostile
 * headers before allocation and end corrupt data in an Error, never a crash.
 *
 * Fixtures: `tests/fixtures/jpeg/` (`make_jpeg_fixtures.py` writes them and PIL's pixel
 * digests). The native tests fail instead of skipping when `DBOT_REQUIRE_TURBOJPEG=1`.
 */
import { decodeJpeg, jpegDecoder, nativeJpegAvailable } from "../src/data/jpeg.ts";
import { loadTurboJpeg } from "../src/data/jpeg_native.ts";
import { decodeImageFile, MAX_IMAGE_PIXELS } from "../src/data/image_file.ts";
import { sha256Hex } from "../src/util/digest.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { requires } from "./requires.ts";

const DIR = new URL("./fixtures/jpeg/", import.meta.url).pathname;
type Digest = { width: number; height: number; channels: number; sha256: string };
const PIL: Record<string, Record<string, Digest>> = JSON.parse(
  Deno.readTextFileSync(`${DIR}pixels.json`),
);
const FILES = Object.keys(PIL).sort();
const turbo = await requires("turbojpeg");

/** Decodes `name` at DCT scale 1/`s` with `decoder`. */
function decode(name: string, s: number, decoder: "native" | "wasm") {
  const bytes = Deno.readFileSync(`${DIR}${name}`);
  const { width, height } = PIL[name]["1"];
  return decodeJpeg(bytes, {
    maxPixels: MAX_IMAGE_PIXELS,
    decoder,
    ...(s > 1 ? { minWidth: Math.floor(width / s), minHeight: Math.floor(height / s) } : {}),
  });
}

async function checkAgainstPil(decoder: "native" | "wasm"): Promise<void> {
  for (const name of FILES) {
    for (const s of [1, 2, 4, 8]) {
      const want = PIL[name][String(s)];
      const got = decode(name, s, decoder);
      const at = `${decoder} ${name} at 1/${s}`;
      assertEquals(
        [got.width, got.height, got.channels],
        [want.width, want.height, want.channels],
        at,
      );
      assertEquals(await sha256Hex(got.data), want.sha256, `${at}: not PIL's pixels`);
    }
  }
}

Deno.test("WebAssembly libjpeg-turbo decodes PIL's pixels, bit for bit, at every DCT scale", async () => {
  await checkAgainstPil("wasm");
});

turbo.test("native libjpeg-turbo decodes PIL's pixels, bit for bit, at every DCT scale", async () => {
  await checkAgainstPil("native");
});

turbo.test("the native decoder is the default where it loads; its errors name the problem", () => {
  assert(nativeJpegAvailable(), "libturbojpeg loads but the decoder did not pick it");
  const d = jpegDecoder();
  assertEquals(d.kind, "native");
  assert(d.name.includes("libturbojpeg"), d.name);
  assertEquals(d.hint, undefined);
  // decodeImageFile goes through it: the same pixels as asking for it by name
  const bytes = Deno.readFileSync(`${DIR}s420.jpg`);
  assertEquals(decodeImageFile(bytes).data, decode("s420.jpg", 1, "native").data);
  // DBOT_TURBOJPEG naming a library that does not load is an error that says how to go on
  Deno.env.set("DBOT_TURBOJPEG", "/nonexistent/libturbojpeg.so.0");
  try {
    assertThrows(() => loadTurboJpeg(), Error, "unset DBOT_TURBOJPEG");
  } finally {
    Deno.env.delete("DBOT_TURBOJPEG");
  }
});

/** `bytes` with the first start-of-frame's size set to `w × h`. */
function withSize(bytes: Uint8Array, w: number, h: number): Uint8Array {
  const b = bytes.slice();
  for (let at = 2; at + 9 < b.length;) {
    const m = b[at + 1];
    if (m >= 0xc0 && m <= 0xc2) {
      b[at + 5] = h >> 8, b[at + 6] = h & 255, b[at + 7] = w >> 8, b[at + 8] = w & 255;
      return b;
    }
    at += 2 + ((b[at + 2] << 8) | b[at + 3]);
  }
  throw new Error("no start-of-frame");
}

function hostile(decoder: "native" | "wasm"): void {
  const good = Deno.readFileSync(`${DIR}s420.jpg`);
  // 60000 × 60000 = 3.6 G pixels: refused from the header, before any allocation
  assertThrows(
    () => decodeJpeg(withSize(good, 60000, 60000), { maxPixels: MAX_IMAGE_PIXELS, decoder }),
    Error,
    `over the limit of ${MAX_IMAGE_PIXELS}`,
  );
  assertThrows(
    () => decodeJpeg(withSize(good, 0, 45), { maxPixels: MAX_IMAGE_PIXELS, decoder }),
    Error,
  );
  // truncated, random and empty data: an Error, the decoder still works after it
  const rng = new Rng(11);
  const cases = [
    good.slice(0, good.length / 2),
    good.slice(0, 200),
    Uint8Array.from({ length: 400 }, () => Math.floor(rng.uniform() * 256)),
    new Uint8Array([0xff, 0xd8, 0xff]),
  ];
  for (const bytes of cases) {
    assertThrows(() => decodeJpeg(bytes, { maxPixels: MAX_IMAGE_PIXELS, decoder }), Error);
  }
  assertEquals(decode("s420.jpg", 1, decoder).width, 67);
}

Deno.test("WebAssembly libjpeg-turbo refuses hostile headers and corrupt data with an Error", () => {
  hostile("wasm");
});

turbo.test("native libjpeg-turbo refuses hostile headers and corrupt data with an Error", () => {
  hostile("native");
});

// On corrupt data that both still decode, the two (libjpeg-turbo 2.0 in WebAssembly, the
// system's 2.1 here) may give different garbage: a machine uses one decoder for every worker.
turbo.test("native and WebAssembly decoders refuse the same of 300 seeded corruptions of a JPEG", () => {
  const good = Deno.readFileSync(`${DIR}big420.jpg`);
  const rng = new Rng(7);
  let decoded = 0;
  for (let k = 0; k < 300; k++) {
    const b = good.slice();
    for (let e = 0; e < 1 + Math.floor(rng.uniform() * 4); e++) {
      b[Math.floor(rng.uniform() * b.length)] = Math.floor(rng.uniform() * 256);
    }
    const run = (decoder: "native" | "wasm") => {
      try {
        return decodeJpeg(b, { maxPixels: MAX_IMAGE_PIXELS, decoder }).data;
      } catch (e) {
        assert(e instanceof Error, String(e));
        return "error";
      }
    };
    const n = run("native"), w = run("wasm");
    assertEquals(n === "error", w === "error", `corruption ${k}: one decoder refused it`);
    if (n !== "error") decoded++;
  }
  assert(decoded > 0 && decoded < 300, `${decoded} of 300 decoded`);
});

Deno.test("without FFI permission the WebAssembly decoder runs, and the hint says how to get the native one", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(
    script,
    `import { jpegDecoder } from "${root}src/data/jpeg.ts"; ` +
      `console.log(JSON.stringify(jpegDecoder()));`,
  );
  const out = await new Deno.Command("deno", {
    args: ["run", "--quiet", `--config=${root}deno.json`, "--allow-read", script], // no --allow-ffi
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(script);
  const err = new TextDecoder().decode(out.stderr);
  assert(out.success, err);
  const d = JSON.parse(new TextDecoder().decode(out.stdout));
  assertEquals(d.kind, "wasm");
  assert(d.hint.includes("--allow-ffi"), d.hint);
});
