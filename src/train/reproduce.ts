/**
 * A small-scale reproduction of the paper's claim ("the target barely matters once teachers
 * are bootstrapped") on Fashion-MNIST: the same small ViT pre-trained for the same total
 * epochs with different targets, then k-NN, linear probe and fine-tuning per row, plus the
 * CKA / attention-distance similarity between rows.
 *
 * Rows: random init (no training); pixel target (MAE-like, 1 stage); dBOT 1, 2 and 3 stages
 * from a random teacher; dBOT 1 stage distilled from a larger pre-trained teacher (trained
 * first, on its own budget). Writes `<runsDir>/reproduce-<budget>/results.{json,md}`.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { openDataset } from "../data/dataset.ts";
import { readCheckpoint, vitWeights, writeCheckpoint } from "../io/checkpoint.ts";
import { vitFromPreset } from "../models/config.ts";
import { ParamSet } from "../nn/params.ts";
import { vitParamSpecs } from "../models/vit.ts";
import { resolvePretrain } from "./config.ts";
import { channelStats, ImagePipeline } from "../data/pipeline.ts";
import { finetune, resolveFinetune } from "./finetune.ts";
import { pretrain } from "./pretrain.ts";
import { type Config, defineConfig, nonNegativeInt, oneOf } from "../util/config.ts";
import { Rng } from "../util/rng.ts";
import { analyzeCheckpoints } from "../eval/analyze.ts";
import { Embedder } from "../eval/embed.ts";
import { knnClassify } from "../eval/knn.ts";
import { trainLinearProbe } from "./linprobe.ts";

/** The sizes of one reproduction. */
export interface ReproduceBudget {
  /** Training images for pre-training and fine-tuning (first N). */
  trainLimit: number;
  /** Images per step in pre-training and fine-tuning. */
  batch: number;
  /** Total pre-training epochs of every row (divisible by 1, 2 and 3). */
  epochs: number;
  /** Preset of the larger teacher. */
  teacherModel: string;
  /** Its pre-training epochs (1 stage, random teacher). */
  teacherEpochs: number;
  /** Its training images. */
  teacherLimit: number;
  /** k-NN / linear-probe training features (first N train images). */
  evalTrain: number;
  /** k-NN / linear-probe / fine-tune test images (first N). */
  evalTest: number;
  /** Linear-probe epochs and base LR (LARS; scaled up for few steps). */
  probeEpochs: number;
  /** Linear-probe base LR. */
  probeBaseLr: number;
  /** Fine-tuning epochs. */
  finetuneEpochs: number;
  /** Images analysed for CKA / attention distance. */
  analyzeImages: number;
}

/** The budgets by name. */
export type ReproduceBudgetName = "tiny" | "small" | "full";

/**
 * `tiny`: seconds, to test that the whole pipeline runs (its figures mean nothing); `small`: a
 * ~5 minute smoke test on 2 CPU cores; `full`: the docs/RESULTS.md table (29 min measured there).
 */
export const REPRODUCE_BUDGETS: Readonly<Record<ReproduceBudgetName, ReproduceBudget>> = Object
  .freeze({
    tiny: {
      trainLimit: 16,
      batch: 16,
      epochs: 6,
      teacherModel: "vit-micro",
      teacherEpochs: 1,
      teacherLimit: 16,
      evalTrain: 16,
      evalTest: 16,
      probeEpochs: 1,
      probeBaseLr: 20,
      finetuneEpochs: 1,
      analyzeImages: 8,
    },
    small: {
      trainLimit: 1024,
      batch: 64,
      epochs: 6,
      teacherModel: "vit-tiny",
      teacherEpochs: 1,
      teacherLimit: 512,
      evalTrain: 1000,
      evalTest: 500,
      probeEpochs: 90,
      probeBaseLr: 20,
      finetuneEpochs: 1,
      analyzeImages: 128,
    },
    full: {
      trainLimit: 10000,
      batch: 64,
      epochs: 6,
      teacherModel: "vit-tiny",
      teacherEpochs: 4,
      teacherLimit: 5000,
      evalTrain: 5000,
      evalTest: 2000,
      probeEpochs: 90,
      probeBaseLr: 20,
      finetuneEpochs: 3,
      analyzeImages: 256,
    },
  });

/** The settings of a reproduction (`deno task reproduce`). */
export interface ReproduceConfig {
  /** Budget name. */
  budget: ReproduceBudgetName;
  /** Dataset (default fashion-mnist). */
  data: string;
  /** Parent directory of the runs. */
  runsDir: string;
  /** Seed of every run. */
  seed: number;
}

/** The defaults: the `small` budget on Fashion-MNIST. */
export const REPRODUCE_DEFAULTS: Readonly<ReproduceConfig> = Object.freeze({
  budget: "small",
  data: "fashion-mnist",
  runsDir: "runs",
  seed: 0,
});

/** Help and checks of every reproduction setting: the resolver, `--flags` and `--help`. */
export const REPRODUCE_CONFIG: Config<ReproduceConfig> = defineConfig<ReproduceConfig>({
  what: "the reproduction",
  defaults: REPRODUCE_DEFAULTS,
  settings: {
    budget: {
      help: "small (~5 min smoke test) | full (~30 min on 2 CPU cores) | tiny (seconds, for tests)",
      check: oneOf("tiny", "small", "full"),
    },
    data: { help: "dataset (Fashion-MNIST by default)" },
    runsDir: {
      help: "outputs in <runs-dir>/reproduce-<budget>/ (tasks may write only under runs/)",
    },
    seed: { help: "seed of every run", check: nonNegativeInt },
  },
});

/** `REPRODUCE_DEFAULTS` with checked overrides; an unknown key or a wrong type is a TypeError. */
export function resolveReproduce(overrides: Partial<Record<string, unknown>>): ReproduceConfig {
  return REPRODUCE_CONFIG.resolve(overrides);
}

/** Options of {@link reproduce}. */
export interface ReproduceOptions extends ReproduceConfig {
  /** Backend setting passed to the pre-training config (the backend itself is `be`). */
  backend: string;
}

/** One row of the results. */
export interface ReproduceRow {
  /** Row name. */
  row: string;
  /** How it was pre-trained. */
  recipe: string;
  /** Checkpoint evaluated ("" for raw pixels). */
  checkpoint: string;
  /** Weighted k-NN top-1 (%), mean-pooled patch tokens. */
  knn: number;
  /** Linear probe train / test top-1 (%), cls token. */
  probeTrain: number;
  /** Linear probe test top-1. */
  probeTest: number;
  /** Fine-tuning test top-1 (NaN for raw pixels). */
  finetune: number;
  /** Pre-training wall seconds (this row only). */
  pretrainS: number;
  /** Evaluation wall seconds. */
  evalS: number;
}

/** Runs every row and writes results.json / results.md; returns the markdown. */
export async function reproduce(
  be: Backend,
  opts: ReproduceOptions,
  log: (line: string) => void = console.log,
): Promise<string> {
  const t0 = performance.now();
  const b = REPRODUCE_BUDGETS[opts.budget];
  const dir = `${opts.runsDir}/reproduce-${opts.budget}`;
  await Deno.mkdir(dir, { recursive: true });
  const trainDs = await openDataset(opts.data, "train");
  const testDs = await openDataset(opts.data, "test");
  const stats = channelStats(trainDs, trainDs.channels, 1000);
  const student = vitFromPreset("vit-micro", {
    imgSize: trainDs.height,
    patchSize: 4,
    inChans: trainDs.channels,
  });
  const quiet = (line: string) => {
    if (/done at epoch|k-NN|wrote|lr =/.test(line)) log(`  ${line}`);
  };
  const base = {
    runsDir: dir,
    data: opts.data,
    model: "vit-micro",
    patchSize: 4,
    batch: b.batch,
    trainLimit: b.trainLimit,
    knnTrain: Math.min(64, b.evalTrain),
    knnTest: Math.min(64, b.evalTest),
    seed: opts.seed,
    backend: opts.backend,
    mean: stats.mean,
    std: stats.std,
  };
  const pre = async (name: string, over: Record<string, unknown>): Promise<[string, number]> => {
    const ts = performance.now();
    log(`pre-training ${name}: ${JSON.stringify(over)}`);
    const s = await pretrain(be, resolvePretrain({ ...base, name, ...over }), { log: quiet });
    if (!s) throw new Error(`Pre-training ${name} was interrupted`);
    return [s.final_checkpoint, (performance.now() - ts) / 1000];
  };

  // ---- pre-training ----------------------------------------------------------------
  const E = b.epochs;
  const rows: { row: string; recipe: string; ckpt: string; s: number }[] = [];
  const randomPath = `${dir}/random-init.safetensors`;
  const ps = new ParamSet(be, vitParamSpecs(student), { grads: false, label: "random" });
  ps.init(new Rng(opts.seed));
  await writeCheckpoint(randomPath, ps, { vit: student, mean: stats.mean, std: stats.std });
  rows.push({ row: "random init", recipe: "no training", ckpt: randomPath, s: 0 });
  const plan: [string, string, Record<string, unknown>][] = [
    ["pixels", `MAE-like pixel target, 1 stage × ${E} ep`, {
      teacher: "pixels",
      stages: 1,
      epochsPerStage: E,
    }],
    ["dbot-1", `dBOT random teacher, 1 stage × ${E} ep`, { stages: 1, epochsPerStage: E }],
    ["dbot-2", `dBOT, 2 stages × ${E / 2} ep`, { stages: 2, epochsPerStage: E / 2 }],
    ["dbot-3", `dBOT, 3 stages × ${E / 3} ep`, { stages: 3, epochsPerStage: E / 3 }],
  ];
  for (const [row, recipe, over] of plan) {
    const [ckpt, s] = await pre(row, over);
    rows.push({ row, recipe, ckpt, s });
  }
  const [teacher, teacherS] = await pre("teacher", {
    model: b.teacherModel,
    stages: 1,
    epochsPerStage: b.teacherEpochs,
    trainLimit: b.teacherLimit,
  });
  const [distilled, distilledS] = await pre("dbot-distilled", {
    teacher,
    stages: 1,
    epochsPerStage: E,
  });
  rows.push({
    row: "dbot-distilled",
    recipe:
      `dBOT from a pre-trained ${b.teacherModel} (${b.teacherEpochs} ep on ${b.teacherLimit} ` +
      `images, ${teacherS.toFixed(0)} s), 1 stage × ${E} ep`,
    ckpt: distilled,
    s: distilledS,
  });

  // ---- evaluation ------------------------------------------------------------------
  const train = new ImagePipeline(trainDs, student.imgSize, student.inChans, stats.mean, stats.std);
  const test = new ImagePipeline(testDs, student.imgSize, student.inChans, stats.mean, stats.std);
  const nTr = Math.min(b.evalTrain, trainDs.count);
  const nTe = Math.min(b.evalTest, testDs.count);
  const yTr = trainDs.labels.slice(0, nTr);
  const yTe = testDs.labels.slice(0, nTe);
  const K = trainDs.classNames.length;
  const probe = (xTr: Float32Array, xTe: Float32Array, D: number) =>
    trainLinearProbe({ features: xTr, labels: yTr }, { features: xTe, labels: yTe }, {
      dim: D,
      epochs: b.probeEpochs,
      baseLr: b.probeBaseLr,
      numClasses: K,
      seed: opts.seed,
    });
  const results: ReproduceRow[] = [];
  {
    // raw pixels: the baseline every feature must beat on this data
    const ts = performance.now();
    const P = student.inChans * student.imgSize * student.imgSize;
    const xTr = new Float32Array(nTr * P), xTe = new Float32Array(nTe * P);
    for (let i = 0; i < nTr; i++) xTr.set(train.eval(i), i * P);
    for (let i = 0; i < nTe; i++) xTe.set(test.eval(i), i * P);
    const knn = knnClassify(
      { features: xTr, labels: yTr },
      { features: xTe, labels: yTe },
      { dim: P, numClasses: K },
    );
    const lp = probe(xTr, xTe, P);
    results.push({
      row: "raw pixels",
      recipe: "no encoder",
      checkpoint: "",
      knn: knn.top1,
      probeTrain: lp.trainTop1,
      probeTest: lp.testTop1,
      finetune: NaN,
      pretrainS: 0,
      evalS: (performance.now() - ts) / 1000,
    });
  }
  const embedder = new Embedder(be, student, 64);
  for (const r of rows) {
    const ts = performance.now();
    log(`evaluating ${r.row}`);
    const ckpt = await readCheckpoint(r.ckpt);
    embedder.load(vitWeights(ckpt, student, { file: r.ckpt }));
    const D = student.embedDim;
    const mTr = await embedder.embed(nTr, (i) => train.eval(i), "mean");
    const mTe = await embedder.embed(nTe, (i) => test.eval(i), "mean");
    const knn = knnClassify(
      { features: mTr, labels: yTr },
      { features: mTe, labels: yTe },
      { dim: D, numClasses: K },
    );
    const cTr = await embedder.embed(nTr, (i) => train.eval(i), "cls");
    const cTe = await embedder.embed(nTe, (i) => test.eval(i), "cls");
    const lp = probe(cTr, cTe, D);
    const ft = await finetune(
      be,
      resolveFinetune({
        checkpoint: r.ckpt,
        data: opts.data,
        runsDir: dir,
        name: `finetune-${r.row.replace(/\s+/g, "-")}`,
        epochs: b.finetuneEpochs,
        batch: b.batch,
        warmupEpochs: Math.min(1, b.finetuneEpochs / 2),
        trainLimit: b.trainLimit,
        testLimit: nTe,
        seed: opts.seed,
      }),
      () => {},
    );
    const row: ReproduceRow = {
      row: r.row,
      recipe: r.recipe,
      checkpoint: r.ckpt,
      knn: knn.top1,
      probeTrain: lp.trainTop1,
      probeTest: lp.testTop1,
      finetune: ft.top1,
      pretrainS: r.s,
      evalS: (performance.now() - ts) / 1000,
    };
    log(
      `  k-NN ${row.knn.toFixed(1)}  probe ${row.probeTest.toFixed(1)}  fine-tune ${
        row.finetune.toFixed(1)
      }`,
    );
    results.push(row);
  }
  log("analysing (attention distance, singular values, CKA)");
  const analysis = await analyzeCheckpoints(be, {
    checkpoints: rows.map((r) => r.ckpt),
    labels: rows.map((r) => r.row),
    data: opts.data,
    limit: b.analyzeImages,
    outDir: `${dir}/analyze`,
  });
  const wallS = (performance.now() - t0) / 1000;
  const md = renderMarkdown(opts, b, results, analysis, wallS, teacherS, be.description);
  await Deno.writeTextFile(
    `${dir}/results.json`,
    JSON.stringify({ opts, budget: b, results, analysis, wallS, teacherS }, null, 1),
  );
  await Deno.writeTextFile(`${dir}/results.md`, md);
  return md;
}

function renderMarkdown(
  opts: ReproduceOptions,
  b: ReproduceBudget,
  rows: ReproduceRow[],
  a: Awaited<ReturnType<typeof analyzeCheckpoints>>,
  wallS: number,
  teacherS: number,
  backend: string,
): string {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : "–");
  const lines = [
    `## Reproduction, budget \`${opts.budget}\` (${opts.data}, seed ${opts.seed})`,
    "",
    `vit-micro (D 96, depth 4, 3 heads), patch 4; pre-training on the first ${b.trainLimit} ` +
    `training images, ${b.epochs} epochs in total per row, batch ${b.batch}; k-NN (k 20, mean-pooled ` +
    `tokens) and linear probe (cls token, LARS ${b.probeEpochs} ep, base LR ${b.probeBaseLr}) on ` +
    `${b.evalTrain} train / ${b.evalTest} test images; fine-tuning ${b.finetuneEpochs} ep on ` +
    `${b.trainLimit} images, tested on ${b.evalTest}. Backend: ${backend}. Wall time ` +
    `${(wallS / 60).toFixed(1)} min (teacher pre-training ${teacherS.toFixed(0)} s).`,
    "",
    "| row | pre-training | k-NN top-1 | linear probe top-1 (train / test) | fine-tune top-1 | pre-train s |",
    "|---|---|---:|---:|---:|---:|",
    ...rows.map((r) =>
      `| ${r.row} | ${r.recipe} | ${f(r.knn)} | ${f(r.probeTrain)} / ${f(r.probeTest)} | ${
        f(r.finetune)
      } | ${r.pretrainS.toFixed(0)} |`
    ),
    "",
    `Linear CKA between rows (mean over layers of the same-layer CKA; ${a.images} test images, ` +
    "mean-pooled patch tokens per layer):",
    "",
    `| | ${a.models.map((m) => m.label).join(" | ")} |`,
    `|---|${a.models.map(() => "---:").join("|")}|`,
    ...a.models.map((m, i) =>
      `| ${m.label} | ${
        a.models.map((_, j) => {
          if (i === j) return "1";
          const c = a.cka.find((x) =>
            (x.a === m.label && x.b === a.models[j].label) ||
            (x.b === m.label && x.a === a.models[j].label)
          );
          return c ? c.mean.toFixed(3) : "–";
        }).join(" | ")
      } |`
    ),
    "",
    "Mean attention distance per layer (pixels, mean over heads) and top-1 singular-value share:",
    "",
    "| row | attention distance by layer | top-1 σ share by layer |",
    "|---|---|---|",
    ...a.models.map((m) =>
      `| ${m.label} | ${m.madMean.map((v) => v.toFixed(2)).join(", ")} | ${
        m.svShare.map((s) => s[0].toFixed(3)).join(", ")
      } |`
    ),
    "",
  ];
  return lines.join("\n");
}
