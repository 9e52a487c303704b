/**
 * A safe, complete reader and writer for the safetensors checkpoint format.
 *
 * Layout: an 8-byte little-endian u64 header length `N`, then `N` bytes of UTF-8 JSON,
 * `{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, …}`,
 * then the data buffer; offsets are relative to the start of the data buffer.
 *
 * The writer mirrors the Python `safetensors` library byte for byte: tensors sorted by
 * descending dtype size class and then by name, data contiguous in that order, no padding
 * between tensors, header padded with spaces to a multiple of 8 bytes. The reader checks
 * every header field against the file before allocating anything and throws a
 * {@link SafetensorsError} naming the problem and the current values.
 *
 * Data is held "as stored": F16 and BF16 as their raw little-endian bytes in a
 * `Uint8Array` (2 bytes per element); use {@link toFloat32} to get numbers.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors, toFloat32 } from "./safetensors.ts";
 * const bytes = encodeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
 * const { tensors } = decodeSafetensors(bytes);
 * console.log(toFloat32(tensors.get("w")!)); // Float32Array [1, 2]
 * ```
 *
 * Bytes only (no file access: this module runs in a browser too); files are read and
 * written by `safetensors_file.ts`.
 *
 * @module
 */
/** The element types this reader and writer support. */
export type SafetensorsDType = "F32" | "F16" | "BF16" | "I32" | "I64" | "F64" | "U8";

/** One tensor, data as stored (F16 and BF16: raw little-endian bytes in a `Uint8Array`). */
export interface NamedTensor {
  /** Element type. */
  dtype: SafetensorsDType;
  /** Dims, PyTorch (row-major) order; `[]` is a scalar. */
  shape: number[];
  /** Values as stored: F32, I32, F64, I64 typed; F16, BF16 and U8 as bytes. */
  data: Float32Array | Int32Array | Uint8Array | Float64Array | BigInt64Array;
}

/** A decoded safetensors file: tensors in file order, and the `__metadata__` strings. */
export interface SafetensorsContents {
  /** Tensors by name, in the order of their data in the file. */
  tensors: Map<string, NamedTensor>;
  /** The `__metadata__` strings (`{}` where the file has none). */
  metadata: Record<string, string>;
}

/** A malformed safetensors file, or tensors that cannot be written as one. */
export class SafetensorsError extends Error {
  /** The file concerned (`"<memory>"` for byte buffers). */
  readonly file: string;

  /** Builds `Cannot <op> safetensors file "<file>": <problem>`. */
  constructor(
    file: string,
    problem: string,
    options: ErrorOptions & { op?: "read" | "write" } = {},
  ) {
    super(`Cannot ${options.op ?? "read"} safetensors file "${file}": ${problem}`, options);
    this.name = "SafetensorsError";
    this.file = file;
  }
}

/** The reference library's limit: larger headers are refused as corrupt. */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";

interface DTypeInfo {
  /** Bytes per element. */
  size: number;
  /** Position in the reference `Dtype` enum (increasing alignment); the writer sorts on it. */
  rank: number;
  /** The typed array class holding the data as stored. */
  array:
    | typeof Float32Array
    | typeof Int32Array
    | typeof Uint8Array
    | typeof Float64Array
    | typeof BigInt64Array;
}

const DTYPES: Readonly<Record<SafetensorsDType, DTypeInfo>> = Object.freeze({
  U8: { size: 1, rank: 1, array: Uint8Array },
  F16: { size: 2, rank: 7, array: Uint8Array },
  BF16: { size: 2, rank: 8, array: Uint8Array },
  I32: { size: 4, rank: 9, array: Int32Array },
  F32: { size: 4, rank: 11, array: Float32Array },
  F64: { size: 8, rank: 12, array: Float64Array },
  I64: { size: 8, rank: 13, array: BigInt64Array },
});
const DTYPE_NAMES = Object.keys(DTYPES).join(", ");

// Typed arrays use host byte order; the format is little-endian.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDType(s: unknown): s is SafetensorsDType {
  return typeof s === "string" && Object.hasOwn(DTYPES, s);
}

function describe(v: unknown): string {
  if (v === undefined) return "undefined";
  if (typeof v === "bigint") return `${v}n`;
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? s.slice(0, 77) + "..." : s;
}

/** Orders strings by Unicode code point, like Rust's `str::cmp` (UTF-8 byte order). */
function compareCodePoints(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(j)!;
    if (ca !== cb) return ca < cb ? -1 : 1;
    i += ca > 0xffff ? 2 : 1;
    j += cb > 0xffff ? 2 : 1;
  }
  if (i < a.length) return 1;
  return j < b.length ? -1 : 0;
}

/**
 * Element count of `shape`, or `undefined` where it is not a list of non-negative safe
 * integers or the product leaves the safe-integer range.
 */
function elementCount(shape: unknown): number | undefined {
  if (!Array.isArray(shape)) return undefined;
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) return undefined;
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

/** Checks one header entry; nothing is allocated from its values. */
function parseEntry(file: string, name: string, raw: unknown, dataLength: number): Entry {
  const fail = (problem: string): never => {
    throw new SafetensorsError(file, `tensor "${name}" ${problem}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail(`must be an object with dtype, shape and data_offsets: current value is ${describe(raw)}`);
  }
  const info = raw as Record<string, unknown>;
  for (const key of ["dtype", "shape", "data_offsets"]) {
    if (!Object.hasOwn(info, key)) fail(`has no "${key}": current entry is ${describe(raw)}`);
  }
  const { dtype, shape, data_offsets: offsets } = info;
  if (typeof dtype !== "string") {
    fail(`has a non-string dtype: current value is ${describe(dtype)}`);
  }
  if (!isDType(dtype)) {
    fail(
      `has unsupported dtype ${describe(dtype)}: supported dtypes are ${DTYPE_NAMES}; ` +
        `convert the checkpoint to F32 (e.g. in Python) before loading it`,
    );
  }
  const count = elementCount(shape);
  if (count === undefined) {
    fail(
      `has an invalid shape: dims must be non-negative integers whose product is at most ` +
        `${Number.MAX_SAFE_INTEGER}; current value is ${describe(shape)}`,
    );
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
  ) {
    fail(
      `has invalid data_offsets: expected [begin, end] of non-negative integers; ` +
        `current value is ${describe(offsets)}`,
    );
  }
  const [begin, end] = offsets as number[];
  if (begin > end) fail(`has data_offsets begin ${begin} greater than end ${end}`);
  if (end > dataLength) {
    fail(
      `has data_offsets [${begin}, ${end}] past the end of the ${dataLength}-byte data buffer; ` +
        `the file is truncated or corrupt`,
    );
  }
  const bytes = count! * DTYPES[dtype as SafetensorsDType].size;
  if (bytes !== end - begin) {
    fail(
      `with dtype ${dtype} and shape ${describe(shape)} needs ${bytes} bytes, but ` +
        `data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype: dtype as SafetensorsDType, shape: [...(shape as number[])], begin, end };
}

/**
 * Decodes a whole safetensors file held in memory.
 * Every tensor's data is copied into a fresh, aligned buffer, so `bytes` may be reused and
 * may start at any offset.
 *
 * @throws {SafetensorsError} on any malformed header, range or metadata.
 */
export function decodeSafetensors(bytes: Uint8Array, file = "<memory>"): SafetensorsContents {
  if (!HOST_IS_LITTLE_ENDIAN) {
    throw new SafetensorsError(file, "this reader needs a little-endian host");
  }
  if (bytes.length < 8) {
    throw new SafetensorsError(
      file,
      `file is ${bytes.length} bytes long, shorter than the 8-byte header length`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      file,
      `header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit; ` +
        `this is not a safetensors file or it is corrupt`,
    );
  }
  const n = Number(n64);
  if (n > bytes.length - 8) {
    throw new SafetensorsError(
      file,
      `header length is ${n} bytes but only ${bytes.length - 8} bytes follow the 8-byte prefix; ` +
        `the file is truncated or not a safetensors file`,
    );
  }

  let text: string;
  try {
    // ignoreBOM keeps a BOM in the text so that JSON.parse refuses it, as the reference does.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      bytes.subarray(8, 8 + n),
    );
  } catch (e) {
    throw new SafetensorsError(file, `header (${n} bytes) is not valid UTF-8`, { cause: e });
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(
      file,
      `header is not valid JSON (${(e as Error).message}); it starts with ${
        describe(text.slice(0, 40))
      }`,
      { cause: e },
    );
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SafetensorsError(
      file,
      `header must be a JSON object: current value is ${
        Array.isArray(header) ? "an array" : describe(header)
      }`,
    );
  }

  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [key, value] of Object.entries(header)) {
    if (key === METADATA_KEY) {
      // null is accepted as "no metadata", as serde's Option does in the reference.
      if (value === null) continue;
      if (typeof value !== "object" || Array.isArray(value)) {
        throw new SafetensorsError(
          file,
          `__metadata__ must be an object of strings: current value is ${describe(value)}`,
        );
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") {
          throw new SafetensorsError(
            file,
            `__metadata__[${describe(k)}] must be a string: current value is ${describe(v)}`,
          );
        }
        // defineProperty, so that a "__proto__" key stays an ordinary entry
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    entries.push(parseEntry(file, key, value, dataLength));
  }

  // The ranges must tile the data buffer exactly: no overlaps, no gaps, no trailing bytes.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: Entry | undefined;
  for (const e of entries) {
    if (e.begin < covered) {
      throw new SafetensorsError(
        file,
        `tensors "${previous!.name}" [${previous!.begin}, ${previous!.end}] and ` +
          `"${e.name}" [${e.begin}, ${e.end}] overlap`,
      );
    }
    if (e.begin > covered) {
      throw new SafetensorsError(
        file,
        `bytes [${covered}, ${e.begin}) of the data buffer, before tensor "${e.name}", ` +
          `belong to no tensor`,
      );
    }
    covered = e.end;
    previous = e;
  }
  if (covered !== dataLength) {
    throw new SafetensorsError(
      file,
      `the data buffer is ${dataLength} bytes but the tensors cover only ${covered}; ` +
        `${dataLength - covered} trailing bytes belong to no tensor`,
    );
  }

  const tensors = new Map<string, NamedTensor>();
  for (const e of entries) {
    const { array } = DTYPES[e.dtype];
    // slice() copies into a fresh ArrayBuffer, so the typed view is always aligned.
    const copy = bytes.slice(dataStart + e.begin, dataStart + e.end).buffer;
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      data: new array(copy, 0, (e.end - e.begin) / array.BYTES_PER_ELEMENT),
    });
  }
  return { tensors, metadata };
}

function encodeTo(
  file: string,
  tensors: Map<string, NamedTensor> | Record<string, NamedTensor>,
  metadata: Record<string, string> | undefined,
): Uint8Array {
  const fail = (problem: string): never => {
    throw new SafetensorsError(file, problem, { op: "write" });
  };
  if (!HOST_IS_LITTLE_ENDIAN) fail("this writer needs a little-endian host");
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const parts: { name: string; t: NamedTensor; bytes: number }[] = [];
  for (const [name, t] of list) {
    if (name === METADATA_KEY) fail(`"${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (!isDType(t.dtype)) {
      fail(
        `tensor "${name}" has unsupported dtype ${describe(t.dtype)}: ` +
          `supported dtypes are ${DTYPE_NAMES}`,
      );
    }
    const { size, array } = DTYPES[t.dtype];
    const count = elementCount(t.shape);
    if (count === undefined) {
      fail(
        `tensor "${name}" has an invalid shape: dims must be non-negative integers; ` +
          `current value is ${describe(t.shape)}`,
      );
    }
    if (!(t.data instanceof array)) {
      fail(
        `tensor "${name}" with dtype ${t.dtype} needs its data in a ${array.name}: ` +
          `current value is a ${(t.data as object)?.constructor?.name ?? typeof t.data}`,
      );
    }
    const bytes = count! * size;
    if (t.data.byteLength !== bytes) {
      fail(
        `tensor "${name}" with dtype ${t.dtype} and shape ${describe(t.shape)} needs ` +
          `${bytes} bytes of data: current data has ${t.data.byteLength}`,
      );
    }
    parts.push({ name, t, bytes });
  }
  // The reference library's order: descending dtype alignment, then name.
  parts.sort((a, b) =>
    DTYPES[b.t.dtype].rank - DTYPES[a.t.dtype].rank || compareCodePoints(a.name, b.name)
  );

  // No prototype, so that a tensor named "__proto__" is an ordinary key.
  const header: Record<string, unknown> = Object.create(null);
  const meta = metadata ?? {};
  // An empty metadata object is omitted, so decode → encode reproduces a file without one.
  if (Object.keys(meta).length > 0) {
    for (const [k, v] of Object.entries(meta)) {
      if (typeof v !== "string") {
        fail(`metadata[${describe(k)}] must be a string: current value is ${describe(v)}`);
      }
    }
    header[METADATA_KEY] = meta;
  }
  let offset = 0;
  for (const { name, t, bytes } of parts) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // JSON.stringify keeps insertion order (integer-like keys excepted) and escapes like serde_json.
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength); // pad with spaces
  let at = 8 + headerLength;
  for (const { t, bytes } of parts) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, bytes), at);
    at += bytes;
  }
  return out;
}

/**
 * Encodes tensors as a safetensors file, byte for byte as the Python library writes them.
 * An empty `metadata` is left out of the header; `file` names the destination in errors.
 *
 * @throws {SafetensorsError} where a tensor's data does not match its dtype and shape.
 */
export function encodeSafetensors(
  tensors: Map<string, NamedTensor> | Record<string, NamedTensor>,
  metadata?: Record<string, string>,
  file = "<memory>",
): Uint8Array {
  return encodeTo(file, tensors, metadata);
}

/** `2^e` for integer `e`, exactly. */
const pow2 = (e: number): number => Math.pow(2, e);

/** Exact IEEE binary16 → number, incl. subnormals, ±inf and NaN. */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * pow2(-24); // zero or subnormal
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (mant + 1024) * pow2(exp - 25);
}

/**
 * The tensor's values as a fresh `Float32Array`: F32 copied, others converted.
 * F16 and BF16 decode exactly (every value is representable in f32); F64 and I64 round to
 * the nearest f32.
 */
export function toFloat32(t: NamedTensor): Float32Array {
  const { data } = t;
  switch (t.dtype) {
    case "F32":
      return Float32Array.from(data as Float32Array);
    case "F16": {
      const u8 = data as Uint8Array;
      const out = new Float32Array(u8.length >> 1);
      for (let i = 0; i < out.length; i++) out[i] = halfToNumber(u8[2 * i] | (u8[2 * i + 1] << 8));
      return out;
    }
    case "BF16": {
      // bf16 is the top half of an f32: shift the bits into place.
      const u8 = data as Uint8Array;
      const out = new Float32Array(u8.length >> 1);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) bits[i] = (u8[2 * i] << 16) | (u8[2 * i + 1] << 24);
      return out;
    }
    case "I64": {
      const src = data as BigInt64Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
      return out;
    }
    case "F64":
    case "I32":
    case "U8":
      return Float32Array.from(data as Float64Array | Int32Array | Uint8Array);
    default:
      throw new SafetensorsError(
        "<memory>",
        `cannot convert dtype ${describe(t.dtype)} to F32: supported dtypes are ${DTYPE_NAMES}`,
      );
  }
}
