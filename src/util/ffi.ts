/**
 * Whether `Deno.dlopen(path)` is allowed without asking: a library outside the granted
 * `--allow-ffi` list (a bare name like `libopenblas.so.0` never matches a scoped grant)
 * would otherwise stop a task at a permission prompt in a terminal.
 *
 * @module
 */

/** True when this process may open the library at `path` without a prompt. */
export function ffiGranted(path: string): boolean {
  return Deno.permissions.querySync({ name: "ffi", path }).state === "granted";
}
