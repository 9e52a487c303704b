/**
 * `deno task linprobe`: linear probe (BatchNorm without affine + Linear, LARS) on the frozen
 * cls token of a checkpoint. Prints one JSON line on stdout; progress goes to stderr.
 *
 * @module
 */
import { helpText, parseFlags } from "../src/util/cli.ts";
import { parseBackendKind, selectBackend } from "../src/backend/select.ts";
import { linprobeCheckpoint } from "../src/eval/linprobe.ts";
import { positiveInt } from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const spec = {
    checkpoint: { type: "string", help: "ViT checkpoint (.safetensors, timm names)" },
    data: { type: "string", default: "shapes", help: "shapes | fashion-mnist[:DIR] | DIR" },
    "train-limit": { type: "string", help: "first N training images (default all)" },
    "test-limit": { type: "string", help: "first N test images (default all)" },
    epochs: { type: "string", default: "90", help: "epochs" },
    "warmup-epochs": { type: "string", default: "10", help: "linear warmup epochs" },
    batch: { type: "string", default: "256", help: "batch size; lr = base-lr × batch/256" },
    "base-lr": { type: "string", default: "0.1", help: "LARS base LR (raise it for few steps)" },
    "weight-decay": { type: "string", default: "0", help: "weight decay on the head weight" },
    seed: { type: "string", default: "0", help: "head init and batch order" },
    heads: { type: "string", help: "attention heads when the checkpoint does not store them" },
    backend: { type: "string", default: "auto", help: "auto | cpu | webgpu" },
    help: { type: "boolean", help: "show this help" },
  } as const;
  const flags = parseFlags(Deno.args, spec);
  if (flags.help || !flags.checkpoint) {
    console.log(helpText("deno task linprobe --checkpoint PATH --data SPEC [--flags]", spec));
    Deno.exit(flags.help ? 0 : 2);
  }
  const num = (k: keyof typeof spec): number => {
    const v = Number(flags[k]);
    if (!Number.isFinite(v) || v < 0) throw new TypeError(`Cannot use --${k} ${flags[k]}`);
    return v;
  };
  const run = {
    checkpoint: String(flags.checkpoint),
    data: String(flags.data),
    trainLimit: positiveInt(flags["train-limit"], "train-limit"),
    testLimit: positiveInt(flags["test-limit"], "test-limit"),
    epochs: positiveInt(flags.epochs, "epochs"),
    warmupEpochs: num("warmup-epochs"),
    batch: positiveInt(flags.batch, "batch"),
    baseLr: num("base-lr"),
    weightDecay: num("weight-decay"),
    seed: num("seed"),
    heads: positiveInt(flags.heads, "heads"),
  };
  const { backend, reason } = await selectBackend(parseBackendKind(String(flags.backend)));
  console.error(`backend: ${reason}`);
  console.error(`linprobe: ${JSON.stringify(run)}`);
  const t0 = performance.now();
  const r = await linprobeCheckpoint(backend, run);
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
