/**
 * `PretrainSession` (the browser page's loop) trains what `pretrain()` (`deno task
 * pretrain`) trains: the same losses step for step across a stage boundary, the same
 * weights at the end, and a checkpoint that round-trips.
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { CheckpointError, decodeCheckpoint } from "../src/io/checkpoint.ts";
import { readCheckpoint } from "../src/io/checkpoint_file.ts";
import { resolvePretrain } from "../src/train/pretrain_config.ts";
import { pretrain, type PretrainProgress } from "../src/train/pretrain.ts";
import { PretrainSession } from "../src/train/session.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { assertAllClose } from "./helpers.ts";

/** Two stages of two epochs of one step of 4 images: 4 steps, a boundary after step 2. */
function config(runsDir: string) {
  return resolvePretrain({
    name: "s",
    runsDir,
    batch: 4,
    trainLimit: 4,
    stages: 2,
    epochsPerStage: 2,
    warmupEpochs: 0,
    baseLr: 1e-2,
    imgSize: 16,
    knnTrain: 8,
    knnTest: 4,
    logEvery: 1,
    seed: 5,
  });
}

Deno.test("PretrainSession.step() gives pretrain()'s losses step for step, across a stage boundary (cpu)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = config(dir);
    const progress: PretrainProgress[] = [];
    await pretrain(new CpuBackend(), cfg, {
      log: () => {},
      prefetch: false,
      progress: (p) => progress.push(p),
    });
    const be = new CpuBackend();
    const s = PretrainSession.create(be, cfg);
    assertEquals(s.totalSteps, 4);
    const steps = [];
    while (!s.done) steps.push(await s.step());
    assertEquals(steps.map((r) => [r.stage, r.stageStart, r.stageEnd]), [
      [0, false, false],
      [0, false, true],
      [1, true, false],
      [1, false, true],
    ]);
    assertAllClose(
      steps.map((r) => r.loss),
      progress.map((p) => p.loss),
      { atol: 0, rtol: 1e-6 },
      "session vs pretrain() losses",
    );
    // the final student is pretrain()'s final checkpoint
    const final = await readCheckpoint(`${dir}/s/final.safetensors`);
    const mine = decodeCheckpoint(await s.checkpoint());
    assertEquals([...mine.weights.keys()].sort(), [...final.weights.keys()].sort());
    for (const [name, w] of final.weights) {
      assertAllClose(mine.weights.get(name)!, w, { atol: 1e-6, rtol: 1e-5 }, name);
    }
    assertEquals(mine.config.vit, final.config.vit);
    assertEquals(mine.config.mean, final.config.mean);
    const late = await s.step().then(() => null, (e: Error) => e);
    assert(late instanceof RangeError && late.message.includes("all 4 steps are done"), `${late}`);
    s.dispose();
    be.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PretrainSession.load() restores a checkpoint's student and refuses another model's", async () => {
  const be = new CpuBackend();
  const cfg = config("/nonexistent");
  const a = PretrainSession.create(be, cfg);
  await a.step();
  const bytes = await a.checkpoint();
  const fa = await a.features("test", 3);
  const b = PretrainSession.create(be, { ...cfg, seed: 6 });
  const before = await b.features("test", 3);
  assert(before.some((x, i) => x !== fa[i]), "another seed gives other features");
  b.load(bytes, "a.safetensors");
  assertEquals(await b.features("test", 3), fa);
  const tiny = PretrainSession.create(be, { ...cfg, imgSize: 8 });
  assertThrows(() => tiny.load(bytes, "a.safetensors"), CheckpointError, 'in "a.safetensors"');
  for (const s of [a, b, tiny]) s.dispose();
  be.dispose();
});

Deno.test("PretrainSession.create() says why it cannot read files", () => {
  const be = new CpuBackend();
  assertThrows(
    () => PretrainSession.create(be, resolvePretrain({ data: "fashion-mnist" })),
    RangeError,
    "use shapes or shapes:N",
  );
  assertThrows(
    () => PretrainSession.create(be, resolvePretrain({ teacher: "runs/x/final.safetensors" })),
    RangeError,
    "use random, random0 or pixels",
  );
  be.dispose();
});
