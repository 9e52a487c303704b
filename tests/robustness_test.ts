/**
 * Clear failures: non-finite numbers stop a run naming the step, LR and last good
 * state, or are skipped with `onNan: "skip"`; a GPU fault mid-run names the last good
 * state; corrupt images fail a strict run by name; tasks write only where deno.json
 * lets them, and Deno's refusal is one readable line.
 */
import { MPI_ENV_VARS } from "../src/parallel/mpi.ts";
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { asGpuError, describeDeviceError, GpuError } from "../src/backend/webgpu/context.ts";
import { DataError } from "../src/data/dataset.ts";
import { readSafetensors } from "../src/io/safetensors_file.ts";
import { MAX_CONSECUTIVE_SKIPS, resolvePretrain } from "../src/train/pretrain_config.ts";
import { type MetricLine, NonFiniteLossError, pretrain } from "../src/train/pretrain.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { gpuTest } from "./gpu.ts";
import { tinyConfig as tinyBase } from "./golden.ts";

const ROOT = new URL("..", import.meta.url).pathname;
/** The subprocess tests need `--allow-run=deno` (`deno task test` grants it). */
const NO_RUN = Deno.permissions.querySync({ name: "run", command: "deno" }).state !== "granted";
const FIXTURES = `${ROOT}tests/fixtures`;
const quiet = { log: () => {} };

/** 16 px shapes, batch 8, 32 images: 4 steps/epoch; stages at epochs [0, 2, 3] (12 steps). */
function tinyConfig(runsDir: string, over: Record<string, unknown> = {}) {
  return tinyBase(runsDir, { logEvery: 1, boundaries: [0, 2, 3], ...over });
}

/** Awaits `fn`, asserts it throws `type` whose message has every one of `parts`. */
async function rejects(
  fn: () => Promise<unknown>,
  type: new (...a: never[]) => Error,
  ...parts: string[]
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof type, `expected ${type.name}, got ${e}`);
    for (const p of parts) assert(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return e;
  }
  throw new Error(`expected ${type.name}; nothing was thrown`);
}

/** A test seam that fills the images of the given steps with NaN. */
function nanAt(steps: (s: number) => boolean) {
  return (step: number, images: Float32Array) => {
    if (steps(step)) images.fill(NaN);
  };
}

// ---- numerical faults ---------------------------------------------------------------

Deno.test("pretrain() stops on a NaN batch naming the step, the LR and the last good state", async () => {
  const dir = await Deno.makeTempDir();
  const state = `${dir}/t/state.safetensors`;
  // the 7th step (epoch 1, iteration 2) gets NaN images; the state of epoch 0 is on disk
  await rejects(
    () =>
      pretrain(new CpuBackend(), tinyConfig(dir), { ...quiet, alterBatch: nanAt((s) => s === 6) }),
    NonFiniteLossError,
    "at step 7 (epoch 1, lr ",
    `the last good state is ${state} (saved at epoch 1, step 4)`,
    `--runs-dir ${dir} --resume`,
    "--on-nan skip",
  );
  const { metadata } = await readSafetensors(state);
  assertEquals(JSON.parse(metadata.state).step, 4);
  await Deno.remove(dir, { recursive: true });
});

Deno.test('pretrain() with onNan "skip" skips a NaN step, counts it and finishes with finite weights', async () => {
  const dir = await Deno.makeTempDir();
  const lines: string[] = [];
  const s = await pretrain(new CpuBackend(), tinyConfig(dir, { onNan: "skip" }), {
    log: (l) => lines.push(l),
    alterBatch: nanAt((s) => s === 6),
  });
  assert(s !== null, "the run finishes");
  assertEquals([s.steps, s.skipped_steps], [12, 1]);
  assert(
    lines.some((l) => l.includes("step 7 (epoch 1") && l.includes("update skipped")),
    lines.join("\n"),
  );
  const metrics = (await Deno.readTextFile(`${dir}/t/metrics.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l) as MetricLine);
  assertEquals(metrics.map((m) => m.skipped), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
  assertEquals(metrics[6].loss, null); // the skipped step's window had no finite loss
  const { tensors } = await readSafetensors(`${dir}/t/final.safetensors`);
  for (const [name, t] of tensors) {
    assert((t.data as Float32Array).every(Number.isFinite), `${name} is not finite`);
  }
  assert(Number.isFinite(s.knn_top1_final), "k-NN ran on finite features");
  await Deno.remove(dir, { recursive: true });
});

Deno.test(`pretrain() with onNan "skip" stops after ${MAX_CONSECUTIVE_SKIPS} skipped steps in a row`, async () => {
  const dir = await Deno.makeTempDir();
  await rejects(
    () =>
      pretrain(new CpuBackend(), tinyConfig(dir, { onNan: "skip", boundaries: [0, 4] }), {
        ...quiet,
        alterBatch: nanAt((s) => s >= 2),
      }),
    NonFiniteLossError,
    `${MAX_CONSECUTIVE_SKIPS} steps in a row (to step 12, epoch 2, lr `,
    `the last good state is ${dir}/t/state.safetensors (saved at epoch 2, step 8)`,
  );
  await Deno.remove(dir, { recursive: true });
});

gpuTest(
  "pretrain() stops on NaN at the read-back cadence and skips it with onNan skip",
  async (be) => {
    const dir = await Deno.makeTempDir();
    // stop: losses are read every 4 steps on WebGPU, so the NaN of step 7 is seen at step 8
    await rejects(
      () =>
        pretrain(be, tinyConfig(`${dir}/a`, { logEvery: 4, knnTrain: 16, knnTest: 8 }), {
          ...quiet,
          alterBatch: nanAt((s) => s === 6),
        }),
      NonFiniteLossError,
      "at step 8 (epoch 1, lr ",
      `${dir}/a/t/state.safetensors (saved at epoch 1, step 4)`,
    );
    // skip: judged every step
    const s = await pretrain(
      be,
      tinyConfig(`${dir}/b`, { logEvery: 4, knnTrain: 16, knnTest: 8, onNan: "skip" }),
      {
        ...quiet,
        alterBatch: nanAt((s) => s === 6),
      },
    );
    assertEquals([s?.steps, s?.skipped_steps], [12, 1]);
    const { tensors } = await readSafetensors(`${dir}/b/t/final.safetensors`);
    for (const [name, t] of tensors) {
      assert((t.data as Float32Array).every(Number.isFinite), `${name} is not finite`);
    }
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test("resolvePretrain() checks onNan and strictData", () => {
  assertEquals(resolvePretrain({}).onNan, "stop");
  assertEquals(resolvePretrain({}).strictData, false);
  assertThrows(() => resolvePretrain({ onNan: "ignore" }), TypeError, "give stop or skip");
  assertThrows(
    () => resolvePretrain({ strictData: "yes" }),
    TypeError,
    '"strictData" must be a boolean',
  );
});

// ---- GPU faults -----------------------------------------------------------------------

/** `be` whose `adamw` throws a device-lost GpuError after `updates` successful calls. */
function faultyBackend(be: Backend, updates: number): Backend {
  let calls = 0;
  return new Proxy(be, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (prop === "adamw") {
        return (...args: Parameters<Backend["adamw"]>) => {
          if (++calls > updates) {
            throw new GpuError(
              "WebGPU device lost (unknown): fake fault. Try a smaller --batch, or --backend cpu.",
            );
          }
          return target.adamw(...args);
        };
      }
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

Deno.test("pretrain() reports a GPU fault with the hint and the last good state, which resumes", async () => {
  const dir = await Deno.makeTempDir();
  const cfg = tinyConfig(dir);
  const e = await rejects(
    () => pretrain(faultyBackend(new CpuBackend(), 6), cfg, quiet),
    GpuError,
    "fake fault. Try a smaller --batch, or --backend cpu.",
    "Stopped at step 6: the last good state is",
    `${dir}/t/state.safetensors (saved at epoch 1, step 4)`,
    "--resume",
  );
  assert(e.cause instanceof GpuError, "the original error is the cause");
  const s = await pretrain(new CpuBackend(), cfg, { ...quiet, resume: true });
  assertEquals(s?.steps, 12);

  // before the first state is saved, the message says so
  const early = await Deno.makeTempDir();
  await rejects(
    () => pretrain(faultyBackend(new CpuBackend(), 1), tinyConfig(early), quiet),
    GpuError,
    "no state was saved yet",
  );
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(early, { recursive: true });
});

Deno.test("asGpuError() and describeDeviceError() say what happened and what to try", () => {
  const lost = asGpuError(new DOMException("device is lost", "OperationError"));
  assert(lost instanceof GpuError, "a failed mapAsync is a GPU fault");
  assert(
    lost.message.includes("device may have been lost") && lost.message.includes("--backend cpu"),
    lost.message,
  );
  assertEquals(asGpuError(new RangeError("x")), null);
  const g = new GpuError("y");
  assert(asGpuError(g) === g, "a GpuError is kept");
  if (typeof GPUOutOfMemoryError !== "undefined") {
    const msg = describeDeviceError(new GPUOutOfMemoryError("buffer of 80 GiB"));
    assert(msg.includes("ran out of memory") && msg.includes("smaller --batch"), msg);
    const v = describeDeviceError(new GPUValidationError("bad binding"));
    assert(v.includes("bad binding") && v.includes("--backend cpu"), v);
  }
});

// ---- hostile data --------------------------------------------------------------------

Deno.test("pretrain() with strict refuses a corrupt image by name; without, it warns and trains", async () => {
  const dir = await Deno.makeTempDir();
  const data = `${FIXTURES}/images/flat`; // 5 good images and c_corrupt.png (4 train, 2 test)
  const over = {
    data,
    imgSize: 8,
    batch: 2,
    trainLimit: 0,
    knnTrain: 5,
    knnTest: 5,
    knnK: 3,
    boundaries: [0, 1],
  };
  await rejects(
    () => pretrain(new CpuBackend(), tinyConfig(dir, { ...over, strictData: true }), quiet),
    DataError,
    `${data}/square/c_corrupt.png`,
  );
  const lines: string[] = [];
  const s = await pretrain(new CpuBackend(), tinyConfig(dir, over), { log: (l) => lines.push(l) });
  assertEquals(s?.steps, 2);
  assert(
    lines.some((l) => l.includes("skipped unreadable image") && l.includes("c_corrupt.png")),
    lines.join("\n"),
  );
  await Deno.remove(dir, { recursive: true });
});

// ---- permissions ---------------------------------------------------------------------

Deno.test("deno.json tasks use scoped permissions: no -A, writes only to runs/, FFI and env scoped", async () => {
  const tasks: Record<string, string> =
    JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks;
  for (const [name, cmd] of Object.entries(tasks)) {
    for (const run of cmd.split(/&&|;/).map((c) => c.trim().split(/\s+/))) {
      if (run[0] !== "deno" || !["run", "test", "bench"].includes(run[1])) continue;
      const flags = run.filter((w) => w.startsWith("-"));
      assert(!flags.some((f) => f === "-A" || f === "--allow-all"), `${name}: ${cmd}`);
      assert(!flags.some((f) => f.startsWith("--allow-sys")), `${name}: ${cmd}`);
      // loopback only: the page's server (`web`) and the browser test (`test`)
      for (const f of flags.filter((f) => f.startsWith("--allow-net"))) {
        assert(f === "--allow-net=127.0.0.1" && ["web", "test"].includes(name), `${name}: ${f}`);
      }
      for (const f of flags) {
        if (f.startsWith("--allow-ffi") || f.startsWith("--allow-run")) {
          assert(f.includes("="), `${name}: ${f} is not scoped`);
        }
        if (run[1] === "run" && f.startsWith("--allow-write")) {
          // build-web writes the page's bundle, nothing else; shard writes the dataset where
          // --out says (a path outside the project, like the data it reads)
          const allowed = name === "build-web"
            ? "--allow-write=web/dist"
            : name === "shard"
            ? "--allow-write"
            : "--allow-write=runs";
          assert(f === allowed, `${name}: ${f}`);
        }
        if (run[1] === "run" && f.startsWith("--allow-env")) {
          // only the variables the tasks read: OpenBLAS's and libturbojpeg's paths, the
          // runtime dir, and the MPI launcher's rank counts (pretrain)
          const known = new Set([
            "DBOT_OPENBLAS",
            "DBOT_TURBOJPEG",
            "XDG_RUNTIME_DIR",
            ...MPI_ENV_VARS,
          ]);
          const vars = f.startsWith("--allow-env=") ? f.slice(12).split(",") : [];
          assert(vars.length > 0 && vars.every((v) => known.has(v)), `${name}: ${f}`);
        }
      }
    }
  }
});

async function task(...args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command("deno", {
    args: ["task", "--quiet", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

function assertRefused(r: { code: number; stderr: string }, path: string): void {
  assertEquals(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert(lines[0].startsWith(`error: Requires write access to "${path}`), r.stderr);
  assert(lines[1].startsWith("hint: tasks write only under runs/"), r.stderr);
  assert(!r.stderr.includes("    at "), `no stack trace: ${r.stderr}`);
}

Deno.test({
  name: "deno task pretrain and embed refuse output paths outside runs/ with one error line",
  ignore: NO_RUN,
  sanitizeResources: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir();
    assertRefused(
      await task("pretrain", "--runs-dir", tmp, "--name", "x", "--backend", "cpu"),
      tmp,
    );
    const ckpt = `${FIXTURES}/tiny_vit.safetensors`;
    const out = `${tmp}/f.safetensors`;
    assertRefused(
      await task("embed", "--checkpoint", ckpt, "--out", out, "--backend", "cpu", "--limit", "4"),
      tmp,
    );
    // a path that only looks as if it were under runs/
    const r = await task(
      "embed",
      "--checkpoint",
      ckpt,
      "--out",
      "runs/../escaped/f.safetensors",
      "--backend",
      "cpu",
    );
    assertEquals(r.code, 1, r.stderr);
    assert(r.stderr.startsWith("error: Requires write access"), r.stderr);
    for await (const e of Deno.readDir(tmp)) throw new Error(`${e.name} was written`);
    assert(
      !(await Deno.stat(`${ROOT}escaped`).then(() => true, () => false)),
      "escaped/ was created",
    );
    await Deno.remove(tmp, { recursive: true });
  },
});

Deno.test("pretrain() refuses to resume over a corrupt config.json, naming the file", async () => {
  const dir = await Deno.makeTempDir();
  const cfg = tinyConfig(dir);
  await Deno.mkdir(`${dir}/t`, { recursive: true });
  await Deno.writeTextFile(`${dir}/t/config.json`, '{"batch": 8, "accum"');
  await rejects(
    () => pretrain(new CpuBackend(), cfg, { ...quiet, resume: true }),
    SyntaxError,
    `Cannot resume from ${dir}/t/config.json: it is not valid JSON`,
    "another --name",
  );
  await Deno.remove(dir, { recursive: true });
});
