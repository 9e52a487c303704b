/**
 * Starting a data-parallel run (Deno only): whether this process is one rank of an MPI job
 * (`mpirun -np N deno task pretrain …`, detected from the launcher's environment, or
 * `--distributed mpi`), each rank's backend on its share of the node's CPUs (made by the
 * task's {@link RankBackendFactory}: this folder imports no backend), a digest of the source
 * so that ranks running different code refuse to start, and the stop signal of Ctrl-C.
 *
 * @module
 */
import { type Backend, describeBackend } from "../backend/backend.ts";
import { sha256Hex } from "../util/digest.ts";
import { MpiCollective, mpiLaunchInfo } from "./mpi.ts";

/** `--distributed`: `auto` (MPI when launched by mpirun), `none`, or `mpi`. */
export type DistributedKind = "auto" | "none" | "mpi";

/** Parses `--distributed`. */
export function parseDistributed(value: unknown): DistributedKind {
  const v = String(value ?? "auto");
  if (v === "auto" || v === "none" || v === "mpi") return v;
  throw new TypeError(`Cannot use --distributed ${v}: give auto, none or mpi`);
}

/**
 * The MPI collective of this process, or null for a single-process run: `mpi` always
 * initialises MPI (and fails naming the package when it is missing); `auto` does when the
 * launcher's environment says this process is a rank (`OMPI_COMM_WORLD_SIZE`, `PMI_SIZE`,
 * `PMIX_SIZE`; needs `--allow-env` on them).
 */
export function startCollective(kind: DistributedKind): MpiCollective | null {
  if (kind === "none") return null;
  if (kind === "auto" && mpiLaunchInfo().size === 0) return null;
  return MpiCollective.init();
}

/**
 * Runs `body` as this process's part of a run: `body` gets the collective of `kind` (null for
 * a single process). On one rank of several, an error aborts every rank with its message
 * (and its stack when `debug`) instead of leaving the others waiting in an all-reduce; the
 * collective is finalized at the end.
 */
export async function runAsRank(
  kind: DistributedKind,
  body: (comm: MpiCollective | null) => Promise<void>,
  debug = false,
): Promise<void> {
  const comm = startCollective(kind);
  try {
    await body(comm);
  } catch (e) {
    if (!comm || comm.size === 1) throw e;
    const err = e as Error;
    comm.abort(`error: ${err.message}${debug ? `\n${err.stack}` : ""}`);
  }
  comm?.finalize();
}

/** How a task makes its backend for {@link startRank} (the task knows the backends). */
export interface RankBackendFactory {
  /**
   * The backend the task's flags choose, and why. `threads` is a rank's share of the node's
   * cores (null: a single process): native thread pools that keep the count they find at
   * load (OpenBLAS) must be capped at it first.
   */
  select(threads: number | null): Promise<ChosenBackend>;
  /**
   * A backend like `be` with `threads` op threads, or null when `be` already has them or has
   * no op threads (WebGPU).
   */
  withThreads(be: Backend, threads: number): Backend | null;
}

/** A backend, how it was chosen and the one line that says so (see `selectBackend`). */
export interface ChosenBackend {
  /** The backend. */
  backend: Backend;
  /** How it was chosen, e.g. `"auto: no WebGPU adapter"` (for the summary). */
  chosen: string;
  /** The one line that is logged: `describeBackend(backend.facts, chosen)`. */
  reason: string;
}

/** A rank's (or the single process's) backend and the stop signal of its run. */
export interface RankStart {
  /** The backend (the caller disposes it). */
  backend: Backend;
  /** How it was chosen (for the summary). */
  chosen: string;
  /** The one line that says which backend and how it was chosen (logged). */
  reason: string;
  /**
   * Aborts when the run should stop after its current step: on Ctrl-C (SIGINT) of a single
   * process, or, under mpirun, on the SIGTERM it sends every rank (the collective's signal:
   * the stop flag travels with the gradient all-reduce, so every rank stops after the same
   * step). A second signal exits at once with status 130.
   */
  signal: AbortSignal;
  /** Removes the signal listeners. */
  close(): void;
}

/**
 * Starts this process's part of a run: its backend on the rank's share of the node's cores,
 * one line saying which (and, on a rank, where), the code agreed over every rank, and the
 * stop signal of Ctrl-C.
 */
export async function startRank(
  comm: MpiCollective | null,
  backends: RankBackendFactory,
): Promise<RankStart> {
  const { backend, chosen, reason } = await rankBackend(comm, backends);
  if (comm) {
    console.log(
      `rank ${comm.rank} of ${comm.size} on ${comm.host} (pid ${Deno.pid}, ${comm.version}): ${reason}`,
    );
    await comm.agree("the code (src/, tasks/)", await sourceDigest());
  } else console.log(`backend: ${reason}`);
  return { backend, chosen, reason, ...stopOnSignals(comm, !comm || comm.isWriter) };
}

/** The backend of a rank: the chosen one, re-made with the rank's share of the cores. */
async function rankBackend(
  comm: MpiCollective | null,
  backends: RankBackendFactory,
): Promise<ChosenBackend> {
  const threads = comm ? threadsPerRank(comm.localSize) : null;
  const chosen = await backends.select(threads);
  const again = comm && threads !== null ? backends.withThreads(chosen.backend, threads) : null;
  if (!comm || !again) return chosen;
  chosen.backend.dispose();
  const how = `${comm.localSize} rank(s) share this node's cores`;
  return { backend: again, chosen: how, reason: describeBackend(again.facts, how) };
}

/**
 * Ctrl-C: finish the step, save the state, exit 130; a second Ctrl-C exits at once (the files
 * on disk are always complete: every write is atomic). Under mpirun, Ctrl-C reaches mpirun,
 * which sends SIGTERM to the ranks (after odls_base_sigkill_timeout seconds, and SIGKILL as
 * long after): every rank stops after the same step (the stop flag travels with the
 * gradient all-reduce), rank 0 saves.
 */
function stopOnSignals(
  comm: MpiCollective | null,
  writer: boolean,
): { signal: AbortSignal; close(): void } {
  const interrupt = new AbortController();
  let asked = false;
  const onSignal = () => {
    if (asked) Deno.exit(130);
    asked = true;
    if (writer) {
      console.error("\ninterrupt: saving the state after this step (Ctrl-C again to quit now)");
    }
    if (comm) comm.requestStop();
    else interrupt.abort();
  };
  const signals: Deno.Signal[] = comm ? ["SIGINT", "SIGTERM"] : ["SIGINT"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  return {
    signal: comm ? comm.signal : interrupt.signal,
    close: () => {
      for (const s of signals) Deno.removeSignalListener(s, onSignal);
    },
  };
}

/**
 * Op threads per rank: the CPUs this process may run on (`navigator.hardwareConcurrency`
 * follows the affinity mask) when the launcher bound it to fewer than the node has (Open MPI
 * binds each rank to a core by default for up to 2 ranks), else the node's CPUs shared by
 * its `localRanks` ranks. At least 1.
 */
export function threadsPerRank(localRanks: number): number {
  const mine = navigator.hardwareConcurrency ?? 1;
  const online = onlineCpus();
  if (online !== null && mine < online) return Math.max(1, mine);
  return Math.max(1, Math.floor(mine / Math.max(1, localRanks)));
}

/** The node's online CPUs (Linux `/sys/devices/system/cpu/online`, e.g. `0-3,6`), or null. */
function onlineCpus(): number | null {
  try {
    let n = 0;
    for (const part of Deno.readTextFileSync("/sys/devices/system/cpu/online").trim().split(",")) {
      const [a, b] = part.split("-").map(Number);
      n += b === undefined ? 1 : b - a + 1;
    }
    return n > 0 ? n : null;
  } catch {
    return null;
  }
}

/**
 * SHA-256 over this checkout's `src/` and `tasks/` TypeScript files (path and contents), so
 * that ranks started from different code are caught at start; `"remote"` when the module
 * is not on the local disk (a JSR import: the version pins the code).
 */
export async function sourceDigest(): Promise<string> {
  const root = new URL("../../", import.meta.url);
  if (root.protocol !== "file:") return "remote";
  const files: string[] = [];
  const walk = async (dir: URL, rel: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir), `${rel}${e.name}/`);
      else if (e.isFile && e.name.endsWith(".ts")) files.push(`${rel}${e.name}`);
    }
  };
  for (const top of ["src/", "tasks/"]) {
    try {
      await walk(new URL(top, root), top);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  files.sort();
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const f of files) {
    parts.push(enc.encode(`${f}\0`), await Deno.readFile(new URL(f, root)));
  }
  return await sha256Hex(parts);
}
