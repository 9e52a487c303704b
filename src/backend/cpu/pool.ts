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
 * - Every op is one named record of {@link POOL_OPS} (buffers, params, share policy,
 *   kernel); its wire code is its index there. Column reductions and split GEMMs use
 *   static shares: share `t` of `T` gets units `[⌊u·t/T⌋, ⌊u·(t+1)/T⌋)`; reductions write
 *   partials that the main thread sums in share order, so the same `T` gives
 *   bit-identical results run to run. Every other op writes each output element from its
 *   own inputs only, so its units are cut into {@link CHUNKS_PER_THREAD} chunks per
 *   thread that threads claim as they go (another process can slow one core); any claim
 *   order gives the same bits.
 * - Every thread runs the kernels its backend was built with (`KernelOps`): the main
 *   thread the backend's, each worker the same choice loaded on its own thread.
 * - An idle worker exits after {@link IDLE_EXIT_MS} (so a forgotten backend does not keep
 *   the process alive); the next op starts a fresh pool.
 *
 * @module
 */
import { add } from "./ref/add.ts";
import { biasGrad } from "./ref/bias_grad.ts";
import { sumOfSquares } from "./ref/grad_norm.ts";
import {
  mergeHeadsBackward,
  mergeHeadsForward,
  splitHeadsBackward,
  splitHeadsForward,
} from "./ref/heads.ts";
import { gemmProduct } from "./ref/matmul.ts";
import { patchify } from "./ref/patchify.ts";
import { gatherRowsForward, scaleRows } from "./ref/rows.ts";
import { standardizeRows } from "./ref/standardize.ts";
import { type Gemm, type GemmArgs, openThreadGemm } from "./gemm.ts";
import type { KernelOps } from "./kernels.ts";

/** The GEMM that the `batchedGemm` and `gemmSlab` shares call on this thread (set per op on the main thread, at start in a worker). */
let threadGemm: ((args: GemmArgs) => void) | null = null;

/** Sets the GEMM this thread's matmul shares call. */
export function setThreadGemm(gemm: ((args: GemmArgs) => void) | null): void {
  threadGemm = gemm;
}

/**
 * The fused and batched calls of this thread's GEMM (the WebAssembly GEMM's
 * `sgemmEpilogue` and `sgemmBatch`), or null: the matmul shares use them when present.
 * A worker sets it at start, the main thread per command from its pool (see
 * {@link fastGemmOf}).
 */
let threadFast: Pick<Gemm, "sgemmEpilogue" | "sgemmBatch"> | null = null;

/** Sets {@link threadFast}: this thread's GEMM with fused or batched calls, or null. */
export function setThreadFastGemm(gemm: Pick<Gemm, "sgemmEpilogue" | "sgemmBatch"> | null): void {
  threadFast = gemm;
}

/**
 * The GEMM at `path` (a `Gemm.path`) on this thread when it has fused or batched calls
 * (the WebAssembly GEMM, one instance per thread), else null.
 */
export function fastGemmOf(path: string | undefined): Gemm | null {
  if (!path?.startsWith("wasm:")) return null;
  const gemm = openThreadGemm(path);
  return gemm.sgemmEpilogue || gemm.sgemmBatch ? gemm : null;
}

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

/** Infers a {@link PoolOp}'s names from its lists. */
function poolOp<B extends string, O extends string, P extends string>(
  spec: PoolOp<B, O, P>,
): PoolOp<B, O, P> {
  return spec;
}

const f = (a: PoolArray | undefined): Float32Array => a as Float32Array;
const d = (a: PoolArray | undefined): Float64Array => a as Float64Array;

/** Elements `[lo·n, hi·n)` of `a` as f32: units of `n` elements. */
const rowsOf = (a: PoolArray, lo: number, hi: number, n: number): Float32Array =>
  f(a).subarray(lo * n, hi * n);

/** `[N, NH, HS]` params of the head ops as head dims over samples `[lo, hi)`. */
const heads = (p: Record<"N" | "NH" | "HS", number>, lo: number, hi: number) => ({
  B: hi - lo,
  N: p.N | 0,
  NH: p.NH | 0,
  HS: p.HS | 0,
});

/**
 * Every op the pool runs, by name. The wire code of an op is its index here; the share
 * policy is in the record. Units: elements, rows, samples or products, as commented.
 */
export const POOL_OPS = {
  // units: elements
  gelu: poolOp({
    bufs: ["out", "inp"],
    optional: [],
    params: [],
    shares: "chunked",
    kernel: (b, _p, lo, hi, _t, ops) =>
      ops.geluForward({ out: rowsOf(b.out, lo, hi, 1), inp: rowsOf(b.inp, lo, hi, 1) }),
  }),
  // units: elements
  geluBackward: poolOp({
    bufs: ["dinp", "dout", "inp"],
    optional: [],
    params: [],
    shares: "chunked",
    kernel: (b, _p, lo, hi, _t, ops) =>
      ops.geluBackward({
        dinp: rowsOf(b.dinp, lo, hi, 1),
        dout: rowsOf(b.dout, lo, hi, 1),
        inp: rowsOf(b.inp, lo, hi, 1),
      }),
  }),
  // units: m elements (m = b's length for a broadcast add, 1 for a same-size add)
  add: poolOp({
    bufs: ["out", "a", "b"],
    optional: [],
    params: ["m"],
    shares: "chunked",
    kernel: (b, p, lo, hi) => {
      const m = p.m | 0;
      const bb = f(b.b);
      add({
        out: rowsOf(b.out, lo, hi, m),
        a: rowsOf(b.a, lo, hi, m),
        b: bb.length === m ? bb : rowsOf(bb, lo, hi, m),
      });
    },
  }),
  // units: rows
  scaleRows: poolOp({
    bufs: ["out", "inp", "scale"],
    optional: [],
    params: ["C"],
    shares: "chunked",
    kernel: (b, p, lo, hi) => {
      const C = p.C | 0;
      scaleRows(
        {
          out: rowsOf(b.out, lo, hi, C),
          inp: rowsOf(b.inp, lo, hi, C),
          scale: rowsOf(b.scale, lo, hi, 1),
        },
        { rows: hi - lo, C },
      );
    },
  }),
  // units: rows
  layernorm: poolOp({
    bufs: ["out", "mean", "rstd", "inp", "weight", "bias"],
    optional: [],
    params: ["C", "eps"],
    shares: "chunked",
    kernel: (b, p, lo, hi, _t, ops) => {
      const C = p.C | 0;
      ops.layernormForward(
        {
          out: rowsOf(b.out, lo, hi, C),
          mean: rowsOf(b.mean, lo, hi, 1),
          rstd: rowsOf(b.rstd, lo, hi, 1),
          inp: rowsOf(b.inp, lo, hi, C),
          weight: f(b.weight),
          bias: f(b.bias),
        },
        { rows: hi - lo, C, eps: p.eps },
      );
    },
  }),
  // units: rows; share t writes its dweight, dbias sums to partials (T, 2, C) f64 [t]
  layernormBackward: poolOp({
    bufs: ["dinp", "partials", "dout", "inp", "weight", "mean", "rstd"],
    optional: [],
    params: ["C", "accumulate"],
    shares: "static",
    kernel: (b, p, lo, hi, t, ops) => {
      const C = p.C | 0;
      const part = d(b.partials);
      const dweight = part.subarray(2 * t * C, (2 * t + 1) * C);
      const dbias = part.subarray((2 * t + 1) * C, (2 * t + 2) * C);
      dweight.fill(0);
      dbias.fill(0);
      ops.layernormBackward(
        {
          dinp: rowsOf(b.dinp, lo, hi, C),
          dweight,
          dbias,
          dout: rowsOf(b.dout, lo, hi, C),
          inp: rowsOf(b.inp, lo, hi, C),
          weight: f(b.weight),
          mean: rowsOf(b.mean, lo, hi, 1),
          rstd: rowsOf(b.rstd, lo, hi, 1),
        },
        { rows: hi - lo, C, accumulate: p.accumulate === 1 },
      );
    },
  }),
  // units: rows
  standardizeRows: poolOp({
    bufs: ["out", "inp"],
    optional: [],
    params: ["C", "eps"],
    shares: "chunked",
    kernel: (b, p, lo, hi) => {
      const C = p.C | 0;
      standardizeRows(
        { out: rowsOf(b.out, lo, hi, C), inp: rowsOf(b.inp, lo, hi, C) },
        { rows: hi - lo, C, eps: p.eps },
      );
    },
  }),
  // units: rows
  softmax: poolOp({
    bufs: ["out", "inp"],
    optional: [],
    params: ["C", "scale"],
    shares: "chunked",
    kernel: (b, p, lo, hi, _t, ops) => {
      const C = p.C | 0;
      ops.softmaxForward(
        { out: rowsOf(b.out, lo, hi, C), inp: rowsOf(b.inp, lo, hi, C) },
        { rows: hi - lo, C, scale: p.scale },
      );
    },
  }),
  // units: rows
  softmaxBackward: poolOp({
    bufs: ["dinp", "dout", "out"],
    optional: [],
    params: ["C", "scale"],
    shares: "chunked",
    kernel: (b, p, lo, hi, _t, ops) => {
      const C = p.C | 0;
      ops.softmaxBackward(
        {
          dinp: rowsOf(b.dinp, lo, hi, C),
          dout: rowsOf(b.dout, lo, hi, C),
          out: rowsOf(b.out, lo, hi, C),
        },
        { rows: hi - lo, C, scale: p.scale },
      );
    },
  }),
  // units: samples of the batch
  splitHeads: poolOp({
    bufs: ["q", "k", "v", "qkv"],
    optional: [],
    params: ["N", "NH", "HS"],
    shares: "chunked",
    kernel: (b, p, lo, hi) => {
      const per = (p.N * p.NH * p.HS) | 0;
      splitHeadsForward(
        {
          q: rowsOf(b.q, lo, hi, per),
          k: rowsOf(b.k, lo, hi, per),
          v: rowsOf(b.v, lo, hi, per),
          qkv: rowsOf(b.qkv, lo, hi, 3 * per),
        },
        heads(p, lo, hi),
      );
    },
  }),
  // units: samples
  splitHeadsBackward: poolOp({
    bufs: ["dqkv", "dq", "dk", "dv"],
    optional: [],
    params: ["N", "NH", "HS"],
    shares: "chunked",
    kernel: (b, p, lo, hi) => {
      const per = (p.N * p.NH * p.HS) | 0;
      splitHeadsBackward(
        {
          dqkv: rowsOf(b.dqkv, lo, hi, 3 * per),
          dq: rowsOf(b.dq, lo, hi, per),
          dk: rowsOf(b.dk, lo, hi, per),
          dv: rowsOf(b.dv, lo, hi, per),
        },
        heads(p, lo, hi),
      );
    },
  }),
  // units: samples
  mergeHeads: poolOp({
    bufs: ["out", "inp"],
    optional: [],
    params: ["N", "NH", "HS"],
    shares: "chunked",
    kernel: (b, p, lo, hi) => {
      const per = (p.N * p.NH * p.HS) | 0;
      mergeHeadsForward(
        { out: rowsOf(b.out, lo, hi, per), inp: rowsOf(b.inp, lo, hi, per) },
        heads(p, lo, hi),
      );
    },
  }),
  // units: samples
  mergeHeadsBackward: poolOp({
    bufs: ["dinp", "dout"],
    optional: [],
    params: ["N", "NH", "HS"],
    shares: "chunked",
    kernel: (b, p, lo, hi) => {
      const per = (p.N * p.NH * p.HS) | 0;
      mergeHeadsBackward(
        { dinp: rowsOf(b.dinp, lo, hi, per), dout: rowsOf(b.dout, lo, hi, per) },
        heads(p, lo, hi),
      );
    },
  }),
  // units: rows of out
  gatherRows: poolOp({
    bufs: ["out", "inp", "index"],
    optional: ["fill"],
    params: ["C"],
    shares: "chunked",
    kernel: (b, p, lo, hi) => {
      const C = p.C | 0;
      gatherRowsForward(
        {
          out: rowsOf(b.out, lo, hi, C),
          inp: f(b.inp),
          index: (b.index as Int32Array).subarray(lo, hi),
          fill: b.fill && f(b.fill),
        },
        { rows: hi - lo, C },
      );
    },
  }),
  // units: rows; share t sums its rows into partials (T, C) f64 [t]
  biasGrad: poolOp({
    bufs: ["partials", "dout"],
    optional: [],
    params: ["C"],
    shares: "static",
    kernel: (b, p, lo, hi, t) => {
      const C = p.C | 0;
      const part = d(b.partials).subarray(t * C, (t + 1) * C);
      part.fill(0);
      biasGrad({ dbias: part, dout: rowsOf(b.dout, lo, hi, C) }, { rows: hi - lo, C });
    },
  }),
  // units: images
  patchify: poolOp({
    bufs: ["out", "inp"],
    optional: [],
    params: ["C", "H", "W", "P"],
    shares: "chunked",
    kernel: (b, p, lo, hi) => {
      const per = (p.C * p.H * p.W) | 0;
      patchify(
        { out: rowsOf(b.out, lo, hi, per), inp: rowsOf(b.inp, lo, hi, per) },
        { B: hi - lo, C: p.C | 0, H: p.H | 0, W: p.W | 0, P: p.P | 0 },
      );
    },
  }),
  // units: elements
  adamw: poolOp({
    bufs: ["param", "grad", "m", "v", "offsets", "hyper"],
    optional: ["clipScale"],
    params: ["lr", "beta1", "beta2", "eps", "step"],
    shares: "chunked",
    kernel: (b, p, lo, hi, _t, ops) =>
      ops.adamw(
        {
          param: f(b.param),
          grad: f(b.grad),
          m: f(b.m),
          v: f(b.v),
          offsets: b.offsets as Int32Array,
          hyper: f(b.hyper),
          clipScale: b.clipScale && f(b.clipScale),
        },
        { lr: p.lr, beta1: p.beta1, beta2: p.beta2, eps: p.eps, step: p.step },
        { lo, hi },
      ),
  }),
  // units: elements; share t writes Σ grad² of its elements to partials (T) f64 [t]
  gradNorm: poolOp({
    bufs: ["partials", "grad"],
    optional: [],
    params: [],
    shares: "static",
    kernel: (b, _p, lo, hi, t) => {
      d(b.partials)[t] = sumOfSquares(rowsOf(b.grad, lo, hi, 1));
    },
  }),
  // units: rows of c [M, N]
  matmulEpilogue: poolOp({
    bufs: ["c"],
    optional: ["bias", "pre"],
    params: ["N", "gelu"],
    shares: "chunked",
    kernel: (b, p, lo, hi, _t, ops) => {
      const N = p.N | 0;
      ops.matmulEpilogue(
        {
          c: rowsOf(b.c, lo, hi, N),
          bias: b.bias && f(b.bias),
          pre: b.pre && rowsOf(b.pre, lo, hi, N),
        },
        { M: hi - lo, N, gelu: p.gelu === 1 },
      );
    },
  }),
  // units: products of the batch, each one single-threaded GEMM call on this thread
  // (attention's small products)
  batchedGemm: poolOp({
    bufs: ["out", "a", "b"],
    optional: [],
    params: ["M", "N", "K", "transA", "transB", "accumulate"],
    shares: "chunked",
    kernel: (b, p, lo, hi) => {
      const gemm = threadGemm;
      if (!gemm) throw new Error("no GEMM on this thread for a batched matmul");
      const dims = {
        M: p.M | 0,
        N: p.N | 0,
        K: p.K | 0,
        transA: p.transA === 1,
        transB: p.transB === 1,
        accumulate: p.accumulate === 1,
      };
      const batch = threadFast?.sgemmBatch;
      if (batch) {
        // the products [lo, hi) in one call: one copy in and out per block of them
        const { M, N, K, transA, transB, accumulate } = dims;
        const [sa, sb, sc] = [M * K, K * N, M * N];
        const args = {
          transA,
          transB,
          M,
          N,
          K,
          alpha: 1,
          a: f(b.a).subarray(lo * sa, hi * sa),
          lda: transA ? M : K,
          b: f(b.b).subarray(lo * sb, hi * sb),
          ldb: transB ? K : N,
          beta: accumulate ? 1 : 0,
          c: f(b.out).subarray(lo * sc, hi * sc),
          ldc: N,
        };
        batch(args, hi - lo);
        return;
      }
      for (let i = lo; i < hi; i++) {
        gemmProduct(gemm, { out: f(b.out), a: f(b.a), b: f(b.b) }, dims, i);
      }
    },
  }),
  // units: rows of out (byCols 0, then this share's epilogue too, on rows still in cache)
  // or columns of out (byCols 1, no epilogue); one single-threaded GEMM call per share:
  // on the vit-tiny step (2 cores, quiet) one slab per thread gave 90–91 images/s,
  // 2 dynamic chunks per thread 81–83 and 3 chunks 84–88
  gemmSlab: poolOp({
    bufs: ["out", "a", "b"],
    optional: ["bias", "pre"],
    params: ["M", "N", "K", "transA", "transB", "beta", "byCols", "gelu"],
    shares: "static",
    kernel: (b, p, lo, hi, _t, ops) => {
      if (lo === hi) return;
      const [M, N, K] = [p.M | 0, p.N | 0, p.K | 0];
      const [transA, transB, beta, byCols] = [
        p.transA === 1,
        p.transB === 1,
        p.beta,
        p.byCols === 1,
      ];
      const [out, a, bb] = [f(b.out), f(b.a), f(b.b)];
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
      const args = {
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
      };
      const bias = b.bias && f(b.bias);
      const pre = b.pre && rowsOf(b.pre, lo, hi, N);
      const gelu = p.gelu === 1;
      const fused = threadFast?.sgemmEpilogue;
      if ((bias || gelu) && fused) {
        fused(args, { bias, pre, gelu }); // the epilogue inside the GEMM, on rows in cache
        return;
      }
      gemm(args);
      if (bias || gelu) ops.matmulEpilogue({ c, bias, pre }, { M: hi - lo, N, gelu });
    },
  }),
};

/** The name of an op in {@link POOL_OPS}. */
export type PoolOpName = keyof typeof POOL_OPS;

/** The buffers of pool op `N` by name (optional ones may be left out). */
export type PoolBufs<N extends PoolOpName> = (typeof POOL_OPS)[N] extends
  PoolOp<infer B, infer O, string> ? Record<B, PoolArray> & Partial<Record<O, PoolArray>>
  : never;

/** The scalar params of pool op `N` by name. */
export type PoolParams<N extends PoolOpName> = (typeof POOL_OPS)[N] extends
  PoolOp<string, string, infer P> ? Record<P, number> : never;

/** The ops in wire-code order: the code of an op is its index. */
export const POOL_OP_LIST: readonly AnyPoolOp[] = Object.values(POOL_OPS);

/** Wire code of each op, derived from the order of {@link POOL_OPS}. */
const CODES = Object.fromEntries(
  Object.keys(POOL_OPS).map((name, i) => [name, i]),
) as Record<PoolOpName, number>;

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
for (const [name, op] of Object.entries(POOL_OPS) as [string, AnyPoolOp][]) {
  if (wireBufs(op).length > MAX_BUFS || op.params.length > MAX_PARAMS) {
    throw new RangeError(`Pool op ${name} has more buffers or params than a command carries`);
  }
}
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
  /** `Gemm.path` of the matmul shares' GEMM (first message only; absent: none). */
  blasPath?: string;
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

/** What a pool's threads run with. */
export interface PoolOptions {
  /** The backend's kernels: the main thread runs these, each worker loads the same choice. */
  ops: KernelOps;
  /** Where the native kernels come from (absent: the default path). */
  nativeLibrary?: string;
  /** `Gemm.path` of the GEMM the workers open for the matmul shares (absent: none). */
  blasPath?: string;
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
  #broken: string | null = null;
  /** The main thread's fused/batched calls of the pool's GEMM (see {@link fastGemmOf}). */
  readonly #fast: Gemm | null;

  private constructor(threads: number, url: URL, opts: PoolOptions) {
    this.threads = threads;
    this.#url = url;
    this.#opts = opts;
    this.#fast = fastGemmOf(opts.blasPath);
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
    ctrl[OP] = CODES[name];
    ctrl[UNITS] = units;
    ctrl[NBUF] = names.length;
    ctrl[SHARES] = T;
    ctrl[CHUNKS] = op.shares === "static" ? 0 : Math.min(units, CHUNKS_PER_THREAD * T);
    ctrl[NEXT] = 0;
    ctrl[ERROR] = 0;
    this.#flushRegistrations(crew);
    Atomics.add(ctrl, SEQ, 1);
    Atomics.notify(ctrl, SEQ);
    let mainError: unknown = null;
    const ops = this.#opts.ops;
    setThreadFastGemm(this.#fast);
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
