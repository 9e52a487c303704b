/**
 * SHA-256 as hex, for the "same config / same code / same weights" checks between ranks.
 *
 * @example
 * ```ts
 * import { sha256Hex } from "./digest.ts";
 * const a = await sha256Hex("abc");
 * const b = await sha256Hex([new TextEncoder().encode("a"), new TextEncoder().encode("bc")]);
 * if (a !== b) throw new Error("the parts are hashed as one run of bytes");
 * ```
 *
 * @module
 */

/** SHA-256 of `data` (a string as UTF-8, or byte parts one after another) as 64 hex digits. */
export async function sha256Hex(
  data: string | Uint8Array | readonly Uint8Array[],
): Promise<string> {
  const parts = typeof data === "string"
    ? [new TextEncoder().encode(data)]
    : data instanceof Uint8Array
    ? [data]
    : data;
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}
