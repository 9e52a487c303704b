/**
 * Data-parallel pre-training over MPI, 2 ranks on this machine (`mpirun --oversubscribe`):
 * 2 ranks × batch 32 give the losses and weights of 1 rank × batch 64; a run resumed with
 * another number of ranks continues the same schedule; a killed or raising rank ends the
 * job naming the rank, leaving a resumable state; mismatched ranks refuse to start; Ctrl-C
 * on mpirun saves the state.
 *
 * Skipped, with the reason printed, where Open MPI or `mpirun` is missing — unless
 * `DBOT_REQUIRE_MPI=1` (CI sets it), which makes the tests fail instead.
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { readSafetensors } from "../src/io/safetensors_file.ts";
import { resolvePretrain } from "../src/train/pretrain_config.ts";
import { loadMpi, MPI_INSTALL_HINT } from "../src/parallel/mpi.ts";
import { type MetricLine, pretrain, type PretrainSummary } from "../src/train/pretrain.ts";
import { openRunData } from "../src/train/run_data.ts";
import { readState } from "../src/train/state.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { denoWords } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const FFI = "--allow-ffi=/usr/lib,/usr/lib64,/usr/local/lib,/opt/homebrew,native/build";
const quiet = { log: () => {} };

/** Null when MPI can run here, else why not. */
async function probeMpi(): Promise<string | null> {
  if (Deno.permissions.querySync({ name: "run", command: "mpirun" }).state !== "granted") {
    return "no --allow-run=mpirun";
  }
  try {
    loadMpi();
  } catch (e) {
    return (e as Error).message;
  }
  try {
    const out = await new Deno.Command("mpirun", { args: ["--version"], stdout: "piped" }).output();
    if (!out.success) return `mpirun --version exited with ${out.code}`;
  } catch (e) {
    return `mpirun does not start (${(e as Error).message})`;
  }
  return null;
}

const missing = await probeMpi();
const required = Deno.env.get("DBOT_REQUIRE_MPI") === "1";
if (missing && !required) {
  console.log(
    `skipping the MPI tests: ${missing}. To run them: ${MPI_INSTALL_HINT}; ` +
      `DBOT_REQUIRE_MPI=1 makes them fail instead of skipping.`,
  );
}

function mpiTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: `[mpi] ${name}`,
    ignore: missing !== null && !required,
    fn: async () => {
      if (missing) {
        throw new Error(`DBOT_REQUIRE_MPI=1 but MPI is missing: ${missing} (${MPI_INSTALL_HINT})`);
      }
      await fn();
    },
  });
}

/** `mpirun -np n <args>` from the repository root; resolves with the exit code and output. */
function mpirun(n: number, args: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command("mpirun", {
    args: ["--allow-run-as-root", "--oversubscribe", "-np", String(n), ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).spawn();
}

async function finish(child: Deno.ChildProcess): Promise<{ code: number; out: string }> {
  const o = await child.output();
  const d = new TextDecoder();
  return { code: o.code, out: d.decode(o.stdout) + d.decode(o.stderr) };
}

/** Runs `tests/mpi_rank.ts` (pretrain() with the MPI collective) on `n` ranks. */
function ranks(n: number, job: Record<string, unknown>): Promise<{ code: number; out: string }> {
  return finish(
    mpirun(n, [
      "deno",
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      FFI,
      "tests/mpi_rank.ts",
      JSON.stringify(job),
    ]),
  );
}

function kebab(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The pretrain task's `deno run …` words from deno.json, writing to `runsDir`, with `flags`. */
async function taskArgs(runsDir: string, flags: Record<string, unknown>): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks;
  const words = denoWords(tasks.pretrain);
  const i = words.indexOf("--allow-write=runs");
  assert(i > 0, `the pretrain task should write only under runs/: ${tasks.pretrain}`);
  words[i] = `--allow-write=${runsDir}`;
  return [
    ...words,
    ...Object.entries<unknown>({ ...flags, runsDir }).flatMap(([k, v]) =>
      v === true ? [`--${kebab(k)}`] : [`--${kebab(k)}`, String(v)]
    ),
  ];
}

async function metrics(dir: string): Promise<MetricLine[]> {
  return (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l) as MetricLine
  );
}

/** Same steps and LRs, losses within `rel`. */
function assertSameCurve(a: MetricLine[], b: MetricLine[], rel: number, what: string): void {
  assertEquals(a.map((l) => [l.step, l.epoch, l.lr]), b.map((l) => [l.step, l.epoch, l.lr]), what);
  a.forEach((l, i) => {
    const d = Math.abs(l.loss - b[i].loss) / Math.abs(b[i].loss);
    assert(d <= rel, `${what}: step ${l.step} loss ${l.loss} vs ${b[i].loss} (relative ${d})`);
  });
}

/** The largest |a − b| over every tensor of two checkpoints with the same names. */
async function maxDiff(a: string, b: string): Promise<number> {
  const [x, y] = [await readSafetensors(a), await readSafetensors(b)];
  assertEquals([...x.tensors.keys()], [...y.tensors.keys()]);
  let m = 0;
  for (const [name, t] of x.tensors) {
    const u = y.tensors.get(name)!.data as Float32Array;
    (t.data as Float32Array).forEach((v, i) => m = Math.max(m, Math.abs(v - u[i])));
  }
  return m;
}

Deno.test("the micro-batches of 2 ranks are the halves of 1 rank's: images, masking noise, per-sample streams", async () => {
  const be = new CpuBackend({ threads: 1 });
  const base = { imgSize: 16, trainLimit: 48, knnTrain: 8, knnTest: 8, accum: 2 };
  const open = (batch: number, rank: number, ranks: number, prefetch: boolean) =>
    openRunData(be, resolvePretrain({ ...base, batch }), { log: () => {}, prefetch, rank, ranks });
  const one = await open(8, 0, 1, false);
  const halves = [await open(4, 0, 2, true), await open(4, 1, 2, false)];
  assertEquals([one.itersPerEpoch, one.stepImages], [3, 16]);
  assertEquals(halves.map((h) => [h.itersPerEpoch, h.stepImages]), [[3, 16], [3, 16]]);
  const L = one.L;
  // epoch 1 from iteration 1 (a resumed run), whose first step is global step 4
  const whole = one.epochBatches(1, 1, 4);
  const parts = halves.map((h) => h.epochBatches(1, 1, 4));
  for (let micro = 0; micro < 4; micro++) {
    const w = await whole.next();
    for (const [r, part] of parts.entries()) {
      const p = await part.next();
      const per = w.images.length / 8;
      assertEquals(p.images, w.images.slice(r * 4 * per, (r + 1) * 4 * per), `images ${micro}`);
      assertEquals(p.noise, w.noise.slice(r * 4 * L, (r + 1) * 4 * L), `noise ${micro}`);
      assertEquals(p.rngs.map((g) => g.state), w.rngs.slice(r * 4, r * 4 + 4).map((g) => g.state));
    }
  }
  for (const d of [one, ...halves]) d.dispose();
  be.dispose();
});

/** Parameters after a few AdamW steps of two summation orders agree to this. */
const PARAM_TOL = 1e-4;

mpiTest(
  "2 ranks × batch 32 (mpirun deno task pretrain) match 1 rank × batch 64: losses and weights",
  async () => {
    const dir = await Deno.makeTempDir();
    const run = {
      imgSize: 16,
      trainLimit: 320, // 5 steps of 64
      stages: 1,
      epochsPerStage: 1,
      warmupEpochs: 0,
      baseLr: 2e-2,
      knnTrain: 40,
      knnTest: 20,
      logEvery: 1,
    };
    const t0 = performance.now();
    const two = await finish(
      mpirun(2, [...await taskArgs(dir, { ...run, batch: 32, name: "two", backend: "cpu" })]),
    );
    const wall2 = (performance.now() - t0) / 1000;
    assertEquals(two.code, 0, two.out);
    assert(/rank 0 of 2/.test(two.out) && /rank 1 of 2/.test(two.out), two.out);
    const one = await pretrain(
      new CpuBackend(),
      resolvePretrain({ ...run, batch: 64, runsDir: dir, name: "one" }),
      quiet,
    );
    assert(one !== null, "the 1-rank run finishes");
    const [a, b] = [await metrics(`${dir}/two`), await metrics(`${dir}/one`)];
    assertEquals(a.length, 5);
    assertSameCurve(a, b, 1e-5, "2 × 32 vs 1 × 64");
    const d = await maxDiff(`${dir}/two/final.safetensors`, `${dir}/one/final.safetensors`);
    assert(d <= PARAM_TOL, `final weights differ by ${d}`);
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/two/config.json`));
    assertEquals([cfg.batch, cfg.resolved.ranks, cfg.resolved.globalBatch], [32, 2, 64]);
    const s = JSON.parse(await Deno.readTextFile(`${dir}/two/summary.json`)) as PretrainSummary;
    assertEquals(s.steps, 5);
    console.log(
      `  2 ranks: ${wall2.toFixed(1)} s wall (2 deno starts), max |Δw| ${d.toExponential(2)}, ` +
        `losses ${a.map((l) => l.loss.toFixed(6)).join(" ")}`,
    );
    await Deno.remove(dir, { recursive: true });
  },
);

/** 64 images, global batch 32: 2 steps per epoch, one stage of 2 epochs (4 steps). */
const SMALL = {
  name: "t",
  imgSize: 16,
  trainLimit: 64,
  stages: 1,
  epochsPerStage: 2,
  warmupEpochs: 0,
  baseLr: 2e-2,
  knnTrain: 40,
  knnTest: 20,
  logEvery: 1,
};
let small: Promise<string> | null = null;
/** The uninterrupted 1-rank run of SMALL (once per file); its run directory. */
function reference(): Promise<string> {
  small ??= (async () => {
    const dir = await Deno.makeTempDir();
    const s = await pretrain(
      new CpuBackend(),
      resolvePretrain({ ...SMALL, batch: 32, runsDir: dir }),
      quiet,
    );
    assert(s !== null && s.steps === 4, "the reference run takes 4 steps");
    return `${dir}/t`;
  })();
  return small;
}

mpiTest(
  "a 2-rank run resumed with 1 rank, and a 1-rank run resumed with 2, continue the same schedule",
  async () => {
    const ref = await reference();
    const dir = await Deno.makeTempDir();
    // 2 ranks for epoch 0, then 1 rank
    const first = await ranks(2, {
      cfg: { ...SMALL, batch: 16, runsDir: `${dir}/a` },
      stopAfterEpochs: 1,
    });
    assertEquals(first.code, 0, first.out);
    assertEquals((await readState(`${dir}/a/t/state.safetensors`))?.step, 2);
    let refused = "";
    try {
      await pretrain(
        new CpuBackend(),
        resolvePretrain({ ...SMALL, batch: 16, runsDir: `${dir}/a` }),
        {
          ...quiet,
          resume: true,
        },
      );
    } catch (e) {
      refused = (e as Error).message;
    }
    assert(
      refused.includes("give --batch 32 per rank"),
      `a wrong global batch is refused: ${refused}`,
    );
    const one = await pretrain(
      new CpuBackend(),
      resolvePretrain({ ...SMALL, batch: 32, runsDir: `${dir}/a` }),
      { ...quiet, resume: true },
    );
    assertEquals(one?.steps, 4);
    // 1 rank for epoch 0, then 2 ranks
    await pretrain(
      new CpuBackend(),
      resolvePretrain({ ...SMALL, batch: 32, runsDir: `${dir}/b` }),
      {
        ...quiet,
        stopAfterEpochs: 1,
      },
    );
    const second = await ranks(2, {
      cfg: { ...SMALL, batch: 16, runsDir: `${dir}/b` },
      resume: true,
    });
    assertEquals(second.code, 0, second.out);
    const want = await metrics(ref);
    for (const run of ["a", "b"]) {
      assertSameCurve(await metrics(`${dir}/${run}/t`), want, 1e-5, `run ${run}`);
      const d = await maxDiff(`${dir}/${run}/t/final.safetensors`, `${ref}/final.safetensors`);
      assert(d <= PARAM_TOL, `run ${run}: final weights differ from the 1-rank run by ${d}`);
    }
    await Deno.remove(dir, { recursive: true });
  },
);

mpiTest(
  "a killed rank ends the job naming it, leaving complete files and a resumable state",
  async () => {
    const ref = await reference();
    const dir = await Deno.makeTempDir();
    // rank 1 SIGKILLs itself as step 3 starts (epoch 1; the state of epoch 0 is on disk)
    const r = await ranks(2, {
      cfg: { ...SMALL, batch: 16, runsDir: dir },
      killRank: 1,
      atStep: 2,
    });
    const stopS = (Date.now() - Number(await Deno.readTextFile(`${dir}/killed_at`))) / 1000;
    assert(r.code !== 0, r.out);
    assert(/rank 1 with PID \d+ on node \S+ exited on signal 9 \(Killed\)/.test(r.out), r.out);
    for await (const e of Deno.readDir(`${dir}/t`)) {
      if (e.name.endsWith(".safetensors")) await readSafetensors(`${dir}/t/${e.name}`); // complete
      if (e.name.endsWith(".json")) JSON.parse(await Deno.readTextFile(`${dir}/t/${e.name}`));
    }
    assertEquals((await readState(`${dir}/t/state.safetensors`))?.step, 2);
    const s = await pretrain(
      new CpuBackend(),
      resolvePretrain({ ...SMALL, batch: 32, runsDir: dir }),
      { ...quiet, resume: true },
    );
    assertEquals(s?.steps, 4);
    const d = await maxDiff(`${dir}/t/final.safetensors`, `${ref}/final.safetensors`);
    assert(d <= PARAM_TOL, `the resumed run differs from the uninterrupted one by ${d}`);
    assert(stopS < 30, `the job took ${stopS} s to end after the kill`);
    console.log(`  killed rank: mpirun ended ${stopS.toFixed(2)} s after the kill`);
    await Deno.remove(dir, { recursive: true });
  },
);

mpiTest(
  "a rank that raises ends the job with its rank and message; mismatched configs refuse to start",
  async () => {
    const dir = await Deno.makeTempDir();
    const r = await ranks(2, {
      cfg: { ...SMALL, batch: 16, runsDir: dir },
      raiseRank: 1,
      atStep: 1,
    });
    assert(r.code !== 0, r.out);
    assert(/rank 1 of 2 \(\S+\): error: a test fault at step 1/.test(r.out), r.out);
    const m = await ranks(2, {
      cfg: { ...SMALL, batch: 16, runsDir: `${dir}/m` },
      seedByRank: true,
    });
    assert(m.code !== 0, m.out);
    assert(/disagree on the configuration: rank\(s\) 1 differ from rank 0/.test(m.out), m.out);
    await Deno.remove(dir, { recursive: true });
  },
);

mpiTest(
  "Ctrl-C on mpirun: every rank stops after the same step and rank 0 saves the state",
  async () => {
    const dir = await Deno.makeTempDir();
    const child = mpirun(2, [
      ...await taskArgs(dir, {
        ...SMALL,
        epochsPerStage: 200,
        batch: 16,
        backend: "cpu",
      }),
    ], { OMPI_MCA_odls_base_sigkill_timeout: "3" });
    // rank 0 logs "pre-training …" as its loop starts; mpirun sends the ranks SIGTERM
    // odls_base_sigkill_timeout (here 3) s after SIGINT, and SIGKILL as long after that
    const err = new Response(child.stderr).text();
    let text = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      text += r.value;
      if (text.includes("\npre-training ")) break;
    }
    child.kill("SIGINT"); // what Ctrl-C sends mpirun (the ranks run in their own process groups)
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
    await child.status;
    const r = { out: text + await err };
    // (with 2 steps per epoch the stop lands mid-epoch or at an epoch's end)
    assert(/interrupted: saved the state (after step|at the end of epoch) \d+/.test(r.out), r.out);
    const s = await readState(`${dir}/t/state.safetensors`);
    assert(s !== null, `no state was saved: ${r.out}`);
    // at least the step in flight when SIGINT came (on a loaded machine that may be the first:
    // `>= 5` here failed under load), never the whole run (400 steps)
    assert(s.step >= 1 && s.step < 400, `saved at step ${s.step}`);
    assert(s.iter > 0 || s.step % 2 === 0, `a mid-epoch state records its iteration`);
    await Deno.remove(dir, { recursive: true });
  },
);
