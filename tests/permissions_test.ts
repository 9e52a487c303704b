/**
 * Every `deno run` task in deno.json, run exactly as `deno task` runs it (its own permission
 * flags, read from deno.json), with `--help` and with a tiny real invocation:
 * - with prompts disabled (`--no-prompt`, no terminal): a permission the task lacks is an
 *   error, which must not happen;
 * - in a pseudo-terminal (util-linux `script`) without `--no-prompt` and with an empty stdin:
 *   a permission the task lacks becomes a prompt ("Allow?"), which fails the test at once.
 * Both run without `XDG_RUNTIME_DIR`, as on a headless terminal, and fail if the WebGPU
 * adapter probe complains about it. Outputs go to a fresh folder under runs/ (the only place
 * the tasks may write), removed afterwards.
 */
import { assert } from "../src/util/assert.ts";
import { denoWords } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;
/** Spawning the tasks needs `--allow-run=deno` (`deno task test` grants it). */
const NO_RUN = Deno.permissions.querySync({ name: "run", command: "deno" }).state !== "granted";
/** Lines that mean a task needed a permission it was not granted. */
const DENIED = /NotCapable|PermissionDenied|Requires \w+ access|requests \w+ access|Allow\?/;
/** libwayland's complaint from the WebGPU adapter probe (`quietWaylandProbe` in context.ts quiets it). */
const XDG = /XDG_RUNTIME_DIR is invalid/;
/** A run whose output shows a prompt is stopped after this long without news. */
const LIMIT_MS = 120_000;

/** `deno task <name>` → the permission flags and script of its `deno run` command. */
async function runTasks(): Promise<Map<string, { flags: string[]; script: string }>> {
  const tasks: Record<string, string> =
    JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks;
  const out = new Map<string, { flags: string[]; script: string }>();
  for (const [name, cmd] of Object.entries(tasks)) {
    const words = denoWords(cmd);
    if (words[0] !== "deno" || words[1] !== "run" || cmd.includes("&&")) continue;
    const i = words.findIndex((w, j) => j > 1 && !w.startsWith("-"));
    out.set(name, { flags: words.slice(2, i), script: words[i] });
  }
  return out;
}

/** The tiny real invocation of each task; `dir` is this run's folder under runs/. */
function invocations(dir: string): [string, string[]][] {
  const ckpt = `${dir}/pre/final.safetensors`;
  const feats = `${dir}/features.safetensors`;
  return [
    ["pretrain", [
      ...["--runs-dir", dir, "--name", "pre", "--data", "shapes", "--model", "vit-micro"],
      ...["--train-limit", "32", "--batch", "16", "--stages", "1", "--epochs-per-stage", "1"],
      ...["--knn-train", "32", "--knn-test", "16", "--quiet"],
    ]],
    ["embed", ["--checkpoint", ckpt, "--limit", "16", "--batch", "16", "--out", feats]],
    ["knn", ["--train", feats, "--test", feats, "--k", "5"]],
    ["info", []],
    ["linprobe", [
      ...["--checkpoint", ckpt, "--train-limit", "16", "--test-limit", "16"],
      ...["--epochs", "1", "--warmup-epochs", "0", "--batch", "16"],
    ]],
    ["finetune", [
      ...["--checkpoint", ckpt, "--runs-dir", dir, "--name", "ft", "--train-limit", "16"],
      ...["--test-limit", "16", "--epochs", "1", "--batch", "16"],
    ]],
    ["analyze", ["--checkpoint", ckpt, "--limit", "8", "--name", dir.split("/").at(-1)!]],
    ["step-bench", [
      ...["--model", "vit-micro", "--img-size", "16", "--batch", "4"],
      ...["--steps", "1", "--warmup", "0"],
    ]],
    ["reproduce", ["--budget", "tiny", "--data", "shapes", "--runs-dir", dir]],
    ["shard", ["--data", "tests/fixtures/images/split", "--out", `${dir}/shards`]],
    ["build-web", []],
  ];
}

/** The environment of a headless terminal: ours without XDG_RUNTIME_DIR, no colours. */
function headlessEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.XDG_RUNTIME_DIR;
  return { ...env, NO_COLOR: "1" };
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * Runs `deno run <flags> <script> <args>` from the repository root, without a terminal and
 * `--no-prompt`, or in a pseudo-terminal; returns the exit code and the output. A prompt in
 * the output stops the run at once (it would wait for an answer that never comes).
 */
async function runTask(
  flags: string[],
  script: string,
  args: string[],
  tty: boolean,
): Promise<{ code: number; output: string }> {
  const deno = ["deno", "run", ...(tty ? [] : ["--no-prompt"]), ...flags, script, ...args];
  const cmd = tty
    ? new Deno.Command("script", {
      args: ["-qec", deno.map(quote).join(" "), "/dev/null"],
      cwd: ROOT,
      env: headlessEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(deno[0], {
      args: deno.slice(1),
      cwd: ROOT,
      env: headlessEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
  const child = cmd.spawn();
  let output = "";
  let prompted = false;
  const timer = setTimeout(() => child.kill("SIGKILL"), LIMIT_MS);
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      output += text;
      if (!prompted && /Allow\?/.test(output)) {
        prompted = true;
        child.kill("SIGKILL");
      }
    }
  };
  await Promise.all([read(child.stdout), read(child.stderr)]);
  const { code } = await child.status;
  clearTimeout(timer);
  return { code, output };
}

/** Asserts that a run succeeded and said nothing about permissions or XDG_RUNTIME_DIR. */
function assertClean(what: string, r: { code: number; output: string }): void {
  const tail = r.output.slice(-3000);
  assert(!DENIED.test(r.output), `${what} needed a permission it lacks:\n${tail}`);
  assert(!XDG.test(r.output), `${what} printed the XDG_RUNTIME_DIR warning:\n${tail}`);
  assert(r.code === 0, `${what} exited with ${r.code}:\n${tail}`);
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Whether util-linux `script` can be run here (the test task grants --allow-run=script). */
async function hasScript(): Promise<boolean> {
  if (Deno.permissions.querySync({ name: "run", command: "script" }).state !== "granted") {
    return false;
  }
  try {
    const r = await new Deno.Command("script", { args: ["--version"], stdout: "null" }).output();
    return r.success;
  } catch {
    return false;
  }
}

/** Runs every task's `--help` and tiny invocation in one mode, in order (later ones use the checkpoint). */
async function checkAll(tty: boolean): Promise<void> {
  const tasks = await runTasks();
  const dir = `runs/permissions-test-${tty ? "tty" : "no-prompt"}-${crypto.randomUUID()}`;
  const mode = tty ? "in a terminal" : "with --no-prompt";
  const created: string[] = [];
  for (const d of ["runs/analyze", "runs"]) if (!(await exists(`${ROOT}${d}`))) created.push(d);
  try {
    const calls = invocations(dir);
    const names = new Set(calls.map(([n]) => n));
    for (const name of tasks.keys()) assert(names.has(name), `no invocation for task ${name}`);
    for (const [name, args] of calls) {
      const t = tasks.get(name);
      assert(t, `deno.json has no deno run task ${name}`);
      assertClean(
        `deno task ${name} --help ${mode}`,
        await runTask(t.flags, t.script, ["--help"], tty),
      );
      assertClean(
        `deno task ${name} ${args.join(" ")} ${mode}`,
        await runTask(t.flags, t.script, args, tty),
      );
    }
  } finally {
    await Deno.remove(`${ROOT}${dir}`, { recursive: true }).catch(() => {});
    const analyzed = `${ROOT}runs/analyze/${dir.split("/").at(-1)}`;
    await Deno.remove(analyzed, { recursive: true }).catch(() => {});
    // the folders the tasks created, when nothing else is in them
    for (const d of created) await Deno.remove(`${ROOT}${d}`).catch(() => {});
  }
}

Deno.test({
  name: "every deno run task works under its deno.json permissions with --no-prompt",
  ignore: NO_RUN,
  fn: () => checkAll(false),
});

const NO_SCRIPT = !NO_RUN && !(await hasScript());
if (NO_SCRIPT) {
  console.error(
    "permissions_test: skipping the terminal check: util-linux `script` cannot be run here " +
      "(Debian package bsdutils; the test task grants --allow-run=deno,script)",
  );
}

Deno.test({
  name: "no deno run task prompts for a permission in a terminal",
  ignore: NO_RUN || NO_SCRIPT,
  fn: () => checkAll(true),
});

Deno.test({
  name: "the library's adapter probe stays quiet on a headless terminal (README's Library snippet)",
  ignore: NO_RUN,
  fn: async () => {
    const script = await Deno.makeTempFile({ prefix: "dbot-library-", suffix: ".ts" });
    try {
      const mod = new URL("../mod.ts", import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import { selectBackend } from ${JSON.stringify(mod)};\n` +
          `const { backend, reason } = await selectBackend("auto");\n` +
          `console.log(reason);\nbackend.dispose();\n`,
      );
      const flags = ["--allow-read", "--allow-env=XDG_RUNTIME_DIR"];
      const r = await runTask(flags, script, [], false);
      assertClean("selectBackend('auto') from mod.ts", r);
      assert(/^(cpu|webgpu) \(auto: /.test(r.output), r.output);
    } finally {
      await Deno.remove(script);
    }
  },
});
