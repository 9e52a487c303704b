/**
 * `deno task linprobe`: linear probe (BatchNorm without affine + Linear, LARS) on the frozen
 * cls token of a checkpoint. Prints one JSON line on stdout; progress goes to stderr.
 *
 * @module
 */
import { LINPROBE_CONFIG, linprobeCheckpoint } from "../src/train/linprobe.ts";
import { BACKEND_FLAG, backendFromFlags, NATIVE_LIB_FLAG, parseTaskFlags } from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const flags = parseTaskFlags(
    "deno task linprobe --checkpoint PATH --data SPEC [--flags]",
    { ...LINPROBE_CONFIG.flags(), ...BACKEND_FLAG, ...NATIVE_LIB_FLAG },
    { required: ["checkpoint"] },
  );
  const cfg = LINPROBE_CONFIG.resolve(LINPROBE_CONFIG.fromFlags(flags));
  const { backend, reason } = await backendFromFlags(flags);
  console.error(`backend: ${reason}`);
  console.error(`linprobe: ${JSON.stringify(cfg)}`);
  const t0 = performance.now();
  const r = await linprobeCheckpoint(backend, cfg);
  // LARS moves the weight by ≈ lr·0.001/(1 − 0.9) of its norm per step; the reference pairs
  // lr 6.4 with ~7000 steps. Far fewer LR·steps leave the head near its init.
  if (r.lr * r.steps < 200) {
    console.error(
      `linprobe: warning: ${r.steps} steps at lr ${r.lr} is little for LARS (reference ≈ 7000 × 6.4); ` +
        `raise --base-lr or --epochs`,
    );
  }
  console.error(`linprobe: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(JSON.stringify({
    train_top1: r.trainTop1,
    test_top1: r.testTop1,
    train: r.train,
    test: r.test,
    dim: r.dim,
    lr: r.lr,
    steps: r.steps,
    last_loss: r.lastLoss,
  }));
  backend.dispose();
});
