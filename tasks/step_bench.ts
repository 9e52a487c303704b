/**
 * `deno task step-bench`: times the full pre-training step and prints one JSON line.
 *
 * @module
 */
import { stepBench } from "../src/train/step_bench.ts";
import {
  BACKEND_FLAG,
  backendFromFlags,
  NATIVE_LIB_FLAG,
  parseTaskFlags,
  positiveInt,
} from "./flags.ts";
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
    ...BACKEND_FLAG,
    ...NATIVE_LIB_FLAG,
  } as const;
  const flags = parseTaskFlags(
    "deno task step-bench [--model vit-tiny --img-size 32 --patch-size 4 --batch 64 --backend cpu]",
    spec,
  );
  const { backend } = await backendFromFlags(flags);
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
