/**
 * A symmetric (BEiT-style) student's checkpoint: timm Beit names, read back as a ViT for
 * evaluation (`inferVitConfig` recognises the options from the names: no pos_embed, the
 * relative position table and its heads, layer scale, q/v biases; `lm_head` and
 * `mask_token` are known extras), and its encoder output equals the student's. Clear errors
 * for a grid the relative position bias was not made for and for contradicting heads.
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import {
  type Checkpoint,
  decodeCheckpoint,
  encodeCheckpoint,
  inferVitConfig,
  vitWeights,
} from "../src/io/checkpoint.ts";
import type { VitConfig } from "../src/models/vit_config.ts";
import { type DbotConfig, DbotModel } from "../src/models/dbot.ts";
import { symmetricVit } from "../src/models/symmetric_student.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "../src/models/vit.ts";
import { ParamSet } from "../src/nn/params.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { assertAllClose } from "./helpers.ts";

const VIT: VitConfig = {
  imgSize: 24,
  patchSize: 4,
  inChans: 3,
  embedDim: 24,
  depth: 2,
  numHeads: 3,
  mlpRatio: 2,
};
const CFG: DbotConfig = {
  student: VIT,
  decoder: { embedDim: 16, depth: 1, numHeads: 2 },
  teacher: { kind: "pixels" },
  maskRatio: 0.5,
  dropPath: 0,
  loss: "cosine",
  arch: "symmetric",
  masking: "block",
};

async function studentCheckpoint(
  withConfig: boolean,
): Promise<{ ckpt: Checkpoint; model: DbotModel; be: CpuBackend }> {
  const be = new CpuBackend({ threads: 1 });
  const model = new DbotModel(be, CFG, 2);
  model.initStudent(1);
  const table = model.student.get("rel_pos_bias.relative_position_bias_table");
  be.upload(table, new Rng(2).uniformArray(table.size, -1, 1)); // not all zeros
  const weights = await model.student.toHost();
  const shapes = new Map(model.student.specs.map((s) => [s.name, [...s.shape]]));
  const bytes = encodeCheckpoint({ weights, shapes }, withConfig ? { vit: symmetricVit(VIT) } : {});
  return { ckpt: decodeCheckpoint(bytes, "sym.safetensors"), model, be };
}

for (const withConfig of [false, true]) {
  Deno.test(`inferVitConfig() reads a symmetric student's checkpoint (${withConfig ? "with" : "without"} a stored config)`, async () => {
    const { ckpt } = await studentCheckpoint(withConfig);
    for (const n of ["lm_head.weight", "mask_token", "blocks.1.attn.q_bias", "blocks.0.gamma_2"]) {
      assert(ckpt.weights.has(n), `timm Beit name ${n}`);
    }
    assert(
      !ckpt.weights.has("pos_embed") && !ckpt.weights.has("blocks.0.attn.qkv.bias"),
      "no pos_embed, no qkv.bias",
    );
    const cfg = inferVitConfig(ckpt, { file: "sym.safetensors" });
    assertEquals(cfg, symmetricVit(VIT));
    const w = vitWeights(ckpt, cfg, { file: "sym.safetensors" });
    assertEquals(w.size, vitParamSpecs(cfg).length);
  });
}

Deno.test("a symmetric student's checkpoint embeds images exactly like the student's encoder", async () => {
  const { ckpt, model, be: studentBe } = await studentCheckpoint(false);
  const be = new CpuBackend({ threads: 1 });
  const cfg = inferVitConfig(ckpt);
  const ps = new ParamSet(be, vitParamSpecs(cfg), { grads: false, label: "eval" });
  ps.load(vitWeights(ckpt, cfg));
  const L = 36;
  const enc = new VitEncoder(be, cfg, {
    ps,
    B: 2,
    N: 1 + L,
    trainable: false,
    finalNorm: true,
    label: "eval",
  });
  const images = be.tensor([2, 3, 24, 24]);
  const pixels = new Rng(3).uniformArray(images.size, -1, 1);
  be.upload(images, pixels);
  const index = be.tensor([2 * (1 + L)], "i32");
  be.upload(index, fullIndex(2, L));
  enc.patchify(images);
  enc.forward(index);
  // the student's encoder on the same images with nothing masked
  model.setBatchMasked(pixels, new Float32Array(2 * L));
  model.forwardBackward();
  assertAllClose(
    await be.download(enc.out),
    await studentBe.download(model.encoder.out),
    { atol: 1e-6, rtol: 1e-5 },
    "encoder output",
  );
});

Deno.test("inferVitConfig() refuses a relative-position student at another grid and contradicting heads", async () => {
  const { ckpt } = await studentCheckpoint(false);
  assertThrows(
    () => inferVitConfig(ckpt, { student: { ...VIT, imgSize: 32 } }),
    Error,
    "relative position bias is for 6×6",
  );
  assertThrows(() => inferVitConfig(ckpt, { heads: 4 }), Error, "has 3 heads");
});
