/**
 * Teachers at another resolution / patch size: the image resize (torchvision antialiased
 * bicubic) and the position-embedding interpolation (DINO's interpolate_pos_encoding, torch
 * bicubic) against PyTorch (tests/fixtures/make_clip_fixtures.py), on the host and as the
 * device ops the teacher records.
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import type { Backend } from "../src/backend/backend.ts";
import { decodeSafetensors, toFloat32 } from "../src/io/safetensors.ts";
import {
  antialiasBicubicMatrix,
  interpolatePosEmbed,
  TeacherInput,
} from "../src/models/teachers/resize.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import {
  CheckpointError,
  inferVitConfig,
  presetHeads,
  readCheckpoint,
  vitWeights,
} from "../src/io/checkpoint_file.ts";
import type { VitConfig } from "../src/models/vit_config.ts";
import { buildTeacher } from "../src/models/teacher.ts";
import { assertAllClose } from "./helpers.ts";
import { gpuTest } from "./gpu.ts";

const golden = decodeSafetensors(
  await Deno.readFile(new URL("./fixtures/vit_resize_golden.safetensors", import.meta.url)),
).tensors;
const g = (name: string): Float32Array => toFloat32(golden.get(name)!);

const RESIZES = [[16, 8], [16, 12], [16, 32], [7, 5], [5, 9], [28, 24]];

/** `R X Rᵀ` on the host, f64. */
function hostResize(x: Float32Array, S: number, T: number): Float32Array {
  const r = antialiasBicubicMatrix(S, T);
  const out = new Float32Array(T * T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      let s = 0;
      for (let p = 0; p < S; p++) {
        for (let q = 0; q < S; q++) s += r[i * S + p] * x[p * S + q] * r[j * S + q];
      }
      out[i * T + j] = s;
    }
  }
  return out;
}

Deno.test("antialiasBicubicMatrix() resizes like torchvision Resize(BICUBIC, antialias=True)", () => {
  for (const [a, b] of RESIZES) {
    const got = hostResize(g(`aa_x_${a}_${b}`), a, b);
    assertAllClose(got, g(`aa_${a}_${b}`), { atol: 1e-5, rtol: 1e-5 }, `${a}→${b}`);
  }
});

Deno.test("interpolatePosEmbed() matches DINO's interpolate_pos_encoding (torch bicubic)", () => {
  for (const [a, b] of [[6, 4], [16, 14], [3, 4], [14, 16], [5, 4]]) {
    const got = interpolatePosEmbed(g(`pos_x_${a}_${b}`), { from: a, to: b, dim: 8 });
    assertAllClose(got, g(`pos_${a}_${b}`), { atol: 2e-6, rtol: 1e-5 }, `${a}→${b}`);
  }
  assertThrows(
    () => interpolatePosEmbed(new Float32Array(10), { from: 3, to: 2, dim: 2 }),
    RangeError,
    "(1 + 3²)·2 = 20",
  );
});

async function deviceResize(be: Backend): Promise<void> {
  for (const [S, T] of RESIZES) {
    // B = 2, C = 3 planes: the fixture's plane and five shifted copies
    const x = g(`aa_x_${S}_${T}`);
    const planes = 6;
    const inp = new Float32Array(planes * S * S);
    for (let p = 0; p < planes; p++) {
      for (let i = 0; i < S * S; i++) inp[p * S * S + i] = x[i] + p;
    }
    const scale = [0.5, 2, -1];
    const shift = [0.25, -1, 3];
    const ti = new TeacherInput(be, { B: 2, C: 3, from: S, to: T, scale, shift, label: "t" });
    const images = be.tensor([2, 3, S, S], "f32", "images");
    be.upload(images, inp);
    const out = (await be.download(ti.run(images))) as Float32Array;
    const want = new Float32Array(planes * T * T);
    const y = g(`aa_${S}_${T}`);
    for (let p = 0; p < planes; p++) {
      // resizing is linear and its rows sum to 1: shifting the input by p shifts the output by p
      for (let i = 0; i < T * T; i++) {
        want[p * T * T + i] = scale[p % 3] * (y[i] + p) + shift[p % 3];
      }
    }
    assertAllClose(out, want, { atol: 2e-5, rtol: 2e-5 }, `${be.name} ${S}→${T}`);
    ti.dispose();
    be.free(images);
  }
  // same size, no affine: the input itself
  const same = new TeacherInput(be, { B: 1, C: 3, from: 4, to: 4, label: "same" });
  const images = be.tensor([1, 3, 4, 4], "f32", "images");
  assertEquals(same.run(images), images);
  same.dispose();
  be.free(images);
}

Deno.test("TeacherInput resizes and re-normalises on the device (cpu)", async () => {
  const be = new CpuBackend({ threads: 1 });
  await deviceResize(be);
  be.dispose();
});

gpuTest("TeacherInput resizes and re-normalises on the device", deviceResize);

const vitPath = new URL("./fixtures/vit_resize.safetensors", import.meta.url).pathname;
const student: VitConfig = {
  imgSize: 16,
  patchSize: 4,
  inChans: 3,
  embedDim: 32,
  depth: 1,
  numHeads: 2,
  mlpRatio: 4,
};

Deno.test("inferVitConfig({ student }) runs a patch-2 / 12 px ViT at the student's 4×4 grid", async () => {
  const ckpt = await readCheckpoint(vitPath);
  assertEquals(inferVitConfig(ckpt).imgSize, 12); // its own 6 × 6 grid
  const vit = inferVitConfig(ckpt, { student, file: vitPath });
  assertEquals(vit, {
    imgSize: 8,
    patchSize: 2,
    inChans: 3,
    embedDim: 32,
    depth: 2,
    numHeads: 2,
    mlpRatio: 4,
  });
  const w = vitWeights(ckpt, vit, { file: vitPath });
  assertAllClose(
    w.get("pos_embed")!,
    g("pos_embed_4"),
    { atol: 2e-6, rtol: 1e-5 },
    "pos_embed 6→4",
  );
});

async function vitTargets(be: Backend): Promise<void> {
  const ckpt = await readCheckpoint(vitPath);
  const vit = inferVitConfig(ckpt, { student, file: vitPath });
  const teacher = buildTeacher(be, { kind: "vit", vit }, { student, B: 2 });
  teacher.params!.load(vitWeights(ckpt, vit, { file: vitPath }));
  const images = be.tensor([2, 3, 16, 16], "f32", "images");
  be.upload(images, g("images"));
  const out = be.tensor([2, 17, 32], "f32", "targets");
  teacher.targets(images, out);
  const got = (await be.download(out)) as Float32Array;
  // measured: 1.1e-6 on the CPU (standardised targets, values ~1)
  assertAllClose(got, g("targets"), { atol: 2e-5, rtol: 1e-5 }, `${be.name} ViT targets`);
  teacher.dispose();
  be.free(images);
  be.free(out);
}

Deno.test("A ViT teacher at another patch size and resolution matches PyTorch (cpu)", async () => {
  const be = new CpuBackend({ threads: 1 });
  await vitTargets(be);
  be.dispose();
});

gpuTest("A ViT teacher at another patch size and resolution matches PyTorch", vitTargets);

Deno.test("A ViT teacher whose grid differs from the student's is one clear error", async () => {
  const ckpt = await readCheckpoint(vitPath);
  const own = inferVitConfig(ckpt); // 6 × 6 tokens
  const be = new CpuBackend({ threads: 1 });
  assertThrows(
    () => buildTeacher(be, { kind: "vit", vit: own }, { student, B: 1 }),
    RangeError,
    "its 6×6 tokens (12 px / patch 2) differ from the student's 4×4 (16 px / patch 4): run it at 8 px",
  );
  be.dispose();
});

Deno.test("Head count: told, stored, a preset's width, else an error asking for --teacher-heads", async () => {
  const ckpt = await readCheckpoint(vitPath);
  assertEquals(inferVitConfig(ckpt).numHeads, 2); // stored (num_heads beside embed_dim)
  ckpt.config = {};
  const e = (() => {
    try {
      inferVitConfig(ckpt, { file: "h.safetensors" });
    } catch (err) {
      return err as Error;
    }
    throw new Error("no error for width 32 without heads");
  })();
  assert(e instanceof CheckpointError, `${e}`);
  for (const part of ["width 32 is no preset's", "vit-huge 1280/16", "--teacher-heads"]) {
    assert(e.message.includes(part), `"${part}" not in: ${e.message}`);
  }
  assertEquals(inferVitConfig(ckpt, { heads: 4 }).numHeads, 4);
  assertEquals([presetHeads(1280), presetHeads(768), presetHeads(96), presetHeads(1000)], [
    16,
    12,
    3,
    undefined,
  ]);
});
