/**
 * `deno task reproduce [--budget small|full]`: the Fashion-MNIST reproduction table (random
 * init, pixel target, dBOT 1/2/3 stages, dBOT from a larger teacher; k-NN, linear probe,
 * fine-tune, CKA and attention distance). Writes runs/reproduce-<budget>/results.{md,json}.
 *
 * @module
 */
import { helpText, parseFlags } from "../src/util/cli.ts";
import { parseBackendKind, selectBackend } from "../src/backend/select.ts";
import { reproduce } from "../src/eval/reproduce.ts";
import { main } from "./main.ts";

await main(async () => {
  const spec = {
    budget: {
      type: "string",
      default: "small",
      help: "small (~5 min smoke test) | full (~30 min on 2 CPU cores)",
    },
    data: { type: "string", default: "fashion-mnist", help: "dataset (Fashion-MNIST by default)" },
    seed: { type: "string", default: "0", help: "seed of every run" },
    backend: { type: "string", default: "auto", help: "auto | cpu | webgpu" },
    help: { type: "boolean", help: "show this help" },
  } as const;
  const flags = parseFlags(Deno.args, spec);
  if (flags.help) {
    console.log(helpText("deno task reproduce [--budget small|full]", spec));
    Deno.exit(0);
  }
  const budget = String(flags.budget);
  if (budget !== "small" && budget !== "full") {
    throw new TypeError(`Cannot use --budget ${budget}: give small or full`);
  }
  const seed = Number(flags.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new TypeError(`Cannot use --seed ${flags.seed}`);
  const kind = parseBackendKind(String(flags.backend));
  const { backend, reason } = await selectBackend(kind);
  console.log(`backend: ${reason}`);
  const md = await reproduce(backend, {
    budget,
    data: String(flags.data),
    runsDir: "runs",
    seed,
    backend: backend.name,
  });
  console.log(md);
  backend.dispose();
});
