/**
 * A persistent pool of module Workers that runs the CPU backend's non-GEMM ops (and
 * split GEMMs) on all cores: starting the workers, registering buffers with them,
 * posting a command and waiting for it (the protocol is in `pool_wire.ts`, the ops in
 * `pool_ops.ts`).
 *
 * Every thread runs the kernels and the GEMM its backend was built with (`KernelOps`):
 * the main thread the backend's, each worker the same choice loaded on its own thread.
 *
 * @module
 */
import type { KernelOps } from "./kernels.ts";
import type { NativeGemmUse } from "./gemm.ts";
import {
  POOL_OP_CODES,
  POOL_OPS,
  type PoolBufs,
  type PoolOpName,
  type PoolParams,
} from "./pool_ops.ts";
import {
  type AnyPoolOp,
  BUF,
  CHUNKS,
  CHUNKS_PER_THREAD,
  CONTROL_BYTES,
  dtypeCode,
  ERROR,
  EXIT_OP,
  MAX_PARAMS,
  MAX_THREADS,
  NBUF,
  NEXT,
  OP,
  PARAMS_BYTE,
  type PoolArray,
  readError,
  REG_GEN,
  type RegisterMessage,
  runShares,
  SEQ,
  SHARES,
  shareStart,
  STATE,
  UNITS,
  wireBufs,
} from "./pool_wire.ts";

/** Why a pool cannot start here, or null when it can. */
function workerBlocker(url: URL): string | null {
  if (typeof Worker === "undefined") return "no Worker";
  if (url.protocol !== "file:") return `worker module is not local (${url.protocol})`;
  try {
    const state = Deno.permissions.querySync({ name: "read", path: url }).state;
    if (state !== "granted") return "no read permission for the worker module";
  } catch (e) {
    return `permission query failed: ${(e as Error).message}`;
  }
  return null;
}

/** What a pool's threads run with. */
export interface PoolOptions {
  /** The backend's kernels: the main thread runs these, each worker loads the same choice. */
  ops: KernelOps;
  /** Where the native kernels come from (absent: the default path). */
  nativeLibrary?: string;
  /** `Gemm.path` of the GEMM the workers open for the matmul shares (absent: none). */
  blasPath?: string;
  /** Which products the workers run on the native GEMM (`withNativeGemm`; absent: none). */
  nativeGemm?: NativeGemmUse;
}

/** One generation of workers: a control block, the workers, and the ids they know. */
interface Crew {
  control: SharedArrayBuffer;
  ctrl: Int32Array;
  params: Float64Array;
  workers: Worker[];
  ids: WeakMap<SharedArrayBuffer, number>;
  pendingAdd: [number, SharedArrayBuffer][];
  pendingDrop: number[];
  gen: number;
  /** False until every worker has picked up its first command. */
  started: boolean;
  dropper: FinalizationRegistry<number>;
}

/** How long the main thread waits for fresh workers to start before running their shares. */
const START_TIMEOUT_MS = 60_000;

/**
 * A pool of `threads − 1` workers plus the calling thread. Workers start on the first
 * {@link CpuPool.run} and exit when idle; {@link CpuPool.dispose} stops them.
 *
 * @example
 * ```ts ignore
 * const pool = CpuPool.create(2);
 * const x = new Float32Array(new SharedArrayBuffer(4 * 1024));
 * pool?.run("gelu", { out: x, inp: x }, {}, x.length);
 * pool?.dispose();
 * ```
 */
export class CpuPool {
  /** Threads including the calling one (the share count `T`). */
  readonly threads: number;
  readonly #url: URL;
  readonly #opts: PoolOptions;
  #crew: Crew | null = null;
  #nextId = 1;
  #scratch = new Float64Array(new SharedArrayBuffer(8 * 1024));
  #disposed = false;
  #dispatches = 0;
  #broken: string | null = null;

  private constructor(threads: number, url: URL, opts: PoolOptions) {
    this.threads = threads;
    this.#url = url;
    this.#opts = opts;
  }

  /**
   * A pool of `threads` threads, or `{ reason }` when workers cannot run here
   * (no read permission for the worker module, a remote module, no `Worker`).
   * `opts.ops` are the kernels every thread runs (the workers load the same choice).
   */
  static create(threads: number, opts: PoolOptions): CpuPool | { reason: string } {
    if (!Number.isInteger(threads) || threads < 2 || threads > MAX_THREADS) {
      throw new RangeError(
        `Cannot create a CPU pool: threads must be an integer in [2, ${MAX_THREADS}], current value is ${threads}`,
      );
    }
    const url = new URL("./worker.ts", import.meta.url);
    const blocker = workerBlocker(url);
    if (blocker) return { reason: blocker };
    return new CpuPool(threads, url, opts);
  }

  /** Null while the pool works; else why it fell back to one thread. */
  get broken(): string | null {
    return this.#broken;
  }

  /** Ops handed to the workers so far (each one post, wake-up and join: the per-op cost). */
  get dispatches(): number {
    return this.#dispatches;
  }

  /** A zeroed-on-demand f64 scratch of at least `n` elements on shared memory. */
  scratch(n: number): Float64Array {
    if (this.#scratch.length < n) {
      this.#scratch = new Float64Array(
        new SharedArrayBuffer(8 * Math.max(n, 2 * this.#scratch.length)),
      );
    }
    return this.#scratch.subarray(0, n);
  }

  /**
   * Runs pool op `name` over `units` work units on every thread (see {@link POOL_OPS});
   * returns false (and runs nothing) when a buffer is not shared memory or the pool is
   * unusable, so the caller runs the op inline.
   */
  run<N extends PoolOpName>(
    name: N,
    bufs: PoolBufs<N>,
    params: PoolParams<N>,
    units: number,
  ): boolean {
    if (this.#disposed || this.#broken) return false;
    const op: AnyPoolOp = POOL_OPS[name];
    const names = wireBufs(op);
    const arrays = bufs as Record<string, PoolArray | undefined>;
    for (const n of names) {
      const b = arrays[n];
      if (b && !(b.buffer instanceof SharedArrayBuffer)) return false;
    }
    const T = this.threads;
    const crew = this.#ready();
    if (!crew) return false;
    const { ctrl, params: pv } = crew;
    names.forEach((n, i) => {
      const b = arrays[n];
      const o = BUF + 4 * i;
      ctrl[o] = b ? this.#idOf(crew, b.buffer as SharedArrayBuffer) : 0; // 0: absent
      ctrl[o + 1] = b ? dtypeCode(b) : 0;
      ctrl[o + 2] = b ? b.byteOffset / b.BYTES_PER_ELEMENT : 0;
      ctrl[o + 3] = b ? b.length : 0;
    });
    const p = params as Record<string, number>;
    op.params.forEach((n, i) => (pv[i] = p[n]));
    ctrl[OP] = POOL_OP_CODES[name];
    ctrl[UNITS] = units;
    ctrl[NBUF] = names.length;
    ctrl[SHARES] = T;
    ctrl[CHUNKS] = op.shares === "static" ? 0 : Math.min(units, CHUNKS_PER_THREAD * T);
    ctrl[NEXT] = 0;
    ctrl[ERROR] = 0;
    this.#flushRegistrations(crew);
    this.#dispatches++;
    Atomics.add(ctrl, SEQ, 1);
    Atomics.notify(ctrl, SEQ);
    let mainError: unknown = null;
    const ops = this.#opts.ops;
    const b = arrays as Record<string, PoolArray>;
    try {
      runShares(ctrl, op, b, p, 0, ops);
    } catch (e) {
      mainError = e;
      Atomics.store(ctrl, NEXT, ctrl[CHUNKS]); // workers stop claiming chunks
    }
    const missing = this.#waitAll(crew);
    if (missing.length > 0 && ctrl[CHUNKS] === 0 && !mainError) {
      // Workers never started: run their static shares here (same partition, same result).
      for (const t of missing) {
        op.kernel(b, p, shareStart(units, t, T), shareStart(units, t + 1, T), t, ops);
      }
    }
    if (mainError) throw mainError;
    if (Atomics.load(ctrl, ERROR) !== 0) throw new Error(readError(crew.control));
    return true;
  }

  /** Stops the workers. Later {@link CpuPool.run} calls return false. */
  dispose(): void {
    this.#disposed = true;
    this.#stop();
  }

  /** The current crew with every worker claimed busy, starting a new one when needed. */
  #ready(): Crew | null {
    const crew = this.#crew;
    if (crew) {
      let alive = true;
      for (let t = 1; t < this.threads && alive; t++) {
        // Claim an idle worker (1 → 2); 0 means it exited while idle.
        if (Atomics.compareExchange(crew.ctrl, STATE + t, 1, 2) === 0) alive = false;
      }
      if (alive) return crew;
      this.#stop();
    }
    return this.#start();
  }

  #start(): Crew | null {
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const ctrl = new Int32Array(control, 0, STATE + MAX_THREADS);
    const crew: Crew = {
      control,
      ctrl,
      params: new Float64Array(control, PARAMS_BYTE, MAX_PARAMS),
      workers: [],
      ids: new WeakMap(),
      pendingAdd: [],
      pendingDrop: [],
      gen: 0,
      started: false,
      dropper: new FinalizationRegistry((id: number) => crew.pendingDrop.push(id)),
    };
    try {
      for (let t = 1; t < this.threads; t++) {
        ctrl[STATE + t] = 2;
        const w = new Worker(this.#url, { type: "module", name: `dbot-cpu-${t}` });
        w.onerror = (e) => {
          e.preventDefault();
          this.#broken = `worker failed: ${e.message}`;
        };
        const first: RegisterMessage = {
          control,
          share: t,
          blasPath: this.#opts.blasPath,
          nativeGemm: this.#opts.nativeGemm,
          kernels: this.#opts.ops.name,
          nativeLibrary: this.#opts.nativeLibrary,
          seen: 0,
          gen: 0,
          add: [],
          drop: [],
        };
        w.postMessage(first);
        crew.workers.push(w);
      }
    } catch (e) {
      for (const w of crew.workers) w.terminate();
      this.#broken = `cannot start workers: ${(e as Error).message}`;
      return null;
    }
    this.#crew = crew;
    return crew;
  }

  #stop(): void {
    const crew = this.#crew;
    if (!crew) return;
    this.#crew = null;
    Atomics.store(crew.ctrl, OP, EXIT_OP);
    Atomics.add(crew.ctrl, SEQ, 1);
    Atomics.notify(crew.ctrl, SEQ);
    for (const w of crew.workers) w.terminate();
  }

  #idOf(crew: Crew, sab: SharedArrayBuffer): number {
    let id = crew.ids.get(sab);
    if (id === undefined) {
      id = this.#nextId++;
      crew.ids.set(sab, id);
      crew.pendingAdd.push([id, sab]);
      crew.dropper.register(sab, id);
    }
    return id;
  }

  #flushRegistrations(crew: Crew): void {
    if (crew.pendingAdd.length === 0 && crew.pendingDrop.length < 64) return;
    const msg: RegisterMessage = {
      gen: ++crew.gen,
      add: crew.pendingAdd,
      drop: crew.pendingDrop,
    };
    for (const w of crew.workers) w.postMessage(msg);
    crew.pendingAdd = [];
    crew.pendingDrop = [];
    Atomics.store(crew.ctrl, REG_GEN, crew.gen);
  }

  /** Waits for every worker to finish; returns the shares of workers that never started. */
  #waitAll(crew: Crew): number[] {
    const { ctrl } = crew;
    const missing: number[] = [];
    const deadline = crew.started ? Infinity : performance.now() + START_TIMEOUT_MS;
    for (let t = 1; t < this.threads; t++) {
      while (Atomics.load(ctrl, STATE + t) === 2) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        Atomics.wait(ctrl, STATE + t, 2, Math.min(left, 1000));
      }
      if (Atomics.load(ctrl, STATE + t) === 2) missing.push(t);
    }
    if (missing.length > 0) {
      this.#broken = `workers did not start within ${START_TIMEOUT_MS} ms`;
      this.#stop();
    } else crew.started = true;
    return missing;
  }
}
