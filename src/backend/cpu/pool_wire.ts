/**
 * The CPU pool's wire protocol, shared by the main thread (`pool.ts`) and the workers
 * (`worker.ts`): the shape of an op ({@link PoolOp}: buffers, params, share policy,
 * kernel), the control block's layout, the registration message, and
 * {@link runShares}, which both sides use to run their part of a command.
 *
 * Protocol (one op at a time, the main thread blocks until it is done):
 * - Every buffer an op touches lives on a `SharedArrayBuffer`. The first time the pool
 *   sees a buffer it gives it an id and posts `(id, buffer)` to the workers; the
 *   workers keep a table `id → buffer` (dropped again when the main thread's buffer is
 *   garbage collected).
 * - Per op the main thread writes a command into a shared control block (kernel code,
 *   buffer refs `(id, dtype, offset, length)`, f64 params, work units), bumps `SEQ`
 *   and notifies; each worker runs its share, marks itself idle and notifies; the main
 *   thread runs share 0 meanwhile, then waits.
 * - Static shares: share `t` of `T` gets units `[⌊u·t/T⌋, ⌊u·(t+1)/T⌋)`; reductions write
 *   partials that the main thread sums in share order, so the same `T` gives
 *   bit-identical results run to run. Every other op writes each output element from its
 *   own inputs only, so its units are cut into {@link CHUNKS_PER_THREAD} chunks per
 *   thread that threads claim as they go (another process can slow one core); any claim
 *   order gives the same bits.
 * - An idle worker exits after {@link IDLE_EXIT_MS} (so a forgotten backend does not keep
 *   the process alive); the next op starts a fresh pool.
 *
 * @module
 */
import type { KernelOps } from "./kernels.ts";

/** An array a pool kernel reads or writes (a view of a `SharedArrayBuffer`). */
export type PoolArray = Float32Array | Float64Array | Int32Array;

/**
 * One op the pool runs: its buffers and scalar params by name (wire order), how its
 * units are shared, and the kernel that runs units `[lo, hi)` as share `t` with the
 * thread's {@link KernelOps}. Buffers are whole views; `optional` ones may be absent.
 */
export interface PoolOp<B extends string, O extends string, P extends string> {
  /** Required buffers, in wire order. */
  readonly bufs: readonly B[];
  /** Optional buffers, after the required ones on the wire. */
  readonly optional: readonly O[];
  /** Scalar params (sent as f64), in wire order. */
  readonly params: readonly P[];
  /**
   * `"static"`: one share per thread, share `t` of `T` gets units `[⌊u·t/T⌋, ⌊u·(t+1)/T⌋)`
   * (column reductions that write per-share partials, and split GEMMs); `"chunked"`:
   * {@link CHUNKS_PER_THREAD} chunks per thread, claimed as threads go (ops whose every
   * output element depends on its own inputs only: any claim order gives the same bits).
   */
  readonly shares: "static" | "chunked";
  /** Runs units `[lo, hi)` as share `t`. */
  kernel(
    b: Record<B, PoolArray> & Partial<Record<O, PoolArray>>,
    p: Record<P, number>,
    lo: number,
    hi: number,
    t: number,
    ops: KernelOps,
  ): void;
}

/** Any {@link PoolOp} (what the wire and the workers see). */
export type AnyPoolOp = PoolOp<string, string, string>;

/** Wire names of an op's buffers: the required ones, then the optional ones. */
export function wireBufs(op: AnyPoolOp): readonly string[] {
  return [...op.bufs, ...op.optional];
}

/** Chunks per thread of a dynamic (non-reduction) command. */
export const CHUNKS_PER_THREAD = 8;

/**
 * Runs chunk claims of the command in `ctrl` until none is left (chunked) or runs share
 * `t` (static). Shared by the main thread and the workers.
 */
export function runShares(
  ctrl: Int32Array,
  op: AnyPoolOp,
  bufs: Record<string, PoolArray>,
  params: Record<string, number>,
  t: number,
  ops: KernelOps,
): void {
  const units = ctrl[UNITS];
  const chunks = ctrl[CHUNKS];
  if (chunks === 0) {
    const T = ctrl[SHARES];
    op.kernel(bufs, params, shareStart(units, t, T), shareStart(units, t + 1, T), t, ops);
    return;
  }
  for (;;) {
    const c = Atomics.add(ctrl, NEXT, 1);
    if (c >= chunks) return;
    const [lo, hi] = [shareStart(units, c, chunks), shareStart(units, c + 1, chunks)];
    op.kernel(bufs, params, lo, hi, t, ops);
  }
}

/** The params of `op` by name from the f64 params area of a command. */
export function paramsOf(op: AnyPoolOp, pv: Float64Array): Record<string, number> {
  const p: Record<string, number> = {};
  op.params.forEach((name, i) => (p[name] = pv[i]));
  return p;
}

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

/** The error message a worker wrote into the control block. */
export function readError(sab: SharedArrayBuffer): string {
  const n = new DataView(sab, ERROR_BYTE, 4).getInt32(0, true);
  return new TextDecoder().decode(new Uint8Array(sab, ERROR_BYTE + 4, n).slice());
}

/** Registration message to the workers: buffers to add and ids to drop. */
export interface RegisterMessage {
  /** Control block (first message of a worker only). */
  control?: SharedArrayBuffer;
  /** This worker's share index `t` (first message only). */
  share?: number;
  /** `Gemm.path` of the matmul shares' GEMM (first message only; absent: none). */
  blasPath?: string;
  /** Which of that GEMM's products run on the native GEMM (first message only). */
  nativeGemm?: "small" | "all";
  /** The backend's kernels, loaded again by the worker (first message only). */
  kernels?: "native" | "wasm" | "js";
  /** The native library path of those kernels (first message only; absent: the default). */
  nativeLibrary?: string;
  /** The `SEQ` the worker has already seen (first message only). */
  seen?: number;
  /** Registration generation this message brings the worker to. */
  gen: number;
  /** New `(id, buffer)` pairs. */
  add: [number, SharedArrayBuffer][];
  /** Ids the main thread no longer uses. */
  drop: number[];
}

/** Wire dtype code of an array: 0 f32, 1 f64, 2 i32. */
export function dtypeCode(a: PoolArray): number {
  return a instanceof Float32Array ? 0 : a instanceof Float64Array ? 1 : 2;
}
