/**
 * `deno task step-bench`: times the full pre-training step and prints one JSON line.
 *
 * @module
 */
import { helpText, parseFlags } from "../src/util/cli.ts";
import { parseBackendKind, selectBackend } from "../src/backend/select.ts";
import { stepBench } from "../src/train/step_bench.ts";
import { positiveInt } from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const spec = {
    model: { type: "string", default: "vit-tiny", help: "model preset" },
    "img-size": { type: "string", default: "32", help: "image size" },
    "patch-size": { type: "string", default: "4", help: "patch size" },
    batch: { type: "string", default: "64", help: "images per step" },
    steps: { type: "string", default: "5", help: "timed steps" },
    warmup: { type: "string", default: "2", help: "untimed warm-up steps" },
    "drop-path": { type: "string", default: "0.1", help: "drop-path rate" },
    backend: { type: "string", default: "auto", help: "auto | cpu | webgpu" },
    help: { type: "boolean", help: "show this help" },
  } as const;
  const flags = parseFlags(Deno.args, spec);
  if (flags.help) {
    console.log(
      helpText(
        "deno task step-bench [--model vit-tiny --img-size 32 --patch-size 4 --batch 64 --backend cpu]",
        spec,
      ),
    );
    return;
  }
  const { backend } = await selectBackend(parseBackendKind(String(flags.backend)));
  const r = await stepBench(backend, {
    model: String(flags.model),
    imgSize: positiveInt(flags["img-size"], "img-size")!,
    patchSize: positiveInt(flags["patch-size"], "patch-size")!,
    batch: positiveInt(flags.batch, "batch")!,
    steps: positiveInt(flags.steps, "steps")!,
    warmup: Number(flags.warmup),
    dropPath: Number(flags["drop-path"]),
  });
  console.log(JSON.stringify(r));
  backend.dispose();
});
