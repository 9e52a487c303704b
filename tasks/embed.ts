/**
 * `deno task embed`: features of a dataset split through a checkpoint's encoder,
 * written as safetensors (`features [N, D]` F32, `labels [N]` I32).
 *
 * @module
 */
import { embedDataset, parseTokenPooling } from "../src/eval/embed_file.ts";
import { writeSafetensors } from "../src/io/safetensors_file.ts";
import {
  BACKEND_FLAG,
  backendFromFlags,
  NATIVE_LIB_FLAG,
  parseList,
  parseSplit,
  parseTaskFlags,
  positiveInt,
} from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const spec = {
    checkpoint: { type: "string", help: "ViT checkpoint (.safetensors, timm names)" },
    data: {
      type: "string",
      default: "shapes",
      help: "shapes | fashion-mnist[:DIR] | DIR of class folders",
    },
    split: { type: "string", default: "test", help: "train | test" },
    pool: { type: "string", default: "cls", help: "cls | mean (of patch tokens)" },
    ...BACKEND_FLAG,
    ...NATIVE_LIB_FLAG,
    "img-size": { type: "string", help: "resize images to N (default: the checkpoint's)" },
    heads: {
      type: "string",
      help: "attention heads when the checkpoint does not store them (default D/64)",
    },
    mean: { type: "string", help: "normalisation mean a,b,c (default: stored, else ImageNet)" },
    std: { type: "string", help: "normalisation std a,b,c" },
    batch: { type: "string", default: "64", help: "images per forward pass" },
    limit: { type: "string", help: "embed only the first N images" },
    out: {
      type: "string",
      default: "runs/embed/features.safetensors",
      help: "output file (under runs/)",
    },
  } as const;
  const flags = parseTaskFlags(
    "deno task embed --checkpoint PATH [--data SPEC] [--out PATH.safetensors]",
    spec,
    { required: ["checkpoint"] },
  );
  const opts = {
    checkpoint: String(flags.checkpoint),
    data: String(flags.data),
    split: parseSplit(String(flags.split)),
    pool: parseTokenPooling(String(flags.pool)),
    imgSize: positiveInt(flags["img-size"], "img-size"),
    heads: positiveInt(flags.heads, "heads"),
    mean: parseList(flags.mean, "mean"),
    std: parseList(flags.std, "std"),
    batch: positiveInt(flags.batch, "batch"),
    limit: positiveInt(flags.limit, "limit"),
  };
  const out = String(flags.out);
  // fail before the work if the output directory cannot be written
  await Deno.mkdir(out.slice(0, Math.max(0, out.lastIndexOf("/"))) || ".", { recursive: true });
  const { backend, reason } = await backendFromFlags(flags);
  console.log(`backend: ${reason}`);
  const t0 = performance.now();
  const r = await embedDataset(backend, opts);
  const v = r.vit;
  console.log(
    `embedded ${r.count} ${opts.split} images of ${opts.data} with D ${v.embedDim}, depth ${v.depth}, ` +
      `heads ${v.numHeads}, patch ${v.patchSize}, img ${v.imgSize}, pool ${opts.pool}, ` +
      `mean [${r.mean}] std [${r.std}] in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  await writeSafetensors(out, {
    features: { dtype: "F32", shape: [r.count, r.dim], data: r.features },
    labels: { dtype: "I32", shape: [r.count], data: r.labels },
  }, { config: JSON.stringify({ ...opts, vit: v, mean: r.mean, std: r.std }) });
  console.log(`wrote ${out}`);
  backend.dispose();
});
