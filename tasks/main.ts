/**
 * Runs a task body and turns failures into one readable line (no stack trace)
 * and a non-zero exit code. `--debug` (a flag of every task) adds the stack.
 *
 * @module
 */

import { quietWaylandProbe } from "../src/backend/webgpu/headless.ts";

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
