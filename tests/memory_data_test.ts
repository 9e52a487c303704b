/**
 * Images held in memory (what the page decodes from the user's folder): the held-out split
 * and a {@link PretrainSession} trained on them instead of `cfg.data`.
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { type LabelledImage, MemoryDataset, splitHeldOut } from "../src/data/memory.ts";
import { resolvePretrain } from "../src/train/pretrain_config.ts";
import { PretrainSession } from "../src/train/session.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";

const SHAPE = { channels: 3, height: 32, width: 32 };

function images(perClass: Record<string, number>, seed = 1): LabelledImage[] {
  const rng = new Rng(seed);
  return Object.entries(perClass).flatMap(([className, n]) =>
    Array.from({ length: n }, () => ({
      className,
      data: Float32Array.from({ length: 3 * 32 * 32 }, () => rng.uniform()),
    }))
  );
}

Deno.test("splitHeldOut() holds out every 5th image of each class, from its last", () => {
  const all = images({ b: 6, a: 5, c: 1 });
  const { train, test } = splitHeldOut("folder:x", all, SHAPE);
  assertEquals(train.classNames, ["a", "b", "c"]);
  assertEquals(test.classNames, ["a", "b", "c"]);
  // a: 5 → 1 held out; b: 6 → 2 held out; c: 1 → trains only
  assertEquals([train.count, test.count], [9, 3]);
  assertEquals([...test.labels], [0, 1, 1]);
  assertEquals([...train.labels], [0, 0, 0, 0, 1, 1, 1, 1, 2]);
  assertEquals(test.image(0), all[10].data); // a's last image
  assertThrows(() => splitHeldOut("folder:y", [], SHAPE), RangeError, "no image could be decoded");
  assertThrows(
    () => new MemoryDataset("m", "train", ["a"], 3, 32, 31, all.slice(0, 1)),
    RangeError,
    "expected 3×32×31",
  );
});

Deno.test("PretrainSession trains on images given as data instead of cfg.data", async () => {
  const { train, test } = splitHeldOut("folder:x", images({ a: 6, b: 6 }), SHAPE);
  const be = new CpuBackend();
  const cfg = resolvePretrain({
    batch: 2,
    trainLimit: 4,
    epochsPerStage: 1,
    stages: 1,
    knnTrain: 8,
    knnTest: 4,
  });
  const s = PretrainSession.create(be, cfg, { train, test });
  const losses = [(await s.step()).loss, (await s.step()).loss];
  assert(s.done && losses.every(Number.isFinite), `losses ${losses}`);
  const knn = await s.knn();
  assert(knn.top1 >= 0 && knn.top1 <= 100, `k-NN ${JSON.stringify(knn)}`);
  s.dispose();
  assertThrows(
    () => PretrainSession.create(be, resolvePretrain({ data: "folder:/x" })),
    RangeError,
    "pass the decoded images as data",
  );
});
