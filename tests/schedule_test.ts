import {
  checkBoundaries,
  effectiveLr,
  lrAt,
  stageAt,
  stageBoundaries,
} from "../src/train/schedule.ts";
import { assertEquals, assertThrows } from "../src/util/assert.ts";
import { assertAllClose } from "./helpers.ts";

Deno.test("stageAt() puts each boundary epoch in the stage it starts", () => {
  const b = [0, 800, 1600];
  assertEquals(stageAt(b, 0), { stage: 0, start: 0, end: 800 });
  assertEquals(stageAt(b, 799), { stage: 0, start: 0, end: 800 });
  assertEquals(stageAt(b, 800), { stage: 1, start: 800, end: 1600 });
  assertEquals(stageAt(b, 1599), { stage: 1, start: 800, end: 1600 });
  assertThrows(() => stageAt(b, 1600), RangeError, "covers epochs [0, 1600)");
  assertThrows(() => stageAt(b, -1), RangeError);
});

Deno.test("stageBoundaries() and checkBoundaries() build and validate plans", () => {
  assertEquals(stageBoundaries(3, 2), [0, 2, 4, 6]);
  assertEquals(checkBoundaries([0, 5, 7]), [0, 5, 7]);
  assertThrows(() => checkBoundaries([1, 5]), RangeError, "starting at 0");
  assertThrows(() => checkBoundaries([0, 5, 5]), RangeError);
  assertThrows(() => checkBoundaries([0]), RangeError);
  assertThrows(() => stageBoundaries(0, 3), RangeError, "stages must be a positive integer");
});

Deno.test("lrAt() warms up linearly then follows a half-cosine to minLr", () => {
  const s = { lr: 1e-3, warmupEpochs: 10, stageEpochs: 110, minLr: 1e-5 };
  assertAllClose(
    [lrAt(0, s), lrAt(5, s), lrAt(10, s), lrAt(60, s), lrAt(110, s)],
    [0, 5e-4, 1e-3, 1e-5 + (1e-3 - 1e-5) * 0.5, 1e-5],
    { atol: 1e-12, rtol: 1e-9 },
  );
  assertEquals(effectiveLr(1.5e-4, 4096), 2.4e-3);
});
