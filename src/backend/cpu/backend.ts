/**
 * The CPU {@link Backend}: plain-TypeScript ops over `Float32Array`/`Int32Array` storage,
 * with OpenBLAS `sgemm` for matmul when it loads (else a pure-TS GEMM). Ops run eagerly;
 * `submit` is a no-op and `sync` resolves at once.
 *
 * With `threads > 1` storage lives on `SharedArrayBuffer`s and the non-GEMM ops above a
 * work threshold run in static shares on a {@link CpuPool} of workers (see `pool.ts`):
 * the same thread count gives bit-identical results run to run; `threads: 1` runs every
 * op inline exactly as the single-threaded backend always did.
 *
 * @module
 */
import { shapeSize } from "../backend.ts";
import type { Backend, DType, HostArray, MatmulDims, Storage, Tensor } from "../backend.ts";
import { loadGemm } from "./gemm.ts";
import type { Gemm } from "./gemm.ts";
import { add } from "./ops/add.ts";
import { adamw } from "./ops/adamw.ts";
import { biasGrad } from "./ops/bias_grad.ts";
import { cosineLoss } from "./ops/cosine_loss.ts";
import { crossEntropyLoss } from "./ops/cross_entropy.ts";
import { geluBackward, geluForward } from "./ops/gelu.ts";
import { clipFactor, gradNorm } from "./ops/grad_norm.ts";
import {
  mergeHeadsBackward,
  mergeHeadsForward,
  splitHeadsBackward,
  splitHeadsForward,
} from "./ops/heads.ts";
import { layernormBackward, layernormForward } from "./ops/layernorm.ts";
import { matmulEpilogue, matmulForward } from "./ops/matmul.ts";
import type { MatmulEpilogue, SplitMatmul } from "./ops/matmul.ts";
import { nativeUnavailableReason, simdKernels } from "./simd/simd.ts";
import { CpuPool, K, setThreadGemm } from "./pool.ts";
import type { PoolArray } from "./pool.ts";
import { patchify } from "./ops/patchify.ts";
import { gatherRowsBackward, gatherRowsForward, scaleRows } from "./ops/rows.ts";
import { smoothL1Loss } from "./ops/smooth_l1.ts";
import { softmaxBackward, softmaxForward } from "./ops/softmax.ts";
import { standardizeRows } from "./ops/standardize.ts";

/** CPU memory: one host typed array. */
export class CpuStorage implements Storage {
  /** The elements. */
  readonly data: Float32Array | Int32Array;
  /** Element type. */
  readonly dtype: DType;
  /** Debug label. */
  readonly label: string;

  /** Wraps `data` (its type gives the dtype). */
  constructor(data: Float32Array | Int32Array, label = "") {
    this.data = data;
    this.dtype = data instanceof Int32Array ? "i32" : "f32";
    this.label = label;
  }

  /** Number of elements. */
  get length(): number {
    return this.data.length;
  }
}

/** Options of {@link CpuBackend}. */
export interface CpuBackendOptions {
  /** GEMM to use: `"auto"` (OpenBLAS when it loads, default), `"openblas"` (required) or `"ts"`. */
  gemm?: "auto" | "openblas" | "ts";
  /**
   * Threads for the non-GEMM ops, the calling one included (default
   * `navigator.hardwareConcurrency`). 1 runs everything inline; results depend on it
   * only through the order of column-reduction sums.
   */
  threads?: number;
  /**
   * Smallest op, in elements touched, that is split across threads (default
   * {@link DEFAULT_MIN_PARALLEL_WORK}); tests pass 1 to split every op.
   */
  minParallelWork?: number;
  /**
   * With OpenBLAS and more than one thread: run every large matmul as one single-threaded
   * OpenBLAS call per thread on a slab of rows (or columns), with the bias/GELU epilogue
   * done by the same thread right after its slab (default true). False leaves the
   * threading of each call to OpenBLAS and runs the epilogue as a separate pass.
   */
  splitGemm?: boolean;
}

/**
 * Default {@link CpuBackendOptions.minParallelWork}: below ~32k elements a worker round
 * trip (~50 µs) costs more than half the op saves (measured on 2 cores).
 */
export const DEFAULT_MIN_PARALLEL_WORK = 32768;

/**
 * Largest single product `M·N·K` that a batched matmul splits over the pool with
 * single-threaded OpenBLAS calls; bigger products use OpenBLAS's own threads.
 */
export const BATCHED_GEMM_MAX = 1 << 22;

/** A matmul's operands as this backend's f32 views. */
type F32MatmulBufs = {
  out: Float32Array;
  a: Float32Array;
  b: Float32Array;
  bias?: Float32Array;
  pre?: Float32Array;
};

/** Smallest `M·N·K` that {@link CpuBackendOptions.splitGemm} splits over the threads. */
export const SPLIT_GEMM_MIN = 1 << 16;

/**
 * The CPU backend.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./backend.ts";
 * const be = new CpuBackend({ gemm: "ts" });
 * const x = be.tensor([2, 3]);
 * be.upload(x, new Float32Array([1, 2, 3, 4, 5, 6]));
 * be.gelu({ out: x, inp: x });
 * console.log(await be.download(x));
 * ```
 */
export class CpuBackend implements Backend {
  /** Always `"cpu"`. */
  readonly name = "cpu" as const;
  readonly #gemm: Gemm;
  readonly #sgemm: Gemm["sgemm"];
  readonly #epilogue: MatmulEpilogue;
  readonly #split: SplitMatmul;
  readonly #splitGemm: boolean;
  #ones = new Float32Array(0);
  readonly #pool: CpuPool | null;
  readonly #noPool: string;
  readonly #minWork: number;
  #disposed = false;

  /**
   * Loads the GEMM (`options.gemm`, default `"auto"`) and, with more than one thread,
   * prepares the worker pool (workers start on the first op big enough to split).
   */
  constructor(options: CpuBackendOptions = {}) {
    this.#gemm = loadGemm(options.gemm ?? "auto");
    const gemm = this.#gemm;
    this.#sgemm = (args) => gemm.sgemm(args);
    const threads = options.threads ?? navigator.hardwareConcurrency ?? 1;
    if (!Number.isInteger(threads) || threads < 1) {
      throw new RangeError(
        `Cannot create CpuBackend: threads must be an integer >= 1, current value is ${threads}`,
      );
    }
    this.#minWork = options.minParallelWork ?? DEFAULT_MIN_PARALLEL_WORK;
    this.#splitGemm = options.splitGemm ?? true;
    const pool = threads > 1 ? CpuPool.create(threads, gemm.path) : null;
    this.#pool = pool instanceof CpuPool ? pool : null;
    this.#noPool = pool && !(pool instanceof CpuPool) ? pool.reason : "";
    this.#epilogue = (bufs, dims) => {
      const { c, bias, pre } = bufs;
      const b: PoolArray[] = [c as Float32Array];
      if (bias) b.push(bias as Float32Array);
      if (pre) b.push(pre as Float32Array);
      const p = [dims.N, bias ? 1 : 0, pre ? 1 : 0, dims.gelu ? 1 : 0];
      if (!this.#par(K.matmulEpilogue, b, p, dims.M, dims.M * dims.N)) matmulEpilogue(bufs, dims);
    };
    // Plain batches (attention) split by product; single products by slab (see below).
    this.#split = (bufs, dims) => {
      const f32 = bufs as F32MatmulBufs; // this backend's views are all f32 (#f32)
      if (dims.batch > 1) return !bufs.bias && !dims.gelu && this.#batchedGemm(f32, dims);
      return this.#splitGemm && this.#gemmSlabs(f32, dims);
    };
  }

  /**
   * Which GEMM runs matmul and how many threads run the other ops, e.g.
   * `"cpu with OpenBLAS (libopenblas.so.0, 2 threads), 2 op threads"`.
   */
  get description(): string {
    const pool = this.#pool;
    const why = pool?.broken ?? this.#noPool;
    const threads = pool && !pool.broken ? `${pool.threads} op threads` : "1 op thread";
    const k = simdKernels();
    const kernels = k?.name === "native"
      ? "native kernels"
      : k
      ? `WebAssembly SIMD kernels (native: ${nativeUnavailableReason() || "off"})`
      : "JS kernels";
    return `cpu with ${this.#gemm.name}, ${threads}, ${kernels}${
      why ? ` (workers unavailable: ${why})` : ""
    }`;
  }

  /** Threads the non-GEMM ops run on (1 when the pool is off or fell back). */
  get threads(): number {
    const pool = this.#pool;
    return pool && !pool.broken ? pool.threads : 1;
  }

  /**
   * Runs pool kernel `op` in static shares when the pool is on and `work` (elements
   * touched) reaches the threshold; false means "run it inline".
   */
  #par(
    op: number,
    bufs: readonly PoolArray[],
    params: readonly number[],
    units: number,
    work: number,
  ): boolean {
    const pool = this.#pool;
    if (pool === null || work < this.#minWork || !(units >= 2) || !Number.isInteger(units)) {
      return false;
    }
    return pool.run(op, bufs, params, units);
  }

  // ---- views ----------------------------------------------------------------

  /** The `Float32Array` view of `t`, after checking it is an f32 tensor of this backend. */
  #f32(op: string, arg: string, t: Tensor, size?: number): Float32Array {
    const data = this.#data(op, arg, t, size);
    if (!(data instanceof Float32Array)) {
      throw new TypeError(`Cannot run ${op}: ${arg} must be an f32 tensor, current dtype is i32`);
    }
    return data;
  }

  /** The `Int32Array` view of `t`, after checking it is an i32 tensor of this backend. */
  #i32(op: string, arg: string, t: Tensor, size?: number): Int32Array {
    const data = this.#data(op, arg, t, size);
    if (!(data instanceof Int32Array)) {
      throw new TypeError(`Cannot run ${op}: ${arg} must be an i32 tensor, current dtype is f32`);
    }
    return data;
  }

  #data(op: string, arg: string, t: Tensor, size?: number): Float32Array | Int32Array {
    if (this.#disposed) throw new TypeError(`Cannot run ${op}: the backend was disposed`);
    const s = t.storage;
    if (!(s instanceof CpuStorage)) {
      throw new TypeError(
        `Cannot run ${op}: ${arg} must live in CPU storage, current storage is "${s.label}"`,
      );
    }
    if (size !== undefined && t.size !== size) {
      throw new RangeError(
        `Cannot run ${op}: ${arg} must have ${size} elements, current value is ${t.size}`,
      );
    }
    if (t.offset < 0 || t.offset + t.size > s.length) {
      throw new RangeError(
        `Cannot run ${op}: ${arg} [${t.offset}, ${
          t.offset + t.size
        }) lies outside its storage of ${s.length}`,
      );
    }
    return s.data.subarray(t.offset, t.offset + t.size);
  }

  // ---- memory -----------------------------------------------------------------

  /** A new zero-filled tensor with its own storage. */
  tensor(shape: readonly number[], dtype: DType = "f32", label = ""): Tensor {
    if (this.#disposed) {
      throw new TypeError(`Cannot create tensor "${label}": the backend was disposed`);
    }
    const size = shapeSize(shape);
    // Shared memory only when a pool may read it: SABs cost a little more to create.
    const buf = this.#pool ? new SharedArrayBuffer(4 * size) : new ArrayBuffer(4 * size);
    const data = dtype === "i32" ? new Int32Array(buf) : new Float32Array(buf);
    return { storage: new CpuStorage(data, label), offset: 0, shape: [...shape], size, dtype };
  }

  /** Copy host data into `t` (same length and dtype). */
  upload(t: Tensor, data: HostArray): void {
    const dst = this.#data("upload", "t", t);
    if (data.length !== t.size) {
      throw new RangeError(
        `Cannot upload ${data.length} elements into a tensor of ${t.size} elements (shape [${t.shape}])`,
      );
    }
    if ((dst instanceof Int32Array) !== (data instanceof Int32Array)) {
      throw new TypeError(
        `Cannot upload ${data.constructor.name} into a tensor of dtype ${t.dtype}`,
      );
    }
    dst.set(data);
  }

  /** A copy of `t`'s elements. */
  download(t: Tensor): Promise<HostArray> {
    return Promise.resolve(this.#data("download", "t", t).slice());
  }

  /** `t = value` for every element. */
  fill(t: Tensor, value: number): void {
    this.#data("fill", "t", t).fill(value);
  }

  /** `dst = src` (same size, same dtype). */
  copy(dst: Tensor, src: Tensor): void {
    const s = this.#data("copy", "src", src);
    const d = this.#data("copy", "dst", dst, src.size);
    if (dst.dtype !== src.dtype) {
      throw new TypeError(
        `Cannot run copy: dst and src must have the same dtype, current values are ${dst.dtype} and ${src.dtype}`,
      );
    }
    d.set(s);
  }

  /** No-op: CPU ops run eagerly. */
  submit(): void {}

  /** Resolves at once: CPU ops run eagerly. */
  sync(): Promise<void> {
    return Promise.resolve();
  }

  /** Marks the backend disposed and stops its workers; later ops throw. Storage is freed by the GC. */
  dispose(): void {
    this.#disposed = true;
    this.#pool?.dispose();
  }

  // ---- dense --------------------------------------------------------------------

  /** See {@link Backend.matmul}. */
  matmul(
    { out, a, b, bias, pre }: { out: Tensor; a: Tensor; b: Tensor; bias?: Tensor; pre?: Tensor },
    dims: MatmulDims,
  ): void {
    const op = "matmul";
    const batch = dims.batch ?? 1;
    const mn = batch * dims.M * dims.N;
    matmulForward(
      {
        out: this.#f32(op, "out", out, mn),
        a: this.#f32(op, "a", a, batch * dims.M * dims.K),
        b: this.#f32(op, "b", b, batch * dims.K * dims.N),
        bias: bias && this.#f32(op, "bias", bias, dims.N),
        pre: pre && this.#f32(op, "pre", pre, mn),
      },
      dims,
      this.#sgemm,
      this.#epilogue,
      this.#split,
    );
  }

  /**
   * Runs pool kernel `op` with OpenBLAS single-threaded on every pool thread (OpenBLAS's
   * own threads stay asleep); false when there is no pool or no OpenBLAS.
   */
  #runBlasShares(op: number, bufs: PoolArray[], params: number[], units: number): boolean {
    const gemm = this.#gemm;
    const pool = this.#pool;
    if (!pool || pool.broken || !gemm.path || !gemm.setThreads) return false;
    setThreadGemm(this.#sgemm);
    gemm.setThreads(1);
    try {
      return pool.run(op, bufs, params, units);
    } finally {
      gemm.setThreads(gemm.threads ?? 1);
    }
  }

  /**
   * One checked product split over the pool in slabs of rows (or of columns when there
   * are few rows), one single-threaded OpenBLAS call per thread, the epilogue fused into
   * each row slab. False (nothing run) for a small product, or with no pool or OpenBLAS.
   */
  #gemmSlabs(
    { out, a, b, bias, pre }: F32MatmulBufs,
    dims: Required<MatmulDims>,
  ): boolean {
    const { M, N, K: k, gelu } = dims;
    const T = this.#pool?.threads ?? 1;
    if (M * N * k < SPLIT_GEMM_MIN) return false;
    const byCols = M < 16 * T && N >= 16 * T;
    if (!byCols && M < 2 * T) return false;
    const p = [
      M,
      N,
      k,
      dims.transA ? 1 : 0,
      dims.transB ? 1 : 0,
      dims.accumulate ? 1 : 0,
      byCols ? 1 : 0,
      bias ? 1 : 0,
      pre ? 1 : 0,
      gelu ? 1 : 0,
    ];
    const list: PoolArray[] = [out, a, b];
    if (bias) list.push(bias);
    if (pre) list.push(pre);
    const ran = this.#runBlasShares(K.gemmSlab, list, p, byCols ? N : M);
    if (ran && byCols && (bias || gelu)) this.#epilogue({ c: out, bias, pre }, { M, N, gelu });
    return ran;
  }

  /**
   * A batch of small products (attention) split over the pool, each thread calling
   * OpenBLAS single-threaded: one multithreaded call per small product spends more on
   * waking and joining OpenBLAS's threads than on the product (measured: 65×65×64 runs
   * at 31 GFLOP/s on 2 threads, 69 on 1). False when there is no pool or no OpenBLAS.
   */
  #batchedGemm(
    { out, a, b }: { out: Float32Array; a: Float32Array; b: Float32Array },
    dims: Required<MatmulDims>,
  ): boolean {
    const { M, N, K: k, batch } = dims;
    if (M * N * k > BATCHED_GEMM_MAX) return false;
    const p = [M, N, k, dims.transA ? 1 : 0, dims.transB ? 1 : 0, dims.accumulate ? 1 : 0];
    return this.#runBlasShares(K.batchedGemm, [out, a, b], p, batch);
  }

  /** See {@link Backend.biasGrad}. */
  biasGrad(
    { dbias, dout }: { dbias: Tensor; dout: Tensor },
    dims: { rows: number; C: number },
  ): void {
    const op = "biasGrad";
    const db = this.#f32(op, "dbias", dbias, dims.C);
    const d = this.#f32(op, "dout", dout, dims.rows * dims.C);
    const { rows, C } = dims;
    const gemv = this.#gemm.sgemvT;
    if (gemv && rows * C >= this.#minWork) {
      // OpenBLAS's multithreaded sgemv: dbias += doutᵀ·1 (6× the pool's JS column sums).
      if (this.#ones.length < rows) this.#ones = new Float32Array(rows).fill(1);
      gemv({ rows, cols: C, a: d, x: this.#ones, beta: 1, y: db });
      return;
    }
    const T = this.#pool?.threads ?? 1;
    const part = this.#pool?.scratch(T * C);
    if (part && C >= 1 && this.#par(K.biasGrad, [part, d], [C], rows, rows * C)) {
      addPartials(db, part, T, C);
      return;
    }
    biasGrad({ dbias: db, dout: d }, dims);
  }

  // ---- elementwise ----------------------------------------------------------------

  /** See {@link Backend.add}. */
  add({ out, a, b }: { out: Tensor; a: Tensor; b: Tensor }): void {
    const op = "add";
    const o = this.#f32(op, "out", out, a.size);
    const x = this.#f32(op, "a", a);
    const y = this.#f32(op, "b", b);
    const [n, m] = [x.length, y.length];
    // Same size: split elements; broadcast: split whole copies of b.
    const unit = m === n ? 1 : m;
    if (m > 0 && n % m === 0 && this.#par(K.add, [o, x, y], [unit], n / unit, n)) return;
    add({ out: o, a: x, b: y });
  }

  /** See {@link Backend.gelu}. */
  gelu({ out, inp }: { out: Tensor; inp: Tensor }): void {
    const o = this.#f32("gelu", "out", out, inp.size);
    const i = this.#f32("gelu", "inp", inp);
    if (this.#par(K.gelu, [o, i], [], i.length, 4 * i.length)) return;
    geluForward({ out: o, inp: i });
  }

  /** See {@link Backend.geluBackward}. */
  geluBackward({ dinp, dout, inp }: { dinp: Tensor; dout: Tensor; inp: Tensor }): void {
    const op = "geluBackward";
    const bufs = {
      dinp: this.#f32(op, "dinp", dinp, inp.size),
      dout: this.#f32(op, "dout", dout, inp.size),
      inp: this.#f32(op, "inp", inp),
    };
    const n = inp.size;
    if (this.#par(K.geluBackward, [bufs.dinp, bufs.dout, bufs.inp], [], n, 4 * n)) return;
    geluBackward(bufs);
  }

  /** See {@link Backend.scaleRows}. */
  scaleRows(
    { out, inp, scale }: { out: Tensor; inp: Tensor; scale: Tensor },
    dims: { rows: number; C: number },
  ): void {
    const op = "scaleRows";
    const n = dims.rows * dims.C;
    const bufs = {
      out: this.#f32(op, "out", out, n),
      inp: this.#f32(op, "inp", inp, n),
      scale: this.#f32(op, "scale", scale, dims.rows),
    };
    if (this.#par(K.scaleRows, [bufs.out, bufs.inp, bufs.scale], [dims.C], dims.rows, n)) return;
    scaleRows(bufs, dims);
  }

  // ---- normalisation --------------------------------------------------------------

  /** See {@link Backend.layernorm}. */
  layernorm(
    { out, mean, rstd, inp, weight, bias }: {
      out: Tensor;
      mean: Tensor;
      rstd: Tensor;
      inp: Tensor;
      weight: Tensor;
      bias: Tensor;
    },
    dims: { rows: number; C: number; eps: number },
  ): void {
    const op = "layernorm";
    const { rows, C } = dims;
    const b = {
      out: this.#f32(op, "out", out, rows * C),
      mean: this.#f32(op, "mean", mean, rows),
      rstd: this.#f32(op, "rstd", rstd, rows),
      inp: this.#f32(op, "inp", inp, rows * C),
      weight: this.#f32(op, "weight", weight, C),
      bias: this.#f32(op, "bias", bias, C),
    };
    const list = [b.out, b.mean, b.rstd, b.inp, b.weight, b.bias];
    if (this.#par(K.layernorm, list, [C, dims.eps], rows, 2 * rows * C)) return;
    layernormForward(b, dims);
  }

  /** See {@link Backend.layernormBackward}. */
  layernormBackward(
    { dinp, dweight, dbias, dout, inp, weight, mean, rstd }: {
      dinp: Tensor;
      dweight: Tensor;
      dbias: Tensor;
      dout: Tensor;
      inp: Tensor;
      weight: Tensor;
      mean: Tensor;
      rstd: Tensor;
    },
    dims: { rows: number; C: number; accumulate?: boolean },
  ): void {
    const op = "layernormBackward";
    const { rows, C } = dims;
    const b = {
      dinp: this.#f32(op, "dinp", dinp, rows * C),
      dweight: this.#f32(op, "dweight", dweight, C),
      dbias: this.#f32(op, "dbias", dbias, C),
      dout: this.#f32(op, "dout", dout, rows * C),
      inp: this.#f32(op, "inp", inp, rows * C),
      weight: this.#f32(op, "weight", weight, C),
      mean: this.#f32(op, "mean", mean, rows),
      rstd: this.#f32(op, "rstd", rstd, rows),
    };
    const T = this.#pool?.threads ?? 1;
    // partials (T, 2, C): share t's dweight then dbias sums, added here in share order
    const part = this.#pool?.scratch(2 * T * C);
    if (part && C >= 1) {
      const list = [b.dinp, part, b.dout, b.inp, b.weight, b.mean, b.rstd];
      if (this.#par(K.layernormBackward, list, [C, dims.accumulate ? 1 : 0], rows, 3 * rows * C)) {
        for (let c = 0; c < C; c++) {
          let sw = 0;
          let sb = 0;
          for (let t = 0; t < T; t++) {
            sw += part[2 * t * C + c];
            sb += part[(2 * t + 1) * C + c];
          }
          b.dweight[c] += sw;
          b.dbias[c] += sb;
        }
        return;
      }
    }
    layernormBackward(b, dims);
  }

  /** See {@link Backend.standardizeRows}. */
  standardizeRows(
    { out, inp }: { out: Tensor; inp: Tensor },
    dims: { rows: number; C: number; eps: number },
  ): void {
    const op = "standardizeRows";
    const n = dims.rows * dims.C;
    const o = this.#f32(op, "out", out, n);
    const i = this.#f32(op, "inp", inp, n);
    if (dims.C >= 2 && this.#par(K.standardizeRows, [o, i], [dims.C, dims.eps], dims.rows, n)) {
      return;
    }
    standardizeRows({ out: o, inp: i }, dims);
  }

  // ---- attention --------------------------------------------------------------------

  /** See {@link Backend.softmax}. */
  softmax(
    { out, inp }: { out: Tensor; inp: Tensor },
    dims: { rows: number; C: number; scale: number },
  ): void {
    const op = "softmax";
    const n = dims.rows * dims.C;
    const o = this.#f32(op, "out", out, n);
    const i = this.#f32(op, "inp", inp, n);
    if (this.#par(K.softmax, [o, i], [dims.C, dims.scale], dims.rows, 2 * n)) return;
    softmaxForward({ out: o, inp: i }, dims);
  }

  /** See {@link Backend.softmaxBackward}. */
  softmaxBackward(
    { dinp, dout, out }: { dinp: Tensor; dout: Tensor; out: Tensor },
    dims: { rows: number; C: number; scale: number },
  ): void {
    const op = "softmaxBackward";
    const n = dims.rows * dims.C;
    const b = {
      dinp: this.#f32(op, "dinp", dinp, n),
      dout: this.#f32(op, "dout", dout, n),
      out: this.#f32(op, "out", out, n),
    };
    const p = [dims.C, dims.scale];
    if (this.#par(K.softmaxBackward, [b.dinp, b.dout, b.out], p, dims.rows, 3 * n)) return;
    softmaxBackward(b, dims);
  }

  /** See {@link Backend.splitHeads}. */
  splitHeads(
    { q, k, v, qkv }: { q: Tensor; k: Tensor; v: Tensor; qkv: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    const op = "splitHeads";
    const n = dims.B * dims.N * dims.NH * dims.HS;
    const b = {
      q: this.#f32(op, "q", q, n),
      k: this.#f32(op, "k", k, n),
      v: this.#f32(op, "v", v, n),
      qkv: this.#f32(op, "qkv", qkv, 3 * n),
    };
    const p = [dims.N, dims.NH, dims.HS];
    if (this.#par(K.splitHeads, [b.q, b.k, b.v, b.qkv], p, dims.B, 6 * n)) return;
    splitHeadsForward(b, dims);
  }

  /** See {@link Backend.splitHeadsBackward}. */
  splitHeadsBackward(
    { dqkv, dq, dk, dv }: { dqkv: Tensor; dq: Tensor; dk: Tensor; dv: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    const op = "splitHeadsBackward";
    const n = dims.B * dims.N * dims.NH * dims.HS;
    const b = {
      dqkv: this.#f32(op, "dqkv", dqkv, 3 * n),
      dq: this.#f32(op, "dq", dq, n),
      dk: this.#f32(op, "dk", dk, n),
      dv: this.#f32(op, "dv", dv, n),
    };
    const p = [dims.N, dims.NH, dims.HS];
    if (this.#par(K.splitHeadsBackward, [b.dqkv, b.dq, b.dk, b.dv], p, dims.B, 6 * n)) return;
    splitHeadsBackward(b, dims);
  }

  /** See {@link Backend.mergeHeads}. */
  mergeHeads(
    { out, inp }: { out: Tensor; inp: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    const op = "mergeHeads";
    const n = dims.B * dims.N * dims.NH * dims.HS;
    const o = this.#f32(op, "out", out, n);
    const i = this.#f32(op, "inp", inp, n);
    if (this.#par(K.mergeHeads, [o, i], [dims.N, dims.NH, dims.HS], dims.B, 2 * n)) return;
    mergeHeadsForward({ out: o, inp: i }, dims);
  }

  /** See {@link Backend.mergeHeadsBackward}. */
  mergeHeadsBackward(
    { dinp, dout }: { dinp: Tensor; dout: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    const op = "mergeHeadsBackward";
    const n = dims.B * dims.N * dims.NH * dims.HS;
    const di = this.#f32(op, "dinp", dinp, n);
    const d = this.#f32(op, "dout", dout, n);
    if (this.#par(K.mergeHeadsBackward, [di, d], [dims.N, dims.NH, dims.HS], dims.B, 2 * n)) {
      return;
    }
    mergeHeadsBackward({ dinp: di, dout: d }, dims);
  }

  // ---- rows -----------------------------------------------------------------------------

  /** See {@link Backend.gatherRows}. */
  gatherRows(
    { out, inp, index, fill }: { out: Tensor; inp: Tensor; index: Tensor; fill?: Tensor },
    dims: { rows: number; C: number },
  ): void {
    const op = "gatherRows";
    const b = {
      out: this.#f32(op, "out", out, dims.rows * dims.C),
      inp: this.#f32(op, "inp", inp),
      index: this.#i32(op, "index", index, dims.rows),
      fill: fill && this.#f32(op, "fill", fill, dims.C),
    };
    const list: PoolArray[] = [b.out, b.inp, b.index];
    if (b.fill) list.push(b.fill);
    if (this.#par(K.gatherRows, list, [dims.C], dims.rows, 2 * dims.rows * dims.C)) return;
    gatherRowsForward(b, dims);
  }

  /** See {@link Backend.gatherRowsBackward}. */
  gatherRowsBackward(
    { dinp, dfill, dout, index }: { dinp: Tensor; dfill?: Tensor; dout: Tensor; index: Tensor },
    dims: { rows: number; C: number },
  ): void {
    const op = "gatherRowsBackward";
    gatherRowsBackward(
      {
        dinp: this.#f32(op, "dinp", dinp),
        dfill: dfill && this.#f32(op, "dfill", dfill, dims.C),
        dout: this.#f32(op, "dout", dout, dims.rows * dims.C),
        index: this.#i32(op, "index", index, dims.rows),
      },
      dims,
    );
  }

  /** See {@link Backend.patchify}. */
  patchify(
    { out, inp }: { out: Tensor; inp: Tensor },
    dims: { B: number; C: number; H: number; W: number; P: number },
  ): void {
    const op = "patchify";
    const n = dims.B * dims.C * dims.H * dims.W;
    const o = this.#f32(op, "out", out, n);
    const i = this.#f32(op, "inp", inp, n);
    const { C, H, W, P } = dims;
    const ok = Number.isInteger(P) && P >= 1 && H % P === 0 && W % P === 0;
    if (ok && this.#par(K.patchify, [o, i], [C, H, W, P], dims.B, 2 * n)) return;
    patchify({ out: o, inp: i }, dims);
  }

  // ---- losses ------------------------------------------------------------------------------

  /** See {@link Backend.smoothL1Loss}. */
  smoothL1Loss(
    { loss, dinp, inp, target, weight }: {
      loss: Tensor;
      dinp: Tensor;
      inp: Tensor;
      target: Tensor;
      weight: Tensor;
    },
    dims: { rows: number; C: number; beta: number },
  ): void {
    const op = "smoothL1Loss";
    const n = dims.rows * dims.C;
    smoothL1Loss(
      {
        loss: this.#f32(op, "loss", loss, 1),
        dinp: this.#f32(op, "dinp", dinp, n),
        inp: this.#f32(op, "inp", inp, n),
        target: this.#f32(op, "target", target, n),
        weight: this.#f32(op, "weight", weight, dims.rows),
      },
      dims,
    );
  }

  /** See {@link Backend.cosineLoss}. */
  cosineLoss(
    { loss, dinp, inp, target, weight }: {
      loss: Tensor;
      dinp: Tensor;
      inp: Tensor;
      target: Tensor;
      weight: Tensor;
    },
    dims: { rows: number; C: number },
  ): void {
    const op = "cosineLoss";
    const n = dims.rows * dims.C;
    cosineLoss(
      {
        loss: this.#f32(op, "loss", loss, 1),
        dinp: this.#f32(op, "dinp", dinp, n),
        inp: this.#f32(op, "inp", inp, n),
        target: this.#f32(op, "target", target, n),
        weight: this.#f32(op, "weight", weight, dims.rows),
      },
      dims,
    );
  }

  /** See {@link Backend.crossEntropyLoss}. */
  crossEntropyLoss(
    { loss, dlogits, logits, target }: {
      loss: Tensor;
      dlogits: Tensor;
      logits: Tensor;
      target: Tensor;
    },
    dims: { rows: number; C: number },
  ): void {
    const op = "crossEntropyLoss";
    const n = dims.rows * dims.C;
    crossEntropyLoss(
      {
        loss: this.#f32(op, "loss", loss, 1),
        dlogits: this.#f32(op, "dlogits", dlogits, n),
        logits: this.#f32(op, "logits", logits, n),
        target: this.#f32(op, "target", target, n),
      },
      dims,
    );
  }

  // ---- optimiser ------------------------------------------------------------------------------

  /** See {@link Backend.gradNorm}. */
  gradNorm(
    { norm, clipScale, grad }: { norm: Tensor; clipScale: Tensor; grad: Tensor },
    dims: { maxNorm: number },
  ): void {
    const op = "gradNorm";
    const b = {
      norm: this.#f32(op, "norm", norm, 1),
      clipScale: this.#f32(op, "clipScale", clipScale, 1),
      grad: this.#f32(op, "grad", grad),
    };
    const T = this.#pool?.threads ?? 1;
    const part = this.#pool?.scratch(T);
    const n = b.grad.length;
    if (part && dims.maxNorm > 0 && this.#par(K.gradNorm, [part, b.grad], [], n, n)) {
      let ss = 0;
      for (let t = 0; t < T; t++) ss += part[t];
      b.norm[0] = Math.sqrt(ss);
      b.clipScale[0] = clipFactor(b.norm[0], dims.maxNorm);
      return;
    }
    gradNorm(b, dims);
  }

  /** See {@link Backend.adamw}. */
  adamw(
    { param, grad, m, v, offsets, hyper, clipScale }: {
      param: Tensor;
      grad: Tensor;
      m: Tensor;
      v: Tensor;
      offsets: Tensor;
      hyper: Tensor;
      clipScale?: Tensor;
    },
    dims: { lr: number; beta1: number; beta2: number; eps: number; step: number },
  ): void {
    const op = "adamw";
    const n = param.size;
    const S = offsets.size - 1;
    const b = {
      param: this.#f32(op, "param", param),
      grad: this.#f32(op, "grad", grad, n),
      m: this.#f32(op, "m", m, n),
      v: this.#f32(op, "v", v, n),
      offsets: this.#i32(op, "offsets", offsets),
      hyper: this.#f32(op, "hyper", hyper, 2 * S),
      clipScale: clipScale && this.#f32(op, "clipScale", clipScale, 1),
    };
    const list: PoolArray[] = [b.param, b.grad, b.m, b.v, b.offsets, b.hyper];
    if (b.clipScale) list.push(b.clipScale);
    const p = [dims.lr, dims.beta1, dims.beta2, dims.eps, dims.step];
    if (this.#par(K.adamw, list, p, n, 4 * n)) return;
    adamw(b, dims);
  }
}

/** `dst[c] += Σ_t part[t·C + c]`, summed in f64 in share order (deterministic for a given T). */
function addPartials(dst: Float32Array, part: Float64Array, T: number, C: number): void {
  for (let c = 0; c < C; c++) {
    let sum = 0;
    for (let t = 0; t < T; t++) sum += part[t * C + c];
    dst[c] += sum;
  }
}
