/**
 * `deno task analyze`: mean attention distance, top-k singular-value share and linear CKA
 * of one or more checkpoints on the same test images. Writes runs/analyze/<name>/
 * (analysis.json, mad.svg, mad_heads_<i>.svg, svshare.svg, cka.svg).
 *
 * @module
 */
import { helpText, parseFlags } from "../src/util/cli.ts";
import { parseBackendKind, selectBackend } from "../src/backend/select.ts";
import { analyzeCheckpoints } from "../src/eval/analyze.ts";
import { positiveInt } from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const spec = {
    checkpoint: { type: "string", multiple: true, help: "checkpoint (repeat for several)" },
    data: { type: "string", default: "shapes", help: "shapes | fashion-mnist[:DIR] | DIR" },
    limit: { type: "string", default: "256", help: "test images analysed" },
    name: { type: "string", default: "default", help: "outputs in runs/analyze/<name>/" },
    heads: { type: "string", help: "attention heads when a checkpoint does not store them" },
    backend: { type: "string", default: "auto", help: "auto | cpu | webgpu" },
    help: { type: "boolean", help: "show this help" },
  } as const;
  // parseFlags keeps the last of a repeated flag: collect --checkpoint values first
  const checkpoints: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < Deno.args.length; i++) {
    const a = Deno.args[i];
    if (a === "--checkpoint") checkpoints.push(Deno.args[++i] ?? "");
    else if (a.startsWith("--checkpoint=")) checkpoints.push(a.slice(13));
    else rest.push(a);
  }
  const { checkpoint: _, ...others } = spec;
  const flags = parseFlags(rest, others);
  if (flags.help || checkpoints.length === 0) {
    console.log(
      helpText("deno task analyze --checkpoint A [--checkpoint B …] --data SPEC [--limit N]", spec),
    );
    Deno.exit(flags.help ? 0 : 2);
  }
  const { backend, reason } = await selectBackend(parseBackendKind(String(flags.backend)));
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
