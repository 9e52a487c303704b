/**
 * The gate before any comparison: each pre-training row's gain over the random init of the
 * same seed, on k-NN and on the linear probe, as mean ± standard error of the paired
 * differences. A gain passes when it is positive and at least {@link GATE_SE} standard errors;
 * a row passes when both its k-NN and its linear-probe gain pass on one feature (cls token or
 * mean of the patch tokens). A row below the gate is flagged and never ranked; with one seed
 * the standard error is undefined and nothing is gated (or ranked). Also the generated reading
 * that ranks and compares only rows that pass. Pure arithmetic on figures: no file access.
 *
 * @module
 */
import type { LabelFigures, RowResult } from "./types.ts";

/** Standard errors a gain must reach to pass. */
export const GATE_SE = 3;

/** The row every gain is measured against. */
export const GATE_BASELINE = "random init";

/** A paired difference over seeds: mean, standard error (NaN under 2 seeds) and the seeds. */
export interface Gain {
  /** Mean of the per-seed differences. */
  mean: number;
  /** Sample sd of the differences / √n (NaN when n < 2). */
  se: number;
  /** Seeds paired. */
  n: number;
}

/** A gain's verdict: passes (≥ {@link GATE_SE} SE above 0), below, or not gated (one seed). */
export type Verdict = "passes" | "below" | "not gated";

/**
 * The paired difference `a − b` over the seeds both have a finite value for (null when
 * none): the mean and standard error of the per-seed differences.
 */
export function pairedGain(
  a: readonly { seed: number; value: number | null }[],
  b: readonly { seed: number; value: number | null }[],
): Gain | null {
  const d: number[] = [];
  for (const x of a) {
    const y = b.find((r) => r.seed === x.seed);
    if (x.value === null || !y || y.value === null) continue;
    if (!Number.isFinite(x.value) || !Number.isFinite(y.value)) continue;
    d.push(x.value - y.value);
  }
  if (!d.length) return null;
  const n = d.length;
  const mean = d.reduce((s, v) => s + v, 0) / n;
  const sd = n > 1 ? Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : NaN;
  return { mean, se: sd / Math.sqrt(n), n };
}

/** The verdict of one gain. */
export function verdict(g: Gain | null): Verdict {
  if (!g || g.n < 2 || !Number.isFinite(g.se)) return "not gated";
  return g.mean > 0 && g.mean >= GATE_SE * g.se ? "passes" : "below";
}

/** "+4.2 ± 1.1", "+4.2 ± 1.1 ⚑" (below the gate), "+4.2 (1 seed: not gated)", or "–". */
export function fmtGain(g: Gain | null, digits = 1): string {
  if (!g) return "–";
  const m = `${g.mean >= 0 ? "+" : ""}${g.mean.toFixed(digits)}`;
  const v = verdict(g);
  if (v === "not gated") return `${m} (${g.n} seed: not gated)`;
  return `${m} ± ${g.se.toFixed(digits)}${v === "below" ? " ⚑" : ""}`;
}

/** One pre-training row at the gate. */
export interface GateRow {
  /** Row name. */
  row: string;
  /** Gain over the random init, paired by seed: k-NN, cls token. */
  knnCls: Gain | null;
  /** k-NN, mean of the patch tokens. */
  knnMean: Gain | null;
  /** Linear probe ({@link gateProbe}'s labels), cls token. */
  probeCls: Gain | null;
  /** Linear probe ({@link gateProbe}'s labels), mean of the patch tokens. */
  probeMean: Gain | null;
  /** The feature on which both gains pass (cls first), or null. */
  feature: "cls" | "mean" | null;
  /** passes, below (flagged, not ranked) or not gated (under 2 seeds: not ranked either). */
  verdict: Verdict;
}

/**
 * The linear-probe figure the gate uses: the largest labelled subset short of every label
 * (10% of the labels, 6000 images, at `small`, `medium` and `long`), else every label. At
 * this scale the probe with every label sits near the ceiling of any 96-wide feature (at
 * `small` × 3 seeds: random init 76.7, raw 784-pixel images 80.2) and moved +0.6 ± 0.3 for
 * an encoder whose 10%-label probe moved +1.3 ± 0.0 and k-NN +6.7 ± 0.7 (docs/RESULTS.md,
 * "The gate"): low-label probes are where representations differ here.
 */
export function gateProbe(x: LabelFigures | null): number | null {
  if (!x) return null;
  const keys = Object.keys(x).map(Number).filter(Number.isFinite).sort((a, b) => b - a);
  if (keys.length) return x[String(keys[0])];
  return "all" in x ? x.all : null;
}

/** The label count of {@link gateProbe} among a budget's probe label counts (0: every label). */
export function gateProbeLabels(probeLabels: readonly number[]): string {
  const subsets = probeLabels.filter((n) => n > 0).sort((a, b) => b - a);
  return subsets.length ? `${subsets[0]} labels` : "every label";
}

type Metric = (r: RowResult) => number | null;

const METRICS: Record<"knnCls" | "knnMean" | "probeCls" | "probeMean", Metric> = {
  knnCls: (r) => r.knnCls,
  knnMean: (r) => r.knnMean,
  probeCls: (r) => gateProbe(r.probeCls),
  probeMean: (r) => gateProbe(r.probeMean),
};

/** Per-seed values of `metric` for `row`. */
function values(results: readonly RowResult[], row: string, metric: Metric) {
  return results.filter((r) => r.row === row).map((r) => ({ seed: r.seed, value: metric(r) }));
}

/** The gate of every pre-training row of `results` (not raw pixels, not the baseline). */
export function gateRows(results: readonly RowResult[]): GateRow[] {
  const rows = [...new Set(results.map((r) => r.row))]
    .filter((r) => r !== GATE_BASELINE && r !== "raw pixels");
  return rows.map((row) => {
    const g = (m: Metric) => pairedGain(values(results, row, m), values(results, GATE_BASELINE, m));
    const knnCls = g(METRICS.knnCls), knnMean = g(METRICS.knnMean);
    const probeCls = g(METRICS.probeCls), probeMean = g(METRICS.probeMean);
    const both = (a: Gain | null, b: Gain | null) =>
      verdict(a) === "passes" && verdict(b) === "passes";
    const feature = both(knnCls, probeCls) ? "cls" : both(knnMean, probeMean) ? "mean" : null;
    const gated = [knnCls, knnMean, probeCls, probeMean].every((x) => verdict(x) !== "not gated");
    return {
      row,
      knnCls,
      knnMean,
      probeCls,
      probeMean,
      feature,
      verdict: feature ? "passes" : gated ? "below" : "not gated",
    };
  });
}

/** The comparisons the reading answers: [question, row a, row b] (a − b). */
export const QUESTIONS: readonly (readonly [string, string, string])[] = [
  ["Does dBOT-1 reach MAE?", "dbot-1", "mae"],
  ["Do 2 stages beat 1 at equal epochs?", "dbot-2", "dbot-1"],
  ["Do 3 stages beat 1 at equal epochs?", "dbot-3", "dbot-1"],
  ["Does a larger pre-trained teacher distil into a better student?", "dbot-distilled", "dbot-1"],
];

/**
 * The reading, generated from the figures: which rows pass the gate and their order by
 * linear-probe gain (on the feature they pass), which are not ranked and why, and each of
 * {@link QUESTIONS} answered only when both rows pass (paired differences a − b, mean ± SE,
 * on the probe, k-NN and the lowest-label fine-tuning; "settled" only beyond 3 SE).
 */
export function readingLines(
  results: readonly RowResult[],
  gate: GateRow[] = gateRows(results),
): string[] {
  const lines: string[] = [];
  const passing = gate.filter((g) => g.verdict === "passes");
  const below = gate.filter((g) => g.verdict === "below");
  const ungated = gate.filter((g) => g.verdict === "not gated");
  const probeGain = (g: GateRow) => (g.feature === "mean" ? g.probeMean : g.probeCls)!;
  if (passing.length) {
    const order = [...passing].sort((a, b) => probeGain(b).mean - probeGain(a).mean);
    lines.push(
      `- Pass the gate (gain ≥ ${GATE_SE} SE over the random init on k-NN and linear probe), ` +
        "by linear-probe gain: " +
        order.map((g) => `${g.row} (${g.feature}, ${fmtGain(probeGain(g))})`).join(", ") + ".",
    );
  } else {
    lines.push("- No row passes the gate: nothing below is ranked.");
  }
  if (below.length) {
    lines.push(
      `- Not ranked (gain under ${GATE_SE} SE on every feature): ` +
        below.map((g) => g.row).join(", ") + ".",
    );
  }
  if (ungated.length) {
    lines.push(
      "- Not ranked, 1 seed: not gated (the standard error needs ≥ 2 seeds): " +
        ungated.map((g) => g.row).join(", ") + ".",
    );
  }
  const lowest = lowestFinetuneKey(results);
  for (const [q, a, b] of QUESTIONS) {
    const ga = gate.find((g) => g.row === a), gb = gate.find((g) => g.row === b);
    if (!ga || !gb) continue;
    const notRanked = [ga, gb].filter((g) => g.verdict !== "passes");
    if (notRanked.length) {
      lines.push(
        `- ${q} Not answered: ${
          notRanked.map((g) =>
            `${g.row} is ${g.verdict === "below" ? "below the gate" : "not gated"}`
          )
            .join(", ")
        }.`,
      );
      continue;
    }
    const f = ga.feature === gb.feature ? ga.feature! : "cls";
    const probeOf = f === "cls" ? "probeCls" : "probeMean";
    const labels = gateProbeLabels(
      results.flatMap((r) => Object.keys(r[probeOf] ?? {}).map((k) => Number(k) || 0)),
    );
    const diff = (m: Metric) => pairedGain(values(results, a, m), values(results, b, m));
    const parts: [string, Gain | null][] = [
      [`probe ${f} (${labels})`, diff(f === "cls" ? METRICS.probeCls : METRICS.probeMean)],
      [`k-NN ${f}`, diff(f === "cls" ? METRICS.knnCls : METRICS.knnMean)],
    ];
    if (lowest) parts.push([`fine-tune ${lowest}`, diff((r) => r.finetune?.[lowest] ?? null)]);
    const said = parts.map(([name, g]) => {
      const v = verdict(g);
      const who = !g || v !== "passes"
        ? (g && g.mean < 0 && -g.mean >= GATE_SE * g.se ? `${b} ahead` : "not settled")
        : `${a} ahead`;
      return `${name} ${a} − ${b} ${fmtGain(g).replace(" ⚑", "")} (${who})`;
    });
    lines.push(`- ${q} ${said.join("; ")}.`);
  }
  return lines;
}

/** The smallest label count fine-tuned in `results` (its key), or null. */
function lowestFinetuneKey(results: readonly RowResult[]): string | null {
  const keys = [...new Set(results.flatMap((r) => Object.keys(r.finetune ?? {})))];
  if (!keys.length) return null;
  return keys.sort((x, y) => (Number(x) || Infinity) - (Number(y) || Infinity))[0];
}
