/**
 * A CPU pool worker (see `pool_wire.ts` for the protocol): waits on the shared control block,
 * runs its static share of each command with the same raw ops as the main thread, and
 * returns to its event loop only to pick up buffer registrations or to exit when idle.
 *
 * @module
 */
/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
import {
  BUF,
  CHUNKS,
  ERROR,
  EXIT_OP,
  IDLE_EXIT_MS,
  MAX_PARAMS,
  MAX_THREADS,
  NBUF,
  NEXT,
  OP,
  PARAMS_BYTE,
  paramsOf,
  type PoolArray,
  REG_GEN,
  type RegisterMessage,
  runShares,
  SEQ,
  STATE,
  wireBufs,
  writeError,
} from "./pool_wire.ts";
import { POOL_OP_LIST } from "./pool_ops.ts";
import { openThreadGemm, withNativeGemm } from "./gemm.ts";
import { type KernelOps, kernelOps, loadKernels, withGemm } from "./kernels.ts";

const buffers = new Map<number, SharedArrayBuffer>();
let control: SharedArrayBuffer;
let ctrl: Int32Array;
let params: Float64Array;
let share = 0;
let seen = 0;
let gen = 0;
/** The kernels of the backend that started this worker, loaded on this thread. */
let ops: KernelOps;

function view(i: number): PoolArray | undefined {
  const o = BUF + 4 * i;
  if (ctrl[o] === 0) return undefined; // an absent optional buffer
  const sab = buffers.get(ctrl[o]);
  if (!sab) throw new Error(`CPU pool worker ${share} has no buffer ${ctrl[o]}`);
  const [dtype, offset, length] = [ctrl[o + 1], ctrl[o + 2], ctrl[o + 3]];
  if (dtype === 0) return new Float32Array(sab, 4 * offset, length);
  if (dtype === 1) return new Float64Array(sab, 8 * offset, length);
  return new Int32Array(sab, 4 * offset, length);
}

function runCommand(): void {
  const op = POOL_OP_LIST[ctrl[OP]];
  const names = wireBufs(op);
  const bufs: Record<string, PoolArray> = {};
  for (let i = 0; i < ctrl[NBUF]; i++) {
    const v = view(i);
    if (v) bufs[names[i]] = v;
  }
  runShares(ctrl, op, bufs, paramsOf(op, params), share, ops);
}

/** Runs commands until one needs registrations this worker lacks, or it exits. */
function loop(): void {
  for (;;) {
    const s = Atomics.load(ctrl, SEQ);
    if (s === seen) {
      const r = Atomics.wait(ctrl, SEQ, seen, IDLE_EXIT_MS);
      // Idle too long and not claimed (1 → 0): exit so the process can end.
      if (
        r === "timed-out" && Atomics.compareExchange(ctrl, STATE + share, 1, 0) === 1
      ) {
        self.close();
        return;
      }
      continue;
    }
    if (ctrl[OP] === EXIT_OP) {
      self.close();
      return;
    }
    if (Atomics.load(ctrl, REG_GEN) > gen) return; // the message handler re-enters
    seen = s;
    try {
      runCommand();
    } catch (e) {
      Atomics.store(ctrl, NEXT, ctrl[CHUNKS]); // the others stop claiming chunks
      writeError(control, `CPU pool worker ${share}: ${(e as Error)?.message ?? e}`);
      Atomics.store(ctrl, ERROR, 1);
    }
    Atomics.store(ctrl, STATE + share, 1);
    Atomics.notify(ctrl, STATE + share);
  }
}

self.onmessage = (e: MessageEvent<RegisterMessage>) => {
  const msg = e.data;
  if (msg.control) {
    control = msg.control;
    ctrl = new Int32Array(control, 0, STATE + MAX_THREADS);
    params = new Float64Array(control, PARAMS_BYTE, MAX_PARAMS);
    share = msg.share!;
    seen = msg.seen!;
    const loaded = loadKernels(msg.kernels ?? "js", msg.nativeLibrary).kernels;
    // OpenBLAS or this thread's own WebAssembly GEMM, for the matmul and attention shares,
    // with the small-K products on the native GEMM where the main thread does so too
    const base = msg.blasPath ? openThreadGemm(msg.blasPath) : undefined;
    const gemm = base && msg.nativeGemm ? withNativeGemm(base, loaded, msg.nativeGemm) : base;
    ops = withGemm(kernelOps(loaded), gemm);
  }
  for (const [id, sab] of msg.add) buffers.set(id, sab);
  for (const id of msg.drop) buffers.delete(id);
  gen = Math.max(gen, msg.gen);
  loop();
};
