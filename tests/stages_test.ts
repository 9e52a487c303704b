/**
 * Stage switches: a boundary that rebuilds the model (a zero-depth or pixel stage-0
 * teacher) frees every buffer of the old model and optimiser, and keeps the AdamW moments
 * by parameter name.
 */
import type { Backend, Storage, Tensor } from "../src/backend/backend.ts";
import { CpuBackend, type CpuStorage } from "../src/backend/cpu/backend.ts";
import { vitFromPreset } from "../src/models/vit_config.ts";
import { buildTrainee, nextStage, type Trainee } from "../src/train/stages.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { tinyConfig } from "./golden.ts";
import { gpuTest } from "./gpu.ts";

/** Records the storages `be.free()` is called with. */
function spyFree(be: Backend): Set<Storage> {
  const freed = new Set<Storage>();
  const free = be.free.bind(be);
  be.free = (t: Tensor) => {
    freed.add(t.storage);
    free(t);
  };
  return freed;
}

async function checkSwitch(
  be: Backend,
  teacher: "random0" | "pixels",
): Promise<{ freed: Set<Storage>; next: Trainee }> {
  const vit = vitFromPreset("vit-micro", { imgSize: 16, patchSize: 4, inChans: 3 });
  const cfg = tinyConfig("/nonexistent", { teacher });
  const tc = teacher === "pixels"
    ? { kind: "pixels" as const }
    : { kind: "vit" as const, vit: { ...vit, depth: 0 } };
  const old = buildTrainee(be, cfg, vit, tc);
  old.model.initStudent(1);
  be.upload(old.opt.m, new Float32Array(old.model.student.count).fill(0.5));
  old.opt.step = 3;
  const freed = spyFree(be);
  const next = await nextStage(be, old, cfg, vit, 1, () => {});
  assert(next.model !== old.model, "another teacher architecture rebuilds the model");
  const oldTensors = [
    old.model.student.params,
    old.model.student.grads!,
    old.model.images,
    old.model.loss,
    old.model.target,
    old.model.pred,
    old.model.encoder.out,
    old.model.encoder.patches,
    old.opt.m,
    old.opt.v,
    old.opt.norm,
    ...(old.model.teacher.params ? [old.model.teacher.params.params] : []),
  ];
  for (const t of oldTensors) {
    assert(freed.has(t.storage), `the old model's "${t.storage.label}" was not freed`);
  }
  const live = [next.model.student.params, next.model.pred, next.opt.m];
  for (const t of live) assert(!freed.has(t.storage), `"${t.storage.label}" was freed`);
  assertEquals(next.opt.step, 3);
  // moments move by name: the encoder's are kept, decoder_predp (another width for pixels) too when it fits
  const m = (await be.download(next.opt.m)) as Float32Array;
  const qkv = next.model.student.get("blocks.0.attn.qkv.weight");
  assert(m.subarray(qkv.offset, qkv.offset + qkv.size).every((x) => x === 0.5), "moments kept");
  next.model.dispose();
  next.opt.dispose();
  return { freed, next };
}

for (const teacher of ["random0", "pixels"] as const) {
  Deno.test(`nextStage() after a ${teacher} teacher frees the old model and optimiser (cpu)`, async () => {
    const be = new CpuBackend({ threads: 1 });
    const { freed, next } = await checkSwitch(be, teacher);
    // the CPU backend hands freed buffers to the next tensors of the same size: the new
    // model lives in the old one's memory (its activations; its student too when the shape
    // is the same, i.e. after a zero-depth teacher)
    const old = new Set([...freed].map((s) => (s as CpuStorage).data.buffer));
    const reused = (t: Tensor) => old.has((t.storage as CpuStorage).data.buffer);
    assert(reused(next.model.pred) && reused(next.model.encoder.out), "activations reused");
    if (teacher === "random0") assert(reused(next.model.student.params), "student reused");
    be.dispose();
  });
  gpuTest(
    `nextStage() after a ${teacher} teacher frees the old model and optimiser`,
    async (be) => {
      await checkSwitch(be, teacher);
    },
  );
}
