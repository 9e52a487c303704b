/**
 * Runs a task body and turns failures into one readable line (no stack trace)
 * and a non-zero exit code. `--debug` (a flag of every task) adds the stack.
 *
 * @module
 */

/** Awaits `body`; on an error prints `error: <message>` (with a hint for permission errors) and exits 1. */
export async function main(body: () => Promise<void>): Promise<void> {
  quietWaylandProbe();
  try {
    await body();
  } catch (e) {
    const err = e as Error;
    let msg = err.message;
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
      msg += "\nhint: tasks write only under runs/ and read data and checkpoints; " +
        "choose an output path under runs/ (or run the script with deno run and your own --allow-write)";
    }
    console.error(`error: ${msg}`);
    // read from the arguments, so that it works even when the flags do not parse
    if (Deno.args.includes("--debug")) console.error(err.stack);
    Deno.exit(1);
  }
}

/**
 * Mesa's Vulkan device-selection layer, which runs when WebGPU looks for an adapter, asks
 * libwayland for a display; without `XDG_RUNTIME_DIR` (a headless terminal, ssh, a
 * container) libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set in the
 * environment." twice, although nothing is wrong. Where it is unset, point it at /tmp for
 * this process: the display lookup then fails quietly, as it would anyway. Needs
 * `--allow-env=XDG_RUNTIME_DIR` (every task has it); without it, nothing changes.
 */
function quietWaylandProbe(): void {
  if (Deno.build.os !== "linux") return;
  // query first: a plain read without the permission would prompt in a terminal
  const env = { name: "env", variable: "XDG_RUNTIME_DIR" } as const;
  if (Deno.permissions.querySync(env).state !== "granted") return;
  if (!Deno.env.get("XDG_RUNTIME_DIR")) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
}
