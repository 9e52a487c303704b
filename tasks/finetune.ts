/**
 * `deno task finetune`: fine-tune a pre-trained encoder (mean pool + fc_norm + head, layer
 * decay, drop path, mixup/cutmix, label smoothing). Saves runs/<name>/classifier.safetensors
 * and prints the summary as one JSON line.
 *
 * @module
 */
import { finetune, FINETUNE_CONFIG } from "../src/train/finetune.ts";
import {
  BACKEND_FLAG,
  backendFromFlags,
  NATIVE_LIB_FLAG,
  parseTaskFlags,
  PRINT_CONFIG_FLAG,
} from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const flags = parseTaskFlags(
    "deno task finetune --checkpoint PATH --data SPEC [--flags]",
    { ...FINETUNE_CONFIG.flags(), ...BACKEND_FLAG, ...NATIVE_LIB_FLAG, ...PRINT_CONFIG_FLAG },
    { required: ["checkpoint"] },
  );
  const given = FINETUNE_CONFIG.fromFlags(flags);
  const cfg = FINETUNE_CONFIG.resolve(given);
  if (flags["print-config"] || cfg.recipe) {
    console.error(`resolved configuration${cfg.recipe ? ` (recipe ${cfg.recipe})` : ""}:`);
    console.error(FINETUNE_CONFIG.describe(cfg, given));
    if (flags["print-config"]) return;
  }
  const { backend, reason } = await backendFromFlags(flags);
  console.error(`backend: ${reason}`);
  console.error(`config: ${JSON.stringify(cfg)}`);
  const s = await finetune(backend, cfg, { log: (line) => console.error(line) });
  console.log(JSON.stringify(s));
  backend.dispose();
});
