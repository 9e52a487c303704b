/**
 * Safetensors files on disk (Deno only): read, read the header alone, write atomically.
 * The format itself (encode/decode on bytes) is `safetensors.ts`, which runs in a browser too.
 *
 * @module
 */
import { writeFileAtomic } from "../util/atomic.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  MAX_HEADER_BYTES,
  type NamedTensor,
  type SafetensorsContents,
  SafetensorsError,
} from "./safetensors.ts";

/**
 * Reads and decodes a safetensors file.
 *
 * @throws {SafetensorsError} on a malformed file, and on I/O errors (the original is `cause`).
 */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new SafetensorsError(path, (e as Error).message, { cause: e });
  }
  return decodeSafetensors(bytes, path);
}

/**
 * The JSON header of a safetensors file (tensor names with dtype, shape and offsets, and
 * `__metadata__`), read alone: the tensors are not read.
 *
 * @throws {Error} naming what is wrong (too short, header over the size limit, cut short, not
 * JSON), and on I/O errors.
 */
export async function readSafetensorsHeader(path: string): Promise<Record<string, unknown>> {
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(path);
    const head = await readExactly(file, 8);
    if (!head) throw new Error("it is shorter than 8 bytes");
    const n = Number(new DataView(head.buffer).getBigUint64(0, true));
    if (n > MAX_HEADER_BYTES) throw new Error(`its header length ${n} is over ${MAX_HEADER_BYTES}`);
    const json = await readExactly(file, n);
    if (!json) throw new Error(`it ends inside its ${n}-byte header`);
    try {
      return JSON.parse(new TextDecoder().decode(json));
    } catch (e) {
      throw new Error(`its header is not JSON (${(e as Error).message})`);
    }
  } finally {
    file?.close();
  }
}

/**
 * The `__metadata__` of a safetensors file, read from its header alone (the tensors are not
 * read); null when the file is missing or is not a readable safetensors file.
 */
export async function readSafetensorsMetadata(
  path: string,
): Promise<Record<string, string> | null> {
  try {
    return ((await readSafetensorsHeader(path)).__metadata__ ?? {}) as Record<string, string>;
  } catch {
    return null;
  }
}

async function readExactly(file: Deno.FsFile, n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  for (let at = 0; at < n;) {
    const got = await file.read(out.subarray(at));
    if (got === null) return null;
    at += got;
  }
  return out;
}

/**
 * Writes a safetensors file atomically: the bytes go to `<path>.tmp-<pid>-<random>`, which is
 * fsynced, closed and renamed over `path`; on any failure the temp file is removed, so
 * `path` holds either the old file or the complete new one.
 *
 * @throws {SafetensorsError} on invalid tensors, and on I/O errors (the original is `cause`).
 */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, NamedTensor> | Record<string, NamedTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata, path); // validate before touching the disk
  try {
    await writeFileAtomic(path, bytes);
  } catch (e) {
    throw new SafetensorsError(path, (e as Error).message, { cause: e, op: "write" });
  }
}
