/**
 * The symmetric (BEiT-style) dBOT student wired into DbotModel (`arch: "symmetric"`):
 * block masking from the batch's noise (count, determinism, independence from the batch
 * split), the branch's init table, drop path, the config errors, and one training step on
 * WebGPU against the CPU backend (with drop path).
 *
 * @module
 */
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import type { VitConfig } from "../src/models/vit_config.ts";
import { type DbotConfig, DbotModel } from "../src/models/dbot.ts";
import { blockMaskCount } from "../src/models/masking.ts";
import { symmetricStudentSpecs } from "../src/models/symmetric_student.ts";
import { assert, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { gpuTest } from "./gpu.ts";
import { assertAllClose, maxAbsDiff } from "./helpers.ts";

const VIT: VitConfig = {
  imgSize: 32,
  patchSize: 4,
  inChans: 3,
  embedDim: 32,
  depth: 2,
  numHeads: 2,
  mlpRatio: 4,
};
const L = 64;

function config(over: Partial<DbotConfig> = {}): DbotConfig {
  return {
    student: VIT,
    decoder: { embedDim: 32, depth: 1, numHeads: 2 },
    teacher: { kind: "vit", vit: { ...VIT, embedDim: 16, numHeads: 2 } },
    maskRatio: 0.4,
    dropPath: 0,
    loss: "cosine",
    arch: "symmetric",
    masking: "block",
    ...over,
  };
}

function batch(B: number, seed: number): { images: Float32Array; noise: Float32Array } {
  const rng = new Rng(seed);
  return {
    images: rng.uniformArray(B * 3 * 32 * 32, -1, 1),
    noise: rng.uniformArray(B * L),
  };
}

Deno.test("DbotModel rejects block masking for the asymmetric student and unknown arch values", () => {
  const be = new CpuBackend({ threads: 1 });
  assertThrows(
    () => new DbotModel(be, config({ arch: "asymmetric" }), 1),
    RangeError,
    'use arch "symmetric"',
  );
  assertThrows(
    () => new DbotModel(be, config({ arch: "beit" as "symmetric" }), 1),
    RangeError,
    'arch must be "asymmetric" or "symmetric"',
  );
  const asym = new DbotModel(
    be,
    config({ arch: "asymmetric", masking: "random", loss: "smoothl1" }),
    1,
  );
  assertThrows(
    () => asym.setBatchMasked(new Float32Array(3 * 32 * 32), new Float32Array(L)),
    RangeError,
    "asymmetric student",
  );
});

Deno.test("symmetric DbotModel.setBatch() block-masks up to blockMaskCount(L) patches per sample, from its noise", () => {
  const be = new CpuBackend({ threads: 1 });
  const m2 = new DbotModel(be, config(), 2);
  const { images, noise } = batch(2, 1);
  m2.setBatch(images, noise);
  const mask = m2.mask;
  const count = blockMaskCount(L);
  assert(count === 25, `count ${count}`);
  // BEiT's generator masks at most `count` (it stops when a block adds nothing), at least a block
  for (let b = 0; b < 2; b++) {
    const n = mask.subarray(b * L, (b + 1) * L).reduce((a, x) => a + x, 0);
    assert(n >= 16 && n <= count, `sample ${b}: ${n} masked`);
  }
  assert(maxAbsDiff(mask.subarray(0, L), mask.subarray(L)) > 0, "two samples, two masks");
  // the same noise gives the same mask; sample 1 alone gives its own mask (split-independent)
  m2.setBatch(images, noise);
  assertAllClose(m2.mask, mask, { atol: 0, rtol: 0 }, "repeat");
  const m1 = new DbotModel(be, config(), 1);
  m1.setBatch(images.subarray(3 * 32 * 32), noise.subarray(L));
  assertAllClose(m1.mask, mask.subarray(L), { atol: 0, rtol: 0 }, "sample 1 alone");
});

Deno.test("symmetric DbotModel with random masking masks maskRatio of the patches", () => {
  const be = new CpuBackend({ threads: 1 });
  const m = new DbotModel(be, config({ masking: "random", maskRatio: 0.75 }), 2);
  const { images, noise } = batch(2, 2);
  m.setBatch(images, noise);
  assert(m.mask.reduce((a, x) => a + x, 0) === 2 * 48, "48 of 64 per sample");
});

Deno.test("symmetricStudentSpecs() follows the branch's init: trunc normal 0.02, proj/fc2 / √(2·layer id), zeros, 0.1", () => {
  const specs = symmetricStudentSpecs(VIT, 16);
  const by = new Map(specs.map((s) => [s.name, s]));
  const init = (n: string) =>
    by.get(n)!.init as { kind: string; std?: number; scale?: number; value?: number };
  assert(
    init("blocks.0.attn.qkv.weight").kind === "truncNormal" &&
      init("blocks.0.attn.qkv.weight").std === 0.02,
    "qkv",
  );
  assert(
    Math.abs(init("blocks.0.attn.proj.weight").scale! - 1 / Math.sqrt(2)) < 1e-15,
    "proj layer 1",
  );
  assert(
    Math.abs(init("blocks.1.mlp.fc2.weight").scale! - 1 / Math.sqrt(4)) < 1e-15,
    "fc2 layer 2",
  );
  assert((init("blocks.1.mlp.fc1.weight").scale ?? 1) === 1, "fc1 not rescaled");
  assert(init("patch_embed.proj.weight").kind === "truncNormal", "conv");
  for (
    const n of [
      "patch_embed.proj.bias",
      "blocks.0.attn.q_bias",
      "blocks.0.mlp.fc1.bias",
      "lm_head.bias",
    ]
  ) {
    assert(init(n).kind === "zeros", n);
  }
  assert(
    init("blocks.1.gamma_2").kind === "constant" && init("blocks.1.gamma_2").value === 0.1,
    "gamma",
  );
  assert(init("rel_pos_bias.relative_position_bias_table").kind === "zeros", "table");
  assert(
    by.get("cls_token")!.decay === false && by.get("mask_token")!.decay === true,
    "decay rules",
  );
  assert(by.get("lm_head.weight")!.shape.join() === "16,32", "lm_head [Dt, D]");
  assert(!by.has("pos_embed") && !by.has("decoder_embed.weight"), "no pos_embed, no decoder");
  // the init draws: proj weights have about 0.02/√2 spread
  const be = new CpuBackend({ threads: 1 });
  const m = new DbotModel(be, config(), 1);
  m.initStudent(3);
  return m.student.toHost().then((w) => {
    const sd = (a: Float32Array) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
    const proj = sd(w.get("blocks.1.attn.proj.weight")!);
    const qkv = sd(w.get("blocks.1.attn.qkv.weight")!);
    assert(Math.abs(qkv - 0.02) < 0.002, `qkv std ${qkv}`);
    assert(Math.abs(proj - 0.01) < 0.0015, `proj std ${proj} (0.02/√4)`);
  });
});

async function stepOnce(
  be: Backend,
  dropPath: number,
): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const m = new DbotModel(be, config({ dropPath }), 3);
  m.initStudent(5);
  const tp = m.teacher.params!;
  const rng = new Rng(9);
  for (const s of tp.specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    be.upload(tp.get(s.name), rng.uniformArray(n, -0.3, 0.3));
  }
  // perturb gammas and the table so every path carries signal
  for (
    const n of ["rel_pos_bias.relative_position_bias_table", "blocks.0.gamma_1", "blocks.1.gamma_2"]
  ) {
    const t = m.student.get(n);
    be.upload(t, rng.uniformArray(t.size, -0.5, 0.5));
  }
  const { images, noise } = batch(3, 4);
  m.setBatch(images, noise, new Rng(11));
  be.fill(m.student.grads!, 0);
  m.forwardBackward();
  const loss = (await be.download(m.loss))[0];
  const grads = await m.student.gradsToHost();
  m.dispose();
  return { loss, grads };
}

Deno.test("symmetric DbotModel runs a step with drop path: finite loss and gradients, drop path changes them", async () => {
  const be = new CpuBackend({ threads: 1 });
  const a = await stepOnce(be, 0);
  const b = await stepOnce(be, 0.5);
  assert(Number.isFinite(a.loss) && Number.isFinite(b.loss), `losses ${a.loss}, ${b.loss}`);
  for (const [, g] of b.grads) assert(g.every(Number.isFinite), "finite gradients");
  assert(a.loss !== b.loss, "drop path 0.5 changes the loss");
});

gpuTest(
  "symmetric DbotModel step with drop path matches the CPU backend (loss and every gradient)",
  async (gpu) => {
    const cpu = await stepOnce(new CpuBackend({ threads: 1 }), 0.3);
    const got = await stepOnce(gpu, 0.3);
    assertAllClose([got.loss], [cpu.loss], { atol: 0, rtol: 1e-5 }, "loss");
    let worst = 0;
    for (const [k, want] of cpu.grads) {
      assertAllClose(got.grads.get(k)!, want, { atol: 1e-6, rtol: 1e-3 }, k);
      worst = Math.max(worst, maxAbsDiff(got.grads.get(k)!, want));
    }
    console.log(
      `symmetric step, WebGPU vs CPU: loss rel err ${
        Math.abs(got.loss - cpu.loss) / cpu.loss
      }, max grad abs err ${worst}`,
    );
  },
);
