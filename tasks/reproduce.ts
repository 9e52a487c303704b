/**
 * `deno task reproduce [--budget small|full]`: the Fashion-MNIST reproduction table (random
 * init, pixel target, dBOT 1/2/3 stages, dBOT from a larger teacher; k-NN, linear probe,
 * fine-tune, CKA and attention distance). Writes runs/reproduce-<budget>/results.{md,json}.
 *
 * @module
 */
import { reproduce, REPRODUCE_CONFIG } from "../src/train/reproduce.ts";
import { BACKEND_FLAG, backendFromFlags, NATIVE_LIB_FLAG, parseTaskFlags } from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const flags = parseTaskFlags(
    "deno task reproduce [--budget small|full]",
    { ...REPRODUCE_CONFIG.flags(), ...BACKEND_FLAG, ...NATIVE_LIB_FLAG },
  );
  const cfg = REPRODUCE_CONFIG.resolve(REPRODUCE_CONFIG.fromFlags(flags));
  const { backend, reason } = await backendFromFlags(flags);
  console.log(`backend: ${reason}`);
  const md = await reproduce(backend, { ...cfg, backend: backend.name });
  console.log(md);
  backend.dispose();
});
