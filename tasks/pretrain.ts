/**
 * `deno task pretrain`: multi-stage dBOT pre-training (defaults: shapes,
 * vit-micro, two stages, auto backend). Outputs go to runs/<name>/.
 *
 * @module
 */
import { PRETRAIN_CONFIG } from "../src/train/config.ts";
import { pretrain, resumeCommand } from "../src/train/pretrain.ts";
import { backendFromFlags, NATIVE_LIB_FLAG, parseTaskFlags } from "./flags.ts";
import { progressPrinter } from "./progress.ts";
import { main } from "./main.ts";

await main(async () => {
  const flags = parseTaskFlags("deno task pretrain [--flags]", {
    ...PRETRAIN_CONFIG.flags(),
    ...NATIVE_LIB_FLAG,
    resume: {
      type: "boolean",
      help: "continue runs/<name> from its saved state (its config; --backend, --on-nan, " +
        "--strict from this command)",
    },
    quiet: { type: "boolean", help: "no progress output" },
  });
  let cfg = PRETRAIN_CONFIG.resolve(PRETRAIN_CONFIG.fromFlags(flags));
  const saved = flags.resume && await readJson(`${cfg.runsDir}/${cfg.name}/config.json`);
  if (saved) {
    // a resumed run keeps its saved configuration; run controls come from this command
    delete saved.resolved;
    cfg = PRETRAIN_CONFIG.resolve({
      ...saved,
      backend: cfg.backend,
      onNan: cfg.onNan,
      strict: cfg.strict,
    });
  }
  const { backend, reason } = await backendFromFlags(flags, cfg.backend);
  console.log(`backend: ${reason}`);
  console.log(`config: ${JSON.stringify(cfg)}`);
  // Ctrl-C: finish the step, save the state, exit 130; a second Ctrl-C exits at once
  // (the files on disk are always complete: every write is atomic).
  const interrupt = new AbortController();
  const onSigint = () => {
    if (interrupt.signal.aborted) Deno.exit(130);
    console.error("\ninterrupt: saving the state after this step (Ctrl-C again to quit now)");
    interrupt.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  let summary;
  try {
    summary = await pretrain(backend, cfg, {
      resume: Boolean(flags.resume),
      backendReason: reason,
      progress: flags.quiet ? undefined : progressPrinter(),
      log: flags.quiet ? () => {} : console.log,
      signal: interrupt.signal,
    });
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
  backend.dispose();
  if (summary) console.log(`summary: ${JSON.stringify(summary)}`);
  else if (interrupt.signal.aborted) {
    // (without --quiet, pretrain() has logged the step and path already)
    if (flags.quiet) {
      console.error(
        `interrupted: state saved in ${cfg.runsDir}/${cfg.name}/state.safetensors; ` +
          `continue with: ${resumeCommand(cfg)}`,
      );
    }
    Deno.exit(130);
  }
});

/** The JSON object in `path`, or undefined when there is no such file. */
async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}
