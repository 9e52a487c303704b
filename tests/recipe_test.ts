/**
 * `--recipe` and the variant's flags: recipe resolution (what each recipe sets), explicit
 * flags overriding it (also when the flag repeats the default), the resolved config printed
 * with where each value came from, and bad values failing with an error that names the fix.
 */
import {
  FINETUNE_CONFIG,
  FINETUNE_DEFAULTS,
  FINETUNE_RECIPES,
  resolveFinetune,
} from "../src/train/finetune.ts";
import {
  planBoundaries,
  PRETRAIN_CONFIG,
  PRETRAIN_DEFAULTS,
  PRETRAIN_RECIPES,
  resolvePretrain,
  summarizePretrain,
} from "../src/train/pretrain_config.ts";
import { adamwConfig } from "../src/train/stages.ts";
import { type MetricLine, pretrain } from "../src/train/pretrain.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { readCheckpoint } from "../src/io/checkpoint_file.ts";
import { effectiveLr, lrAt } from "../src/train/schedule.ts";
import { parseFlags } from "../src/util/cli.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "../src/data/pipeline.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CLIP = "clip:/tmp/ViT-B-16.safetensors";

/** The pre-training config that `args` give on the command line. */
function pretrainFromArgs(args: string[]) {
  return PRETRAIN_CONFIG.resolve(
    PRETRAIN_CONFIG.fromFlags(parseFlags(args, PRETRAIN_CONFIG.flags())),
  );
}

Deno.test("resolvePretrain() recipes vit-base/large/huge set what PRETRAIN.md sets per size", () => {
  const [b, l, h] = ["vit-base", "vit-large", "vit-huge"].map((recipe) =>
    resolvePretrain({ recipe })
  );
  for (const c of [b, l, h]) {
    assertEquals(planBoundaries(c), [0, 800, 1600]); // 2 × 800 epochs
    assertEquals([c.warmupEpochs, c.baseLr, c.minLr, c.weightDecay], [40, 1.5e-4, 0, 0.05]);
    assertEquals([c.beta1, c.beta2, c.eps], [0.9, 0.95, 1e-8]);
    assertEquals([c.student, c.mask, c.loss, c.maskRatio], [
      "asymmetric",
      "random",
      "smoothl1",
      0.75,
    ]);
    assertEquals([c.imgSize, c.batch * c.accum], [224, 4096]);
    assertEquals([[...c.cropScale], c.colorJitter], [[0.2, 1], 0]);
    assertEquals([[...c.mean], [...c.std]], [[...IMAGENET_MEAN], [...IMAGENET_STD]]);
    assertEquals(effectiveLr(c.baseLr, c.batch * c.accum), 1.5e-4 * 16);
  }
  assertEquals([b.model, l.model, h.model], ["vit-base", "vit-large", "vit-huge"]);
  assertEquals([b.patchSize, l.patchSize, h.patchSize], [16, 16, 14]);
  assertEquals([b.dropPath, l.dropPath, h.dropPath], [0.2, 0.2, 0.3]);
  assertEquals([b.clipGrad, l.clipGrad, h.clipGrad], [3, 0, 0]); // clip 3 for B only
  assertEquals([b.teacher, l.teacher, h.teacher], ["random", "random0", "random0"]);
  assertEquals(adamwConfig(l).clipGrad, Infinity);
});

Deno.test("resolvePretrain() recipes clip-b16/clip-l14 set the CLIP branch's optimiser and data", () => {
  for (const [recipe, model] of [["clip-b16", "vit-base"], ["clip-l14", "vit-large"]]) {
    const c = resolvePretrain({ recipe, teacher: CLIP });
    assertEquals(c.model, model);
    assertEquals([c.student, c.mask, c.loss], ["symmetric", "block", "cosine"]);
    assertEquals(planBoundaries(c), [0, 1600]); // one stage
    assertEquals([c.warmupEpochs, c.minLr, c.weightDecay, c.clipGrad, c.dropPath], [
      10,
      1e-5,
      0.05,
      3,
      0.1,
    ]);
    assertEquals(adamwConfig(c), {
      beta1: 0.9,
      beta2: 0.98,
      eps: 1e-6,
      weightDecay: 0.05,
      clipGrad: 3,
    });
    // lr 3e-3 at batch 4096, linear in the batch
    assert(Math.abs(effectiveLr(c.baseLr, 4096) - 3e-3) < 1e-15, `lr at 4096: ${c.baseLr}`);
    assert(Math.abs(effectiveLr(c.baseLr, 1024) - 7.5e-4) < 1e-15, "lr at 1024");
    assertEquals([[...c.cropScale], c.colorJitter], [[0.4, 1], 0.4]);
    // cosine to 1e-5 at the end of the stage
    const s = { lr: 3e-3, warmupEpochs: c.warmupEpochs, stageEpochs: 1600, minLr: c.minLr };
    assertEquals([lrAt(0, s), lrAt(10, s), lrAt(1600, s)], [0, 3e-3, 1e-5]);
  }
});

Deno.test("resolvePretrain() lets explicit settings override a recipe, even at their default", () => {
  const c = pretrainFromArgs(["--recipe", "vit-large", "--clip-grad", "3", "--drop-path", "0.05"]);
  assertEquals([c.clipGrad, c.dropPath, c.model], [3, 0.05, "vit-large"]); // 3 is also the default
  const d = pretrainFromArgs([
    "--recipe",
    "clip-b16",
    "--teacher",
    CLIP,
    "--batch",
    "64",
    "--accum",
    "1",
  ]);
  assertEquals([d.batch, d.accum, d.beta2], [64, 1, 0.98]);
  // a flag not given leaves the recipe's value; without a recipe, the defaults
  assertEquals(pretrainFromArgs([]).beta2, PRETRAIN_DEFAULTS.beta2);
  assertEquals(pretrainFromArgs(["--recipe", "vit-huge"]).patchSize, 14);
});

Deno.test("PRETRAIN_CONFIG parses --student, --mask, --teacher clip:PATH and --teacher-heads", () => {
  const c = pretrainFromArgs([
    "--student",
    "symmetric",
    "--mask",
    "block",
    "--teacher",
    CLIP,
    "--teacher-heads",
    "16",
    "--crop-scale",
    "0.4,1",
    "--color-jitter",
    "0.4",
    "--eps",
    "1e-6",
    "--stages",
    "1",
  ]);
  assertEquals([c.student, c.mask, c.teacher, c.teacherHeads], ["symmetric", "block", CLIP, 16]);
  assertEquals([[...c.cropScale], c.colorJitter, c.eps], [[0.4, 1], 0.4, 1e-6]);
  assertEquals([PRETRAIN_DEFAULTS.student, PRETRAIN_DEFAULTS.mask], ["asymmetric", "random"]);
});

Deno.test("resolvePretrain() rejects bad variant settings with an error naming the fix", () => {
  assertThrows(
    () => resolvePretrain({ student: "beit" }),
    TypeError,
    "give asymmetric or symmetric",
  );
  assertThrows(() => resolvePretrain({ mask: "grid" }), TypeError, "give random or block");
  assertThrows(() => resolvePretrain({ mask: "block" }), RangeError, "add --student symmetric");
  assertThrows(
    () => resolvePretrain({ teacher: "clip:" }),
    TypeError,
    "give clip:PATH.safetensors",
  );
  assertThrows(
    () => resolvePretrain({ student: "symmetric", stages: 1 }),
    TypeError,
    "give --teacher clip:PATH.safetensors, --teacher PATH.safetensors (a ViT) or --teacher pixels",
  );
  assertThrows(
    () => resolvePretrain({ student: "symmetric", teacher: CLIP }),
    RangeError,
    "give --stages 1 or --boundaries 0,N",
  );
  assertThrows(
    () => resolvePretrain({ recipe: "vit-giant" }),
    TypeError,
    'Cannot use recipe "vit-giant": give one of vit-base, vit-large, vit-huge, clip-b16 or clip-l14',
  );
  assertThrows(
    () => resolvePretrain({ recipe: "clip-l14" }),
    TypeError,
    "give --teacher clip:PATH.safetensors (CLIP ViT-L/14)",
  );
  assertThrows(() => resolvePretrain({ cropScale: [0.5, 0.4] }), RangeError, "0 < min <= max <= 1");
  assertThrows(() => resolvePretrain({ colorJitter: 1.5 }), RangeError, "[0, 1)");
  assertThrows(() => resolvePretrain({ eps: 0 }), RangeError, "give a finite number > 0");
  assertThrows(
    () => pretrainFromArgs(["--teacher-heads", "x"]),
    TypeError,
    "--teacher-heads x: give a number",
  );
  assertThrows(() => pretrainFromArgs(["--studnt", "symmetric"]), TypeError, "--help");
});

Deno.test("PRETRAIN_CONFIG.describe() prints every setting with its source", () => {
  const given = PRETRAIN_CONFIG.fromFlags(
    parseFlags(
      ["--recipe", "clip-b16", "--teacher", CLIP, "--batch", "32"],
      PRETRAIN_CONFIG.flags(),
    ),
  );
  const text = PRETRAIN_CONFIG.describe(PRETRAIN_CONFIG.resolve(given), given);
  const lines = text.split("\n");
  assertEquals(lines.length, Object.keys(PRETRAIN_DEFAULTS).length);
  const line = (k: string) => lines.find((l) => l.startsWith(`${k} `))!.replace(/\s+/g, " ");
  assertEquals(line("recipe"), 'recipe = "clip-b16" (given)');
  assertEquals(line("batch"), "batch = 32 (given)");
  assertEquals(line("beta2"), "beta2 = 0.98 (recipe)");
  assertEquals(line("cropScale"), "cropScale = [0.4,1] (recipe)");
  assertEquals(line("seed"), "seed = 0 (default)");
});

Deno.test("PRETRAIN_RECIPES hold only known settings and every recipe resolves", () => {
  for (const [name, r] of Object.entries(PRETRAIN_RECIPES.table)) {
    for (const k of Object.keys(r)) assert(Object.hasOwn(PRETRAIN_DEFAULTS, k), `${name}: ${k}`);
    const c = resolvePretrain({
      recipe: name,
      teacher: name.startsWith("clip") ? CLIP : undefined,
    });
    assertEquals(c.recipe, name);
  }
  assertEquals(PRETRAIN_CONFIG.recipeNames, Object.keys(PRETRAIN_RECIPES.table));
});

Deno.test("resolveFinetune() recipes set DOWNSTREAM.md's per-size values; overrides win", () => {
  const [b, l, h] = ["vit-base", "vit-large", "vit-huge"].map((recipe) =>
    resolveFinetune({ recipe, checkpoint: "x" })
  );
  for (const c of [b, l, h]) {
    assertEquals([c.baseLr, c.warmupEpochs, c.minLr, c.weightDecay], [3e-4, 5, 1e-6, 0.05]);
    assertEquals([c.randAugment, c.reprob, [...c.cropScale], c.cropPct], [
      "rand-m9-mstd0.5-inc1",
      0.25,
      [0.08, 1],
      0.875,
    ]);
    assertEquals([c.smoothing, c.mixup, c.cutmix], [0.1, 0.8, 1.0]);
  }
  assertEquals([b.layerDecay, l.layerDecay, h.layerDecay], [0.65, 0.75, 0.75]);
  assertEquals([b.dropPath, l.dropPath, h.dropPath], [0.1, 0.25, 0.3]);
  assertEquals([b.epochs, l.epochs, h.epochs], [100, 50, 50]);
  assertEquals([b.clipGrad, l.clipGrad, h.clipGrad], [0, 1, 0]);
  const args = [
    "--checkpoint",
    "x",
    "--recipe",
    "vit-base",
    "--layer-decay",
    "0.75",
    "--reprob",
    "0",
  ];
  const o = FINETUNE_CONFIG.resolve(
    FINETUNE_CONFIG.fromFlags(parseFlags(args, FINETUNE_CONFIG.flags())),
  );
  assertEquals([o.layerDecay, o.reprob, o.epochs], [0.75, 0, 100]); // 0.75 is also the default
  // the defaults stay the small-data settings (finetune() callers keep their behaviour)
  assertEquals(
    [FINETUNE_DEFAULTS.randAugment, FINETUNE_DEFAULTS.reprob, FINETUNE_DEFAULTS.cropPct],
    ["", 0, 1],
  );
  assertEquals(Object.keys(FINETUNE_RECIPES.table), ["vit-base", "vit-large", "vit-huge"]);
});

Deno.test("resolveFinetune() rejects bad augmentation settings with the fix", () => {
  assertThrows(
    () => resolveFinetune({ checkpoint: "x", randAugment: "rand-m9" }),
    TypeError,
    "rand-m9-mstd0.5-inc1",
  );
  assertThrows(
    () => resolveFinetune({ checkpoint: "x", randAugment: "autoaug" }),
    TypeError,
    "give a timm spec",
  );
  assertThrows(() => resolveFinetune({ checkpoint: "x", reprob: 1.5 }), RangeError, "[0, 1]");
  assertThrows(() => resolveFinetune({ checkpoint: "x", cropPct: 0 }), RangeError, "(0, 1]");
  assertThrows(
    () => resolveFinetune({ checkpoint: "x", recipe: "clip-b16" }),
    TypeError,
    "give one of vit-base",
  );
});

Deno.test("a warmup longer than a stage (or a fine-tuning run) is an error naming the fix", () => {
  // a recipe's warmup with a short run given by flag: the case a user meets
  const clip = ["--recipe", "clip-b16", "--teacher", CLIP, "--epochs-per-stage", "4"];
  assertThrows(() => pretrainFromArgs(clip), RangeError, "give --warmup-epochs 4 or less");
  assertThrows(() => pretrainFromArgs(clip), RangeError, "recipe clip-b16 set");
  assertEquals(pretrainFromArgs([...clip, "--warmup-epochs", "0.2"]).warmupEpochs, 0.2);
  // the shortest stage counts; a warmup as long as it is allowed
  assertThrows(
    () => resolvePretrain({ boundaries: [0, 8, 10], warmupEpochs: 3 }),
    RangeError,
    "in a stage of 2 epochs",
  );
  assertEquals(resolvePretrain({ boundaries: [0, 8, 10], warmupEpochs: 2 }).warmupEpochs, 2);
  assertThrows(
    () => resolveFinetune({ checkpoint: "x", recipe: "vit-base", epochs: 2 }),
    RangeError,
    "give --warmup-epochs 2 or less (--print-config shows what recipe vit-base set)",
  );
});

/** Runs a task with `args`; its exit code and output. */
async function task(file: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command("deno", {
    args: ["run", "--allow-read", "--allow-env", file, ...args],
    cwd: ROOT,
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

Deno.test("deno task pretrain --recipe … --print-config prints the resolved config and exits", async () => {
  const r = await task("tasks/pretrain.ts", [
    "--recipe",
    "vit-huge",
    "--drop-path",
    "0.25",
    "--print-config",
  ]);
  assertEquals(r.code, 0, r.out);
  assert(r.out.includes("resolved configuration (recipe vit-huge):"), r.out);
  assert(/patchSize\s+= 14 {2}\(recipe\)/.test(r.out), r.out);
  assert(/dropPath\s+= 0.25 {2}\(given\)/.test(r.out), r.out);
  assert(r.out.includes("effective lr = baseLr × 4096/256 = 2.4000e-3"), r.out);
  const bad = await task("tasks/pretrain.ts", ["--recipe", "clip-b16", "--print-config"]);
  assertEquals(bad.code, 1, bad.out);
  assert(bad.out.includes("give --teacher clip:PATH.safetensors"), bad.out);
  const help = await task("tasks/pretrain.ts", ["--help"]);
  assertEquals(help.code, 0);
  for (
    const s of [
      "--recipe",
      "--student",
      "--mask",
      "--teacher-heads",
      "lr 3e-3 at batch 4096 scaled linearly",
    ]
  ) {
    assert(help.out.includes(s), `--help lacks "${s}"`);
  }
});

Deno.test("deno task finetune --recipe vit-base --print-config prints the resolved config", async () => {
  const r = await task("tasks/finetune.ts", [
    "--checkpoint",
    "x",
    "--recipe",
    "vit-base",
    "--print-config",
  ]);
  assertEquals(r.code, 0, r.out);
  assert(/layerDecay\s+= 0.65 {2}\(recipe\)/.test(r.out), r.out);
  assert(/randAugment\s+= "rand-m9-mstd0.5-inc1" {2}\(recipe\)/.test(r.out), r.out);
});

Deno.test("pretrain() runs --recipe clip-b16 end to end with a CLIP-format teacher: loss falls, BEiT student saved", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const clip = new URL("./fixtures/clip_tiny.safetensors", import.meta.url).pathname;
    // the recipe at toy scale: the overrides are sizes, LR and schedule; the optimiser's
    // betas/eps/clip, the student, block masking, the cosine loss and the augmentation stay
    const cfg = resolvePretrain({
      recipe: "clip-b16",
      teacher: `clip:${clip}`,
      runsDir: dir,
      name: "clip",
      model: "vit-micro",
      imgSize: 16,
      patchSize: 4,
      batch: 8,
      accum: 1,
      epochsPerStage: 4,
      warmupEpochs: 0,
      baseLr: 2e-2,
      mean: [],
      std: [],
      trainLimit: 16,
      knnTrain: 16,
      knnTest: 8,
      logEvery: 1,
    });
    assertEquals([cfg.student, cfg.mask, cfg.loss, cfg.beta2, cfg.colorJitter], [
      "symmetric",
      "block",
      "cosine",
      0.98,
      0.4,
    ]);
    const s = await pretrain(new CpuBackend(), cfg, { log: () => {} });
    assert(s !== null, "finished");
    const lines = (await Deno.readTextFile(`${dir}/clip/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l) as MetricLine);
    assertEquals(lines.length, 8);
    const first = (lines[0].loss + lines[1].loss) / 2;
    const last = (lines[6].loss + lines[7].loss) / 2;
    assert(last < 0.9 * first, `loss should fall by 10%: first ${first}, last ${last}`);
    const ckpt = await readCheckpoint(s.final_checkpoint);
    assert(
      ckpt.weights.has("rel_pos_bias.relative_position_bias_table"),
      "no relative position bias",
    );
    assert(
      ckpt.weights.has("blocks.0.gamma_1") && !ckpt.weights.has("pos_embed"),
      "not a BEiT encoder",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("summarizePretrain() is one short line naming model, data, batch, lr and config.json", () => {
  const line = summarizePretrain(resolvePretrain({ accum: 2, boundaries: [0, 2, 3] }), 2);
  assert(line.length < 240 && !line.includes("\n"), line);
  for (
    const part of [
      "vit-micro (patch 4) on shapes",
      "batch 64 × 2 micro-batches × 2 ranks",
      "2 stage(s) to epoch 3",
      `lr ${effectiveLr(PRETRAIN_DEFAULTS.baseLr, 256).toExponential(2)}`,
      "backend auto",
      "runs/default/config.json",
    ]
  ) assert(line.includes(part), `"${line}" lacks "${part}"`);
});
