/**
 * `reproduce` is resumable: stopped in the middle of a row's pre-training, a rerun skips the
 * finished rows, resumes the stopped one from its saved step and ends with the same table as
 * an uninterrupted run; a run over a finished folder trains nothing and gives it again.
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { readRunStateMeta } from "../src/io/run_state.ts";
import {
  reproduce,
  REPRODUCE_BUDGETS,
  reproduceDir,
  type ReproduceReport,
  resolveReproduce,
  ROW_NAMES,
} from "../src/reproduce/mod.ts";
import { finetuneCommand, fmtStat, stat } from "../src/reproduce/report.ts";
import { nextCurveEpoch, planRows } from "../src/reproduce/rows.ts";
import { vitFromPreset } from "../src/models/mod.ts";
import { rowFinetuneConfig } from "../src/reproduce/evaluate.ts";
import { FINETUNE_CONFIG } from "../src/train/finetune.ts";
import { parseFlags } from "../src/util/cli.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";

/** The figures of a report, without wall times and paths (which differ between folders). */
function figures(r: ReproduceReport | null) {
  assert(r !== null, "the run finished");
  return {
    results: r.results.map((
      { pretrainS: _p, teacherS: _t, evalS: _e, times: _s, checkpoint: _c, ...x },
    ) => ({
      ...x,
      command: x.command.replace(/--runs-dir \S+/, "").replace(/--teacher \S+/, ""),
    })),
    analysis: r.analysis,
  };
}

Deno.test("reproduce: stopped mid-row, a rerun resumes and ends with the same table", async () => {
  const root = await Deno.makeTempDir({ prefix: "reproduce_test_" });
  try {
    const be = new CpuBackend();
    const opts = (name: string) => ({
      ...resolveReproduce({ budget: "tiny", data: "shapes", runsDir: root, name }),
      backend: "cpu",
    });
    const straight = await reproduce(be, opts("straight"), { log: () => {}, prefetch: false });

    // stop during dbot-2's pre-training: after its first step (mid-epoch 0)
    const stop = new AbortController();
    const first: string[] = [];
    const stopped = await reproduce(be, opts("stopped"), {
      signal: stop.signal,
      prefetch: false,
      log: (line) => {
        first.push(line);
        if (line.startsWith("dbot-2: deno task pretrain")) stop.abort();
      },
    });
    assertEquals(stopped, null);
    const dir = reproduceDir(opts("stopped"));
    const meta = await readRunStateMeta(`${dir}/seed0/dbot-2/state.safetensors`);
    assertEquals([meta?.epoch, meta?.iter], [0, 1], "saved after the first step");
    assert(!(await exists(`${dir}/seed0/dbot-3`)), "dbot-3 has not started");
    // the partial table holds the finished rows
    const partial = JSON.parse(await Deno.readTextFile(`${dir}/results.json`)) as ReproduceReport;
    assertEquals(partial.rows.map((r) => r.row), ["raw pixels", "random init", "mae", "dbot-1"]);

    const second: string[] = [];
    const resumed = await reproduce(be, opts("stopped"), {
      log: (l) => second.push(l),
      prefetch: false,
    });
    for (const row of ["mae", "dbot-1"]) {
      const skipped = (l: string) =>
        l.startsWith(`${row}: pre-training done`) && l.endsWith("skipped");
      assert(second.some(skipped), `${row} is skipped: ${second.join("\n")}`);
    }
    assert(second.some((l) => /dbot-2: resuming .* at epoch 0, iteration 1/.test(l)), "resumed");
    assertEquals(figures(resumed), figures(straight));

    // a finished folder: nothing is trained again, the same table comes back
    const third: string[] = [];
    const again = await reproduce(be, opts("stopped"), {
      log: (l) => third.push(l),
      prefetch: false,
    });
    assert(!third.some((l) => /resuming|deno task pretrain/.test(l)), third.join("\n"));
    assertEquals(figures(again), figures(straight));
    const md = await Deno.readTextFile(`${dir}/results.md`);
    assert(md.includes("| dbot-2 | dBOT, 2 stages × 3 ep |"), md);
    assert(md.indexOf("### The gate") < md.indexOf("### Frozen features"), "the gate comes first");
    assert(md.includes("1 seed: not gated"), "one seed: nothing is gated");
    assert(md.includes("(2 accumulated micro-batches of 8)"), md);
    for (const r of figures(resumed).results.filter((r) => r.row !== "raw pixels")) {
      assertEquals(Object.keys(r.probeCls!), ["20", "all"], "a probe at each label count");
      assertEquals(Object.keys(r.finetune!), ["20", "all"], "a fine-tuning at each label count");
    }
    const mae = JSON.parse(await Deno.readTextFile(`${dir}/seed0/mae/config.json`));
    assertEquals([mae.batch, mae.accum], [8, 2], "16 images a step as 2 micro-batches of 8");
    assert(await exists(`${dir}/curve-dbot-2.svg`), "the curve is plotted");

    // other fine-tuning settings: every row is fine-tuned again, nothing else reruns
    const fourth: string[] = [];
    const refit = await reproduce(
      be,
      { ...opts("stopped"), finetune: { finetuneEpochs: [3, 1] } },
      {
        log: (l) => fourth.push(l),
        prefetch: false,
      },
    );
    assert(!fourth.some((l) => /resuming|deno task pretrain/.test(l)), fourth.join("\n"));
    const tuned = figures(straight).results.filter((r) => r.finetune !== null).map((r) => r.row);
    assertEquals(tuned, ["random init", "mae", "dbot-1", "dbot-2", "dbot-3", "dbot-distilled"]);
    const again2 = fourth.filter((l) =>
      l.endsWith("fine-tuning settings changed; measuring again")
    );
    assertEquals(again2.length, tuned.length, fourth.join("\n"));
    const noFt = (r: ReproduceReport | null) =>
      figures(r).results.map(({ finetune: _f, ...x }) => x);
    assertEquals(noFt(refit), noFt(straight), "k-NN, probe and curves are kept");
    assert(
      figures(refit).results.every((r) => (r.finetune === null) === (r.row === "raw pixels")),
      "every encoder row has a fine-tuning figure",
    );
    const evalJson = JSON.parse(await Deno.readTextFile(`${dir}/seed0/mae/eval.json`));
    assertEquals(
      JSON.parse(evalJson.finetune["20"].protocol).epochs,
      3,
      "20 labels: measured again",
    );
    assertEquals(JSON.parse(evalJson.finetune.all.protocol).epochs, 1, "every label: kept");
    assertEquals(JSON.parse(evalJson.finetune.all.protocol).crop, [1, 1], "the crop is recorded");

    // other settings in the same folder are refused, naming the fix
    await assertRejects(
      () => reproduce(be, { ...opts("stopped"), baseLr: 1e-3 }, { log: () => {}, prefetch: false }),
      "give another --name",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("reproduce: curve epochs, mean ± sd and the settings' checks", () => {
  // every `every` epochs, at each stage boundary and at the end
  const at = (every: number, b: number[]) => {
    const out = [];
    for (let e = 0; e < b[b.length - 1];) out.push(e = nextCurveEpoch(e, every, b));
    return out;
  };
  assertEquals(at(2, [0, 3, 6]), [2, 3, 4, 6]);
  assertEquals(at(5, [0, 7]), [5, 7]);
  assertEquals(at(1, [0, 2, 4, 6]), [1, 2, 3, 4, 5, 6]);
  const s = stat([70, 72, null, 74]);
  assertEquals(s, { mean: 72, sd: 2, n: 3 });
  assertEquals(fmtStat(s), "72.0 ± 2.0");
  assertEquals(fmtStat(stat([70])), "70.0");
  assertEquals(fmtStat(stat([70, null, null]), 1, 3), "70.0 (n=1)");
  assertEquals(stat([null]), null);
  assertThrows(() => resolveReproduce({ seeds: [] }), RangeError, "0,1,2");
  assertThrows(() => resolveReproduce({ budget: "full" }), TypeError, "medium");
});

Deno.test("reproduce: the rows' folders are the --rows names; the teacher sits beside the seeds", () => {
  const opts = { ...resolveReproduce({ budget: "small", rows: "" }), backend: "cpu" };
  const plan = (rows: string) =>
    planRows({
      opts: { ...opts, rows },
      budget: REPRODUCE_BUDGETS.small,
      seed: 2,
      dir: "runs/x",
      stats: { mean: [0.5], std: [0.25] },
      student: vitFromPreset("vit-micro", { imgSize: 28, patchSize: 4, inChans: 1 }),
    });
  const all = plan("");
  assertEquals(all.rows.map((r) => r.folder), [...ROW_NAMES]);
  assertEquals(all.rows.map((r) => r.dir), ROW_NAMES.map((n) => `runs/x/seed2/${n}`));
  assertEquals(all.seedDir, "runs/x/seed2");
  assertEquals(all.teacher?.dir, "runs/x/teacher");
  assertEquals(plan("dbot-2").rows.map((r) => r.folder), ["random-init", "dbot-2"]);
});

Deno.test("reproduce: the report's fine-tuning command is the fine-tuning each row runs", () => {
  for (const budget of ["tiny", "small", "medium", "long"] as const) {
    const b = REPRODUCE_BUDGETS[budget];
    for (let i = 0; i < b.finetuneLabels.length; i++) {
      const cmd = finetuneCommand("fashion-mnist", b, i);
      const args = cmd.replace("CKPT", "x.safetensors").replaceAll(/ S( |$)/g, " 2$1").split(" ")
        .slice(3);
      const viaCli = FINETUNE_CONFIG.resolve(
        FINETUNE_CONFIG.fromFlags(parseFlags(args, FINETUNE_CONFIG.flags())),
      );
      const row = rowFinetuneConfig(b, i, {
        checkpoint: "x.safetensors",
        data: "fashion-mnist",
        dir: "runs/r/seed2/mae",
        testLimit: b.evalTest,
        seed: 2,
      });
      // only where the outputs go (and whether the classifier is kept) differ
      assertEquals({ ...viaCli, runsDir: row.runsDir, name: row.name, save: row.save }, row);
    }
  }
  assertEquals(
    finetuneCommand("fashion-mnist", REPRODUCE_BUDGETS.small, 0),
    "deno task finetune --checkpoint CKPT --data fashion-mnist --labels 600 --label-seed S " +
      "--epochs 20 --warmup-epochs 1 --batch 64 --base-lr 0.01 --mixup 0 --cutmix 0 " +
      "--crop-scale 1,1 --seed S",
  );
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function assertRejects(f: () => Promise<unknown>, text: string): Promise<void> {
  try {
    await f();
  } catch (e) {
    assert(String(e).includes(text), `expected "${text}" in: ${e}`);
    return;
  }
  throw new Error(`expected a rejection with "${text}"`);
}

Deno.test("reproduce: --rows runs a subset with the random init, and a rerun adds rows", async () => {
  const root = await Deno.makeTempDir({ prefix: "reproduce_rows_" });
  try {
    const be = new CpuBackend();
    const opts = (rows: string) => ({
      ...resolveReproduce({ budget: "tiny", data: "shapes", runsDir: root, name: "r", rows }),
      backend: "cpu",
    });
    const first = await reproduce(be, opts("mae"), { log: () => {}, prefetch: false });
    assertEquals(first?.results.map((r) => r.row), ["raw pixels", "random init", "mae"]);
    assertEquals(first?.analysis?.labels, ["random init", "mae"], "the subset is analysed");
    assert(!first!.markdown.includes("teacher of dbot-distilled"), "no teacher without its row");

    const log: string[] = [];
    const second = await reproduce(be, opts("dbot-1,mae"), {
      log: (l) => log.push(l),
      prefetch: false,
    });
    assert(
      log.some((l) => l.startsWith("mae: pre-training done") && l.endsWith("skipped")),
      log.join("\n"),
    );
    assert(log.some((l) => l.startsWith("dbot-1: deno task pretrain")), log.join("\n"));
    assertEquals(second?.results.map((r) => r.row), ["raw pixels", "random init", "mae", "dbot-1"]);
    assertEquals(second?.analysis?.labels, ["random init", "mae", "dbot-1"], "analysed again");
    assertEquals(
      figures(second).results.slice(0, 3),
      figures(first).results,
      "the rows already measured are read back unchanged",
    );
    assert(second!.command.endsWith("--rows dbot-1,mae"), second!.command);

    assertThrows(
      () => resolveReproduce({ rows: "mae,dbot-4" }),
      RangeError,
      "give row names from random-init, mae, dbot-1",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("reproduce: one larger teacher, trained once with seed 0, serves every seed", async () => {
  const root = await Deno.makeTempDir({ prefix: "reproduce_teacher_" });
  try {
    const be = new CpuBackend();
    const opts = {
      ...resolveReproduce({
        budget: "tiny",
        data: "shapes",
        runsDir: root,
        name: "t",
        seeds: [1, 2],
        rows: "dbot-distilled",
      }),
      backend: "cpu",
      skipFinetune: true,
    };
    const log: string[] = [];
    const r = await reproduce(be, opts, { log: (l) => log.push(l), prefetch: false });
    const trained = log.filter((l) => l.startsWith("teacher: deno task pretrain"));
    assertEquals(trained.length, 1, log.join("\n"));
    const dir = reproduceDir(opts);
    const teacher = `${dir}/teacher/final.safetensors`;
    assert(await exists(teacher), "the teacher sits beside the seeds' folders");
    const tcfg = JSON.parse(await Deno.readTextFile(`${dir}/teacher/config.json`));
    assertEquals(tcfg.seed, 0, "the teacher's seed is 0 whatever the seeds");
    assert(r!.markdown.includes("| (teacher of dbot-distilled, every seed) |"), r!.markdown);
    const distilled = r!.results.filter((x) => x.row === "dbot-distilled");
    assertEquals(distilled.map((x) => x.seed), [1, 2]);
    for (const x of distilled) {
      const cfg = JSON.parse(
        await Deno.readTextFile(`${dir}/seed${x.seed}/dbot-distilled/config.json`),
      );
      assertEquals(cfg.teacher, teacher, `seed ${x.seed} distils from the shared teacher`);
      assert(x.teacherS > 0, "the teacher's seconds are reported with the row");
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
