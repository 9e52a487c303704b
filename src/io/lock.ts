/**
 * A run-directory lock: one process at a time uses `runs/<name>/`. The lock is an exclusive
 * advisory lock (`flock`) on `<dir>/run.lock`, a file that also holds the owner's pid, start
 * time and command line for the error message. A second holder — another process, or a second
 * open in the same process — refuses at once, naming the holder. The operating system drops
 * the lock when its process ends in any way (exit, crash, SIGKILL), so a lock left by a dead
 * process is simply taken over; no pid check is needed, which matters because Deno gives
 * `/proc` only to `--allow-all` and `Deno.kill` only to `--allow-run`. Needs read and write
 * permission on `dir` only.
 *
 * @example
 * ```ts
 * import { assertEquals } from "../util/assert.ts";
 * import { acquireRunLock, RunLockedError } from "./lock.ts";
 * const dir = await Deno.makeTempDir();
 * {
 *   await using lock = await acquireRunLock(dir);
 *   // … train; a second holder is refused, naming this process
 *   const second = await acquireRunLock(dir).catch((e) => e);
 *   assertEquals(second instanceof RunLockedError && second.pid, lock.pid);
 * } // released here (or by lock.release())
 * await (await acquireRunLock(dir)).release();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

/** The lock file's name inside the run directory. */
export const RUN_LOCK_FILE = "run.lock";

/** Thrown when another process (or another lock in this one) holds the run directory. */
export class RunLockedError extends Error {
  /** The holder's process id, or 0 when its lock file does not say (yet). */
  readonly pid: number;
  /** The lock file. */
  readonly path: string;
  /** `message` names the directory, the holder and what to do. */
  constructor(message: string, pid: number, path: string) {
    super(message);
    this.name = "RunLockedError";
    this.pid = pid;
    this.path = path;
  }
}

/** A held run-directory lock. */
export interface RunLock extends AsyncDisposable {
  /** The lock file. */
  readonly path: string;
  /** This process's id, as written in the lock file. */
  readonly pid: number;
  /** The pid of an earlier holder whose process ended without releasing the lock, else 0. */
  readonly tookOverFrom: number;
  /** Removes the lock file and drops the lock; idempotent. */
  release(): Promise<void>;
}

/** What the lock file says about its holder. */
interface Holder {
  pid: number;
  since: string;
  command: string;
}

/**
 * Locks `dir` (creating it) for this process. Throws {@link RunLockedError}, naming the
 * holder's pid, when the lock is held; takes over a lock whose process has ended.
 */
export async function acquireRunLock(dir: string): Promise<RunLock> {
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir.replace(/\/+$/, "")}/${RUN_LOCK_FILE}`;
  // A releaser removes the file while holding the lock: an opener that raced with it may
  // get the lock on the removed file, so check that the locked file is still the one at
  // `path` and start again if not.
  for (let round = 0; round < 10; round++) {
    const file = await Deno.open(path, { read: true, write: true, create: true });
    let keep = false;
    try {
      if (!(await file.tryLock(true))) throw locked(dir, path, await readHolder(path));
      if (!(await samePath(file, path))) continue;
      const before = await readHolder(path);
      const mine: Holder = { pid: Deno.pid, since: new Date().toISOString(), command: command() };
      await file.truncate(0);
      await file.seek(0, Deno.SeekMode.Start);
      const bytes = new TextEncoder().encode(JSON.stringify(mine) + "\n");
      for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
      keep = true;
      return heldLock(file, path, before?.pid ?? 0);
    } finally {
      if (!keep) file.close(); // closing drops a lock taken on a file that was replaced
    }
  }
  throw new RunLockedError(
    `Cannot lock ${dir}: other processes keep taking and releasing ${path}; try again`,
    0,
    path,
  );
}

function heldLock(file: Deno.FsFile, path: string, tookOverFrom: number): RunLock {
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    try {
      // remove while still locked, so a later opener creates a fresh file
      await Deno.remove(path).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    } finally {
      file.close(); // drops the lock
    }
  };
  return { path, pid: Deno.pid, tookOverFrom, release, [Symbol.asyncDispose]: release };
}

/** True when `path` still names the file `file` has open (same device and inode). */
async function samePath(file: Deno.FsFile, path: string): Promise<boolean> {
  const [a, b] = await Promise.all([file.stat(), Deno.stat(path).catch(() => null)]);
  if (!b) return false;
  if (a.ino === null || b.ino === null) return true; // no inodes here (Windows)
  return a.ino === b.ino && a.dev === b.dev;
}

/** The holder recorded in the lock file, or null when it is empty or unreadable. */
async function readHolder(path: string): Promise<Holder | null> {
  try {
    const h = JSON.parse(await Deno.readTextFile(path));
    return Number.isInteger(h?.pid) ? h : null;
  } catch {
    return null; // empty (a holder between locking and writing), gone or garbage
  }
}

function command(): string {
  const main = Deno.mainModule.replace(/^file:\/\/.*\/(tasks|tests|bench)\//, "$1/");
  return [main, ...Deno.args].join(" ");
}

function locked(dir: string, path: string, holder: Holder | null): RunLockedError {
  if (!holder) {
    return new RunLockedError(
      `Cannot use ${dir}: another process holds its lock ${path}; wait for it to finish, ` +
        `or choose another --name`,
      0,
      path,
    );
  }
  const who = holder.pid === Deno.pid ? `this process (${holder.pid})` : `process ${holder.pid}`;
  return new RunLockedError(
    `Cannot use ${dir}: ${who} is using it since ${holder.since} (${holder.command}). ` +
      `Wait for it to finish or stop it (kill ${holder.pid}), or choose another --name`,
    holder.pid,
    path,
  );
}
