/**
 * Times the full dBOT pre-training step (teacher forward + student
 * forward/backward + AdamW) after warm-up, on any backend.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { PRESETS, vitFromPreset } from "../models/vit_config.ts";
import { DbotModel } from "../models/dbot.ts";
import { Rng } from "../util/rng.ts";
import { AdamW, PRETRAIN_ADAMW } from "./adamw.ts";
import { TrainStep } from "./step.ts";

/** What {@link stepBench} measures. */
export interface StepBenchOptions {
  /** Model preset. */
  model: string;
  /** Image size. */
  imgSize: number;
  /** Patch size. */
  patchSize: number;
  /** Batch. */
  batch: number;
  /** Timed steps. */
  steps: number;
  /** Untimed warm-up steps (compile pipelines, warm caches). */
  warmup: number;
  /** Drop-path rate. */
  dropPath: number;
}

/** One JSON-able result line. */
export interface StepBenchResult {
  /** Training images per second. */
  images_per_s: number;
  /** Milliseconds per step (steps timed back to back, one wait at the end). */
  step_ms: number;
  /** Backend description. */
  backend: string;
  /** Model preset. */
  model: string;
  /** Batch. */
  batch: number;
  /** Image and patch size. */
  img_size: number;
  /** Patch size. */
  patch_size: number;
  /** Peak resident memory of this process in MiB (host side). */
  peak_rss_mib: number;
  /** CPU: ops run in shares on the thread pool per step (each a post, wake-up and join). */
  pool_dispatches_per_step?: number;
  /** WebGPU: dispatches recorded per step. */
  dispatches_per_step?: number;
  /** WebGPU: host milliseconds to record one step (JS overhead, no waiting). */
  record_ms?: number;
}

/** One prepared training step: {@link stepBench} times it, `bench/step_bench.ts` benches it. */
export interface PreparedStep {
  /** Records (WebGPU) or runs (CPU) one full step and submits it. */
  step(): Promise<void>;
  /** The step's loss tensor (download it to wait for the GPU). */
  loss: Tensor;
  /** Host milliseconds spent recording steps so far (JS overhead on WebGPU). */
  recordMs(): number;
}

/** Builds the model and optimizer for `o` on `be` and returns its step (nothing run yet). */
export function prepareStep(
  be: Backend,
  o: Pick<StepBenchOptions, "model" | "imgSize" | "patchSize" | "batch" | "dropPath">,
): PreparedStep {
  const vit = vitFromPreset(o.model, { imgSize: o.imgSize, patchSize: o.patchSize, inChans: 3 });
  const model = new DbotModel(be, {
    student: vit,
    decoder: PRESETS[o.model].decoder,
    teacher: { kind: "vit", vit },
    maskRatio: 0.75,
    dropPath: o.dropPath,
  }, o.batch);
  model.initStudent(0);
  model.copyStudentToTeacher();
  const opt = new AdamW(be, model.student, PRETRAIN_ADAMW);
  const trainStep = new TrainStep(be, { ps: model.student, loss: model.loss, opt });
  const rng = new Rng(1);
  const images = rng.uniformArray(o.batch * 3 * o.imgSize * o.imgSize, -1, 1);
  const L = (o.imgSize / o.patchSize) ** 2;
  let recordMs = 0;
  const step = async () => {
    model.setBatch(images, rng.uniformArray(o.batch * L), rng);
    const t = performance.now();
    await trainStep.run(1e-4, () => model.forwardBackward());
    recordMs += performance.now() - t;
    be.submit();
  };
  return { step, loss: model.loss, recordMs: () => recordMs };
}

/** Builds the model for `o`, warms up, and times `o.steps` steps. */
export async function stepBench(be: Backend, o: StepBenchOptions): Promise<StepBenchResult> {
  const { step, loss: lossTensor, recordMs: recorded } = prepareStep(be, o);
  let peak = Deno.memoryUsage().rss;
  for (let i = 0; i < o.warmup; i++) await step();
  await be.download(lossTensor);
  const dispatches0 = (be as { dispatchCount?: number }).dispatchCount;
  const poolDispatches = () => (be as { poolDispatches?: number }).poolDispatches;
  const pool0 = poolDispatches();
  const record0 = recorded();
  const t0 = performance.now();
  for (let i = 0; i < o.steps; i++) {
    await step();
    peak = Math.max(peak, Deno.memoryUsage().rss);
  }
  const loss = (await be.download(lossTensor))[0];
  const ms = (performance.now() - t0) / o.steps;
  if (!Number.isFinite(loss)) {
    throw new Error(`The benchmark step produced a non-finite loss (${loss})`);
  }
  const result: StepBenchResult = {
    images_per_s: (o.batch / ms) * 1000,
    step_ms: ms,
    backend: be.description,
    model: o.model,
    batch: o.batch,
    img_size: o.imgSize,
    patch_size: o.patchSize,
    peak_rss_mib: peak / 2 ** 20,
  };
  if (pool0 !== undefined) result.pool_dispatches_per_step = (poolDispatches()! - pool0) / o.steps;
  if (dispatches0 !== undefined) {
    result.dispatches_per_step =
      ((be as unknown as { dispatchCount: number }).dispatchCount - dispatches0) / o.steps;
    result.record_ms = (recorded() - record0) / o.steps;
  }
  return result;
}
