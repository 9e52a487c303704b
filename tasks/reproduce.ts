/**
 * `deno task reproduce [--budget small|medium|long] [--seeds 0,1,2] [--base-lr X]`: the
 * Fashion-MNIST reproduction table (random init, MAE, dBOT 1/2/3 stages at equal epochs, dBOT
 * from a larger teacher, raw pixels; fine-tuning, linear probe and k-NN on the cls token and
 * the mean of the patch tokens, k-NN curves, CKA and attention distance). Writes
 * runs/reproduce-<budget>/results.{md,json} and the curve plots.
 *
 * Resumable: Ctrl-C saves the current pre-training after its current step and exits 130;
 * the same command continues (finished rows are read back, unfinished ones resume).
 *
 * @module
 */
import { reproduce, REPRODUCE_CONFIG, reproduceCommand } from "../src/reproduce/mod.ts";
import { BACKEND_FLAG, backendFromFlags, NATIVE_LIB_FLAG, parseTaskFlags } from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const flags = parseTaskFlags(
    "deno task reproduce [--budget small|medium|long] [--seeds 0,1,2]",
    { ...REPRODUCE_CONFIG.flags(), ...BACKEND_FLAG, ...NATIVE_LIB_FLAG },
  );
  const cfg = REPRODUCE_CONFIG.resolve(REPRODUCE_CONFIG.fromFlags(flags));
  const { backend, reason } = await backendFromFlags(flags);
  console.log(`backend: ${reason}`);
  // Ctrl-C: the current pre-training step finishes and its state is saved; a second quits now
  const interrupt = new AbortController();
  const onSigint = () => {
    if (interrupt.signal.aborted) Deno.exit(130);
    console.error("\ninterrupt: saving the state after this step (Ctrl-C again to quit now)");
    interrupt.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  let report;
  try {
    report = await reproduce(backend, { ...cfg, backend: backend.name }, {
      signal: interrupt.signal,
    });
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
  backend.dispose();
  if (!report) {
    console.error(`interrupted: continue with: ${reproduceCommand(cfg)}`);
    Deno.exit(130);
  }
  console.log(report.markdown);
});
