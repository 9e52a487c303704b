/**
 * Compile time of every WebGPU pipeline one dBOT pre-training step uses (teacher forward,
 * student forward/backward, clip, AdamW), one pipeline at a time, with Mesa's shader cache
 * off (a new machine's cold cache). Prints a markdown table `kernel | constants | compile
 * ms` per model, slowest first, and the total.
 *
 * Models: `golden` (the test suite's whole-model fixture: 16 px, patch 4, D 32, depth 2,
 * batch 2) and `vit-micro` (`deno task pretrain`'s default model at 32 px, batch 64).
 *
 * How: the step is recorded once with every dispatch captured and none run; then each
 * distinct pipeline is dispatched on its own, twice, waiting for the GPU each time. The
 * first dispatch pays for the compile (wgpu's GL backend and llvmpipe compile at the first
 * dispatch), the second only runs: compile ms = first − second; run ms = second (with the
 * ≥ 10 ms of Deno's wait for the GPU).
 *
 * On Mesa's software OpenGL (the path a machine without a Vulkan driver takes):
 *
 *   DENO_WEBGPU_BACKEND=gl XDG_RUNTIME_DIR=/tmp deno run --allow-read --allow-env \
 *     bench/webgpu_compile.ts [--model golden|vit-micro]
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Backend, Tensor } from "../src/backend/backend.ts";
import type { DispatchOptions } from "../src/backend/webgpu/dispatch.ts";
import type { KernelSpec } from "../src/backend/webgpu/context.ts";
import { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { inPlaceVariant } from "../src/backend/webgpu/bindings.ts";
import { type DbotConfig, DbotModel } from "../src/models/dbot.ts";
import { PRESETS, vitFromPreset } from "../src/models/vit_config.ts";
import { AdamW, PRETRAIN_ADAMW } from "../src/train/adamw.ts";
import { TrainStep } from "../src/train/step.ts";
import { Rng } from "../src/util/rng.ts";

/** One model to compile for: its dBOT config, batch and image size. */
interface Case {
  config: DbotConfig;
  batch: number;
  imgSize: number;
  patchSize: number;
}

const golden = { imgSize: 16, patchSize: 4, inChans: 3, embedDim: 32, depth: 2, numHeads: 2 };
const micro = vitFromPreset("vit-micro", { imgSize: 32, patchSize: 4, inChans: 3 });
const CASES: Record<string, Case> = {
  golden: {
    config: {
      student: { ...golden, mlpRatio: 4 },
      decoder: { embedDim: 32, depth: 1, numHeads: 2 },
      teacher: { kind: "vit", vit: { ...golden, mlpRatio: 4 } },
      maskRatio: 0.75,
      dropPath: 0,
    },
    batch: 2,
    imgSize: 16,
    patchSize: 4,
  },
  "vit-micro": {
    config: {
      student: micro,
      decoder: PRESETS["vit-micro"].decoder,
      teacher: { kind: "vit", vit: micro },
      maskRatio: 0.75,
      dropPath: 0.1,
    },
    batch: 64,
    imgSize: 32,
    patchSize: 4,
  },
};

/** One recorded dispatch. */
interface Recorded {
  kernel: KernelSpec;
  tensors: readonly Tensor[];
  opts: DispatchOptions;
}

/** Records one full training step of `c` on `be`, running nothing: the distinct dispatches. */
async function recordStep(be: WebGpuBackend, c: Case): Promise<Map<string, Recorded>> {
  const seen = new Map<string, Recorded>();
  const dispatch = be.dispatch;
  be.dispatch = (kernel, tensors, opts) => {
    const spec = inPlaceVariant(kernel, tensors).spec;
    const key = `${spec.label}|${JSON.stringify(opts.constants ?? {})}`;
    if (!seen.has(key)) seen.set(key, { kernel, tensors, opts });
  };
  try {
    const model = new DbotModel(be as Backend, c.config, c.batch);
    model.initStudent(0);
    model.copyStudentToTeacher();
    const opt = new AdamW(be, model.student, PRETRAIN_ADAMW);
    const step = new TrainStep(be, { ps: model.student, loss: model.loss, opt });
    const rng = new Rng(1);
    const L = (c.imgSize / c.patchSize) ** 2;
    model.setBatch(
      rng.uniformArray(c.batch * 3 * c.imgSize * c.imgSize, -1, 1),
      rng.uniformArray(c.batch * L),
      rng,
    );
    await step.run(1e-4, () => model.forwardBackward());
  } finally {
    be.dispatch = dispatch;
  }
  return seen;
}

/** Milliseconds of one dispatch of `r`, waiting for the GPU. */
async function timeDispatch(be: WebGpuBackend, r: Recorded): Promise<number> {
  await be.sync();
  const t0 = performance.now();
  be.dispatch(r.kernel, r.tensors, r.opts);
  await be.sync();
  return performance.now() - t0;
}

const { values } = parseArgs({ args: Deno.args, options: { model: { type: "string" } } });
const models = values.model ? [values.model] : Object.keys(CASES);
// A cold cache, as on a new machine (Mesa reads this when the adapter is first requested).
Deno.env.set("MESA_SHADER_CACHE_DISABLE", "true");

for (const name of models) {
  const c = CASES[name];
  if (!c) throw new RangeError(`Unknown --model "${name}": use ${Object.keys(CASES).join(", ")}`);
  const be = await WebGpuBackend.create();
  const pipelines = await recordStep(be, c);
  const rows: { key: string; ms: number; run: number }[] = [];
  for (const [key, r] of pipelines) {
    const first = await timeDispatch(be, r);
    const again = await timeDispatch(be, r);
    rows.push({ key, ms: Math.max(0, first - again), run: again });
  }
  rows.sort((a, b) => b.ms - a.ms);
  const total = rows.reduce((s, r) => s + r.ms, 0);
  console.log(`\n${name} (batch ${c.batch}) on ${be.description}: ${rows.length} pipelines\n`);
  console.log("| kernel | constants | compile ms | run ms |\n|---|---|---:|---:|");
  for (const { key, ms, run } of rows) {
    const [label, constants] = key.split("|");
    const c = constants === "{}" ? "" : constants;
    console.log(`| ${label} | ${c} | ${ms.toFixed(0)} | ${run.toFixed(0)} |`);
  }
  const runs = rows.reduce((s, r) => s + r.run, 0);
  console.log(`| **total** | | **${total.toFixed(0)}** | ${runs.toFixed(0)} |`);
  be.dispose();
}
