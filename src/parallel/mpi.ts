/**
 * Data parallelism over MPI: a {@link Collective} on the system's MPI library through
 * `Deno.dlopen` (needs `--allow-ffi` on the library directory; tasks scope it to /usr/lib
 * and friends, like OpenBLAS). Launched by `mpirun -np N deno task pretrain …`.
 *
 * Open MPI (Debian `openmpi-bin libopenmpi3`, `libmpi.so.40`) is supported. Its handles
 * (`MPI_COMM_WORLD`, `MPI_FLOAT`, `MPI_SUM`, …) are addresses of global *data* symbols
 * (`ompi_mpi_comm_world`, …), which `Deno.dlopen` cannot look up: libc's `dlopen` (with
 * `RTLD_GLOBAL`, which Open MPI also needs so that its plugins see libmpi's symbols) and
 * `dlsym` give them. `MPI_IN_PLACE` is `(void *) 1`.
 *
 * Every collective runs as a non-blocking FFI call (on a helper thread, so the event loop
 * keeps serving signals and workers); MPI is initialised with `MPI_Init_thread` and must
 * provide at least `MPI_THREAD_SERIALIZED` (calls never overlap: they are awaited one at a
 * time).
 *
 * Faults: MPI's default error handler ends the job on a communication error; a rank that
 * dies makes `mpirun` end the others and name it; {@link MpiCollective.abort} prints the
 * rank and cause and calls `MPI_Abort`, which ends every rank.
 *
 * @module
 */
import { sha256Hex } from "../util/digest.ts";
import { ffiGranted } from "../util/ffi.ts";
import type { Backend, Tensor } from "../backend/backend.ts";
import type { Collective } from "./collective.ts";

/** The packages that provide the MPI runtime on Debian/Ubuntu. */
export const MPI_INSTALL_HINT = "apt-get install openmpi-bin libopenmpi3";

/** Open MPI's library, tried in order (absolute paths first: `--allow-ffi` is path-scoped). */
export const MPI_DEFAULT_PATHS: readonly string[] = Object.freeze([
  "/usr/lib/x86_64-linux-gnu/libmpi.so.40",
  "/usr/lib/aarch64-linux-gnu/libmpi.so.40",
  "/usr/lib64/openmpi/lib/libmpi.so.40",
  "/usr/lib64/libmpi.so.40",
  "/usr/local/lib/libmpi.so.40",
  "/opt/homebrew/lib/libmpi.40.dylib",
  "libmpi.so.40",
]);

const LIBC_PATHS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/usr/lib/aarch64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
  "/usr/lib64/libc.so.6",
  "/usr/lib/libSystem.B.dylib",
  "libc.so.6",
];

/**
 * Launcher variables that say "this process is one rank of an MPI job" (Open MPI, PMI/
 * Hydra as used by MPICH and Slurm, PMIx). Tasks grant `--allow-env` on these.
 */
export const MPI_ENV_SIZE_VARS: readonly string[] = Object.freeze([
  "OMPI_COMM_WORLD_SIZE",
  "PMI_SIZE",
  "PMIX_SIZE",
]);
/** Launcher variables giving the number of ranks on this node. */
export const MPI_ENV_LOCAL_SIZE_VARS: readonly string[] = Object.freeze([
  "OMPI_COMM_WORLD_LOCAL_SIZE",
  "MPI_LOCALNRANKS",
]);
/** Every launcher variable {@link mpiLaunchInfo} reads (for `--allow-env`). */
export const MPI_ENV_VARS: readonly string[] = Object.freeze([
  ...MPI_ENV_SIZE_VARS,
  ...MPI_ENV_LOCAL_SIZE_VARS,
]);

const RTLD_NOW = 2;
const RTLD_GLOBAL = 0x100;
const MPI_THREAD_SERIALIZED = 2;
const MPI_THREAD_MULTIPLE = 3;
const MPI_SUCCESS = 0;
const MPI_MAX_PROCESSOR_NAME = 256;

const LIBC_SYMBOLS = {
  dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
  dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
  dlerror: { parameters: [], result: "pointer" },
  strlen: { parameters: ["pointer"], result: "usize" },
  memcpy: { parameters: ["buffer", "pointer", "usize"], result: "pointer" },
} as const;

const MPI_SYMBOLS = {
  MPI_Init_thread: { parameters: ["pointer", "pointer", "i32", "buffer"], result: "i32" },
  MPI_Initialized: { parameters: ["buffer"], result: "i32" },
  MPI_Finalized: { parameters: ["buffer"], result: "i32" },
  MPI_Comm_rank: { parameters: ["pointer", "buffer"], result: "i32" },
  MPI_Comm_size: { parameters: ["pointer", "buffer"], result: "i32" },
  MPI_Get_processor_name: { parameters: ["buffer", "buffer"], result: "i32" },
  MPI_Get_library_version: { parameters: ["buffer", "buffer"], result: "i32" },
  // sendbuf (MPI_IN_PLACE = 1: an integer, as a scoped --allow-ffi cannot make pointers),
  // recvbuf, count, datatype, op, comm
  MPI_Allreduce: {
    parameters: ["usize", "buffer", "i32", "pointer", "pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  // buffer, count, datatype, root, comm
  MPI_Bcast: {
    parameters: ["buffer", "i32", "pointer", "i32", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  MPI_Barrier: { parameters: ["pointer"], result: "i32", nonblocking: true },
  MPI_Abort: { parameters: ["pointer", "i32"], result: "i32" },
  MPI_Finalize: { parameters: [], result: "i32" },
} as const;

type MpiSymbols = Deno.DynamicLibrary<typeof MPI_SYMBOLS>["symbols"];

/** The loaded library and its handles. */
interface MpiLib {
  path: string;
  sym: MpiSymbols;
  commWorld: Deno.PointerObject;
  float: Deno.PointerObject;
  byte: Deno.PointerObject;
  sum: Deno.PointerObject;
}

/** Open MPI's `MPI_IN_PLACE`. */
const MPI_IN_PLACE = 1n;

/** Thrown when the MPI library cannot be loaded or initialised; the message says what to install. */
export class MpiUnavailableError extends Error {
  /** `message` names the paths tried and the package to install. */
  constructor(message: string) {
    super(message);
    this.name = "MpiUnavailableError";
  }
}

function cstr(s: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(s + "\0");
}

function readCString(buf: Uint8Array, len?: number): string {
  const end = len ?? buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
}

let loaded: MpiLib | null = null;

/** libc's last dlerror() text (copied out with memcpy: a scoped --allow-ffi cannot read pointers). */
function dlerror(libc: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>): string {
  const e = libc.symbols.dlerror();
  if (!e) return "dlopen failed";
  const n = Number(libc.symbols.strlen(e));
  const buf = new Uint8Array(Math.min(n, 4096));
  libc.symbols.memcpy(buf, e, BigInt(buf.length));
  return new TextDecoder().decode(buf);
}

/** Loads libc's `dlopen`/`dlsym` (for the data symbols). */
function openLibc(failures: string[]): Deno.DynamicLibrary<typeof LIBC_SYMBOLS> | null {
  for (const p of LIBC_PATHS) {
    if (!ffiGranted(p)) {
      failures.push(`${p}: no FFI permission`);
      continue;
    }
    try {
      return Deno.dlopen(p, LIBC_SYMBOLS);
    } catch (e) {
      failures.push(`${p}: ${(e as Error).message}`);
    }
  }
  return null;
}

/**
 * Loads the MPI library (once per process) or throws {@link MpiUnavailableError} naming the
 * paths tried and the package to install.
 */
export function loadMpi(paths: readonly string[] = MPI_DEFAULT_PATHS): MpiLib {
  if (loaded) return loaded;
  const failures: string[] = [];
  const libc = openLibc(failures);
  if (!libc) {
    throw new MpiUnavailableError(
      `Cannot use MPI: libc's dlopen/dlsym are not reachable (${failures.join("; ")}); ` +
        `is --allow-ffi granted on the library directories?`,
    );
  }
  for (const path of paths) {
    if (!ffiGranted(path)) {
      failures.push(`${path}: no FFI permission (grant --allow-ffi to its directory)`);
      continue;
    }
    // RTLD_GLOBAL first: Open MPI's plugins resolve libmpi's symbols through it
    const handle = libc.symbols.dlopen(cstr(path), RTLD_NOW | RTLD_GLOBAL);
    if (!handle) {
      failures.push(`${path}: ${dlerror(libc)}`);
      continue;
    }
    let lib: Deno.DynamicLibrary<typeof MPI_SYMBOLS>;
    try {
      lib = Deno.dlopen(path, MPI_SYMBOLS);
    } catch (e) {
      failures.push(`${path}: ${(e as Error).message}`);
      continue;
    }
    const data = (name: string): Deno.PointerObject => {
      const p = libc.symbols.dlsym(handle, cstr(name));
      if (!p) {
        throw new MpiUnavailableError(
          `Cannot use MPI from ${path}: it has no "${name}" (dbot speaks Open MPI's ABI; ` +
            `install it with: ${MPI_INSTALL_HINT})`,
        );
      }
      return p;
    };
    loaded = {
      path,
      sym: lib.symbols,
      commWorld: data("ompi_mpi_comm_world"),
      float: data("ompi_mpi_float"),
      byte: data("ompi_mpi_byte"),
      sum: data("ompi_mpi_op_sum"),
    };
    return loaded;
  }
  throw new MpiUnavailableError(
    `Cannot use MPI: no MPI library found (tried ${
      failures.map((f) => f.slice(0, 160)).join("; ")
    }). Install Open MPI with: ${MPI_INSTALL_HINT}`,
  );
}

function readEnv(name: string): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** What the launcher's environment says: the world size and ranks on this node (0 when not launched by MPI). */
export function mpiLaunchInfo(): { size: number; localSize: number } {
  let size = 0;
  for (const v of MPI_ENV_SIZE_VARS) {
    const n = Number(readEnv(v));
    if (Number.isInteger(n) && n > 0) {
      size = n;
      break;
    }
  }
  let localSize = size > 0 ? 1 : 0;
  for (const v of MPI_ENV_LOCAL_SIZE_VARS) {
    const n = Number(readEnv(v));
    if (Number.isInteger(n) && n > 0) {
      localSize = n;
      break;
    }
  }
  return { size, localSize };
}

function check(rc: number, what: string): void {
  if (rc !== MPI_SUCCESS) throw new Error(`${what} failed with MPI error code ${rc}`);
}

/**
 * One rank of an MPI job. {@link MpiCollective.init} initialises MPI; every rank must then
 * make the same sequence of collective calls. The gradient all-reduce also carries one
 * "stop" flag: a rank whose {@link MpiCollective.requestStop} was called (SIGINT/SIGTERM)
 * makes {@link MpiCollective.signal} abort on every rank after the same step.
 */
export class MpiCollective implements Collective {
  /** This process's rank. */
  readonly rank: number;
  /** Number of ranks. */
  readonly size: number;
  /** Ranks on this node (from the launcher; 1 when unknown). */
  readonly localSize: number;
  /** The host this rank runs on. */
  readonly host: string;
  /** The library's version string. */
  readonly version: string;
  readonly #lib: MpiLib;
  #host: Float32Array<ArrayBuffer> = new Float32Array(0);
  #stopLocal = false;
  readonly #agreed = new AbortController();
  #finalized = false;
  /** Seconds spent in the gradient all-reduce (download + MPI + upload), for profiles. */
  allReduceSeconds = 0;

  private constructor(lib: MpiLib, rank: number, size: number, localSize: number) {
    this.#lib = lib;
    this.rank = rank;
    this.size = size;
    this.localSize = localSize;
    const name = new Uint8Array(MPI_MAX_PROCESSOR_NAME);
    const len = new Int32Array(1);
    check(
      lib.sym.MPI_Get_processor_name(name, new Uint8Array(len.buffer)),
      "MPI_Get_processor_name",
    );
    this.host = readCString(name, len[0]);
    const ver = new Uint8Array(8192);
    check(
      lib.sym.MPI_Get_library_version(ver, new Uint8Array(len.buffer)),
      "MPI_Get_library_version",
    );
    this.version = readCString(ver, len[0]).split("\n")[0].trim();
  }

  /** Rank 0 writes the run's files. */
  get isWriter(): boolean {
    return this.rank === 0;
  }

  /** Aborts on every rank after the same step once any rank asked to stop. */
  get signal(): AbortSignal {
    return this.#agreed.signal;
  }

  /**
   * Initialises MPI (thread support ≥ serialized), once per process. Throws
   * {@link MpiUnavailableError} when the library is missing.
   */
  static init(paths?: readonly string[]): MpiCollective {
    const lib = loadMpi(paths);
    const flag = new Int32Array(1);
    check(lib.sym.MPI_Initialized(new Uint8Array(flag.buffer)), "MPI_Initialized");
    if (flag[0]) {
      throw new Error("MPI is initialised already: create one MpiCollective per process");
    }
    const provided = new Int32Array(1);
    const rc = lib.sym.MPI_Init_thread(
      null,
      null,
      MPI_THREAD_MULTIPLE,
      new Uint8Array(provided.buffer),
    );
    if (rc !== MPI_SUCCESS) {
      throw new MpiUnavailableError(
        `MPI_Init_thread failed (code ${rc}) with ${lib.path}: start the ranks with mpirun ` +
          `(or install a working MPI: ${MPI_INSTALL_HINT})`,
      );
    }
    if (provided[0] < MPI_THREAD_SERIALIZED) {
      lib.sym.MPI_Finalize();
      throw new MpiUnavailableError(
        `${lib.path} provides thread level ${provided[0]}; dbot needs MPI_THREAD_SERIALIZED (2) ` +
          `or better (its collectives run on a helper thread)`,
      );
    }
    const r = new Int32Array(1);
    const s = new Int32Array(1);
    check(lib.sym.MPI_Comm_rank(lib.commWorld, new Uint8Array(r.buffer)), "MPI_Comm_rank");
    check(lib.sym.MPI_Comm_size(lib.commWorld, new Uint8Array(s.buffer)), "MPI_Comm_size");
    const local = mpiLaunchInfo().localSize;
    return new MpiCollective(lib, r[0], s[0], local > 0 ? local : 1);
  }

  /** `buf ← Σ over ranks of buf` (f32, in place). */
  async allReduceSum(buf: Float32Array<ArrayBuffer>): Promise<void> {
    if (this.size === 1 || buf.length === 0) return;
    const lib = this.#lib;
    check(
      await lib.sym.MPI_Allreduce(
        MPI_IN_PLACE,
        buf,
        buf.length,
        lib.float,
        lib.sum,
        lib.commWorld,
      ),
      "MPI_Allreduce",
    );
  }

  /**
   * `t ← mean over ranks of t`: one download, one in-place all-reduce (with the stop flag
   * as one extra element), a scale by 1/size on the host, one upload.
   */
  async allReduceMean(be: Backend, t: Tensor): Promise<void> {
    const t0 = performance.now();
    const n = t.size;
    if (this.#host.length !== n + 1) this.#host = new Float32Array(n + 1);
    const host = this.#host;
    host.set(await be.download(t) as Float32Array);
    host[n] = this.#stopLocal ? 1 : 0;
    await this.allReduceSum(host);
    const inv = 1 / this.size;
    for (let i = 0; i < n; i++) host[i] *= inv;
    be.upload(t, host.subarray(0, n));
    if (host[n] > 0 && !this.#agreed.signal.aborted) this.#agreed.abort();
    this.allReduceSeconds += (performance.now() - t0) / 1000;
  }

  /** Rank `root`'s bytes to every rank (in place). */
  async broadcast(buf: Uint8Array<ArrayBuffer>, root = 0): Promise<void> {
    if (this.size === 1 || buf.length === 0) return;
    const lib = this.#lib;
    check(await lib.sym.MPI_Bcast(buf, buf.length, lib.byte, root, lib.commWorld), "MPI_Bcast");
  }

  /** Rank `root`'s f32 values to every rank (in place). */
  async broadcastF32(buf: Float32Array<ArrayBuffer>, root = 0): Promise<void> {
    if (this.size === 1 || buf.length === 0) return;
    const lib = this.#lib;
    check(await lib.sym.MPI_Bcast(buf, buf.length, lib.float, root, lib.commWorld), "MPI_Bcast");
  }

  /** Waits until every rank reaches it. */
  async barrier(): Promise<void> {
    check(await this.#lib.sym.MPI_Barrier(this.#lib.commWorld), "MPI_Barrier");
  }

  /**
   * Checks that every rank has the same `value` (e.g. the resolved config, a hash of the
   * source); throws on every rank, naming the ranks that differ from rank 0, when not.
   */
  async agree(what: string, value: string): Promise<void> {
    const mine = new TextEncoder().encode(await sha256Hex(value));
    const root = mine.slice();
    await this.broadcast(root, 0);
    const differs = new Float32Array(this.size);
    differs[this.rank] = root.every((b, i) => b === mine[i]) ? 0 : 1;
    await this.allReduceSum(differs);
    const bad = [...differs].flatMap((d, r) => d > 0 ? [r] : []);
    if (bad.length) {
      throw new Error(
        `Cannot train: the ranks disagree on ${what}: rank(s) ${bad.join(", ")} differ from ` +
          `rank 0 (SHA-256 ${new TextDecoder().decode(root).slice(0, 16)}… on rank 0` +
          `${
            bad.includes(this.rank) ? `, ${new TextDecoder().decode(mine).slice(0, 16)}… here` : ""
          }); ` +
          `start every rank from the same code, flags and files`,
      );
    }
  }

  /** Asks every rank to stop after the current step (see {@link MpiCollective.signal}). */
  requestStop(): void {
    this.#stopLocal = true;
  }

  /**
   * Ends the whole job: prints `rank r (host): message` and calls `MPI_Abort`, which makes
   * mpirun stop every rank. Does not return.
   */
  abort(message: string, code = 1): never {
    console.error(`rank ${this.rank} of ${this.size} (${this.host}): ${message}`);
    this.#lib.sym.MPI_Abort(this.#lib.commWorld, code);
    Deno.exit(code); // not reached: MPI_Abort ends the process
  }

  /** Shuts MPI down (once; call on every rank before a normal exit). */
  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    check(this.#lib.sym.MPI_Finalize(), "MPI_Finalize");
  }
}
