/**
 * Crash safety of `deno task pretrain`: SIGKILL at several points leaves every
 * checkpoint and the resume state complete, and `--resume` finishes the run
 * bit-identical to an uninterrupted one; SIGINT saves a mid-epoch state and exits
 * 130, and its resume is bit-identical too. The runs are subprocesses started with
 * the task's own permissions from deno.json (write access moved to a temp dir).
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { readSafetensors } from "../src/io/safetensors_file.ts";
import { resolvePretrain } from "../src/train/pretrain_config.ts";
import { type MetricLine, pretrain } from "../src/train/pretrain.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { denoWords } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;
/** The subprocess tests need `--allow-run=deno` (`deno task test` grants it). */
const NO_RUN = Deno.permissions.querySync({ name: "run", command: "deno" }).state !== "granted";

/** The tiny run: 16 px shapes, batch 8, 64 images → 8 steps/epoch, 2 stages over 4 epochs. */
const TINY = {
  imgSize: 16,
  batch: 8,
  trainLimit: 64,
  knnTrain: 40,
  knnTest: 20,
  warmupEpochs: 0,
  baseLr: 2e-2,
  logEvery: 1,
  boundaries: [0, 2, 4],
  dropPath: 0.1,
};
const STEPS = 32;

function kebab(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * `deno run` args of the pretrain task from deno.json for run `t` in `runsDir`, which replaces
 * runs/ in the write permission (the run name is always `t`: it is stored in the checkpoints).
 */
async function taskArgs(runsDir: string, resume: boolean): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks;
  const words = denoWords(tasks.pretrain);
  assertEquals(words[0], "deno");
  const i = words.indexOf("--allow-write=runs");
  assert(i > 0, `the pretrain task should write only under runs/: ${tasks.pretrain}`);
  words[i] = `--allow-write=${runsDir}`;
  const flags = Object.entries(TINY).flatMap(([k, v]) => [
    `--${kebab(k)}`,
    Array.isArray(v) ? v.join(",") : String(v),
  ]);
  return [
    ...words.slice(1),
    ...flags,
    "--runs-dir",
    runsDir,
    "--name",
    "t",
    "--backend",
    "cpu",
    "--quiet",
    ...(resume ? ["--resume"] : []),
  ];
}

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command("deno", {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

/** Sends `signal` unless the child has exited meanwhile. */
function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e; // already exited
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function metricLines(path: string): Promise<number> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter(Boolean).length;
  } catch {
    return 0;
  }
}

/** Polls `cond` every 5 ms until it holds or `child` exits; true if it held. */
async function until(child: Deno.ChildProcess, cond: () => Promise<boolean>): Promise<boolean> {
  let exited = false;
  child.status.then(() => exited = true);
  while (!exited) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
}

/** Every checkpoint and JSON file in `dir` is complete: parses in full. */
async function assertIntact(dir: string, when: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || e.name.includes(".tmp-")) continue;
    const path = `${dir}/${e.name}`;
    if (e.name.endsWith(".safetensors")) {
      const { tensors } = await readSafetensors(path); // throws on a torn file
      assert(tensors.size > 0, `${when}: ${path} is empty`);
    } else if (e.name.endsWith(".json")) {
      JSON.parse(await Deno.readTextFile(path));
    }
  }
}

/** Runs the task to completion (exit 0). */
async function runToEnd(args: string[]): Promise<void> {
  const out = await spawn(args).output();
  const err = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, `the run failed: ${err}`);
}

async function finalBytes(dir: string): Promise<Uint8Array> {
  return await Deno.readFile(`${dir}/final.safetensors`);
}

function assertSameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  assertEquals(a.length, b.length, `${what}: lengths`);
  assert(a.every((x, i) => x === b[i]), `${what}: final.safetensors differs`);
}

let reference: Uint8Array | undefined;
/** final.safetensors of an uninterrupted subprocess run (computed once). */
async function referenceFinal(tmp: string): Promise<Uint8Array> {
  if (!reference) {
    await runToEnd(await taskArgs(`${tmp}/ref`, false));
    reference = await finalBytes(`${tmp}/ref/t`);
  }
  return reference;
}

/** A kill point: what to wait for after the (re)start before sending SIGKILL. */
interface KillPoint {
  name: string;
  wait: (dir: string, child: Deno.ChildProcess) => Promise<boolean>;
}

async function killChain(tmp: string, name: string, points: KillPoint[]): Promise<string[]> {
  const dir = `${tmp}/${name}/t`;
  const report: string[] = [];
  for (let k = 0; k < points.length; k++) {
    const child = spawn(await taskArgs(`${tmp}/${name}`, k > 0));
    const hit = await points[k].wait(dir, child);
    if (hit) kill(child, "SIGKILL");
    const out = await child.output();
    const lines = await metricLines(`${dir}/metrics.jsonl`);
    report.push(`${points[k].name}: ${hit ? `killed at ${lines} metric lines` : "finished first"}`);
    if (hit) assert(out.signal === "SIGKILL" || out.code === 0, `exit ${out.code} ${out.signal}`);
    else assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    await assertIntact(dir, points[k].name);
  }
  await runToEnd(await taskArgs(`${tmp}/${name}`, true));
  await assertIntact(dir, "after the last resume");
  for await (const e of Deno.readDir(dir)) {
    assert(!e.name.includes(".tmp-"), `a stale temp file survived the resume: ${e.name}`);
  }
  const steps = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n")
    .map((l) => (JSON.parse(l) as MetricLine).step);
  assertEquals(steps, Array.from({ length: STEPS }, (_, i) => i + 1), "metrics.jsonl steps");
  return report;
}

Deno.test({
  name: "SIGKILL of pretrain at 7 points leaves complete files, and --resume ends bit-identical",
  ignore: NO_RUN,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "dbot_crash_" });
    const ref = await referenceFinal(tmp);
    const poll = (f: (dir: string) => Promise<boolean>) => (dir: string, c: Deno.ChildProcess) =>
      until(c, () => f(dir));
    const rng = new Rng(1234);
    // random points: a seeded metric line in each third of the run, then a random 0-20 ms
    // more (so a kill can land inside a checkpoint write or a k-NN evaluation)
    const random = (lo: number, hi: number): KillPoint => {
      const n = lo + Math.floor(rng.uniform() * (hi - lo));
      const ms = Math.floor(rng.uniform() * 20);
      return {
        name: `random: ${ms} ms after metric line ${n}`,
        wait: async (d, c) => {
          if (!(await until(c, async () => (await metricLines(`${d}/metrics.jsonl`)) >= n))) {
            return false;
          }
          await new Promise((r) => setTimeout(r, ms));
          return true;
        },
      };
    };
    const fixed = await killChain(tmp, "fixed", [
      {
        name: "mid-epoch 0, before any state (3 metric lines)",
        wait: poll(async (d) => (await metricLines(`${d}/metrics.jsonl`)) >= 3),
      },
      {
        name: "as soon as the first state.safetensors appears",
        wait: poll((d) => exists(`${d}/state.safetensors`)),
      },
      {
        name: "as soon as stage0.safetensors appears (stage boundary)",
        wait: poll((d) => exists(`${d}/stage0.safetensors`)),
      },
      {
        name: "mid-epoch 3 (27 metric lines)",
        wait: poll(async (d) => (await metricLines(`${d}/metrics.jsonl`)) >= 27),
      },
    ]);
    assertSameBytes(await finalBytes(`${tmp}/fixed/t`), ref, "fixed kill points");
    const randomly = await killChain(tmp, "random", [
      random(1, 10),
      random(11, 21),
      random(22, STEPS),
    ]);
    assertSameBytes(await finalBytes(`${tmp}/random/t`), ref, "random kill points");
    console.log(
      `kill points, each resumed to a bit-identical final.safetensors:\n  ${
        [...fixed, ...randomly].join("\n  ")
      }`,
    );
    await Deno.remove(tmp, { recursive: true });
  },
});

Deno.test({
  name:
    "SIGINT makes pretrain save its state after the current step and exit 130; --resume ends bit-identical",
  ignore: NO_RUN,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "dbot_sigint_" });
    const ref = await referenceFinal(tmp);
    const dir = `${tmp}/int/t`;
    const child = spawn(await taskArgs(`${tmp}/int`, false));
    const hit = await until(child, async () => (await metricLines(`${dir}/metrics.jsonl`)) >= 11);
    assert(hit, "the run ended before the interrupt");
    kill(child, "SIGINT");
    const out = await child.output();
    const err = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 130, err);
    assert(err.includes(`interrupted: state saved in ${dir}/state.safetensors`), err);
    assert(err.includes(`--runs-dir ${tmp}/int --resume`), err);
    await assertIntact(dir, "after SIGINT");
    const { metadata } = await readSafetensors(`${dir}/state.safetensors`);
    const saved = JSON.parse(metadata.state);
    assert(saved.step >= 11 && saved.step < STEPS, `saved at step ${saved.step}`);
    await runToEnd(await taskArgs(`${tmp}/int`, true));
    assertSameBytes(await finalBytes(dir), ref, `SIGINT at step ${saved.step}`);
    await Deno.remove(tmp, { recursive: true });
  },
});

Deno.test("pretrain() aborted mid-epoch saves the iteration and resumes bit-identical", async () => {
  const dir = await Deno.makeTempDir();
  const quiet = { log: () => {} };
  const cfg = (runsDir: string) => resolvePretrain({ ...TINY, runsDir, name: "t", trainLimit: 32 });
  const full = await pretrain(new CpuBackend(), cfg(`${dir}/a`), quiet);
  assert(full !== null, "the uninterrupted run finishes");
  const stop = new AbortController();
  const lines: string[] = [];
  const cut = await pretrain(new CpuBackend(), cfg(`${dir}/b`), {
    log: (l) => lines.push(l),
    signal: stop.signal,
    alterBatch: (step) => {
      if (step === 9) stop.abort(); // during the 10th step: epoch 2 (a new stage), iteration 1 of 4
    },
  });
  assertEquals(cut, null);
  const last = lines[lines.length - 1];
  assert(
    last.includes("after step 10 (epoch 2, iteration 2 of 4)") && last.includes("--resume"),
    last,
  );
  const resumed = await pretrain(new CpuBackend(), cfg(`${dir}/b`), { ...quiet, resume: true });
  assert(resumed !== null, "the resumed run finishes");
  assertSameBytes(
    await finalBytes(`${dir}/b/t`),
    await finalBytes(`${dir}/a/t`),
    "mid-epoch resume",
  );
  assertEquals(resumed.steps, full.steps);
  await Deno.remove(dir, { recursive: true });
});
