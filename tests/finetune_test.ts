/**
 * Fine-tuning: the mean pool and its backward, classifier gradients (finite differences on
 * the CPU, WebGPU vs CPU), mixup/cutmix targets, and a tiny end-to-end run that lowers the
 * loss and saves a classifier that reloads with the right names.
 */
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import {
  classifierSpecs,
  meanPoolBackward,
  meanPoolForward,
  poolMatrix,
  VitClassifier,
} from "../src/models/classifier.ts";
import type { VitConfig } from "../src/models/vit_config.ts";
import { ParamSet } from "../src/nn/params.ts";
import { vitParamSpecs } from "../src/models/vit.ts";
import { writeCheckpoint } from "../src/io/checkpoint_file.ts";
import { finetune, readClassifier, resolveFinetune } from "../src/train/finetune.ts";
import { mixBatch } from "../src/data/mixup.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { assertAllClose } from "./helpers.ts";
import { gpuTest } from "./gpu.ts";

async function meanPoolMatchesHost(be: Backend): Promise<void> {
  const B = 3, N = 5, D = 7;
  const rng = new Rng(1);
  const x = rng.uniformArray(B * N * D, -1, 1);
  const dy = rng.uniformArray(B * D, -1, 1);
  const t = (shape: number[], data?: Float32Array) => {
    const v = be.tensor(shape);
    if (data) be.upload(v, data);
    return v;
  };
  const pool = t([B, B * N], poolMatrix(B, N));
  const pooled = t([B, D]);
  const dx = t([B * N, D], new Float32Array(B * N * D).fill(9)); // assigned, not accumulated
  meanPoolForward(be, { pooled, x: t([B * N, D], x), pool }, { B, N, D });
  meanPoolBackward(be, { dx, dpooled: t([B, D], dy), pool }, { B, N, D });
  const want = new Float64Array(B * D);
  const wantDx = new Float64Array(B * N * D);
  for (let b = 0; b < B; b++) {
    for (let l = 1; l < N; l++) {
      for (let c = 0; c < D; c++) {
        want[b * D + c] += x[(b * N + l) * D + c] / (N - 1);
        wantDx[(b * N + l) * D + c] = dy[b * D + c] / (N - 1); // ∂(Σ dy·pooled)/∂x
      }
    }
  }
  assertAllClose(await be.download(pooled), want, { atol: 1e-6 }, "pooled");
  assertAllClose(await be.download(dx), wantDx, { atol: 1e-7 }, "dx");
}

Deno.test("meanPoolForward()/meanPoolBackward() match the host mean and its exact gradient (cpu)", () =>
  meanPoolMatchesHost(new CpuBackend()));
gpuTest(
  "meanPoolForward()/meanPoolBackward() match the host mean and its exact gradient",
  (be) => meanPoolMatchesHost(be),
);

const vit: VitConfig = {
  imgSize: 8,
  patchSize: 4,
  inChans: 1,
  embedDim: 8,
  depth: 2,
  numHeads: 2,
  mlpRatio: 2,
};

function classifierAt(be: Backend, dropPath: number): VitClassifier {
  const m = new VitClassifier(be, vit, { numClasses: 3, B: 2, dropPath });
  m.init(new Rng(4));
  const rng = new Rng(5);
  // non-trivial fc_norm / head so every gradient is exercised
  m.ps.load(new Map([["head.weight", rng.uniformArray(24, -0.5, 0.5)]]));
  m.ps.load(new Map([["fc_norm.bias", rng.uniformArray(8, -0.2, 0.2)]]));
  const images = rng.uniformArray(2 * 64, -1, 1);
  const targets = new Float32Array([0.8, 0.1, 0.1, 0.05, 0.05, 0.9]);
  m.setBatch(images, targets, new Rng(6));
  return m;
}

Deno.test("classifierSpecs() drops norm.*, makes pos_embed trainable without decay, adds fc_norm/head", () => {
  const s = classifierSpecs(vit, 3);
  const by = new Map(s.map((x) => [x.name, x]));
  assert(!by.has("norm.weight") && by.has("fc_norm.weight") && by.has("head.bias"), "names");
  assertEquals(
    [by.get("pos_embed")!.trainable, by.get("pos_embed")!.decay, by.get("pos_embed")!.layerId],
    [true, false, 0],
  );
  assertEquals([by.get("cls_token")!.decay, by.get("head.weight")!.layerId], [false, 3]);
  assertEquals(by.get("blocks.1.attn.qkv.weight")!.layerId, 2);
});

Deno.test("VitClassifier gradients (mean pool, fc_norm, head, pos_embed, cls) match finite differences (cpu)", async () => {
  const be = new CpuBackend({ gemm: "ts" });
  const m = classifierAt(be, 0);
  be.fill(m.ps.grads!, 0);
  m.forwardBackward();
  const grads = await m.ps.gradsToHost();
  const host = await m.ps.toHost();
  const lossAt = async (): Promise<number> => {
    m.forwardBackward();
    return ((await be.download(m.loss)) as Float32Array)[0];
  };
  const h = 3e-3; // the cls path is strongly curved (LayerNorm of near-zero rows): keep h small
  const checks: [string, number][] = [
    ["pos_embed", 3],
    ["pos_embed", 8 * 2 + 5],
    ["cls_token", 1],
    ["patch_embed.proj.weight", 7],
    ["blocks.0.attn.qkv.weight", 40],
    ["blocks.1.mlp.fc2.bias", 2],
    ["fc_norm.weight", 4],
    ["fc_norm.bias", 6],
    ["head.weight", 11],
    ["head.bias", 1],
  ];
  for (const [name, i] of checks) {
    const v = host.get(name)!.slice();
    const x0 = v[i];
    v[i] = x0 + h;
    m.ps.load(new Map([[name, v]]));
    const lp = await lossAt();
    v[i] = x0 - h;
    m.ps.load(new Map([[name, v]]));
    const lm = await lossAt();
    v[i] = x0;
    m.ps.load(new Map([[name, v]]));
    assertAllClose([grads.get(name)![i]], [(lp - lm) / (2 * h)], { atol: 3e-4, rtol: 3e-2 }, name);
  }
});

gpuTest(
  "VitClassifier loss and every gradient with drop path match the CPU backend",
  async (be) => {
    const got = classifierAt(be, 0.5);
    const cpu = new CpuBackend({ gemm: "ts" });
    const want = classifierAt(cpu, 0.5);
    for (const [b, m] of [[be, got], [cpu, want]] as const) {
      b.fill(m.ps.grads!, 0);
      m.forwardBackward();
    }
    assertAllClose(
      await be.download(got.loss),
      await cpu.download(want.loss),
      { rtol: 1e-5 },
      "loss",
    );
    const g = await got.ps.gradsToHost();
    for (const [name, w] of await want.ps.gradsToHost()) {
      assertAllClose(g.get(name)!, w, { atol: 1e-5, rtol: 1e-3 }, name);
    }
  },
);

Deno.test("mixBatch() makes soft targets that sum to 1 with λ matching the pasted CutMix area", () => {
  const rng = new Rng(2);
  for (let trial = 0; trial < 20; trial++) {
    const B = 4, C = 1, H = 6, W = 6;
    const images = new Float32Array(B * C * H * W);
    for (let b = 0; b < B; b++) images.fill(b, b * 36, (b + 1) * 36);
    const labels = new Int32Array([0, 1, 2, 0]);
    const r = mixBatch(images, labels, { B, C, H, W }, {
      mixup: 0.8,
      cutmix: 1,
      switchProb: 0.5,
      smoothing: 0.1,
      numClasses: 3,
    }, rng);
    for (let b = 0; b < B; b++) {
      const row = r.targets.subarray(b * 3, b * 3 + 3);
      assertAllClose([row.reduce((a, x) => a + x, 0)], [1], { atol: 1e-6 });
      // image b is λ·own + (1−λ)·image B−1−b on average (pixels hold the image index)
      const mean = images.subarray(b * 36, (b + 1) * 36).reduce((a, x) => a + x, 0) / 36;
      assertAllClose([mean], [r.lam * b + (1 - r.lam) * (B - 1 - b)], { atol: 1e-5 });
    }
  }
});

Deno.test("finetune() lowers the training loss and saves a classifier that reloads with the right names", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const small: VitConfig = { ...vit, imgSize: 32, patchSize: 8, inChans: 3, embedDim: 16 };
    const ps = new ParamSet(new CpuBackend(), vitParamSpecs(small), { grads: false, label: "p" });
    ps.init(new Rng(0));
    await writeCheckpoint(`${dir}/enc.safetensors`, ps, { vit: small });
    const cfg = resolveFinetune({
      checkpoint: `${dir}/enc.safetensors`,
      data: "shapes:64",
      runsDir: dir,
      name: "ft",
      epochs: 60,
      warmupEpochs: 1,
      batch: 16,
      baseLr: 0.1,
      mixup: 0,
      cutmix: 0,
      smoothing: 0,
      dropPath: 0,
      testLimit: 32,
      logEvery: 4,
    });
    // count what the run allocates and frees: a reproduction fine-tunes many times on one backend
    const be = new CpuBackend();
    const live = new Set<unknown>();
    const [tensor, free] = [be.tensor.bind(be), be.free.bind(be)];
    be.tensor = (...a: Parameters<CpuBackend["tensor"]>) => {
      const t = tensor(...a);
      live.add(t.storage);
      return t;
    };
    be.free = (t) => {
      live.delete(t.storage);
      free(t);
    };
    const s = await finetune(be, cfg, { log: () => {} });
    const left = [...live].map((st) => (st as { label?: string }).label);
    assertEquals(
      left.filter((l) => l?.startsWith("ft.")),
      [],
      "the classifier's buffers are freed",
    );
    assert(s.loss_last < s.loss_first - 0.5, `loss ${s.loss_first} → ${s.loss_last}`);
    assert(s.top1 >= 0 && s.top1 <= 100 && s.test === 32, `top-1 ${s.top1}`);
    const r = await readClassifier(s.classifier);
    assertEquals(r.numClasses, 10);
    assertEquals(
      [...r.weights.keys()].sort(),
      classifierSpecs(small, 10).map((x) => x.name).sort(),
    );
    assert(!r.weights.has("norm.weight"), "no encoder norm in a classifier");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finetune() with the ImageNet recipe's augmentation (RandAugment, erasing, crop 0.875, clip) repeats per seed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const small: VitConfig = { ...vit, imgSize: 32, patchSize: 8, inChans: 3, embedDim: 16 };
    const ps = new ParamSet(new CpuBackend(), vitParamSpecs(small), { grads: false, label: "p" });
    ps.init(new Rng(0));
    await writeCheckpoint(`${dir}/enc.safetensors`, ps, { vit: small });
    const run = async (seed: number) => {
      const cfg = resolveFinetune({
        recipe: "vit-base",
        checkpoint: `${dir}/enc.safetensors`,
        data: "shapes:32",
        runsDir: dir,
        epochs: 2,
        warmupEpochs: 1, // the recipe's 5 is longer than this run
        batch: 16,
        testLimit: 16,
        logEvery: 1,
        save: false,
        seed,
      });
      assertEquals([cfg.randAugment, cfg.reprob, cfg.cropPct], [
        "rand-m9-mstd0.5-inc1",
        0.25,
        0.875,
      ]);
      const lines: string[] = [];
      const s = await finetune(new CpuBackend(), cfg, { log: (l) => lines.push(l) });
      assert(lines[0].includes("RandAugment rand-m9-mstd0.5-inc1 + RandomErasing 0.25"), lines[0]);
      assert(
        Number.isFinite(s.loss_last) && s.steps === 4,
        `loss ${s.loss_last}, ${s.steps} steps`,
      );
      return lines.slice(1).join("\n");
    };
    const a = await run(1);
    assertEquals(await run(1), a);
    assert((await run(2)) !== a, "seeds 1 and 2 gave the same losses");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("finetune() with --labels trains on the class-balanced subset of the seed, and refuses too many", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const small: VitConfig = { ...vit, imgSize: 32, patchSize: 8, inChans: 3, embedDim: 16 };
    const ps = new ParamSet(new CpuBackend(), vitParamSpecs(small), { grads: false, label: "p" });
    ps.init(new Rng(0));
    await writeCheckpoint(`${dir}/enc.safetensors`, ps, { vit: small });
    const cfg = (labels: number, labelSeed: number) =>
      resolveFinetune({
        checkpoint: `${dir}/enc.safetensors`,
        data: "shapes:64",
        runsDir: dir,
        epochs: 2,
        warmupEpochs: 0,
        batch: 10,
        trainLimit: 50,
        labels,
        labelSeed,
        mixup: 0,
        cutmix: 0,
        testLimit: 8,
        logEvery: 1,
        save: false,
      });
    const losses = async (labels: number, labelSeed: number) => {
      const lines: string[] = [];
      const s = await finetune(new CpuBackend(), cfg(labels, labelSeed), {
        log: (l) => lines.push(l),
      });
      return { s, lines };
    };
    const a = await losses(20, 1);
    assertEquals([a.s.train, a.s.steps], [20, 4], "20 labelled images: 2 steps of 10 an epoch");
    assert(a.lines[0].startsWith("finetune: 20 train / 8 test images"), a.lines[0]);
    assertEquals((await losses(20, 1)).lines, a.lines, "the same seed, the same images");
    assert((await losses(20, 2)).lines.join() !== a.lines.join(), "another seed, other images");
    assertEquals((await losses(0, 1)).s.train, 50, "0: every image of the pool");
    // more labels than the pool holds: a clear error, not every image silently
    await finetune(new CpuBackend(), cfg(60, 0), { log: () => {} }).then(
      () => assert(false, "60 labels of 50 images were accepted"),
      (e) => assert(String(e).includes("give at most 50 (0: all)"), String(e)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
