/**
 * `deno task pretrain`: multi-stage dBOT pre-training (defaults: shapes,
 * vit-micro, two stages, auto backend). Outputs go to runs/<name>/.
 *
 * @module
 */
import { type FlagSpec, helpText, parseFlags } from "../src/util/cli.ts";
import { parseBackendKind, selectBackend } from "../src/backend/select.ts";
import { PRETRAIN_DEFAULTS, type PretrainConfig, resolvePretrain } from "../src/train/config.ts";
import { pretrain, resumeCommand } from "../src/train/pretrain.ts";
import { progressPrinter } from "./progress.ts";
import { main } from "./main.ts";

await main(async () => {
  // One flag per config key, kebab-case; values parsed by the default's type.
  const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const HELP: Partial<Record<keyof PretrainConfig, string>> = {
    name: "run name: outputs in runs/<name>/",
    data: "shapes | fashion-mnist[:DIR] | DIR of class folders",
    model: "vit-micro | vit-tiny | vit-small | vit-base | vit-large | vit-huge",
    imgSize: "image size (0: the dataset's)",
    teacher: "random | random0 | pixels | PATH.safetensors",
    boundaries:
      "stage boundaries in epochs, e.g. 0,800,1600 (overrides --stages/--epochs-per-stage)",
    baseLr: "base LR; effective = base × batch·accum / 256",
    clipGrad: "gradient-norm clip (0: none)",
    trainLimit: "train on the first N images (0: all)",
    mean: "normalisation mean a,b,c (default: measured)",
    std: "normalisation std a,b,c (default: measured)",
    onNan: "stop | skip: a step with a non-finite loss or gradient stops the run, or is skipped",
    strict: "a corrupt image in a folder dataset is an error (default: skipped with a warning)",
  };
  const spec: Record<string, FlagSpec> = {};
  for (const [k, v] of Object.entries(PRETRAIN_DEFAULTS)) {
    spec[kebab(k)] = typeof v === "boolean"
      ? { type: "boolean", help: HELP[k as keyof PretrainConfig] ?? k }
      : {
        type: "string",
        default: Array.isArray(v) ? v.join(",") : String(v),
        help: HELP[k as keyof PretrainConfig] ?? k,
      };
  }
  spec.resume = {
    type: "boolean",
    help: "continue runs/<name> from its saved state (its config; --backend, --on-nan, " +
      "--strict from this command)",
  };
  spec.quiet = { type: "boolean", help: "no progress output" };
  spec.help = { type: "boolean", help: "show this help" };

  const flags = parseFlags(Deno.args, spec);
  if (flags.help) {
    console.log(helpText("deno task pretrain [--flags]", spec));
    Deno.exit(0);
  }
  const overrides: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(PRETRAIN_DEFAULTS)) {
    const raw = String(flags[kebab(k)]);
    if (typeof v === "boolean") overrides[k] = Boolean(flags[kebab(k)]);
    else if (Array.isArray(v)) overrides[k] = raw === "" ? [] : raw.split(",").map(Number);
    else if (typeof v === "number") overrides[k] = raw === "inf" ? Infinity : Number(raw);
    else overrides[k] = raw;
  }
  let cfg = resolvePretrain(overrides);
  const savedConfig = `${cfg.runsDir}/${cfg.name}/config.json`;
  if (flags.resume && (await exists(savedConfig))) {
    // a resumed run keeps its saved configuration; run controls come from this command
    const saved = JSON.parse(await Deno.readTextFile(savedConfig));
    delete saved.resolved;
    cfg = resolvePretrain({ ...saved, backend: cfg.backend, onNan: cfg.onNan, strict: cfg.strict });
  }
  const { backend, reason } = await selectBackend(parseBackendKind(cfg.backend));
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

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
