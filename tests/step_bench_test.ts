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
    assert(typeof r.pool_dispatches_per_step === "number", "pool dispatches counted");
  } finally {
    be.dispose();
  }
});

Deno.test("stepBench() on the CPU counts the ops handed to the thread pool", async () => {
  const pooled = new CpuBackend({ threads: 2, minParallelWork: 1 });
  const inline = new CpuBackend({ threads: 1 });
  try {
    const p = await stepBench(pooled, opts), i = await stepBench(inline, opts);
    // every op of a step above the (here: no) threshold goes to the pool: hundreds a step
    assert((p.pool_dispatches_per_step ?? 0) > 100, `pooled: ${p.pool_dispatches_per_step}`);
    assert(Number.isInteger(p.pool_dispatches_per_step), "the same ops every step");
    assertEquals(i.pool_dispatches_per_step, 0);
  } finally {
    pooled.dispose();
    inline.dispose();
  }
});

gpuTest("stepBench() counts dispatches and recording time per step", async (be) => {
  const r = await stepBench(be, opts);
  assert(r.images_per_s > 0, `images_per_s ${r.images_per_s}`);
  assert((r.dispatches_per_step ?? 0) > 100, `dispatches_per_step ${r.dispatches_per_step}`);
  assert((r.record_ms ?? -1) > 0, `record_ms ${r.record_ms}`);
});
