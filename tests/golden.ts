/**
 * The tiny golden dBOT model (tests/fixtures/gen_golden.py) and a tiny
 * pre-training config, shared by the whole-model and training tests.
 *
 * @module
 */
import type { Backend } from "../src/backend/backend.ts";
import type { VitConfig } from "../src/models/vit_config.ts";
import { type DbotConfig, DbotModel } from "../src/models/dbot.ts";
import { decodeSafetensors, toFloat32 } from "../src/io/safetensors.ts";
import { type PretrainConfig, resolvePretrain } from "../src/train/pretrain_config.ts";
import { AdamW, type AdamWOptions } from "../src/train/adamw.ts";
import { TrainStep } from "../src/train/step.ts";

const file = new URL("./fixtures/golden_tiny.safetensors", import.meta.url);
const { tensors } = decodeSafetensors(await Deno.readFile(file), file.pathname);

/** A tensor of the golden file as f32 (throws when absent). */
export function golden(name: string): Float32Array {
  const t = tensors.get(name);
  if (!t) throw new Error(`golden file has no "${name}"`);
  return toFloat32(t);
}

/** The golden encoder: 16 px, patch 4, D 32, depth 2, 2 heads. */
export const GOLDEN_VIT: VitConfig = Object.freeze({
  imgSize: 16,
  patchSize: 4,
  inChans: 3,
  embedDim: 32,
  depth: 2,
  numHeads: 2,
  mlpRatio: 4,
});

/** The golden dBOT config (decoder 32×1, random teacher of the same shape), with `dropPath`. */
export function goldenConfig(dropPath = 0): DbotConfig {
  return {
    student: GOLDEN_VIT,
    decoder: { embedDim: 32, depth: 1, numHeads: 2 },
    teacher: { kind: "vit", vit: GOLDEN_VIT },
    maskRatio: 0.75,
    dropPath,
  };
}

/** A batch-2 model on `be` with the golden student, teacher, images and masking noise loaded. */
export function loadGolden(be: Backend, dropPath = 0): DbotModel {
  const model = new DbotModel(be, goldenConfig(dropPath), 2);
  model.student.load(new Map(model.student.specs.map((s) => [s.name, golden(s.name)])));
  model.teacher.params!.load(
    new Map(model.teacher.params!.specs.map((s) => [s.name, golden(`teacher.${s.name}`)])),
  );
  model.setBatch(golden("images"), golden("noise"));
  return model;
}

/** A pre-training run small enough for a test: 16 px shapes, batch 8, 32 images (4 steps/epoch). */
export function tinyConfig(runsDir: string, over: Record<string, unknown> = {}): PretrainConfig {
  return resolvePretrain({
    runsDir,
    name: "t",
    imgSize: 16,
    batch: 8,
    trainLimit: 32,
    knnTrain: 40,
    knnTest: 20,
    warmupEpochs: 0,
    baseLr: 2e-2,
    logEvery: 2,
    ...over,
  });
}

/**
 * Five AdamW steps at LR 1e-3 through `TrainStep` (as the golden fixtures' PyTorch loops do),
 * then one more forward: the 6 losses and the 5 gradient norms before clipping.
 */
export async function adamwTrajectory(
  be: Backend,
  model: DbotModel,
  adamw: AdamWOptions,
): Promise<{ losses: number[]; norms: number[] }> {
  const opt = new AdamW(be, model.student, adamw);
  const step = new TrainStep(be, { ps: model.student, loss: model.loss, opt });
  const losses: number[] = [];
  const norms: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await step.run(1e-3, () => model.forwardBackward(), { read: true });
    losses.push(r.loss);
    norms.push(r.norm);
  }
  be.fill(model.student.grads!, 0);
  model.forwardBackward();
  losses.push((await be.download(model.loss))[0]);
  return { losses, norms };
}
