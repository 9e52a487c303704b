/**
 * `deno task analyze`: mean attention distance, top-k singular-value share and linear CKA
 * of one or more checkpoints on the same test images. Writes runs/analyze/<name>/
 * (analysis.json, mad.svg, mad_heads_<i>.svg, svshare.svg, cka.svg).
 *
 * @module
 */
import { analyzeCheckpoints } from "../src/eval/analyze.ts";
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
    checkpoint: { type: "string", multiple: true, help: "checkpoint (repeat for several)" },
    data: { type: "string", default: "shapes", help: "shapes | fashion-mnist[:DIR] | DIR" },
    limit: { type: "string", default: "256", help: "test images analysed" },
    name: { type: "string", default: "default", help: "outputs in runs/analyze/<name>/" },
    heads: { type: "string", help: "attention heads when a checkpoint does not store them" },
    ...BACKEND_FLAG,
    ...NATIVE_LIB_FLAG,
  } as const;
  const flags = parseTaskFlags(
    "deno task analyze --checkpoint A [--checkpoint B …] --data SPEC [--limit N]",
    spec,
    { required: ["checkpoint"] },
  );
  const checkpoints = flags.checkpoint as string[];
  const { backend, reason } = await backendFromFlags(flags);
  console.error(`backend: ${reason}`);
  const outDir = `runs/analyze/${flags.name}`;
  const r = await analyzeCheckpoints(backend, {
    checkpoints,
    data: String(flags.data),
    limit: positiveInt(flags.limit, "limit"),
    heads: positiveInt(flags.heads, "heads"),
    outDir,
  });
  for (const m of r.models) {
    console.log(
      `${m.label}: attention distance per layer (px) [${m.madMean.map((v) => v.toFixed(2))}], ` +
        `top-1 sv share [${m.svShare.map((s) => s[0].toFixed(3))}]`,
    );
  }
  for (const c of r.cka) {
    console.log(`CKA ${c.a} vs ${c.b}: per layer [${c.diagonal.map((v) => v.toFixed(3))}]`);
  }
  console.log(`wrote ${outDir}/analysis.json and SVGs (${r.images} images)`);
  backend.dispose();
});
