/**
 * Atomic file writes: the bytes go to `<path>.tmp-<pid>-<random>`, which is fsynced, closed
 * and renamed over `path`; on any failure the temp file is removed. `path` always holds
 * either the old file or the complete new one, whenever the process dies.
 *
 * @module
 */

/** Writes `bytes` to `path` atomically. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const random = Array.from(
    crypto.getRandomValues(new Uint8Array(6)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const tmp = `${path}.tmp-${Deno.pid}-${random}`;
  let file: Deno.FsFile | undefined;
  let created = false;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    created = true;
    for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
    await file.sync();
    file.close();
    file = undefined;
    await Deno.rename(tmp, path);
  } catch (e) {
    try {
      file?.close();
    } catch { /* already closed */ }
    if (created) {
      try {
        await Deno.remove(tmp);
      } catch { /* best effort: report the original error */ }
    }
    throw e;
  }
}

/** Writes `text` (UTF-8) to `path` atomically. */
export function writeTextAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text));
}

/** Writes `value` as indented JSON to `path` atomically. */
export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeTextAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/** Removes the temp files that a killed writer left in `dir` (`<file>.tmp-<pid>[-<hex>]`). */
export async function removeStaleTemps(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /\.tmp-\d+(-[0-9a-f]+)?$/.test(e.name)) await Deno.remove(`${dir}/${e.name}`);
  }
}

/**
 * The JSON value in `path`, or null when the file does not exist or is not complete JSON: a
 * progress file of a resumable step, where either means "redo that step". Other read errors
 * (permissions, a folder) are thrown.
 */
export async function readProgressJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return null;
    throw e;
  }
}
