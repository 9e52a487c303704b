/**
 * Every op the CPU pool runs ({@link POOL_OPS}), one named record each: its buffers and
 * params in wire order, how its units are shared, and the kernel that runs a share with
 * the thread's `KernelOps` (the fast kernels and the GEMM that thread loaded). The wire
 * code of an op is its index in the table.
 *
 * @module
 */
import { attentionBackwardUnits, attentionUnits } from "./attention.ts";
import { sumOfSquares } from "./ref/grad_norm.ts";
import {
  mergeHeadsBackward,
  mergeHeadsForward,
  splitHeadsBackward,
  splitHeadsForward,
} from "./ref/heads.ts";
import { gemmProduct } from "./ref/matmul.ts";
import { gatherRowsForward } from "./ref/rows.ts";
import {
  type AnyPoolOp,
  MAX_BUFS,
  MAX_PARAMS,
  type PoolArray,
  type PoolOp,
  wireBufs,
} from "./pool_wire.ts";

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

/** The attention ops' params as dims. */
const attentionDims = (p: Record<"B" | "N" | "NH" | "HS" | "scale", number>) => ({
  B: p.B | 0,
  N: p.N | 0,
  NH: p.NH | 0,
  HS: p.HS | 0,
  scale: p.scale,
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
    kernel: (b, p, lo, hi, _t, ops) => {
      const m = p.m | 0;
      const bb = f(b.b);
      ops.add({
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
    kernel: (b, p, lo, hi, _t, ops) => {
      const C = p.C | 0;
      ops.scaleRows(
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
    kernel: (b, p, lo, hi, _t, ops) => {
      const C = p.C | 0;
      ops.standardizeRows(
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
  // units: (sample, head) pairs, each the attention of one head (see attention.ts)
  attention: poolOp({
    bufs: ["out", "att", "qkv"],
    optional: ["relTable", "relIndex"],
    params: ["B", "N", "NH", "HS", "scale"],
    shares: "chunked",
    kernel: (b, p, lo, hi, _t, ops) =>
      attentionUnits(
        {
          out: f(b.out),
          att: f(b.att),
          qkv: f(b.qkv),
          relTable: b.relTable && f(b.relTable),
          relIndex: b.relIndex as Int32Array | undefined,
        },
        attentionDims(p),
        lo,
        hi,
        ops,
      ),
  }),
  // units: (sample, head) pairs
  attentionBackward: poolOp({
    bufs: ["dqkv", "dlogits", "dout", "qkv", "att"],
    optional: [],
    params: ["B", "N", "NH", "HS", "scale"],
    shares: "chunked",
    kernel: (b, p, lo, hi, _t, ops) =>
      attentionBackwardUnits(
        { dqkv: f(b.dqkv), dlogits: f(b.dlogits), dout: f(b.dout), qkv: f(b.qkv), att: f(b.att) },
        attentionDims(p),
        lo,
        hi,
        ops,
      ),
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
    kernel: (b, p, lo, hi, t, ops) => {
      const C = p.C | 0;
      const part = d(b.partials).subarray(t * C, (t + 1) * C);
      part.fill(0);
      ops.biasGrad({ dbias: part, dout: rowsOf(b.dout, lo, hi, C) }, { rows: hi - lo, C });
    },
  }),
  // units: images
  patchify: poolOp({
    bufs: ["out", "inp"],
    optional: [],
    params: ["C", "H", "W", "P"],
    shares: "chunked",
    kernel: (b, p, lo, hi, _t, ops) => {
      const per = (p.C * p.H * p.W) | 0;
      ops.patchify(
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
    kernel: (b, p, lo, hi, _t, ops) => {
      const gemm = ops.gemm;
      if (!gemm) throw new Error("no GEMM on this thread for a batched matmul");
      const dims = {
        M: p.M | 0,
        N: p.N | 0,
        K: p.K | 0,
        transA: p.transA === 1,
        transB: p.transB === 1,
        accumulate: p.accumulate === 1,
      };
      if (gemm.sgemmBatch) {
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
        gemm.sgemmBatch(args, hi - lo);
        return;
      }
      for (let i = lo; i < hi; i++) {
        gemmProduct((args) => gemm.sgemm(args), { out: f(b.out), a: f(b.a), b: f(b.b) }, dims, i);
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
      const gemm = ops.gemm;
      if (!gemm) throw new Error("no GEMM on this thread for a split matmul");
      const lda = transA ? M : K;
      const ldb = transB ? K : N;
      if (byCols) {
        gemm.sgemm({
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
      const gelu = p.gelu === 1;
      // the epilogue inside the GEMM, on rows in cache, where the GEMM fuses this product
      const pre = b.pre && rowsOf(b.pre, lo, hi, N);
      if ((bias || gelu) && gemm.sgemmEpilogue?.(args, { bias, pre, gelu })) return;
      if (!bias && !gelu) return gemm.sgemm(args);
      // The GEMM in row blocks of ~EPILOGUE_BLOCK floats of C, each block's epilogue right
      // after its product, while the block is still in this core's L2.
      const R = Math.max(16, Math.floor(EPILOGUE_BLOCK / N));
      for (let r0 = lo; r0 < hi; r0 += R) {
        const r1 = Math.min(hi, r0 + R);
        const cb = out.subarray(r0 * N, r1 * N);
        gemm.sgemm({ ...args, M: r1 - r0, a: a.subarray(transA ? r0 : r0 * K), c: cb });
        const pb = b.pre && rowsOf(b.pre, r0, r1, N);
        ops.matmulEpilogue({ c: cb, bias, pre: pb }, { M: r1 - r0, N, gelu });
      }
    },
  }),
};

/**
 * Floats of C per GEMM call of a split matmul with an epilogue (256 KiB: the block stays in
 * a core's L2 from the product to its epilogue).
 */
export const EPILOGUE_BLOCK = 1 << 16;

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
export const POOL_OP_CODES = Object.fromEntries(
  Object.keys(POOL_OPS).map((name, i) => [name, i]),
) as Record<PoolOpName, number>;

for (const [name, op] of Object.entries(POOL_OPS) as [string, AnyPoolOp][]) {
  if (wireBufs(op).length > MAX_BUFS || op.params.length > MAX_PARAMS) {
    throw new RangeError(`Pool op ${name} has more buffers or params than a command carries`);
  }
}
