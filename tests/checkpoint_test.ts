/**
 * Checkpoints: a ViT written by PyTorch loads (config inferred from shapes) and
 * gives PyTorch's features on both backends; ours round-trip bit-exactly; bad
 * checkpoints name what is wrong.
 */
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { embedImages } from "../src/eval/embed_file.ts";
import {
  CheckpointError,
  inferVitConfig,
  readCheckpoint,
  vitWeights,
  writeCheckpoint,
} from "../src/io/checkpoint_file.ts";
import { decodeSafetensors, toFloat32 } from "../src/io/safetensors.ts";
import { DbotModel } from "../src/models/dbot.ts";
import { vitFromPreset } from "../src/models/vit_config.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { assertAllClose } from "./helpers.ts";
import { gpuTest } from "./gpu.ts";

const vitPath = new URL("./fixtures/tiny_vit.safetensors", import.meta.url).pathname;
const featPath = new URL("./fixtures/tiny_vit_features.safetensors", import.meta.url).pathname;
const golden = decodeSafetensors(await Deno.readFile(featPath)).tensors;

async function checkFeatures(be: Backend): Promise<void> {
  const ckpt = await readCheckpoint(vitPath);
  const cfg = inferVitConfig(ckpt, { file: vitPath });
  assertEquals(
    { ...cfg },
    { imgSize: 16, patchSize: 4, inChans: 3, embedDim: 32, depth: 2, numHeads: 2, mlpRatio: 4 },
  );
  const weights = vitWeights(ckpt, cfg, { file: vitPath });
  const images = toFloat32(golden.get("images")!);
  for (const pool of ["cls", "mean"] as const) {
    // batch 2 over 3 images also exercises a partial last batch
    const sz = 3 * 16 * 16;
    const feats = await embedImages(be, cfg, {
      weights,
      count: 3,
      image: (i) => images.subarray(i * sz, (i + 1) * sz),
      pool,
      batch: 2,
    });
    assertAllClose(
      feats,
      toFloat32(golden.get(`features_${pool}`)!),
      { atol: 1e-5, rtol: 1e-4 },
      pool,
    );
  }
}

Deno.test("embedImages() of a PyTorch-written ViT matches PyTorch features on cpu", async () => {
  const be = new CpuBackend();
  await checkFeatures(be);
  be.dispose();
});

gpuTest("embedImages() of a PyTorch-written ViT matches PyTorch features", checkFeatures);

Deno.test("writeCheckpoint() then readCheckpoint() round-trips a dBOT student bit-exactly", async () => {
  const be = new CpuBackend();
  const vit = vitFromPreset("vit-micro", { imgSize: 32, patchSize: 8, inChans: 3 });
  const model = new DbotModel(be, {
    student: vit,
    decoder: { embedDim: 64, depth: 1, numHeads: 4 },
    teacher: { kind: "vit", vit },
    maskRatio: 0.75,
    dropPath: 0,
  }, 1);
  model.initStudent(7);
  const dir = await Deno.makeTempDir();
  const path = `${dir}/student.safetensors`;
  await writeCheckpoint(path, model.student, { vit });
  const back = await readCheckpoint(path);
  const host = await model.student.toHost();
  assertEquals([...back.weights.keys()].sort(), [...host.keys()].sort());
  for (const [name, w] of host) {
    const r = back.weights.get(name)!;
    assert(
      new Uint8Array(r.buffer, r.byteOffset, r.byteLength).every((b, i) =>
        b === new Uint8Array(w.buffer, w.byteOffset, w.byteLength)[i]
      ),
      `${name} differs`,
    );
    assertEquals(back.shapes.get(name), [...model.student.get(name).shape]);
  }
  assertEquals(inferVitConfig(back), vit);
  // the encoder part loads as a ViT (decoder names are known extras)
  assertEquals(vitWeights(back, vit).size, 4 + 12 * 4 + 2);
  await Deno.remove(dir, { recursive: true });
  be.dispose();
});

Deno.test("vitWeights() lists missing, wrong-shape and unexpected names", async () => {
  const ckpt = await readCheckpoint(vitPath);
  const cfg = inferVitConfig(ckpt);
  ckpt.weights.delete("blocks.1.mlp.fc2.bias");
  ckpt.shapes.set("norm.weight", [31]);
  ckpt.weights.set("blocks.0.attn.relative_position_bias", new Float32Array(4));
  ckpt.shapes.set("blocks.0.attn.relative_position_bias", [4]);
  assertThrows(
    () => vitWeights(ckpt, cfg, { file: "x.safetensors" }),
    CheckpointError,
    "missing: blocks.1.mlp.fc2.bias; wrong shape: norm.weight [31] (expected [32]); unexpected: blocks.0.attn.relative_position_bias",
  );
});

Deno.test("inferVitConfig() asks for --heads when D/64 is fractional and none is stored", async () => {
  const ckpt = await readCheckpoint(vitPath);
  ckpt.config = {};
  assertThrows(() => inferVitConfig(ckpt), CheckpointError, "pass --heads");
  assertEquals(inferVitConfig(ckpt, { heads: 4 }).numHeads, 4);
});
