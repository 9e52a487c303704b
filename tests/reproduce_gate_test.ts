/**
 * The reproduction's gate and low-label subsets on constructed numbers: paired gains as mean ±
 * standard error, the 3-SE flag, "1 seed: not gated", a reading that never ranks a row below
 * the gate; class-balanced label subsets fixed per seed, nested, inside the pool; the budgets
 * at the reference batch and LR.
 */
import {
  balancedSubset,
  gatherLabels,
  gatherRows,
  perClassCounts,
} from "../src/data/label_subset.ts";
import {
  checkBudget,
  fmtGain,
  gateProbe,
  gateProbeLabels,
  gateRows,
  pairedGain,
  readingLines,
  REFERENCE_BASE_LR,
  REPRODUCE_BUDGETS,
  REPRODUCE_DEFAULTS,
  type RowResult,
  verdict,
} from "../src/reproduce/mod.ts";
import { renderMarkdown } from "../src/reproduce/report.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";

function assertAlmostEquals(actual: number, expected: number, tol: number): void {
  assert(Math.abs(actual - expected) <= tol, `expected ${expected} ± ${tol}, got ${actual}`);
}

const seeds = (vs: number[]) => vs.map((value, seed) => ({ seed, value }));

Deno.test("gate: paired gain is the mean ± standard error of per-seed differences", () => {
  // differences 4, 5, 6: mean 5, sd 1, SE 1/√3
  const g = pairedGain(seeds([64, 66, 70]), seeds([60, 61, 64]))!;
  assertEquals([g.mean, g.n], [5, 3]);
  assertAlmostEquals(g.se, 1 / Math.sqrt(3), 1e-12);
  assertEquals(verdict(g), "passes");
  assertEquals(fmtGain(g), "+5.0 ± 0.6");
  // paired, not pooled: the seeds' offsets cancel (unpaired sd would be ~5)
  const offsets = pairedGain(seeds([51, 61, 71]), seeds([50, 60, 70]))!;
  assertEquals([offsets.mean, offsets.se], [1, 0]);
  // differences 0.7, 4.8, 5.0 (the dbot-1 at 12 epochs): mean 3.5, SE 1.40 → 2.5 SE
  const weak = pairedGain(seeds([65.3, 69.4, 69.6]), seeds([64.6, 64.6, 64.6]))!;
  assertAlmostEquals(weak.mean, 3.5, 1e-9);
  assertAlmostEquals(weak.se, 1.4012, 1e-3);
  assertEquals(verdict(weak), "below");
  assertEquals(fmtGain(weak), "+3.5 ± 1.4 ⚑");
  // exactly 3 SE passes; a negative gain never does
  assertEquals(verdict({ mean: 3, se: 1, n: 3 }), "passes");
  assertEquals(verdict({ mean: 2.999, se: 1, n: 3 }), "below");
  assertEquals(verdict({ mean: -9, se: 1, n: 3 }), "below");
  // seeds are matched by number; unmatched or null seeds are left out
  const partial = pairedGain(
    [{ seed: 2, value: 10 }, { seed: 0, value: 7 }, { seed: 5, value: 1 }],
    [{ seed: 0, value: 5 }, { seed: 2, value: 9 }, { seed: 5, value: null }],
  )!;
  assertEquals([partial.mean, partial.n], [1.5, 2]);
  // one seed: the SE is undefined, nothing is gated, and it says so
  const one = pairedGain(seeds([70]), seeds([60]))!;
  assertEquals([one.mean, one.n, Number.isNaN(one.se)], [10, 1, true]);
  assertEquals(verdict(one), "not gated");
  assertEquals(fmtGain(one), "+10.0 (1 seed: not gated)");
  assertEquals(pairedGain(seeds([1]), []), null);
});

/** A constructed result: k-NN and probe (cls and mean) given, the rest fixed. */
function result(row: string, seed: number, knn: [number, number], probe: [number, number]) {
  return {
    row,
    recipe: row,
    seed,
    command: "",
    checkpoint: "",
    boundaries: [0, 12],
    curve: [],
    finetune: { "600": 50 + knn[0] / 10, all: 80 },
    // the gate's probe is the largest subset short of every label (here 6000)
    probeCls: { "600": 60, "6000": probe[0], all: 75 },
    probeMean: { "600": 60, "6000": probe[1], all: 75 },
    knnCls: knn[0],
    knnMean: knn[1],
    pretrainS: 10,
    teacherS: 0,
    evalS: 5,
    times: { curve: 1, embed: 1, knn: 1, probe: 1, finetune: { "600": 1 } },
  } satisfies RowResult;
}

/** Three seeds: init; mae passes on cls; dbot-1 passes on mean only; dbot-2 is below. */
function constructed(nSeeds: number): RowResult[] {
  const out: RowResult[] = [];
  for (let s = 0; s < nSeeds; s++) {
    const o = [0, 1.5, -1][s]; // seed offsets shared by every row (paired away)
    out.push(result("random init", s, [60 + o, 58 + o], [70 + o, 69 + o]));
    out.push(result("mae", s, [65 + o + s * 0.1, 58 + o], [74 + o + s * 0.1, 69 + o]));
    out.push(result("dbot-1", s, [60 + o, 62 + o + s * 0.2], [70 + o, 72 + o - s * 0.1]));
    // gains +4, −1, +6 on k-NN cls: mean 3, SE 2.08 → below
    out.push(
      result("dbot-2", s, [60 + o + [4, -1, 6][s], 58 + o], [70 + o + [4, -1, 6][s], 69 + o]),
    );
  }
  return out;
}

Deno.test("gate: rows pass on one feature, are flagged below, and only passing rows are ranked", () => {
  const results = constructed(3);
  const gate = gateRows(results);
  assertEquals(gate.map((g) => [g.row, g.verdict, g.feature]), [
    ["mae", "passes", "cls"],
    ["dbot-1", "passes", "mean"],
    ["dbot-2", "below", null],
  ]);
  assertAlmostEquals(gate[0].knnCls!.mean, 5.1, 1e-9);
  assertEquals(verdict(gate[2].knnCls), "below");
  const reading = readingLines(results, gate);
  const text = reading.join("\n");
  // ranked by linear-probe gain on the passing feature: mae (+4.1) before dbot-1 (+2.9)
  const ranked = reading.find((l) => l.startsWith("- Pass the gate"))!;
  assert(ranked.indexOf("mae") < ranked.indexOf("dbot-1"), ranked);
  assert(!ranked.includes("dbot-2"), `a row below the gate is not ranked: ${ranked}`);
  assert(text.includes("- Not ranked (gain under 3 SE on every feature): dbot-2."), text);
  // a question with a row below the gate is not answered; one with both passing is
  assert(text.includes("Do 2 stages beat 1 at equal epochs? Not answered: dbot-2 is below"), text);
  const q = reading.find((l) => l.startsWith("- Does dBOT-1 reach MAE?"))!;
  assert(/probe cls \(6000 labels\) dbot-1 − mae -4\.\d ± 0\.\d \(mae ahead\)/.test(q), q);
  assert(q.includes("fine-tune 600"), q);

  // the table: the gate first, the flag on the row below it
  const md = renderMarkdown({
    opts: { ...REPRODUCE_DEFAULTS, budget: "small", seeds: [0, 1, 2], backend: "cpu" },
    budget: REPRODUCE_BUDGETS.small,
    command: "deno task reproduce --budget small --seeds 0,1,2",
    teacherCommand: "",
    backend: "cpu",
    wallS: 1,
    rows: [],
    results,
    gate,
    reading,
    analysis: null,
  });
  assert(md.includes("| dbot-2 | +3.0 ± 2.1 ⚑ |"), md);
  assert(md.includes("| mae | +5.1 ± 0.1 |"), md);
  assert(md.includes("⚑ below: not ranked"), md);
  // the protocol line names the fine-tuning crop
  assert(md.includes("no mixup/cutmix, whole-image crops) on the same subsets"), md);
  const long = renderMarkdown({
    opts: { ...REPRODUCE_DEFAULTS, budget: "long", seeds: [0], backend: "cpu" },
    budget: REPRODUCE_BUDGETS.long,
    command: "deno task reproduce --budget long --seeds 0",
    teacherCommand: "",
    backend: "cpu",
    wallS: 1,
    rows: [],
    results: constructed(1),
    gate: gateRows(constructed(1)),
    reading: [],
    analysis: null,
  });
  assert(long.includes("mixup 0.8 / cutmix 1.0, crops of 20–100% of the image)"), long);
});

Deno.test("gate: the probe it uses is the largest subset short of every label", () => {
  assertEquals(gateProbe({ "600": 61, "6000": 72, all: 77 }), 72);
  assertEquals(gateProbe({ "20": 40, all: 50 }), 40);
  assertEquals(gateProbe({ all: 50 }), 50);
  assertEquals(gateProbe(null), null);
  assertEquals(gateProbeLabels([600, 6000, 0]), "6000 labels");
  assertEquals(gateProbeLabels([0]), "every label");
});

Deno.test("gate: with one seed nothing is gated and nothing is ranked", () => {
  const results = constructed(1);
  const gate = gateRows(results);
  assert(gate.every((g) => g.verdict === "not gated"), JSON.stringify(gate));
  const text = readingLines(results, gate).join("\n");
  assert(text.includes("No row passes the gate: nothing below is ranked."), text);
  assert(text.includes("1 seed: not gated"), text);
  assert(text.includes("Does dBOT-1 reach MAE? Not answered: dbot-1 is not gated"), text);
  assert(!/ahead/.test(text), `no comparison is made: ${text}`);
});

Deno.test("label subsets: class-balanced, fixed per seed, nested, inside the pool", () => {
  // 10 classes, 6000 images with unbalanced classes (class k: (2k + 1)% of them)
  const labels = new Int32Array(6000);
  for (let i = 0; i < labels.length; i++) labels[i] = Math.floor(Math.sqrt((i * 7919) % 100));
  const counts = (idx: Int32Array) => {
    const c = new Array(10).fill(0);
    for (const i of idx) c[labels[i]]++;
    return c;
  };
  const pool = 5000;
  const s300 = balancedSubset(labels, { n: 300, pool, numClasses: 10, seed: 3 });
  assertEquals(counts(s300), new Array(10).fill(30));
  assert(s300.every((v, j) => v < pool && (j === 0 || v > s300[j - 1])), "ascending, distinct");
  // fixed per seed, another seed another subset of the same balance
  assertEquals(balancedSubset(labels, { n: 300, pool, numClasses: 10, seed: 3 }), s300);
  const other = balancedSubset(labels, { n: 300, pool, numClasses: 10, seed: 4 });
  assertEquals(counts(other), new Array(10).fill(30));
  assert(other.some((v, j) => v !== s300[j]), "seed 4 draws other images");
  // a smaller subset of a seed lies inside a larger one (1% ⊂ 10%)
  const s65 = balancedSubset(labels, { n: 65, pool, numClasses: 10, seed: 3 });
  assertEquals(counts(s65), perClassCounts(65, 10));
  assertEquals(perClassCounts(65, 10), [7, 7, 7, 7, 7, 6, 6, 6, 6, 6]);
  const inBig = new Set(s300);
  assert(s65.every((i) => inBig.has(i)), "nested");
  // 0 or the whole pool: every pool image, in order; more than the pool: an error
  assertEquals(balancedSubset(labels, { n: 0, pool: 10, numClasses: 10, seed: 0 }).length, 10);
  assertEquals(balancedSubset(labels, { n: 10, pool: 10, numClasses: 10, seed: 0 }).length, 10);
  assertThrows(
    () => balancedSubset(labels, { n: 11, pool: 10, numClasses: 10, seed: 0 }),
    RangeError,
    "give at most 10",
  );
  // too few of a class in the pool: a clear error naming the class and the fix
  assertThrows(
    () => balancedSubset(labels, { n: 900, pool: 1000, numClasses: 10, seed: 0 }),
    RangeError,
    "give fewer labels or a larger pool",
  );
  // gathering rows and labels of a subset
  const x = Float32Array.from({ length: 12 }, (_, i) => i); // [6, 2]
  assertEquals([...gatherRows(x, 2, Int32Array.of(4, 1))], [8, 9, 2, 3]);
  assertEquals([...gatherLabels(Int32Array.of(5, 6, 7), Int32Array.of(2, 0))], [7, 5]);
});

Deno.test("budgets: the reference batch and LR, enough distinct images, stages that divide", () => {
  for (const [name, b] of Object.entries(REPRODUCE_BUDGETS)) {
    checkBudget(name, b);
    if (name === "tiny") continue;
    assertEquals(b.batch, 256, `${name}: steps of 256 images`);
    assertEquals(b.batch / b.accum, 64, `${name}: as micro-batches of 64`);
    assert(b.knnBank === b.trainLimit, `${name}: the bank is the pre-training images`);
    assertEquals(b.evalTest, 0, `${name}: the whole test set`);
  }
  assertEquals(REFERENCE_BASE_LR, 1.5e-4);
  const { small, medium, long } = REPRODUCE_BUDGETS;
  assert(small.trainLimit >= 10000 && small.epochs >= 12, "small: ≥ 10 000 images × ≥ 12 ep");
  assert(medium.trainLimit === 60000 && medium.epochs >= 30, "medium: 60 000 × ≥ 30 ep");
  assert(long.trainLimit === 60000 && long.epochs >= 300, "long: 60 000 × ≥ 300 ep");
  assertEquals(small.probeLabels, [600, 6000, 0], "1%, 10% and every label");
  assertEquals(small.finetuneLabels, [600, 6000], "small: low-label fine-tuning only");
  assertEquals(medium.finetuneLabels, [600, 6000, 0]);
  assertThrows(
    () => checkBudget("x", { ...small, finetuneEpochs: [1] }),
    RangeError,
    "give one epoch count per label count",
  );
  assertThrows(() => checkBudget("x", { ...small, epochs: 10 }), RangeError, "give 6·k");
});
