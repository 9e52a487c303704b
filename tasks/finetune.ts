/**
 * `deno task finetune`: fine-tune a pre-trained encoder (mean pool + fc_norm + head, layer
 * decay, drop path, mixup/cutmix, label smoothing). Saves runs/<name>/classifier.safetensors
 * and prints the summary as one JSON line.
 *
 * @module
 */
import { type FlagSpec, helpText, parseFlags } from "../src/util/cli.ts";
import { parseBackendKind, selectBackend } from "../src/backend/select.ts";
import {
  finetune,
  FINETUNE_DEFAULTS,
  type FinetuneConfig,
  resolveFinetune,
} from "../src/train/finetune.ts";
import { main } from "./main.ts";

await main(async () => {
  const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const spec: Record<string, FlagSpec> = {};
  for (const [k, v] of Object.entries(FINETUNE_DEFAULTS)) {
    spec[kebab(k)] = { type: "string", default: String(v), help: k };
  }
  delete spec.save; // the task always writes the classifier
  spec.checkpoint.help = "pre-trained ViT checkpoint (.safetensors, timm names)";
  spec.data.help = "shapes | fashion-mnist[:DIR] | DIR of class folders";
  spec.backend = { type: "string", default: "auto", help: "auto | cpu | webgpu" };
  spec.help = { type: "boolean", help: "show this help" };
  const flags = parseFlags(Deno.args, spec);
  if (flags.help || !flags.checkpoint) {
    console.log(helpText("deno task finetune --checkpoint PATH --data SPEC [--flags]", spec));
    Deno.exit(flags.help ? 0 : 2);
  }
  const overrides: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(FINETUNE_DEFAULTS)) {
    if (typeof v === "boolean") continue;
    const raw = String(flags[kebab(k)]);
    overrides[k] = typeof v === "number" ? Number(raw) : raw;
  }
  const cfg: FinetuneConfig = resolveFinetune(overrides);
  const { backend, reason } = await selectBackend(parseBackendKind(String(flags.backend)));
  console.error(`backend: ${reason}`);
  console.error(`config: ${JSON.stringify(cfg)}`);
  const s = await finetune(backend, cfg, (line) => console.error(line));
  console.log(JSON.stringify(s));
  backend.dispose();
});
