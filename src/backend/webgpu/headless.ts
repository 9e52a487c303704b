/**
 * Deno only: keeps the WebGPU adapter probe quiet on a headless Linux terminal. (Not part
 * of the browser-safe core: `context.ts` stays free of `Deno`.)
 *
 * @module
 */

/**
 * Mesa's Vulkan device-selection layer, which runs when WebGPU looks for an adapter, asks
 * libwayland for a display; without `XDG_RUNTIME_DIR` (a headless terminal, ssh, a
 * container) libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set in the
 * environment." twice, although nothing is wrong. Where it is unset and this process may
 * set it (`--allow-env=XDG_RUNTIME_DIR`: every task has it), point it at /tmp for this
 * process: the display lookup then fails quietly, as it would anyway. Without the
 * permission nothing changes (reading it would prompt), and the lines may appear.
 */
export function quietWaylandProbe(): void {
  if (Deno.build.os !== "linux") return;
  // query first: a plain read without the permission would prompt in a terminal
  const env = { name: "env", variable: "XDG_RUNTIME_DIR" } as const;
  if (Deno.permissions.querySync(env).state !== "granted") return;
  if (!Deno.env.get("XDG_RUNTIME_DIR")) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
}
