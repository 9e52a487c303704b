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

/** True for the errors Deno throws when a permission (FFI, env, …) is not granted. */
export function isPermissionError(e: unknown): boolean {
  return e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied;
}

/**
 * The library path an environment variable names (`DBOT_OPENBLAS`, `DBOT_TURBOJPEG`), or
 * undefined when it is unset, empty or not readable (no `--allow-env`).
 */
export function libraryPathFromEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch (e) {
    if (isPermissionError(e)) return undefined;
    throw e;
  }
}
