/**
 * The reproduction's tables and plots: the gate first (each pre-training row's gain over the
 * random init, paired by seed, `gate.ts`), then per-row mean ± standard deviation over seeds
 * at each label count, where the time went, the generated reading (only rows that pass the
 * gate are ranked), results.json / results.md, one k-NN-vs-epoch SVG per row (stage
 * boundaries marked) and one of every row's mean curve.
 *
 * @module
 */
import { readProgressJson, writeJsonAtomic, writeTextAtomic } from "../util/atomic.ts";
import { lineChartSvg } from "../eval/chart.ts";
import type { AnalysisReport } from "../eval/analyze.ts";
import {
  labelKey,
  type ReproduceBudget,
  type ReproduceOptions,
  WARMUP_FRACTION,
} from "./budgets.ts";
import {
  fmtGain,
  GATE_BASELINE,
  GATE_SE,
  gateProbeLabels,
  type GateRow,
  gateRows,
  readingLines,
} from "./gate.ts";
import type { CurvePoint, LabelFigures, RowResult } from "./types.ts";
import { effectiveLr } from "../train/schedule.ts";

/** Mean, sample standard deviation (n − 1; NaN for one value) and count of finite values. */
export interface Stat {
  /** Mean. */
  mean: number;
  /** Sample standard deviation (NaN when n < 2). */
  sd: number;
  /** Number of values. */
  n: number;
}

/** {@link Stat} of the finite values in `xs` (null when there are none). */
export function stat(xs: readonly (number | null)[]): Stat | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  if (!v.length) return null;
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1
    ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1))
    : NaN;
  return { mean, sd, n: v.length };
}

/** One row over its seeds. */
export interface RowSummary {
  /** Row name. */
  row: string;
  /** How it was pre-trained. */
  recipe: string;
  /** The equivalent pre-training command of the first seed. */
  command: string;
  /** Stage boundaries. */
  boundaries: number[];
  /** Seeds measured. */
  seeds: number[];
  /** Fine-tuning top-1 by label key. */
  finetune: Record<string, Stat | null>;
  /** Linear probe top-1 by label key, cls token. */
  probeCls: Record<string, Stat | null>;
  /** Linear probe top-1 by label key, mean of patch tokens. */
  probeMean: Record<string, Stat | null>;
  /** k-NN top-1, cls token. */
  knnCls: Stat | null;
  /** k-NN top-1, mean of patch tokens. */
  knnMean: Stat | null;
  /** Pre-training seconds. */
  pretrainS: Stat | null;
  /** The larger teacher's pre-training seconds (distilled row). */
  teacherS: Stat | null;
  /** Evaluation seconds. */
  evalS: Stat | null;
  /** Mean seconds of each evaluation part over seeds: curve, embed, k-NN, probe, ft <labels>. */
  times: Record<string, number>;
  /** Mean curve over seeds (epochs every seed measured). */
  meanCurve: CurvePoint[];
}

/** Layer-wise similarity between rows, averaged over seeds. */
export interface AnalysisSummary {
  /** Seeds averaged. */
  seeds: number[];
  /** Images per seed. */
  images: number;
  /** Row labels in order. */
  labels: string[];
  /** Mean over layers of the same-layer linear CKA, `[i][j]`, mean over seeds. */
  cka: number[][];
  /** Its standard deviation over seeds. */
  ckaSd: number[][];
  /** Mean attention distance per layer (mean over heads and seeds), per row. */
  madMean: number[][];
  /** Top-1 singular-value share per layer (mean over seeds), per row. */
  svTop1: number[][];
}

/** What {@link writeReport} returns (and writes as results.json, with the markdown). */
export interface ReproduceReport {
  /** results.md. */
  markdown: string;
  /** The settings. */
  opts: ReproduceOptions;
  /** The sizes. */
  budget: ReproduceBudget;
  /** The command that runs or continues it. */
  command: string;
  /** The larger teacher's pre-training command (first seed). */
  teacherCommand: string;
  /** The backend. */
  backend: string;
  /** Wall seconds of this invocation. */
  wallS: number;
  /** Per row, over seeds. */
  rows: RowSummary[];
  /** The gate: each pre-training row's gains over the random init. */
  gate: GateRow[];
  /** The generated reading (markdown list items). */
  reading: string[];
  /** Per row and seed. */
  results: RowResult[];
  /** CKA and attention distance (null when no seed was analysed). */
  analysis: AnalysisSummary | null;
}

/** `name` as a file-name part. */
export function slug(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, "-");
}

function summarise(results: RowResult[]): RowSummary[] {
  const names = [...new Set(results.map((r) => r.row))];
  return names.map((row) => {
    const rs = results.filter((r) => r.row === row);
    const epochs = [...new Set(rs.flatMap((r) => r.curve.map((p) => p.epoch)))]
      .filter((e) => rs.every((r) => r.curve.some((p) => p.epoch === e)))
      .sort((a, b) => a - b);
    const at = (e: number, k: "knnCls" | "knnMean") =>
      stat(rs.map((r) => r.curve.find((p) => p.epoch === e)![k]))?.mean ?? NaN;
    return {
      row,
      recipe: rs[0].recipe,
      command: rs[0].command,
      boundaries: rs[0].boundaries,
      seeds: rs.map((r) => r.seed),
      finetune: byLabel(rs.map((r) => r.finetune)),
      probeCls: byLabel(rs.map((r) => r.probeCls)),
      probeMean: byLabel(rs.map((r) => r.probeMean)),
      knnCls: stat(rs.map((r) => r.knnCls)),
      knnMean: stat(rs.map((r) => r.knnMean)),
      pretrainS: stat(rs.map((r) => r.pretrainS)),
      teacherS: stat(rs.map((r) => r.teacherS)),
      evalS: stat(rs.map((r) => r.evalS)),
      times: meanTimes(rs),
      meanCurve: epochs.map((epoch) => ({
        epoch,
        knnCls: at(epoch, "knnCls"),
        knnMean: at(epoch, "knnMean"),
      })),
    };
  });
}

/** {@link Stat} of each label key over the seeds' figures. */
function byLabel(xs: (LabelFigures | null)[]): Record<string, Stat | null> {
  const keys = [...new Set(xs.flatMap((x) => Object.keys(x ?? {})))];
  return Object.fromEntries(keys.map((k) => [k, stat(xs.map((x) => x?.[k] ?? null))]));
}

/** Mean seconds of each evaluation part over the seeds of a row. */
function meanTimes(rs: RowResult[]): Record<string, number> {
  const parts = (r: RowResult): Record<string, number> => ({
    curve: r.times.curve,
    embed: r.times.embed,
    "k-NN": r.times.knn,
    probe: r.times.probe,
    ...Object.fromEntries(Object.entries(r.times.finetune).map(([k, v]) => [`ft ${k}`, v])),
  });
  const keys = [...new Set(rs.flatMap((r) => Object.keys(parts(r))))];
  return Object.fromEntries(keys.map((k) => [k, stat(rs.map((r) => parts(r)[k] ?? null))!.mean]));
}

async function readAnalysis(dir: string, seeds: number[]): Promise<AnalysisSummary | null> {
  const got: { seed: number; a: AnalysisReport }[] = [];
  for (const seed of seeds) {
    const a = await readProgressJson<AnalysisReport>(`${dir}/seed${seed}/analyze/analysis.json`);
    if (a) got.push({ seed, a }); // else not analysed (yet)
  }
  if (!got.length) return null;
  const labels = got[0].a.models.map((m) => m.label);
  // a seed analysed with other rows (`--rows`, a run in progress) is left out of the mean
  const same = (a: AnalysisReport) =>
    JSON.stringify(a.models.map((m) => m.label)) === JSON.stringify(labels);
  got.splice(0, got.length, ...got.filter(({ a }) => same(a)));
  const pair = (a: AnalysisReport, i: number, j: number) =>
    i === j
      ? 1
      : a.cka.find((c) =>
        (c.a === labels[i] && c.b === labels[j]) || (c.a === labels[j] && c.b === labels[i])
      )?.mean ?? NaN;
  const grid = (f: (s: Stat | null) => number) =>
    labels.map((_, i) => labels.map((_, j) => f(stat(got.map(({ a }) => pair(a, i, j))))));
  const perLayer = (pick: (m: AnalysisReport["models"][number]) => number[]) =>
    labels.map((_, i) =>
      pick(got[0].a.models[i]).map((_, l) =>
        stat(got.map(({ a }) => pick(a.models[i])[l]))?.mean ?? NaN
      )
    );
  return {
    seeds: got.map((g) => g.seed),
    images: got[0].a.images,
    labels,
    cka: grid((s) => s?.mean ?? NaN),
    ckaSd: grid((s) => s?.sd ?? NaN),
    madMean: perLayer((m) => m.madMean),
    svTop1: perLayer((m) => m.svShare.map((s) => s[0])),
  };
}

/** "whole-image crops" for [1, 1], else "crops of 20–100% of the image". */
function cropText([lo, hi]: readonly number[]): string {
  if (lo === 1 && hi === 1) return "whole-image crops";
  const pct = (x: number) => +(x * 100).toPrecision(6); // 0.2 · 100 is 20.000000000000004
  return `crops of ${pct(lo)}–${pct(hi)}% of the image`;
}

/**
 * The `deno task finetune` command the `i`-th fine-tuning figure of a row equals (checkpoint
 * CKPT, seed S: the label subset's seed too).
 */
export function finetuneCommand(data: string, b: ReproduceBudget, i: number): string {
  const epochs = b.finetuneEpochs[i];
  const warmup = +(WARMUP_FRACTION * epochs).toPrecision(6);
  return [
    "deno task finetune --checkpoint CKPT",
    `--data ${data}`,
    ...(b.evalPool ? [`--train-limit ${b.evalPool}`] : []),
    ...(b.finetuneLabels[i] ? [`--labels ${b.finetuneLabels[i]} --label-seed S`] : []),
    `--epochs ${epochs} --warmup-epochs ${warmup} --batch ${b.finetuneBatch}`,
    `--base-lr ${b.finetuneBaseLr}`,
    ...(b.finetuneMix ? [] : ["--mixup 0 --cutmix 0"]),
    `--crop-scale ${b.finetuneCropScale.join(",")}`,
    ...(b.evalTest ? [`--test-limit ${b.evalTest}`] : []),
    "--seed S",
  ].join(" ");
}

/**
 * "71.2 ± 0.8" (or "71.2" for one seed, "–" for none), with " (n=k)" when `n` is given and
 * the count differs from it.
 */
export function fmtStat(s: Stat | null, digits = 1, n?: number): string {
  if (!s) return "–";
  const v = Number.isFinite(s.sd)
    ? `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)}`
    : s.mean.toFixed(digits);
  return n !== undefined && s.n !== n ? `${v} (n=${s.n})` : v;
}

/** The per-row curve plot: k-NN (cls and mean) of each seed vs epoch, boundaries marked. */
function curveSvg(rs: RowResult[]): string {
  const b = rs[0].boundaries;
  return lineChartSvg({
    title: `${rs[0].row}: k-NN top-1 during pre-training`,
    xLabel: "epoch",
    yLabel: "k-NN top-1 (%)",
    series: rs.flatMap((r) => [
      {
        name: `cls, seed ${r.seed}`,
        points: r.curve.map((p) => [p.epoch, p.knnCls] as [number, number]),
      },
      {
        name: `mean, seed ${r.seed}`,
        points: r.curve.map((p) => [p.epoch, p.knnMean] as [number, number]),
      },
    ]),
    verticalMarkers: b.slice(1, -1).map((x, i) => ({ x, label: `stage ${i + 1}` })),
  });
}

/** Every row's mean curve (cls token). */
function allCurvesSvg(rows: RowSummary[]): string {
  return lineChartSvg({
    title: "k-NN top-1 (cls token) during pre-training, mean over seeds",
    xLabel: "epoch",
    yLabel: "k-NN top-1 (%)",
    series: rows.filter((r) => r.meanCurve.length).map((r) => ({
      name: r.row,
      points: r.meanCurve.map((p) => [p.epoch, p.knnCls] as [number, number]),
    })),
  });
}

/** Writes results.json, results.md and the plots to `dir`; returns the report. */
export async function writeReport(
  dir: string,
  o: {
    opts: ReproduceOptions;
    budget: ReproduceBudget;
    command: string;
    teacherCommand: string;
    backend: string;
    results: RowResult[];
    wallS: number;
  },
): Promise<ReproduceReport> {
  const rows = summarise(o.results);
  const analysis = await readAnalysis(dir, o.opts.seeds);
  for (const row of rows) {
    const rs = o.results.filter((r) => r.row === row.row && r.curve.length);
    if (rs.length) await writeTextAtomic(`${dir}/curve-${slug(row.row)}.svg`, curveSvg(rs));
  }
  await writeTextAtomic(`${dir}/curves.svg`, allCurvesSvg(rows));
  const gate = gateRows(o.results);
  const reading = readingLines(o.results, gate);
  const report: Omit<ReproduceReport, "markdown"> = { ...o, rows, gate, reading, analysis };
  const markdown = renderMarkdown(report);
  await writeJsonAtomic(`${dir}/results.json`, report);
  await writeTextAtomic(`${dir}/results.md`, markdown);
  return { markdown, ...report };
}

/** results.md. */
export function renderMarkdown(r: Omit<ReproduceReport, "markdown">): string {
  const b = r.budget;
  const o = r.opts;
  const lr = effectiveLr(o.baseLr, b.batch);
  const testN = b.evalTest || "every";
  const pool = b.evalPool || "every";
  const seeds = o.seeds.join(", ");
  const probeKeys = b.probeLabels.map(labelKey);
  const ftKeys = b.finetuneLabels.map(labelKey);
  const gateOf = (row: string) => r.gate.find((g) => g.row === row);
  const mark = (row: string) => {
    const g = gateOf(row);
    if (!g) return row === GATE_BASELINE ? "baseline" : "–";
    return g.verdict === "passes"
      ? `passes (${g.feature})`
      : g.verdict === "below"
      ? "⚑ below: not ranked"
      : "1 seed: not gated";
  };
  const n = (s: RowSummary) => s.seeds.length;
  const lines = [
    `## Reproduction, budget \`${o.budget}\` (${o.data}, seeds ${seeds})`,
    "",
    `Command: \`${r.command}\`. Backend: ${r.backend}. Wall time of this invocation ` +
    `${(r.wallS / 60).toFixed(1)} min (rows finished by earlier invocations are read back, ` +
    "not rerun; the per-row seconds below add up every invocation).",
    "",
    `vit-micro (D 96, depth 4, 3 heads), patch 4. Pre-training on the first ${b.trainLimit} ` +
    `training images, ${b.epochs} epochs in total per row, steps of ${b.batch} images` +
    `${b.accum > 1 ? ` (${b.accum} accumulated micro-batches of ${b.batch / b.accum})` : ""}, ` +
    `base LR ${o.baseLr} × ${b.batch}/256 = ${lr.toExponential(2)}, linear warmup over 5% of ` +
    `each stage, cosine to 0 per stage. Curves: k-NN every ${b.evalEvery} epoch(s) and at ` +
    `stage boundaries on ${b.curveTrain} train / ${b.curveTest} test images. Evaluation: ` +
    `${pool} training image(s) and ${testN} test image(s) embedded once per checkpoint (cls ` +
    `token and mean of the patch tokens); k-NN (k 20, T 0.07) with the first ${b.knnBank} ` +
    `training images (the pre-training images) as the bank; linear probes (BatchNorm + ` +
    `linear, LARS ${b.probeEpochs} ep, base LR ${b.probeBaseLr}) on class-balanced subsets of ` +
    `${probeKeys.join(" / ")} labelled images, fixed per seed; fine-tuning (mean-pooled patch ` +
    `tokens, AdamW, batch ${b.finetuneBatch}, base LR ${b.finetuneBaseLr} × ` +
    `${b.finetuneBatch}/256, layer decay 0.75, drop path 0.1, label smoothing 0.1, ` +
    `${b.finetuneMix ? "mixup 0.8 / cutmix 1.0" : "no mixup/cutmix"}, ` +
    `${cropText(b.finetuneCropScale)}) on the same subsets: ` +
    ftKeys.map((k, i) => `${k} labels × ${b.finetuneEpochs[i]} ep`).join(", ") +
    "; the random init fine-tuned alike is the from-scratch baseline. Larger teacher: " +
    `${b.teacherModel}, ${b.teacherEpochs} ep on ${b.teacherLimit} images.`,
    "",
    `### The gate: gain over the random init, paired by seed (mean ± standard error)`,
    "",
    `A row passes when its k-NN and its linear-probe gain (${
      gateProbeLabels(b.probeLabels)
    }) are both positive and ≥ ${GATE_SE} SE on one feature; ⚑ marks a gain under ` +
    `${GATE_SE} SE. A row below the gate is not ranked; with one seed nothing is gated.`,
    "",
    `| row | k-NN cls | k-NN mean | probe cls (${
      gateProbeLabels(b.probeLabels)
    }) | probe mean | n | gate |`,
    "|---|---:|---:|---:|---:|---:|---|",
    ...r.gate.map((g) =>
      `| ${g.row} | ${fmtGain(g.knnCls)} | ${fmtGain(g.knnMean)} | ${fmtGain(g.probeCls)} | ` +
      `${fmtGain(g.probeMean)} | ${g.knnCls?.n ?? 0} | ${mark(g.row)} |`
    ),
    "",
    "### Frozen features",
    "",
    "Top-1 (%), mean ± standard deviation over n seeds (sample sd; one seed: the value); " +
    "probes by number of labelled images:",
    "",
    `| row | gate | k-NN cls | k-NN mean | ${
      probeKeys.map((k) => `probe cls ${k}`).join(" | ")
    } | ` +
    `${probeKeys.map((k) => `probe mean ${k}`).join(" | ")} | n |`,
    `|---|---|---:|---:|${probeKeys.map(() => "---:").join("|")}|` +
    `${probeKeys.map(() => "---:").join("|")}|---:|`,
    ...r.rows.map((s) =>
      `| ${s.row} | ${mark(s.row)} | ${fmtStat(s.knnCls)} | ${fmtStat(s.knnMean)} | ` +
      `${probeKeys.map((k) => fmtStat(s.probeCls[k] ?? null, 1, n(s))).join(" | ")} | ` +
      `${probeKeys.map((k) => fmtStat(s.probeMean[k] ?? null, 1, n(s))).join(" | ")} | ${n(s)} |`
    ),
    "",
    "### Fine-tuning, by number of labelled images",
    "",
    `| row | gate | ${ftKeys.map((k) => `fine-tune ${k}`).join(" | ")} | n |`,
    `|---|---|${ftKeys.map(() => "---:").join("|")}|---:|`,
    ...r.rows.filter((s) => Object.keys(s.finetune).length).map((s) =>
      `| ${s.row} | ${mark(s.row)} | ` +
      `${ftKeys.map((k) => fmtStat(s.finetune[k] ?? null, 1, n(s))).join(" | ")} | ${n(s)} |`
    ),
    "",
    "### Rows and where the time went",
    "",
    "Wall seconds per seed (mean over seeds): pre-training (start-ups included; + the " +
    "larger teacher's), then each evaluation: curve points, embedding once, k-NN, every " +
    "probe, each fine-tuning (`ft <labels>`).",
    "",
    "| row | pre-training | pre-train s | eval s | evaluation parts, s |",
    "|---|---|---:|---:|---|",
    ...r.rows.map((s) => {
      const t = s.teacherS && s.teacherS.mean > 0
        ? ` (+ ${s.teacherS.mean.toFixed(0)} teacher)`
        : "";
      const parts = Object.entries(s.times).filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${v.toFixed(0)}`).join(" · ");
      return `| ${s.row} | ${s.recipe} | ${fmtStat(s.pretrainS, 0)}${t} | ${
        fmtStat(s.evalS, 0)
      } | ` +
        `${parts || "–"} |`;
    }),
    "",
    "### Reading (generated from the figures above; rows below the gate are not ranked)",
    "",
    ...r.reading,
    "",
    "k-NN during pre-training (mean over seeds; cls / mean of patch tokens), one plot per row " +
    "in `curve-<row>.svg`, every row in `curves.svg`:",
    "",
    "| row | epoch: k-NN cls / mean |",
    "|---|---|",
    ...r.rows.filter((s) => s.meanCurve.length).map((s) =>
      `| ${s.row} | ${
        s.meanCurve.map((p) => `${p.epoch}: ${p.knnCls.toFixed(1)} / ${p.knnMean.toFixed(1)}`)
          .join(", ")
      } |`
    ),
    "",
  ];
  const a = r.analysis;
  if (a) {
    lines.push(
      `Linear CKA between rows (mean over layers of the same-layer CKA, ${a.images} test ` +
        `images, mean-pooled patch tokens per layer; mean ± sd over seeds ${a.seeds.join(", ")}):`,
      "",
      `| | ${a.labels.join(" | ")} |`,
      `|---|${a.labels.map(() => "---:").join("|")}|`,
      ...a.labels.map((l, i) =>
        `| ${l} | ${
          a.labels.map((_, j) =>
            i === j ? "1" : fmtStat({ mean: a.cka[i][j], sd: a.ckaSd[i][j], n: 2 }, 3)
          ).join(" | ")
        } |`
      ),
      "",
      "Mean attention distance per layer (pixels, mean over heads and seeds) and top-1 " +
        "singular-value share per layer:",
      "",
      "| row | attention distance by layer | top-1 σ share by layer |",
      "|---|---|---|",
      ...a.labels.map((l, i) =>
        `| ${l} | ${a.madMean[i].map((v) => v.toFixed(2)).join(", ")} | ${
          a.svTop1[i].map((v) => v.toFixed(3)).join(", ")
        } |`
      ),
      "",
    );
  }
  lines.push(
    "Equivalent pre-training command of each row (seed " +
      `${o.seeds[0]}; the others differ in --seed and --runs-dir):`,
    "",
    "| row | command |",
    "|---|---|",
    ...r.rows.filter((s) => s.command).map((s) => `| ${s.row} | \`${s.command}\` |`),
    ...(r.teacherCommand
      ? [`| (teacher of dbot-distilled, every seed) | \`${r.teacherCommand}\` |`]
      : []),
    "",
    "Equivalent fine-tuning commands of each row (`CKPT`: the row's checkpoint, `S`: its " +
      "seed, which also fixes the label subset; the reproduction does not keep the classifier):",
    "",
    ...b.finetuneLabels.map((_, i) => `- \`${finetuneCommand(o.data, b, i)}\``),
    "",
  );
  return lines.join("\n");
}
