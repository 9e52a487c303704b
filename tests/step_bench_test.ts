/** The step benchmark (deno task step-bench) runs the whole step and reports its fields. */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { stepBench } from "../src/train/step_bench.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { gpuTest } from "./gpu.ts";

const opts = {
  model: "vit-micro",
  imgSize: 16,
  patchSize: 4,
  batch: 2,
  steps: 2,
  warmup: 1,
  dropPath: 0.1,
};

Deno.test("stepBench() on the CPU reports images/s, step time, memory and the config", async () => {
  const be = new CpuBackend();
  try {
    const r = await stepBench(be, opts);
    assert(r.images_per_s > 0 && Number.isFinite(r.images_per_s), `images_per_s ${r.images_per_s}`);
    assert(
      Math.abs(r.step_ms - 1000 * opts.batch / r.images_per_s) < 1e-6 * r.step_ms,
      "step_ms = batch / images_per_s",
    );
    assert(r.peak_rss_mib > 10, `peak_rss_mib ${r.peak_rss_mib}`);
    assertEquals([r.model, r.batch, r.img_size, r.patch_size], ["vit-micro", 2, 16, 4]);
    assert(r.backend.startsWith("cpu"), r.backend);
    assertEquals(r.dispatches_per_step, undefined);
  } finally {
    be.dispose();
  }
});

gpuTest("stepBench() counts dispatches and recording time per step", async (be) => {
  const r = await stepBench(be, opts);
  assert(r.images_per_s > 0, `images_per_s ${r.images_per_s}`);
  assert((r.dispatches_per_step ?? 0) > 100, `dispatches_per_step ${r.dispatches_per_step}`);
  assert((r.record_ms ?? -1) > 0, `record_ms ${r.record_ms}`);
});
