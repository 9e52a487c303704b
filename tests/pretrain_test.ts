/**
 * Pre-training: a stage boundary re-initialises the student and copies the
 * teacher; a stopped-then-resumed run ends bit-identical to an uninterrupted
 * one; the loss goes down on both backends; bad settings are refused.
 */
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { DbotModel } from "../src/models/dbot.ts";
import { vitFromPreset } from "../src/models/vit_config.ts";
import { resolvePretrain } from "../src/train/pretrain_config.ts";
import { AdamW, PRETRAIN_ADAMW } from "../src/train/adamw.ts";
import { type MetricLine, nextStage, pretrain } from "../src/train/pretrain.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { gpuTest } from "./gpu.ts";
import { openDataset } from "../src/data/dataset.ts";
import { ImagePipeline } from "../src/data/pipeline.ts";
import { Prefetcher, renderBatch } from "../src/data/prefetch.ts";
import { tinyConfig } from "./golden.ts";

const quiet = { log: () => {} };

Deno.test("nextStage() copies the student encoder into the teacher and re-initialises the student except the patch-embed bias", async () => {
  const be = new CpuBackend();
  const vit = vitFromPreset("vit-micro", { imgSize: 16, patchSize: 4, inChans: 3 });
  const cfg = tinyConfig("/nonexistent");
  const model = new DbotModel(be, {
    student: vit,
    decoder: { embedDim: 64, depth: 2, numHeads: 4 },
    teacher: { kind: "vit", vit },
    maskRatio: 0.75,
    dropPath: 0,
  }, 2);
  model.initStudent(1);
  model.copyStudentToTeacher();
  model.student.init(new Rng(77)); // "trained" student ≠ teacher
  const opt = new AdamW(be, model.student, PRETRAIN_ADAMW);
  be.upload(opt.m, new Float32Array(model.student.count).fill(0.5));
  opt.step = 7;
  const before = await model.student.toHost();
  const t = { model, opt };
  const { model: next, opt: nextOpt } = await nextStage(be, t, cfg, vit, 1, () => {});
  assert(next === model && nextOpt === opt, "same architecture: the model is kept");
  const teacher = await next.teacher.params!.toHost();
  for (const [name, w] of teacher) assertEquals(w, before.get(name), `teacher ${name}`);
  const after = await next.student.toHost();
  assertEquals(after.get("patch_embed.proj.bias"), before.get("patch_embed.proj.bias"));
  for (
    const name of [
      "patch_embed.proj.weight",
      "blocks.0.attn.qkv.weight",
      "decoder_predp.weight",
      "cls_token",
    ]
  ) {
    assert(
      after.get(name)!.some((x, i) => x !== before.get(name)![i]),
      `${name} was re-initialised`,
    );
  }
  assertEquals(after.get("norm.weight"), new Float32Array(96).fill(1)); // fresh LayerNorm
  assertEquals(opt.step, 7);
  assert((await be.download(opt.m)).every((x) => x === 0.5), "AdamW moments kept");
  be.dispose();
});

Deno.test("a run stopped after each epoch and resumed ends bit-identical to an uninterrupted run", async () => {
  const dir = await Deno.makeTempDir();
  // 2 stages at epochs [0, 2, 3]: stops fall inside a stage and right before the boundary
  const over = { boundaries: [0, 2, 3], dropPath: 0.1 };
  const full = await pretrain(new CpuBackend(), tinyConfig(`${dir}/a`, over), quiet);
  assert(full !== null, "the uninterrupted run finishes");
  const cfg = tinyConfig(`${dir}/b`, over);
  assertEquals(await pretrain(new CpuBackend(), cfg, { ...quiet, stopAfterEpochs: 1 }), null);
  assertEquals(
    await pretrain(new CpuBackend(), cfg, { ...quiet, resume: true, stopAfterEpochs: 1 }),
    null,
  );
  const resumed = await pretrain(new CpuBackend(), cfg, { ...quiet, resume: true });
  assert(resumed !== null, "the resumed run finishes");
  const a = await Deno.readFile(`${dir}/a/t/final.safetensors`);
  const b = await Deno.readFile(`${dir}/b/t/final.safetensors`);
  assertEquals(a.length, b.length);
  assert(a.every((x, i) => x === b[i]), "final checkpoints differ");
  assertEquals(resumed.knn_top1_final, full.knn_top1_final);
  assertEquals(resumed.steps, full.steps);
  for (
    const f of [
      "config.json",
      "metrics.jsonl",
      "stage0.safetensors",
      "stage1.safetensors",
      "loss.svg",
      "summary.json",
    ]
  ) {
    await Deno.stat(`${dir}/b/t/${f}`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("batches prepared on the data worker give a run bit-identical to the synchronous path", async () => {
  const dir = await Deno.makeTempDir();
  const over = { boundaries: [0, 1, 2], accum: 2 };
  const withWorker = await pretrain(new CpuBackend(), tinyConfig(`${dir}/a`, over), quiet);
  const inline = await pretrain(new CpuBackend(), tinyConfig(`${dir}/b`, over), {
    ...quiet,
    prefetch: false,
  });
  assert(withWorker !== null && inline !== null, "both runs finish");
  const a = await Deno.readFile(`${dir}/a/t/final.safetensors`);
  const b = await Deno.readFile(`${dir}/b/t/final.safetensors`);
  assert(a.length === b.length && a.every((x, i) => x === b[i]), "final checkpoints differ");
  assertEquals(withWorker.steps, inline.steps);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Prefetcher returns batches in request order and reports a bad index as an error", async () => {
  const init = {
    data: "shapes:40",
    strict: false,
    size: 32,
    channels: 3,
    mean: [0.5, 0.5, 0.5],
    std: [0.25, 0.25, 0.25],
  };
  const pf = Prefetcher.create(init);
  assert(pf, "a data worker starts with read permission");
  try {
    const ds = await openDataset("shapes:40", "train");
    const pipe = new ImagePipeline(ds, 32, 3, init.mean, init.std);
    pf.request(new Int32Array([3, 1]), 11);
    pf.request(new Int32Array([0]), 12);
    const [x, y] = [await pf.next(), await pf.next()];
    const wantX = renderBatch(pipe, new Int32Array([3, 1]), 11);
    const wantY = renderBatch(pipe, new Int32Array([0]), 12);
    assertEquals([x.rngState, y.rngState], [wantX.rngState, wantY.rngState]);
    assertEquals(x.images, wantX.images);
    assertEquals(y.images, wantY.images);
    pf.request(new Int32Array([99]), 1);
    let message = "";
    try {
      await pf.next();
    } catch (e) {
      message = (e as Error).message;
    }
    assert(/99/.test(message), `the worker's error names the index: "${message}"`);
  } finally {
    pf.dispose();
  }
});

async function lossGoesDown(be: Backend): Promise<void> {
  const dir = await Deno.makeTempDir();
  // one stage, one fixed image subset, several epochs: the distillation loss must fall
  const cfg = tinyConfig(dir, {
    stages: 1,
    epochsPerStage: 4,
    trainLimit: 16,
    knnTrain: 16,
    knnTest: 8,
    logEvery: 1,
  });
  const s = await pretrain(be, cfg, quiet);
  assert(s !== null, "finished");
  const lines = (await Deno.readTextFile(`${dir}/t/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l) as MetricLine
  );
  assertEquals(lines.length, 8);
  const first = (lines[0].loss + lines[1].loss) / 2;
  const last = (lines[6].loss + lines[7].loss) / 2;
  assert(last < 0.9 * first, `loss should fall by 10%: first ${first}, last ${last}`);
  await Deno.remove(dir, { recursive: true });
}

Deno.test("pretrain() lowers the loss on a tiny run (cpu)", async () => {
  const be = new CpuBackend();
  await lossGoesDown(be);
  be.dispose();
});

gpuTest("pretrain() lowers the loss on a tiny run", lossGoesDown);

Deno.test("resolvePretrain() rejects unknown settings and bad values with the fix", () => {
  assertThrows(() => resolvePretrain({ batchSize: 3 }), TypeError, 'unknown setting "batchSize"');
  assertThrows(() => resolvePretrain({ batch: 0 }), RangeError, "give a positive integer");
  // a setting the command line takes is named by its flag too
  assertThrows(
    () => resolvePretrain({ baseLr: -1 }),
    RangeError,
    "Cannot use baseLr -1 (--base-lr): give",
  );
  assertThrows(() => resolvePretrain({ model: "vit-giant" }), TypeError, "use one of vit-micro");
  assertThrows(
    () => resolvePretrain({ boundaries: [0, 5, 3] }),
    RangeError,
    "increasing whole epochs",
  );
  assertThrows(() => resolvePretrain({ dropPath: 1 }), RangeError, "[0, 1)");
  assertThrows(() => resolvePretrain({ name: "../x" }), TypeError, "run name");
});

Deno.test("pretrain() distils a teacher loaded from a PyTorch-written checkpoint of another width", async () => {
  const dir = await Deno.makeTempDir();
  const teacher = new URL("./fixtures/tiny_vit.safetensors", import.meta.url).pathname; // D 32, depth 2
  const cfg = tinyConfig(dir, { teacher, boundaries: [0, 1, 2] });
  const s = await pretrain(new CpuBackend(), cfg, quiet);
  assert(s !== null && Number.isFinite(s.knn_top1_final), "finished");
  const { readCheckpoint } = await import("../src/io/checkpoint_file.ts");
  // stage 0 predicts the 32-wide teacher; after the boundary the teacher is the 96-wide student
  assertEquals(
    (await readCheckpoint(`${dir}/t/stage0.safetensors`)).shapes.get("decoder_predp.weight"),
    [32, 64],
  );
  assertEquals(
    (await readCheckpoint(`${dir}/t/final.safetensors`)).shapes.get("decoder_predp.weight"),
    [96, 64],
  );
  await Deno.remove(dir, { recursive: true });
});
