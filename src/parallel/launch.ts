/**
 * Starting a data-parallel run (Deno only): whether this process is one rank of an MPI job
 * (`mpirun -np N deno task pretrain …`, detected from the launcher's environment, or
 * `--distributed mpi`), the CPU share of each rank on a node, and a digest of the source
 * so that ranks running different code refuse to start.
 *
 * @module
 */
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
