/**
 * A persistent pool of module Workers that runs the CPU backend's non-GEMM ops on all
 * cores, and the kernel table the main thread and the workers share.
 *
 * Protocol (one op at a time, the main thread blocks until it is done):
 * - Every buffer an op touches lives on a `SharedArrayBuffer`. The first time the pool
 *   sees a buffer it gives it an id and posts `(id, buffer)` to the workers; the
 *   workers keep a table `id → buffer` (dropped again when the main thread's buffer is
 *   garbage collected).
 * - Per op the main thread writes a command into a shared control block (kernel code,
 *   buffer refs `(id, dtype, offset, length)`, f64 params, work units), bumps `SEQ`
 *   and notifies; each worker runs its static share, marks itself idle and notifies;
 *   the main thread runs share 0 meanwhile, then waits.
 * - Column reductions and split GEMMs ({@link STATIC_SHARES}) use static shares: share `t`
 *   of `T` gets units `[⌊u·t/T⌋, ⌊u·(t+1)/T⌋)`; reductions write partials that the main
 *   thread sums in share order, so the same `T` gives bit-identical results run to run.
 *   Every other op writes each output element from its own inputs only, so its units are
 *   cut into {@link CHUNKS_PER_THREAD} chunks per thread that threads claim as they go
 *   (another process can slow one core); any claim order gives the same bits.
 * - An idle worker exits after {@link IDLE_EXIT_MS} (so a forgotten backend does not keep
 *   the process alive); the next op starts a fresh pool.
 *
 * @module
 */
import { add } from "./ops/add.ts";
import { adamw } from "./ops/adamw.ts";
import { biasGrad } from "./ops/bias_grad.ts";
import { geluBackward, geluForward } from "./ops/gelu.ts";
import { sumOfSquares } from "./ops/grad_norm.ts";
import {
  mergeHeadsBackward,
  mergeHeadsForward,
  splitHeadsBackward,
  splitHeadsForward,
} from "./ops/heads.ts";
import { layernormBackward, layernormForward } from "./ops/layernorm.ts";
import { gemmProduct, matmulEpilogue } from "./ops/matmul.ts";
import { patchify } from "./ops/patchify.ts";
import { gatherRowsForward, scaleRows } from "./ops/rows.ts";
import { softmaxBackward, softmaxForward } from "./ops/softmax.ts";
import { standardizeRows } from "./ops/standardize.ts";
import type { GemmArgs } from "./gemm.ts";

/** The GEMM that {@link K.batchedGemm} calls on this thread (set per op on the main thread, at start in a worker). */
let threadGemm: ((args: GemmArgs) => void) | null = null;

/** Sets the GEMM this thread's batched-matmul shares call. */
export function setThreadGemm(gemm: ((args: GemmArgs) => void) | null): void {
  threadGemm = gemm;
}

/** An array a pool kernel reads or writes (a view of a `SharedArrayBuffer`). */
export type PoolArray = Float32Array | Float64Array | Int32Array;

/**
 * One op's share: units `[lo, hi)` of the op, run by share `t`. `b` holds the op's
 * buffers (whole views), `p` its numeric parameters.
 */
export type Kernel = (b: PoolArray[], p: Float64Array, lo: number, hi: number, t: number) => void;

const f = (a: PoolArray): Float32Array => a as Float32Array;
const d = (a: PoolArray): Float64Array => a as Float64Array;

/** The shares of every op the pool runs. Indices are the wire codes ({@link K}). */
export const KERNELS: readonly Kernel[] = [
  // 0 gelu [out, inp]: elements
  (b, _p, lo, hi) => geluForward({ out: f(b[0]).subarray(lo, hi), inp: f(b[1]).subarray(lo, hi) }),
  // 1 geluBackward [dinp, dout, inp]: elements
  (b, _p, lo, hi) =>
    geluBackward({
      dinp: f(b[0]).subarray(lo, hi),
      dout: f(b[1]).subarray(lo, hi),
      inp: f(b[2]).subarray(lo, hi),
    }),
  // 2 add [out, a, b], p = [m]: units of m elements (m = b's length, or 1 for a same-size add)
  (b, p, lo, hi) => {
    const m = p[0] | 0;
    const bb = f(b[2]);
    const [s, e] = [lo * m, hi * m];
    add({
      out: f(b[0]).subarray(s, e),
      a: f(b[1]).subarray(s, e),
      b: bb.length === m ? bb : bb.subarray(s, e),
    });
  },
  // 3 scaleRows [out, inp, scale], p = [C]: rows
  (b, p, lo, hi) => {
    const C = p[0] | 0;
    scaleRows(
      {
        out: f(b[0]).subarray(lo * C, hi * C),
        inp: f(b[1]).subarray(lo * C, hi * C),
        scale: f(b[2]).subarray(lo, hi),
      },
      { rows: hi - lo, C },
    );
  },
  // 4 layernorm [out, mean, rstd, inp, weight, bias], p = [C, eps]: rows
  (b, p, lo, hi) => {
    const C = p[0] | 0;
    layernormForward(
      {
        out: f(b[0]).subarray(lo * C, hi * C),
        mean: f(b[1]).subarray(lo, hi),
        rstd: f(b[2]).subarray(lo, hi),
        inp: f(b[3]).subarray(lo * C, hi * C),
        weight: f(b[4]),
        bias: f(b[5]),
      },
      { rows: hi - lo, C, eps: p[1] },
    );
  },
  // 5 layernormBackward [dinp, partials (T, 2, C) f64, dout, inp, weight, mean, rstd],
  //   p = [C, accumulate]: rows; share t writes dweight, dbias partials to partials[t]
  (b, p, lo, hi, t) => {
    const C = p[0] | 0;
    const part = d(b[1]);
    const dweight = part.subarray(2 * t * C, (2 * t + 1) * C);
    const dbias = part.subarray((2 * t + 1) * C, (2 * t + 2) * C);
    dweight.fill(0);
    dbias.fill(0);
    layernormBackward(
      {
        dinp: f(b[0]).subarray(lo * C, hi * C),
        dweight,
        dbias,
        dout: f(b[2]).subarray(lo * C, hi * C),
        inp: f(b[3]).subarray(lo * C, hi * C),
        weight: f(b[4]),
        mean: f(b[5]).subarray(lo, hi),
        rstd: f(b[6]).subarray(lo, hi),
      },
      { rows: hi - lo, C, accumulate: p[1] === 1 },
    );
  },
  // 6 standardizeRows [out, inp], p = [C, eps]: rows
  (b, p, lo, hi) => {
    const C = p[0] | 0;
    standardizeRows(
      { out: f(b[0]).subarray(lo * C, hi * C), inp: f(b[1]).subarray(lo * C, hi * C) },
      { rows: hi - lo, C, eps: p[1] },
    );
  },
  // 7 softmax [out, inp], p = [C, scale]: rows
  (b, p, lo, hi) => {
    const C = p[0] | 0;
    softmaxForward(
      { out: f(b[0]).subarray(lo * C, hi * C), inp: f(b[1]).subarray(lo * C, hi * C) },
      { rows: hi - lo, C, scale: p[1] },
    );
  },
  // 8 softmaxBackward [dinp, dout, out], p = [C, scale]: rows
  (b, p, lo, hi) => {
    const C = p[0] | 0;
    softmaxBackward(
      {
        dinp: f(b[0]).subarray(lo * C, hi * C),
        dout: f(b[1]).subarray(lo * C, hi * C),
        out: f(b[2]).subarray(lo * C, hi * C),
      },
      { rows: hi - lo, C, scale: p[1] },
    );
  },
  // 9 splitHeads [q, k, v, qkv], p = [N, NH, HS]: samples of the batch
  (b, p, lo, hi) => {
    const per = (p[0] * p[1] * p[2]) | 0;
    splitHeadsForward(
      {
        q: f(b[0]).subarray(lo * per, hi * per),
        k: f(b[1]).subarray(lo * per, hi * per),
        v: f(b[2]).subarray(lo * per, hi * per),
        qkv: f(b[3]).subarray(3 * lo * per, 3 * hi * per),
      },
      { B: hi - lo, N: p[0] | 0, NH: p[1] | 0, HS: p[2] | 0 },
    );
  },
  // 10 splitHeadsBackward [dqkv, dq, dk, dv], p = [N, NH, HS]: samples
  (b, p, lo, hi) => {
    const per = (p[0] * p[1] * p[2]) | 0;
    splitHeadsBackward(
      {
        dqkv: f(b[0]).subarray(3 * lo * per, 3 * hi * per),
        dq: f(b[1]).subarray(lo * per, hi * per),
        dk: f(b[2]).subarray(lo * per, hi * per),
        dv: f(b[3]).subarray(lo * per, hi * per),
      },
      { B: hi - lo, N: p[0] | 0, NH: p[1] | 0, HS: p[2] | 0 },
    );
  },
  // 11 mergeHeads [out, inp], p = [N, NH, HS]: samples
  (b, p, lo, hi) => {
    const per = (p[0] * p[1] * p[2]) | 0;
    mergeHeadsForward(
      { out: f(b[0]).subarray(lo * per, hi * per), inp: f(b[1]).subarray(lo * per, hi * per) },
      { B: hi - lo, N: p[0] | 0, NH: p[1] | 0, HS: p[2] | 0 },
    );
  },
  // 12 mergeHeadsBackward [dinp, dout], p = [N, NH, HS]: samples
  (b, p, lo, hi) => {
    const per = (p[0] * p[1] * p[2]) | 0;
    mergeHeadsBackward(
      { dinp: f(b[0]).subarray(lo * per, hi * per), dout: f(b[1]).subarray(lo * per, hi * per) },
      { B: hi - lo, N: p[0] | 0, NH: p[1] | 0, HS: p[2] | 0 },
    );
  },
  // 13 gatherRows [out, inp, index, fill?], p = [C]: rows of out
  (b, p, lo, hi) => {
    const C = p[0] | 0;
    gatherRowsForward(
      {
        out: f(b[0]).subarray(lo * C, hi * C),
        inp: f(b[1]),
        index: (b[2] as Int32Array).subarray(lo, hi),
        fill: b.length > 3 ? f(b[3]) : undefined,
      },
      { rows: hi - lo, C },
    );
  },
  // 14 biasGrad [partials (T, C) f64, dout], p = [C]: rows; share t sums into partials[t]
  (b, p, lo, hi, t) => {
    const C = p[0] | 0;
    const part = d(b[0]).subarray(t * C, (t + 1) * C);
    part.fill(0);
    biasGrad({ dbias: part, dout: f(b[1]).subarray(lo * C, hi * C) }, { rows: hi - lo, C });
  },
  // 15 patchify [out, inp], p = [C, H, W, P]: images
  (b, p, lo, hi) => {
    const per = (p[0] * p[1] * p[2]) | 0;
    patchify(
      { out: f(b[0]).subarray(lo * per, hi * per), inp: f(b[1]).subarray(lo * per, hi * per) },
      { B: hi - lo, C: p[0] | 0, H: p[1] | 0, W: p[2] | 0, P: p[3] | 0 },
    );
  },
  // 16 adamw [param, grad, m, v, offsets, hyper, clipScale?], p = [lr, β1, β2, eps, step]:
  //   elements
  (b, p, lo, hi) =>
    adamw(
      {
        param: f(b[0]),
        grad: f(b[1]),
        m: f(b[2]),
        v: f(b[3]),
        offsets: b[4] as Int32Array,
        hyper: f(b[5]),
        clipScale: b.length > 6 ? f(b[6]) : undefined,
      },
      { lr: p[0], beta1: p[1], beta2: p[2], eps: p[3], step: p[4] },
      { lo, hi },
    ),
  // 17 gradNorm [partials (T) f64, grad]: elements; share t writes Σ grad² to partials[t]
  (b, _p, lo, hi, t) => {
    d(b[0])[t] = sumOfSquares(f(b[1]).subarray(lo, hi));
  },
  // 18 matmul epilogue [c, bias?, pre?], p = [N, hasBias, hasPre, gelu]: rows of c
  (b, p, lo, hi) => {
    const N = p[0] | 0;
    let i = 1;
    const bias = p[1] === 1 ? f(b[i++]) : undefined;
    const pre = p[2] === 1 ? f(b[i++]).subarray(lo * N, hi * N) : undefined;
    matmulEpilogue(
      { c: f(b[0]).subarray(lo * N, hi * N), bias, pre },
      { M: hi - lo, N, gelu: p[3] === 1 },
    );
  },
  // 19 batchedGemm [out, a, b], p = [M, N, K, transA, transB, accumulate]: products of the
  //   batch, each one single-threaded GEMM call on this thread (attention's small products)
  (b, p, lo, hi) => {
    const gemm = threadGemm;
    if (!gemm) throw new Error("no GEMM on this thread for a batched matmul");
    const dims = {
      M: p[0] | 0,
      N: p[1] | 0,
      K: p[2] | 0,
      transA: p[3] === 1,
      transB: p[4] === 1,
      accumulate: p[5] === 1,
    };
    for (let i = lo; i < hi; i++) {
      gemmProduct(gemm, { out: f(b[0]), a: f(b[1]), b: f(b[2]) }, dims, i);
    }
  },
  // 20 gemmSlab [out, a, b, bias?, pre?], p = [M, N, K, transA, transB, beta, byCols,
  //   hasBias, hasPre, gelu]: rows of out (byCols 0, then this share's epilogue too, on
  //   rows still in cache) or columns of out (byCols 1, no epilogue); one single-threaded
  //   GEMM call per share
  (b, p, lo, hi) => {
    if (lo === hi) return;
    const [M, N, K] = [p[0] | 0, p[1] | 0, p[2] | 0];
    const [transA, transB, beta, byCols] = [p[3] === 1, p[4] === 1, p[5], p[6] === 1];
    const [out, a, bb] = [f(b[0]), f(b[1]), f(b[2])];
    const gemm = threadGemm;
    if (!gemm) throw new Error("no GEMM on this thread for a split matmul");
    const lda = transA ? M : K;
    const ldb = transB ? K : N;
    if (byCols) {
      gemm({
        transA,
        transB,
        M,
        N: hi - lo,
        K,
        alpha: 1,
        a,
        lda,
        b: bb.subarray(transB ? lo * K : lo),
        ldb,
        beta,
        c: out.subarray(lo),
        ldc: N,
      });
      return;
    }
    const c = out.subarray(lo * N, hi * N);
    gemm({
      transA,
      transB,
      M: hi - lo,
      N,
      K,
      alpha: 1,
      a: a.subarray(transA ? lo : lo * K),
      lda,
      b: bb,
      ldb,
      beta,
      c,
      ldc: N,
    });
    let i = 3;
    const bias = p[7] === 1 ? f(b[i++]) : undefined;
    const pre = p[8] === 1 ? f(b[i++]).subarray(lo * N, hi * N) : undefined;
    if (bias || p[9] === 1) matmulEpilogue({ c, bias, pre }, { M: hi - lo, N, gelu: p[9] === 1 });
  },
];

/**
 * Kernels that run static shares (one per thread): column reductions, whose shares write
 * per-share partials, and split GEMMs, where each share is one OpenBLAS call that packs
 * `op(b)` again: on the vit-tiny step (2 cores, quiet) one slab per thread gave 90–91
 * images/s, 2 dynamic chunks per thread 81–83 and 3 chunks 84–88.
 */
export const STATIC_SHARES: ReadonlySet<number> = new Set([5, 14, 17, 20]);

/** Chunks per thread of a dynamic (non-reduction) command. */
export const CHUNKS_PER_THREAD = 8;

/**
 * Runs chunk claims of the command in `ctrl` until none is left (dynamic) or runs share
 * `t` (static). Shared by the main thread and the workers.
 */
export function runShares(
  ctrl: Int32Array,
  kernel: Kernel,
  bufs: PoolArray[],
  params: Float64Array,
  t: number,
): void {
  const units = ctrl[UNITS];
  const chunks = ctrl[CHUNKS];
  if (chunks === 0) {
    const T = ctrl[SHARES];
    kernel(bufs, params, shareStart(units, t, T), shareStart(units, t + 1, T), t);
    return;
  }
  for (;;) {
    const c = Atomics.add(ctrl, NEXT, 1);
    if (c >= chunks) return;
    kernel(bufs, params, shareStart(units, c, chunks), shareStart(units, c + 1, chunks), t);
  }
}

/** Wire codes of {@link KERNELS}. */
export const K = {
  gelu: 0,
  geluBackward: 1,
  add: 2,
  scaleRows: 3,
  layernorm: 4,
  layernormBackward: 5,
  standardizeRows: 6,
  softmax: 7,
  softmaxBackward: 8,
  splitHeads: 9,
  splitHeadsBackward: 10,
  mergeHeads: 11,
  mergeHeadsBackward: 12,
  gatherRows: 13,
  biasGrad: 14,
  patchify: 15,
  adamw: 16,
  gradNorm: 17,
  matmulEpilogue: 18,
  batchedGemm: 19,
  gemmSlab: 20,
} as const;

// ---- control block layout (Int32 slots; f64 params and the error text follow) ----------

/** Command sequence number: bumped once per command. */
export const SEQ = 0;
/** Kernel code of the current command; {@link EXIT_OP} asks the workers to exit. */
export const OP = 1;
/** Work units of the current command. */
export const UNITS = 2;
/** Number of buffer refs of the current command. */
export const NBUF = 3;
/** Registration generation: workers return to their event loop to fetch it when behind. */
export const REG_GEN = 4;
/** Set to 1 by a worker whose share threw; the message is in the error area. */
export const ERROR = 5;
/** Number of shares `T` of the current command. */
export const SHARES = 6;
/** Chunks of a dynamic command (0: static, share `t` runs chunk `t`). */
export const CHUNKS = 7;
/** Next unclaimed chunk of a dynamic command (claimed with `Atomics.add`). */
export const NEXT = 8;
/** Buffer refs, 4 slots each: id, dtype (0 f32, 1 f64, 2 i32), element offset, length. */
export const BUF = 12;
/** Most buffers one command can carry. */
export const MAX_BUFS = 8;
/** Worker states, one slot per worker `t` (1-based): 0 exited, 1 idle, 2 busy. */
export const STATE = BUF + 4 * MAX_BUFS;
/** Most threads (main included) a pool runs. */
export const MAX_THREADS = 64;
/** Byte offset of the f64 params. */
export const PARAMS_BYTE = 4 * (STATE + MAX_THREADS);
/** Most params one command can carry. */
export const MAX_PARAMS = 16;
/** Byte offset and size of the UTF-8 error message. */
export const ERROR_BYTE = PARAMS_BYTE + 8 * MAX_PARAMS;
const ERROR_BYTES = 1024;
/** Total bytes of the control block. */
export const CONTROL_BYTES = ERROR_BYTE + ERROR_BYTES;
/** Kernel code that asks the workers to exit. */
export const EXIT_OP = -1;
/** An idle worker exits after this long without a command. */
export const IDLE_EXIT_MS = 1000;

/**
 * First unit of share `t` of `T` over `units` (static partition). `| 0` keeps indices in
 * int32 registers (units < 2^31): f64 indices slow V8's loops ~2× (measured on softmax),
 * which is also why kernels `| 0` the integer dims they read from the f64 params.
 */
export function shareStart(units: number, t: number, T: number): number {
  return Math.floor(units * t / T) | 0;
}

/** Writes an error message into the control block's error area (workers). */
export function writeError(sab: SharedArrayBuffer, message: string): void {
  const bytes = new TextEncoder().encode(message).subarray(0, ERROR_BYTES - 4);
  const view = new Uint8Array(sab, ERROR_BYTE, ERROR_BYTES);
  new DataView(sab, ERROR_BYTE, 4).setInt32(0, bytes.length, true);
  view.set(bytes, 4);
}

function readError(sab: SharedArrayBuffer): string {
  const n = new DataView(sab, ERROR_BYTE, 4).getInt32(0, true);
  return new TextDecoder().decode(new Uint8Array(sab, ERROR_BYTE + 4, n).slice());
}

/** Registration message to the workers: buffers to add and ids to drop. */
export interface RegisterMessage {
  /** Control block (first message of a worker only). */
  control?: SharedArrayBuffer;
  /** This worker's share index `t` (first message only). */
  share?: number;
  /** OpenBLAS library path for {@link K.batchedGemm} (first message only; absent: none). */
  blasPath?: string;
  /** The `SEQ` the worker has already seen (first message only). */
  seen?: number;
  /** Registration generation this message brings the worker to. */
  gen: number;
  /** New `(id, buffer)` pairs. */
  add: [number, SharedArrayBuffer][];
  /** Ids the main thread no longer uses. */
  drop: number[];
}

function dtypeCode(a: PoolArray): number {
  return a instanceof Float32Array ? 0 : a instanceof Float64Array ? 1 : 2;
}

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
 * pool?.run(K.gelu, [x, x], [], x.length);
 * pool?.dispose();
 * ```
 */
export class CpuPool {
  /** Threads including the calling one (the share count `T`). */
  readonly threads: number;
  readonly #url: URL;
  readonly #blasPath: string | undefined;
  #crew: Crew | null = null;
  #nextId = 1;
  #scratch = new Float64Array(new SharedArrayBuffer(8 * 1024));
  #disposed = false;
  #broken: string | null = null;

  private constructor(threads: number, url: URL, blasPath: string | undefined) {
    this.threads = threads;
    this.#url = url;
    this.#blasPath = blasPath;
  }

  /**
   * A pool of `threads` threads, or `{ reason }` when workers cannot run here
   * (no read permission for the worker module, a remote module, no `Worker`).
   * `blasPath`: the OpenBLAS library the workers open for {@link K.batchedGemm}.
   */
  static create(threads: number, blasPath?: string): CpuPool | { reason: string } {
    if (!Number.isInteger(threads) || threads < 2 || threads > MAX_THREADS) {
      throw new RangeError(
        `Cannot create a CPU pool: threads must be an integer in [2, ${MAX_THREADS}], current value is ${threads}`,
      );
    }
    const url = new URL("./worker.ts", import.meta.url);
    const blocker = workerBlocker(url);
    if (blocker) return { reason: blocker };
    return new CpuPool(threads, url, blasPath);
  }

  /** Null while the pool works; else why it fell back to one thread. */
  get broken(): string | null {
    return this.#broken;
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
   * Runs kernel `op` over `units` work units split into {@link CpuPool.threads} static
   * shares; returns false (and runs nothing) when a buffer is not shared memory or the
   * pool is unusable, so the caller runs the op inline.
   */
  run(op: number, bufs: readonly PoolArray[], params: readonly number[], units: number): boolean {
    if (this.#disposed || this.#broken) return false;
    if (bufs.length > MAX_BUFS || params.length > MAX_PARAMS) {
      throw new RangeError(`Cannot run pool op ${op}: too many buffers or params`);
    }
    for (const b of bufs) if (!(b.buffer instanceof SharedArrayBuffer)) return false;
    const T = this.threads;
    const crew = this.#ready();
    if (!crew) return false;
    const { ctrl, params: pv } = crew;
    for (let i = 0; i < bufs.length; i++) {
      const b = bufs[i];
      const o = BUF + 4 * i;
      ctrl[o] = this.#idOf(crew, b.buffer as SharedArrayBuffer);
      ctrl[o + 1] = dtypeCode(b);
      ctrl[o + 2] = b.byteOffset / b.BYTES_PER_ELEMENT;
      ctrl[o + 3] = b.length;
    }
    for (let i = 0; i < params.length; i++) pv[i] = params[i];
    ctrl[OP] = op;
    ctrl[UNITS] = units;
    ctrl[NBUF] = bufs.length;
    ctrl[SHARES] = T;
    ctrl[CHUNKS] = STATIC_SHARES.has(op) ? 0 : Math.min(units, CHUNKS_PER_THREAD * T);
    ctrl[NEXT] = 0;
    ctrl[ERROR] = 0;
    this.#flushRegistrations(crew);
    Atomics.add(ctrl, SEQ, 1);
    Atomics.notify(ctrl, SEQ);
    let mainError: unknown = null;
    const kernel = KERNELS[op];
    try {
      runShares(ctrl, kernel, bufs as PoolArray[], pv, 0);
    } catch (e) {
      mainError = e;
      Atomics.store(ctrl, NEXT, ctrl[CHUNKS]); // workers stop claiming chunks
    }
    const missing = this.#waitAll(crew);
    if (missing.length > 0 && ctrl[CHUNKS] === 0 && !mainError) {
      // Workers never started: run their static shares here (same partition, same result).
      for (const t of missing) {
        kernel(bufs as PoolArray[], pv, shareStart(units, t, T), shareStart(units, t + 1, T), t);
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
          blasPath: this.#blasPath,
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
