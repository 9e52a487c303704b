/**
 * The run-directory lock: one holder at a time, a refusal that names the holder's pid, and
 * takeover of a lock whose process is gone (a child holding it is SIGKILLed).
 */
import { acquireRunLock, RUN_LOCK_FILE, RunLockedError } from "../src/io/lock.ts";
import { assert, assertEquals } from "../src/util/assert.ts";

/** The subprocess test needs `--allow-run=deno` (`deno task test` grants it). */
const NO_RUN = Deno.permissions.querySync({ name: "run", command: "deno" }).state !== "granted";
const LOCK_TS = new URL("../src/io/lock.ts", import.meta.url).href;

/** Awaits `fn`, asserts it throws a RunLockedError whose message has every one of `parts`. */
async function assertLocked(fn: () => Promise<unknown>, ...parts: string[]): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof RunLockedError, `expected RunLockedError, got ${e}`);
    for (const p of parts) assert(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return;
  }
  throw new Error("expected a RunLockedError, nothing was thrown");
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test("acquireRunLock() refuses a second holder, naming its pid, until release()", async () => {
  const dir = `${await Deno.makeTempDir()}/run`;
  const lock = await acquireRunLock(dir); // creates the directory
  const rec = JSON.parse(await Deno.readTextFile(`${dir}/${RUN_LOCK_FILE}`));
  assertEquals(rec.pid, Deno.pid);
  assertEquals(lock.tookOverFrom, 0);
  await assertLocked(() => acquireRunLock(dir), `(${Deno.pid})`, dir, "--name");
  await lock.release();
  await lock.release(); // idempotent
  assert(!(await exists(`${dir}/${RUN_LOCK_FILE}`)), "release() leaves the lock file");
  {
    await using again = await acquireRunLock(`${dir}/`);
    assertEquals(again.tookOverFrom, 0);
  }
  assert(!(await exists(`${dir}/${RUN_LOCK_FILE}`)), "disposal leaves the lock file");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("acquireRunLock() takes an unlocked lock file left behind, naming its last holder", async () => {
  const dir = await Deno.makeTempDir();
  const left = { pid: 4242, since: "then", command: "tasks/pretrain.ts" };
  await Deno.writeTextFile(`${dir}/${RUN_LOCK_FILE}`, JSON.stringify(left));
  const lock = await acquireRunLock(dir);
  assertEquals(lock.tookOverFrom, 4242);
  await lock.release();
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name:
    "acquireRunLock() refuses while a child process holds the lock, and takes over after SIGKILL",
  ignore: NO_RUN,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    // the child has a task's permissions: read, write on the run directory, no run, no /proc
    const script = await Deno.makeTempFile({ suffix: ".ts" });
    await Deno.writeTextFile(
      script,
      `import { acquireRunLock } from ${JSON.stringify(LOCK_TS)};
      await acquireRunLock(${JSON.stringify(dir)});
      console.log("locked");
      setInterval(() => {}, 1000);`,
    );
    const child = new Deno.Command("deno", {
      args: ["run", "--no-prompt", "--allow-read", `--allow-write=${dir}`, script],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("locked")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the child exited before locking: ${out}`);
      out += value;
    }
    await assertLocked(() => acquireRunLock(dir), `process ${child.pid}`, `kill ${child.pid}`);
    child.kill("SIGKILL");
    assertEquals((await child.status).signal, "SIGKILL");
    await reader.cancel();
    const lock = await acquireRunLock(dir);
    assertEquals(lock.tookOverFrom, child.pid);
    assertEquals(JSON.parse(await Deno.readTextFile(lock.path)).pid, Deno.pid);
    await lock.release();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(script);
  },
});

Deno.test("acquireRunLock() lets exactly one of many concurrent callers in", async () => {
  const dir = await Deno.makeTempDir();
  for (let round = 0; round < 3; round++) {
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => acquireRunLock(dir)));
    const held = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    assertEquals(held.length, 1);
    for (const r of results) {
      if (r.status === "rejected") assert(r.reason instanceof RunLockedError, String(r.reason));
    }
    await held[0].release();
  }
  await Deno.remove(dir, { recursive: true });
});
