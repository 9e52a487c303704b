/**
 * `deno task finetune`: fine-tune a pre-trained encoder (mean pool + fc_norm + head, layer
 * decay, drop path, mixup/cutmix, label smoothing). Saves runs/<name>/classifier.safetensors
 * and prints the summary as one JSON line.
 *
 * @module
 */
import { finetune, FINETUNE_CONFIG } from "../src/train/finetune.ts";
import { BACKEND_FLAG, backendFromFlags, NATIVE_LIB_FLAG, parseTaskFlags } from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const flags = parseTaskFlags(
    "deno task finetune --checkpoint PATH --data SPEC [--flags]",
    { ...FINETUNE_CONFIG.flags(), ...BACKEND_FLAG, ...NATIVE_LIB_FLAG },
    { required: ["checkpoint"] },
  );
  const cfg = FINETUNE_CONFIG.resolve(FINETUNE_CONFIG.fromFlags(flags));
  const { backend, reason } = await backendFromFlags(flags);
  console.error(`backend: ${reason}`);
  console.error(`config: ${JSON.stringify(cfg)}`);
  const s = await finetune(backend, cfg, (line) => console.error(line));
  console.log(JSON.stringify(s));
  backend.dispose();
});
