import {
  decodeSafetensors,
  encodeSafetensors,
  type NamedTensor,
  SafetensorsError,
  toFloat32,
} from "../src/io/safetensors.ts";
import { readSafetensors, writeSafetensors } from "../src/io/safetensors_file.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { assertAllClose } from "./helpers.ts";

/** The raw bytes behind a typed array, for bit-exact comparisons. */
function rawBytes(a: ArrayBufferView): number[] {
  return Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

/** `u64le(n) ‖ header ‖ spaces ‖ data`, with the padding asserted to reach a multiple of 8. */
function handMade(header: string, pad: number, data: number[]): Uint8Array {
  const h = new TextEncoder().encode(header + " ".repeat(pad));
  assert(h.length % 8 === 0, `fixture header length ${h.length} is not a multiple of 8`);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** A file with the given header text and data buffer, header length taken as given. */
function rawFile(
  header: string,
  data: number[] | Uint8Array = [],
  lengthField?: bigint,
): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** Asserts `bytes` is refused with a SafetensorsError whose message includes `includes`. */
function assertRefused(bytes: Uint8Array, includes: string): void {
  assertThrows(() => decodeSafetensors(bytes), SafetensorsError, includes);
  try {
    decodeSafetensors(bytes);
  } catch (e) {
    const msg = (e as Error).message;
    assert(msg.startsWith('Cannot read safetensors file "<memory>": '), `bad message: ${msg}`);
  }
}

async function assertRejects(fn: () => Promise<unknown>, includes: string): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    assert(e.message.includes(includes), `message "${e.message}" lacks "${includes}"`);
    return e;
  }
  throw new Error(`expected a SafetensorsError including "${includes}"`);
}

const F32_1_5 = [0x00, 0x00, 0xc0, 0x3f]; // 1.5
const F32_M2 = [0x00, 0x00, 0x00, 0xc0]; // -2

function allDTypes(): Record<string, NamedTensor> {
  const f32 = new Float32Array([1.5, -0, Infinity, 3.4e38, 1e-45]);
  new Uint32Array(f32.buffer)[1] = 0x7fc01234; // a NaN with a payload must survive bit-exact
  return {
    "blocks.0.attn.qkv.weight": { dtype: "F32", shape: [5], data: f32 },
    "f16": {
      dtype: "F16",
      shape: [2, 2],
      data: new Uint8Array([0, 0x3c, 1, 0, 0, 0x7c, 0xff, 0xfe]),
    },
    "bf16": {
      dtype: "BF16",
      shape: [3],
      data: new Uint8Array([0x80, 0x3f, 0x20, 0xc0, 0xc1, 0x7f]),
    },
    "i32": { dtype: "I32", shape: [1, 3], data: new Int32Array([-1, 0, 2147483647]) },
    "i64": {
      dtype: "I64",
      shape: [2],
      data: new BigInt64Array([-9223372036854775808n, 1234567890123456789n]),
    },
    "f64": { dtype: "F64", shape: [2], data: new Float64Array([Math.PI, -1e-300]) },
    "u8": { dtype: "U8", shape: [3], data: new Uint8Array([0, 128, 255]) },
    "scalar": { dtype: "F32", shape: [], data: new Float32Array([7]) },
    "empty": { dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
  };
}

Deno.test("encodeSafetensors() then decodeSafetensors() round-trips every dtype bit-exact", () => {
  const tensors = allDTypes();
  const metadata = { config: '{"embedDim": 32}', format: "pt", "ünïcode": '✓ \n"q"' };
  const bytes = encodeSafetensors(tensors, metadata);
  const out = decodeSafetensors(bytes);
  assertEquals(out.metadata, metadata);
  assertEquals([...out.tensors.keys()].sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    const got = out.tensors.get(name)!;
    assertEquals(got.dtype, t.dtype, name);
    assertEquals(got.shape, t.shape, name);
    assertEquals(got.data.constructor, t.data.constructor, name);
    assertEquals(rawBytes(got.data), rawBytes(t.data), name);
  }
  // Encoding the decoded contents again reproduces the file.
  assertEquals(Array.from(encodeSafetensors(out.tensors, out.metadata)), Array.from(bytes));
});

Deno.test("encodeSafetensors() matches the reference library's bytes for small dicts", () => {
  // From the format: no spaces in the JSON, header padded with spaces to a multiple of 8.
  const a = handMade('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 2, [
    ...F32_1_5,
    ...F32_M2,
  ]);
  const t = { a: { dtype: "F32", shape: [2], data: new Float32Array([1.5, -2]) } as NamedTensor };
  assertEquals(Array.from(encodeSafetensors(t)), Array.from(a));

  // The reference crate's own test vector: "attn.0" F32 [1, 2, 3] = 0..5, 64-byte header.
  const attn = handMade(
    '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}',
    0,
    [0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64],
  );
  assertEquals(Array.from(attn.subarray(0, 8)), [64, 0, 0, 0, 0, 0, 0, 0]);
  const attnT = {
    "attn.0": { dtype: "F32", shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
  } as Record<string, NamedTensor>;
  assertEquals(Array.from(encodeSafetensors(attnT)), Array.from(attn));

  // Empty dicts, with and without metadata.
  assertEquals(Array.from(encodeSafetensors({})), [
    8,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    123,
    125,
    ...Array(6).fill(32),
  ]);
  const meta = handMade('{"__metadata__":{"framework":"pt"}}', 5, []);
  assertEquals(Array.from(encodeSafetensors({}, { framework: "pt" })), Array.from(meta));

  // Mixed dtypes: ordered by descending dtype alignment, then name (I64, F32, U8).
  const mixed = handMade(
    '{"__metadata__":{"format":"pt"},' +
      '"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
      '"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' +
      '"b":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}}',
    7,
    [7, 0, 0, 0, 0, 0, 0, 0, ...F32_1_5, ...F32_M2, 1, 2, 3],
  );
  const mixedT: Record<string, NamedTensor> = {
    b: { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) },
    a: { dtype: "F32", shape: [2], data: new Float32Array([1.5, -2]) },
    c: { dtype: "I64", shape: [1], data: new BigInt64Array([7n]) },
  };
  assertEquals(Array.from(encodeSafetensors(mixedT, { format: "pt" })), Array.from(mixed));
});

Deno.test("decodeSafetensors() reads hand-made reference bytes and re-encodes them identically", () => {
  const file = handMade(
    '{"__metadata__":{"format":"pt"},' +
      '"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
      '"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' +
      '"b":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}}',
    7,
    [7, 0, 0, 0, 0, 0, 0, 0, ...F32_1_5, ...F32_M2, 1, 2, 3],
  );
  const { tensors, metadata } = decodeSafetensors(file);
  assertEquals(metadata, { format: "pt" });
  assertEquals([...tensors.keys()], ["c", "a", "b"]); // file order
  assertEquals(Array.from(tensors.get("a")!.data as Float32Array), [1.5, -2]);
  assertEquals(tensors.get("a")!.shape, [2]);
  assertEquals(Array.from(tensors.get("c")!.data as BigInt64Array), [7n]);
  assertEquals(Array.from(tensors.get("b")!.data as Uint8Array), [1, 2, 3]);
  assertEquals(Array.from(encodeSafetensors(tensors, metadata)), Array.from(file));
});

Deno.test("decodeSafetensors() copies unaligned input into aligned arrays", () => {
  const bytes = encodeSafetensors(allDTypes());
  for (const shift of [1, 3, 5]) {
    const padded = new Uint8Array(bytes.length + shift);
    padded.set(bytes, shift);
    const view = padded.subarray(shift);
    const out = decodeSafetensors(view);
    const f64 = out.tensors.get("f64")!.data as Float64Array;
    assertEquals(Array.from(f64), [Math.PI, -1e-300]);
    assertEquals(f64.byteOffset, 0);
    padded.fill(0); // the decoded data owns its buffer
    assertEquals(Array.from(f64), [Math.PI, -1e-300]);
  }
});

Deno.test("toFloat32() decodes F16 known values exactly", () => {
  // 1.0, -2.5, 65504 (max), 2^-24 (min subnormal), 1023·2^-24 (max subnormal),
  // 2^-14 (min normal), -0, +inf, -inf, NaN
  const halves = [0x3c00, 0xc100, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x7e00];
  const data = new Uint8Array(new Uint16Array(halves).buffer);
  const out = toFloat32({ dtype: "F16", shape: [halves.length], data });
  const expected = [1, -2.5, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, -0, Infinity, -Infinity];
  assertAllClose(out.subarray(0, 6), expected.slice(0, 6), { atol: 0, rtol: 0 });
  assert(Object.is(out[6], -0), `-0 decoded as ${out[6]}`);
  assertEquals([out[7], out[8]], [Infinity, -Infinity]);
  assert(Number.isNaN(out[9]), `NaN decoded as ${out[9]}`);
});

Deno.test("toFloat32() decodes BF16 known values exactly", () => {
  // 1.0, -2.5, 65280 (0x477f), 2^-133 (0x0001, subnormal), max 0x7f7f, +inf, -inf, NaN
  const halves = [0x3f80, 0xc020, 0x477f, 0x0001, 0x7f7f, 0x7f80, 0xff80, 0x7fc0];
  const data = new Uint8Array(new Uint16Array(halves).buffer);
  const out = toFloat32({ dtype: "BF16", shape: [halves.length], data });
  const expected = [1, -2.5, 65280, 2 ** -133, 255 * 2 ** 120];
  assertAllClose(out.subarray(0, 5), expected, { atol: 0, rtol: 0 });
  assertEquals([out[5], out[6]], [Infinity, -Infinity]);
  assert(Number.isNaN(out[7]), `NaN decoded as ${out[7]}`);
});

Deno.test("toFloat32() converts F32 by copy and F64/I32/I64/U8 by value", () => {
  const f32 = new Float32Array([1, 2]);
  const copy = toFloat32({ dtype: "F32", shape: [2], data: f32 });
  copy[0] = 9;
  assertEquals(f32[0], 1);
  const conv = (t: NamedTensor) => Array.from(toFloat32(t));
  assertEquals(conv({ dtype: "F64", shape: [2], data: new Float64Array([0.5, -3]) }), [0.5, -3]);
  assertEquals(conv({ dtype: "I32", shape: [2], data: new Int32Array([-7, 8]) }), [-7, 8]);
  assertEquals(conv({ dtype: "I64", shape: [2], data: new BigInt64Array([-7n, 1n << 40n]) }), [
    -7,
    2 ** 40,
  ]);
  assertEquals(conv({ dtype: "U8", shape: [2], data: new Uint8Array([0, 255]) }), [0, 255]);
});

Deno.test("decodeSafetensors() refuses malformed prefixes and headers with SafetensorsError", () => {
  assertRefused(new Uint8Array(5), "file is 5 bytes long, shorter than the 8-byte");
  assertRefused(rawFile("{}", [], 1000n), "header length is 1000 bytes but only 2 bytes follow");
  assertRefused(rawFile("{}", [], 200_000_000n), "exceeds the 100000000-byte limit");
  assertRefused(rawFile("{}", [], 1n << 63n), "header length 9223372036854775808 exceeds");
  const badUtf8 = rawFile("{}      ");
  badUtf8[9] = 0xff;
  assertRefused(badUtf8, "not valid UTF-8");
  assertRefused(rawFile("\ufeff{}     "), "not valid JSON");
  assertRefused(rawFile("hello   "), "not valid JSON");
  assertRefused(rawFile('{"a":1  '), "not valid JSON");
  assertRefused(rawFile("[]      "), "must be a JSON object: current value is an array");
  assertRefused(rawFile("null    "), "must be a JSON object: current value is null");
  assertRefused(rawFile("42      "), "must be a JSON object: current value is 42");
  assertRefused(rawFile("        "), "not valid JSON");
});

Deno.test("decodeSafetensors() refuses bad tensor entries with SafetensorsError", () => {
  const entry = (e: string, data = 8) => rawFile(`{"t":${e}}`, new Uint8Array(data));
  assertRefused(entry("3"), 'tensor "t" must be an object');
  assertRefused(entry('{"shape":[2],"data_offsets":[0,8]}'), 'tensor "t" has no "dtype"');
  assertRefused(entry('{"dtype":"F32","data_offsets":[0,8]}'), 'has no "shape"');
  assertRefused(entry('{"dtype":"F32","shape":[2]}'), 'has no "data_offsets"');
  assertRefused(entry('{"dtype":5,"shape":[2],"data_offsets":[0,8]}'), "non-string dtype");
  assertRefused(entry('{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}'), 'unsupported dtype "Q4"');
  assertRefused(
    entry('{"dtype":"BOOL","shape":[8],"data_offsets":[0,8]}'),
    "convert the checkpoint",
  );
  for (const shape of ["[-2]", "[2.5]", '["2"]', '"2"', "null", "[1e300,1e300]", "[1e15,1e15,0]"]) {
    assertRefused(entry(`{"dtype":"F32","shape":${shape},"data_offsets":[0,8]}`), "invalid shape");
  }
  // A lying shape whose size is safe but far beyond the file: refused, nothing allocated.
  assertRefused(
    entry('{"dtype":"F32","shape":[67108864,67108864],"data_offsets":[0,8]}'),
    "needs 18014398509481984 bytes, but data_offsets [0, 8] span 8",
  );
  assertRefused(entry('{"dtype":"F32","shape":[3],"data_offsets":[0,8]}'), "needs 12 bytes");
  for (const offsets of ["[0]", "[0,8,8]", "[-8,0]", "[0,8.5]", '["0","8"]', '{"0":0}']) {
    assertRefused(
      entry(`{"dtype":"U8","shape":[8],"data_offsets":${offsets}}`),
      "invalid data_offsets",
    );
  }
  assertRefused(
    entry('{"dtype":"F32","shape":[4],"data_offsets":[0,16]}'),
    "past the end of the 8-byte",
  );
  assertRefused(
    entry('{"dtype":"F32","shape":[4],"data_offsets":[0,1e300]}'),
    "invalid data_offsets",
  );
  assertRefused(
    entry('{"dtype":"F32","shape":[2],"data_offsets":[8,0]}'),
    "begin 8 greater than end 0",
  );
});

Deno.test("decodeSafetensors() refuses overlaps, gaps, trailing bytes and bad metadata", () => {
  const two = (a: string, b: string, data: number) =>
    rawFile(
      `{"a":{"dtype":"F32","shape":[2],"data_offsets":${a}},` +
        `"b":{"dtype":"F32","shape":[2],"data_offsets":${b}}}`,
      new Uint8Array(data),
    );
  assertRefused(two("[0,8]", "[4,12]", 12), 'tensors "a" [0, 8] and "b" [4, 12] overlap');
  assertRefused(two("[0,8]", "[0,8]", 8), "overlap");
  assertRefused(two("[0,8]", "[12,20]", 20), 'bytes [8, 12) of the data buffer, before tensor "b"');
  assertRefused(two("[8,16]", "[16,24]", 24), 'bytes [0, 8) of the data buffer, before tensor "a"');
  assertRefused(
    two("[0,8]", "[8,16]", 20),
    "the data buffer is 20 bytes but the tensors cover only 16",
  );
  assertRefused(rawFile("{}", new Uint8Array(4)), "4 trailing bytes");
  // Zero-size tensors may sit anywhere on a boundary, but not inside another tensor.
  const zeroInside = rawFile(
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}',
    new Uint8Array(8),
  );
  assertRefused(zeroInside, "overlap");

  const meta = (m: string) => rawFile(`{"__metadata__":${m}}`);
  assertRefused(meta('{"k":3}'), '__metadata__["k"] must be a string: current value is 3');
  assertRefused(meta('{"k":{"x":"y"}}'), '__metadata__["k"] must be a string');
  assertRefused(meta('"text"'), "__metadata__ must be an object of strings");
  assertRefused(meta('["a"]'), "__metadata__ must be an object of strings");
  assertEquals(decodeSafetensors(meta("null")).metadata, {});
});

Deno.test("decodeSafetensors() throws only SafetensorsError on corrupted and truncated files", () => {
  const good = encodeSafetensors(allDTypes(), { config: "{}" });
  const rng = new Rng(1234);
  let refused = 0;
  for (let trial = 0; trial < 2000; trial++) {
    let bytes: Uint8Array;
    if (trial % 2 === 0) {
      bytes = good.slice(0, Math.floor(rng.uniform() * good.length));
    } else {
      bytes = good.slice();
      for (let k = 0; k < 1 + Math.floor(rng.uniform() * 4); k++) {
        // Corrupt mostly the prefix and header, where the structure lives.
        const at = Math.floor(rng.uniform() * Math.min(bytes.length, 8 + 600));
        bytes[at] = Math.floor(rng.uniform() * 256);
      }
    }
    try {
      decodeSafetensors(bytes);
    } catch (e) {
      assert(e instanceof SafetensorsError, `trial ${trial}: ${e}`);
      refused++;
    }
  }
  assert(refused > 1000, `only ${refused} corrupted files were refused`);
});

Deno.test("encodeSafetensors() refuses data that does not match dtype and shape", () => {
  const enc = (t: NamedTensor, name = "w") => () => encodeSafetensors({ [name]: t });
  assertThrows(
    enc({ dtype: "F32", shape: [2, 2], data: new Float32Array(3) }),
    SafetensorsError,
    'Cannot write safetensors file "<memory>": tensor "w" with dtype F32 and shape [2,2] needs 16 bytes',
  );
  assertThrows(
    enc({ dtype: "F32", shape: [2], data: new Float64Array(2) }),
    SafetensorsError,
    "needs its data in a Float32Array: current value is a Float64Array",
  );
  assertThrows(
    enc({ dtype: "F16", shape: [2], data: new Uint8Array(2) }),
    SafetensorsError,
    "needs 4 bytes",
  );
  assertThrows(
    enc({ dtype: "F32", shape: [-1], data: new Float32Array(0) }),
    SafetensorsError,
    "invalid shape",
  );
  assertThrows(
    enc({ dtype: "Q4" as "F32", shape: [1], data: new Float32Array(1) }),
    SafetensorsError,
    'unsupported dtype "Q4"',
  );
  assertThrows(
    enc({ dtype: "F32", shape: [1], data: new Float32Array(1) }, "__metadata__"),
    SafetensorsError,
    "is reserved",
  );
  assertThrows(
    () => encodeSafetensors({}, { epoch: 3 as unknown as string }),
    SafetensorsError,
    'metadata["epoch"] must be a string',
  );
});

Deno.test('encodeSafetensors() and decodeSafetensors() keep "__proto__" as an ordinary name', () => {
  const tensors = new Map<string, NamedTensor>([
    ["__proto__", { dtype: "U8", shape: [1], data: new Uint8Array([5]) }],
  ]);
  const metadata = JSON.parse('{"__proto__":"m"}');
  const out = decodeSafetensors(encodeSafetensors(tensors, metadata));
  assertEquals(Array.from(out.tensors.get("__proto__")!.data as Uint8Array), [5]);
  assertEquals(Object.entries(out.metadata), [["__proto__", "m"]]);
});

Deno.test("encodeSafetensors() writes only the viewed part of a subarray", () => {
  const big = new Float32Array([9, 1, 2, 9]);
  const bytes = encodeSafetensors({ w: { dtype: "F32", shape: [2], data: big.subarray(1, 3) } });
  assertEquals(Array.from(decodeSafetensors(bytes).tensors.get("w")!.data as Float32Array), [1, 2]);
});

Deno.test("writeSafetensors() replaces a file atomically and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dbot_safetensors_" });
  try {
    const path = `${dir}/model.safetensors`;
    await Deno.writeTextFile(path, "old contents");
    const tensors = allDTypes();
    await writeSafetensors(path, tensors, { step: "10" });
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names, ["model.safetensors"]);
    assertEquals(
      Array.from(await Deno.readFile(path)),
      Array.from(encodeSafetensors(tensors, { step: "10" })),
    );
    const back = await readSafetensors(path);
    assertEquals(back.metadata, { step: "10" });
    assertEquals(rawBytes(back.tensors.get("i64")!.data), rawBytes(tensors.i64.data));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensors() failures throw and leave no temp file behind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dbot_safetensors_" });
  const list = async () => {
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    return names.sort();
  };
  const t = { w: { dtype: "F32", shape: [1], data: new Float32Array([1]) } as NamedTensor };
  try {
    // The temp file cannot even be created.
    const e = await assertRejects(
      () => writeSafetensors(`${dir}/missing/model.safetensors`, t),
      `Cannot write safetensors file "${dir}/missing/model.safetensors"`,
    );
    assert(e.cause instanceof Deno.errors.NotFound, `cause is ${e.cause}`);
    assertEquals(await list(), []);

    // The temp file is written, but the rename fails: the target is a non-empty directory.
    await Deno.mkdir(`${dir}/taken.safetensors`);
    await Deno.writeTextFile(`${dir}/taken.safetensors/keep`, "x");
    await assertRejects(() => writeSafetensors(`${dir}/taken.safetensors`, t), "Cannot write");
    assertEquals(await list(), ["taken.safetensors"]);

    // Invalid tensors are refused before anything touches the disk.
    await assertRejects(
      () => writeSafetensors(`${dir}/bad.safetensors`, { w: { ...t.w, shape: [2] } }),
      "needs 8 bytes",
    );
    assertEquals(await list(), ["taken.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSafetensors() reports a missing file as SafetensorsError with the cause", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dbot_safetensors_" });
  try {
    const e = await assertRejects(
      () => readSafetensors(`${dir}/nope.safetensors`),
      `Cannot read safetensors file "${dir}/nope.safetensors"`,
    );
    assert(e.cause instanceof Deno.errors.NotFound, `cause is ${e.cause}`);
    await Deno.writeFile(`${dir}/short.safetensors`, new Uint8Array(3));
    await assertRejects(() => readSafetensors(`${dir}/short.safetensors`), "3 bytes long");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSafetensors() reads the golden fixtures written by gen_golden.py", async () => {
  const url = new URL("./fixtures/tiny_vit.safetensors", import.meta.url);
  const { tensors, metadata } = await readSafetensors(url.pathname);
  assert(tensors.size > 0, "no tensors in tiny_vit.safetensors");
  assert(typeof metadata.config === "string", "no config in __metadata__");
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    assertEquals(toFloat32(t).length, n, name);
  }
});
