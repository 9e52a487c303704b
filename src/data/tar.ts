/**
 * The subset of POSIX tar (ustar) that WebDataset shards use: regular files with short
 * names, read by header without unpacking. Reading refuses what could escape or lie:
 * a name with a `..` segment or an absolute path, a bad header checksum, a size that
 * runs past the end of the file (a truncated tar), or a non-octal size field, all before
 * any allocation from the header. Extended (pax) headers are skipped; links, devices and
 * GNU long names are refused.
 *
 * @module
 */
import { DataError } from "./error.ts";

/** A tar block. */
export const TAR_BLOCK = 512;

/** One regular file in a tar: its name and where its bytes are. */
export interface TarEntry {
  /** Member name (relative, no `..`). */
  name: string;
  /** Byte offset of the data in the tar. */
  offset: number;
  /** Data bytes. */
  size: number;
}

function octal(h: Uint8Array, at: number, len: number, what: string, where: string): number {
  let s = "";
  for (let i = at; i < at + len && h[i] !== 0 && h[i] !== 0x20; i++) s += String.fromCharCode(h[i]);
  if (!/^[0-7]*$/.test(s)) throw new DataError(`${where}: the ${what} field "${s}" is not octal`);
  return s === "" ? 0 : parseInt(s, 8);
}

function text(h: Uint8Array, at: number, len: number): string {
  let end = at;
  while (end < at + len && h[end] !== 0) end++;
  return new TextDecoder().decode(h.subarray(at, end));
}

/** Refuses a member name that is absolute or climbs out with `..`. */
export function checkMemberName(name: string, where: string): void {
  if (name === "" || name.startsWith("/") || /^[A-Za-z]:/.test(name) || name.includes("\\")) {
    throw new DataError(`${where}: refused member "${name}": an absolute or empty path`);
  }
  if (name.split("/").some((p) => p === "..")) {
    throw new DataError(`${where}: refused member "${name}": a ".." path climbs out of the shard`);
  }
}

/**
 * Lists the regular files of the tar at `path` (`fileSize` bytes) by reading headers
 * through `readAt(offset, n)`. Throws a {@link DataError} naming the tar and the problem.
 */
export function listTar(
  path: string,
  fileSize: number,
  readAt: (offset: number, n: number) => Uint8Array,
): TarEntry[] {
  const out: TarEntry[] = [];
  let at = 0;
  let paxPath: string | null = null;
  while (true) {
    if (at + TAR_BLOCK > fileSize) {
      throw new DataError(
        `Cannot read shard ${path}: it ends inside a header at byte ${at} of ${fileSize} ` +
          `(truncated); write it again (deno task shard)`,
      );
    }
    const h = readAt(at, TAR_BLOCK);
    if (h.every((b) => b === 0)) break; // end of archive
    const where = `Cannot read shard ${path} (header at byte ${at})`;
    let sum = 0;
    for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
    const stored = octal(h, 148, 8, "checksum", where);
    if (stored !== sum) {
      throw new DataError(
        `${where}: bad header checksum (${stored}, computed ${sum}); not a tar, or corrupt`,
      );
    }
    const size = octal(h, 124, 12, "size", where);
    const type = String.fromCharCode(h[156] || 0x30);
    const dataAt = at + TAR_BLOCK;
    if (dataAt + size > fileSize) {
      throw new DataError(
        `${where}: the member claims ${size} bytes but the file ends ${fileSize - dataAt} ` +
          `bytes later (truncated); write it again (deno task shard)`,
      );
    }
    const prefix = text(h, 345, 155);
    const name = paxPath ?? (prefix ? `${prefix}/${text(h, 0, 100)}` : text(h, 0, 100));
    if (type === "x") {
      paxPath = paxName(readAt(dataAt, Math.min(size, 1 << 16)));
    } else if (type === "g") {
      // global pax header: nothing here uses it
    } else if (type === "0" || type === "7") {
      checkMemberName(name, where);
      out.push({ name, offset: dataAt, size });
      paxPath = null;
    } else if (type === "5") {
      checkMemberName(name, where);
      paxPath = null;
    } else {
      throw new DataError(
        `${where}: refused member "${name}" of type "${type}" (links, devices and GNU long ` +
          `names are not shard members)`,
      );
    }
    at = dataAt + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
  }
  return out;
}

/** The `path` record of a pax extended header, or null. */
function paxName(data: Uint8Array): string | null {
  const s = new TextDecoder().decode(data);
  for (const rec of s.split("\n")) {
    const m = /^\d+ path=(.*)$/.exec(rec);
    if (m) return m[1];
  }
  return null;
}

/** A ustar header for a regular file `name` (≤ 100 bytes) of `size` bytes. */
export function tarHeader(name: string, size: number): Uint8Array {
  const h = new Uint8Array(TAR_BLOCK);
  const enc = new TextEncoder();
  const nameBytes = enc.encode(name);
  if (nameBytes.length > 100) {
    throw new RangeError(`Cannot write tar member "${name}": over 100 bytes`);
  }
  h.set(nameBytes, 0);
  const put = (at: number, len: number, v: number) =>
    h.set(enc.encode(v.toString(8).padStart(len - 1, "0") + "\0"), at);
  put(100, 8, 0o644); // mode
  put(108, 8, 0); // uid
  put(116, 8, 0); // gid
  put(124, 12, size);
  put(136, 12, 0); // mtime: fixed, so a shard's bytes depend on its content only
  h[156] = 0x30; // regular file
  h.set(enc.encode("ustar\0" + "00"), 257);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return h;
}

/** A tar of `members` in order (with the two zero blocks that end it). */
export function writeTar(members: { name: string; data: Uint8Array }[]): Uint8Array {
  let n = 2 * TAR_BLOCK;
  for (const m of members) n += TAR_BLOCK + Math.ceil(m.data.length / TAR_BLOCK) * TAR_BLOCK;
  const out = new Uint8Array(n);
  let at = 0;
  for (const m of members) {
    out.set(tarHeader(m.name, m.data.length), at);
    out.set(m.data, at + TAR_BLOCK);
    at += TAR_BLOCK + Math.ceil(m.data.length / TAR_BLOCK) * TAR_BLOCK;
  }
  return out;
}
