/**
 * The CLIP teacher: a CLIP-format checkpoint written by PyTorch (F16, OpenAI names; see
 * tests/fixtures/make_clip_fixtures.py) loads, and its targets for a fixed batch — resized
 * 16 → 12 px, CLIP-normalised, positional embedding 5 → 4, ln_post on all tokens @ proj —
 * match PyTorch's on the CPU and WebGPU; hostile files fail with one error naming every problem.
 */
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { clipTeacherConfig, loadClipWeights } from "../src/io/clip_checkpoint.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type NamedTensor,
  toFloat32,
} from "../src/io/safetensors.ts";
import type { VitConfig } from "../src/models/vit_config.ts";
import { buildTeacher, teacherWidth } from "../src/models/teacher.ts";
import { DbotModel } from "../src/models/dbot.ts";
import { randomMasking } from "../src/models/masking.ts";
import { Rng } from "../src/util/rng.ts";
import { ClipCheckpointError, type ClipTeacherConfig } from "../src/models/teachers/clip.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { assertAllClose } from "./helpers.ts";
import { gpuTest } from "./gpu.ts";

const clipPath = new URL("./fixtures/clip_tiny.safetensors", import.meta.url).pathname;
const golden = decodeSafetensors(
  await Deno.readFile(new URL("./fixtures/clip_tiny_golden.safetensors", import.meta.url)),
).tensors;
const student: VitConfig = {
  imgSize: 16,
  patchSize: 4,
  inChans: 3,
  embedDim: 32,
  depth: 1,
  numHeads: 2,
  mlpRatio: 4,
};
const B = 2;
const L = 16;

Deno.test("clipTeacherConfig() reads the tower's shape from the header", async () => {
  const cfg = await clipTeacherConfig(clipPath, { heads: 2, student });
  assertEquals(cfg, {
    kind: "clip",
    vit: {
      imgSize: 12, // the student's 4 × 4 grid × patch 3
      patchSize: 3,
      inChans: 3,
      embedDim: 64,
      depth: 2,
      numHeads: 2,
      mlpRatio: 4,
      act: "quickgelu",
      patchBias: false,
      preNorm: true,
      projDim: 32,
      lnEps: 1e-5,
    },
    imgSize: 15, // its own 5 × 5 grid
    path: clipPath,
  });
  assertEquals(teacherWidth(cfg, student), 32);
  // heads default to width/64; without a student it runs at its own grid
  const own = await clipTeacherConfig(clipPath);
  assertEquals([own.vit.numHeads, own.vit.imgSize], [1, 15]);
});

async function checkTargets(be: Backend): Promise<void> {
  const cfg = await clipTeacherConfig(clipPath, { heads: 2, student });
  const teacher = buildTeacher(be, cfg, { student, B });
  assertEquals([teacher.width, teacher.hasClsTarget], [32, false]);
  teacher.params!.load(await loadClipWeights(clipPath, cfg));
  const images = be.tensor([B, 3, 16, 16], "f32", "images");
  be.upload(images, toFloat32(golden.get("images")!));
  const out = be.tensor([B, 1 + L, 32], "f32", "targets");
  teacher.targets(images, out);
  const got = (await be.download(out)) as Float32Array;
  const want = toFloat32(golden.get("targets")!);
  const rows = (a: Float32Array, cls: boolean) =>
    Float32Array.from(a.filter((_, i) => (Math.floor(i / 32) % (1 + L) === 0) === cls));
  // measured: 2.8e-6 on the CPU; wrong LayerNorm eps (1e-6) 4.8e-5, GELU for QuickGELU 1e-2
  assertAllClose(
    rows(got, false),
    rows(want, false),
    { atol: 2e-5, rtol: 1e-5 },
    `${be.name} targets`,
  );
  assert(rows(got, true).every((v) => v === 0), "the cls rows carry no target");
  teacher.dispose();
  be.free(images);
  be.free(out);
}

Deno.test("The CLIP teacher's targets match PyTorch's (cpu)", async () => {
  const be = new CpuBackend({ threads: 1 });
  await checkTargets(be);
  be.dispose();
});

gpuTest("The CLIP teacher's targets match PyTorch's", checkTargets);

Deno.test("loadClipWeights() maps OpenAI names to timm names (proj transposed)", async () => {
  const cfg = await clipTeacherConfig(clipPath, { heads: 2, student });
  const w = await loadClipWeights(clipPath, cfg);
  const raw = decodeSafetensors(await Deno.readFile(clipPath)).tensors;
  const proj = toFloat32(raw.get("visual.proj")!); // [64, 32]
  const head = w.get("head.weight")!; // [32, 64]
  assertEquals(head[5 * 64 + 7], proj[7 * 32 + 5]);
  assertEquals(
    w.get("blocks.1.attn.qkv.weight"),
    toFloat32(raw.get("visual.transformer.resblocks.1.attn.in_proj_weight")!),
  );
  assertEquals(w.get("pos_embed")!.length, 17 * 64);
  assert(![...w.keys()].some((n) => n.includes("token_embedding")), "text tower ignored");
});

/** The error `fn` rejects with: of class `cls`, its message containing `part`. */
async function rejects(
  fn: () => Promise<unknown>,
  cls: new (...a: never[]) => Error,
  part: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert(e.message.includes(part), `"${part}" not in: ${e.message}`);
    return e;
  }
  throw new Error(`expected a ${cls.name} containing "${part}"`);
}

/** The fixture's tensors, edited by `edit`, written to a temp file. */
async function hostile(edit: (t: Map<string, NamedTensor>) => void): Promise<string> {
  const { tensors } = decodeSafetensors(await Deno.readFile(clipPath));
  edit(tensors);
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await Deno.writeFile(path, encodeSafetensors(tensors));
  return path;
}

const noProj = (t: Map<string, NamedTensor>) => t.delete("visual.proj");
const badGrid = (t: Map<string, NamedTensor>) => {
  const p = t.get("visual.positional_embedding")!; // [26, 64] → [16, 64]: 15 patches
  t.set("visual.positional_embedding", {
    ...p,
    shape: [16, 64],
    data: p.data.slice(0, 16 * 64 * 2),
  });
};
const badDtype = (t: Map<string, NamedTensor>) => {
  const c = t.get("visual.conv1.weight")!; // F16 → I32 of the same count
  t.set("visual.conv1.weight", { dtype: "I32", shape: c.shape, data: new Int32Array(64 * 27) });
};

Deno.test("Hostile CLIP files fail with one error naming every problem", async () => {
  const cases: [string, (t: Map<string, NamedTensor>) => void, string[]][] = [
    ["no proj", noProj, ["missing visual.proj"]],
    ["bad grid", badGrid, [
      "visual.positional_embedding has shape [16,64], expected [1 + G², 64] for a square G × G grid",
    ]],
    ["bad dtype", badDtype, ["visual.conv1.weight is I32, not F16/BF16/F32"]],
    ["all three", (t) => {
      noProj(t);
      badGrid(t);
      badDtype(t);
    }, ["missing visual.proj", "[16,64]", "is I32"]],
  ];
  for (const [what, edit, parts] of cases) {
    const path = await hostile(edit);
    const e = await rejects(
      () => clipTeacherConfig(path, { student }),
      ClipCheckpointError,
      `Cannot use "${path}" as a CLIP teacher: `,
    );
    for (const p of parts) assert(e.message.includes(p), `${what}: "${p}" not in: ${e.message}`);
    assert(e.message.includes("OpenAI-CLIP / OpenCLIP image tower"), "says what is expected");
    await Deno.remove(path);
  }
  const empty = await hostile((t) => {
    for (const n of [...t.keys()]) if (n.startsWith("visual.")) t.delete(n);
  });
  await rejects(
    () => clipTeacherConfig(empty),
    ClipCheckpointError,
    "it has no visual.conv1.weight",
  );
  await Deno.remove(empty);
});

Deno.test("A CLIP teacher whose grid cannot match the student's is one clear error", async () => {
  const own = await clipTeacherConfig(clipPath, { heads: 2 }); // 15 px: 5 × 5 tokens
  const be = new CpuBackend({ threads: 1 });
  assertThrows(
    () => buildTeacher(be, own, { student, B }),
    RangeError,
    "its 5×5 tokens (15 px / patch 3) differ from the student's 4×4 (16 px / patch 4): run it at 12 px",
  );
  const bad: ClipTeacherConfig = { ...own, vit: { ...own.vit, inChans: 1 } };
  assertThrows(
    () => buildTeacher(be, bad, { student, B }),
    RangeError,
    "it takes 1 channels, the student 3",
  );
  be.dispose();
  await rejects(
    () => clipTeacherConfig(clipPath, { heads: 3 }),
    ClipCheckpointError,
    "the head count 3 does not divide the width 64",
  );
});

Deno.test("DbotModel distils a CLIP teacher with the cosine loss over masked patches only", async () => {
  const be = new CpuBackend({ threads: 1 });
  const teacher = await clipTeacherConfig(clipPath, { heads: 2, student });
  const model = new DbotModel(be, {
    student,
    decoder: { embedDim: 32, depth: 1, numHeads: 2 },
    teacher,
    maskRatio: 0.75,
    dropPath: 0,
    loss: "cosine",
  }, B);
  model.initStudent(1);
  const weights = await loadClipWeights(clipPath, teacher);
  model.teacher.params!.load(weights);
  const noise = new Rng(2).uniformArray(B * L);
  model.setBatch(toFloat32(golden.get("images")!), noise);
  model.forwardBackward();
  const target = (await be.download(model.target)) as Float32Array;
  const pred = (await be.download(model.pred)) as Float32Array;
  const loss = (await be.download(model.loss))[0];
  // the targets are the golden ones; the loss is mean over masked patches of 1 − cos
  const want = toFloat32(golden.get("targets")!);
  const m = randomMasking(noise, { B, L }, 0.75);
  let sum = 0;
  let n = 0;
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      if (!m.mask[b * L + l]) continue;
      const o = (b * (1 + L) + 1 + l) * 32;
      let [xy, xx, yy] = [0, 0, 0];
      for (let c = 0; c < 32; c++) {
        assert(Math.abs(target[o + c] - want[o + c]) < 2e-5, `target ${o + c}`);
        xy += pred[o + c] * target[o + c];
        xx += pred[o + c] ** 2;
        yy += target[o + c] ** 2;
      }
      sum += 1 - xy / Math.sqrt(xx * yy);
      n++;
    }
  }
  assertEquals(n, B * 12);
  assert(Math.abs(loss - sum / n) < 1e-5, `loss ${loss} vs ${sum / n}`);
  // the teacher is frozen: its weights are as loaded
  const after = await model.teacher.params!.toHost();
  assertEquals(after.get("head.weight"), weights.get("head.weight"));
  model.dispose();
  be.dispose();
});

Deno.test("Unsupported tower variants (layer scale) are named, not ignored", async () => {
  const path = await hostile((t) => {
    const ln = t.get("visual.transformer.resblocks.0.ln_1.weight")!;
    t.set("visual.transformer.resblocks.0.ls_1.gamma", ln);
    t.set("visual.transformer.resblocks.3.ln_1.bias", ln);
  });
  const e = await rejects(() => clipTeacherConfig(path), ClipCheckpointError, "unexpected ");
  assert(e.message.includes("visual.transformer.resblocks.0.ls_1.gamma"), e.message);
  assert(e.message.includes("resblocks.3.ln_1.bias is beyond the 2 consecutive blocks"), e.message);
  assert(!e.message.includes("token_embedding"), `the text tower is no problem: ${e.message}`);
  await Deno.remove(path);
});

Deno.test("F32 towers and towers saved without the visual. prefix load the same weights", async () => {
  const cfg = await clipTeacherConfig(clipPath, { heads: 2, student });
  const want = await loadClipWeights(clipPath, cfg);
  const f32 = await hostile((t) => {
    for (const [n, x] of t) t.set(n, { dtype: "F32", shape: x.shape, data: toFloat32(x) });
  });
  const bare = await hostile((t) => {
    for (const [n, x] of [...t]) {
      t.delete(n);
      if (n.startsWith("visual.")) t.set(n.slice("visual.".length), x);
    }
  });
  for (const path of [f32, bare]) {
    const c = await clipTeacherConfig(path, { heads: 2, student });
    assertEquals(c.vit, cfg.vit);
    const got = await loadClipWeights(path, c);
    assertEquals([...got.keys()].sort(), [...want.keys()].sort());
    for (const [n, w] of want) assertEquals(got.get(n), w, n);
    await Deno.remove(path);
  }
});
