/**
 * The CPU {@link Backend}: ops over `Float32Array`/`Int32Array` storage, in three layers
 * kept apart:
 * - the reference loops of `ref/` (plain TypeScript, generic over f32/f64), which every
 *   other path is tested against;
 * - fast f32 kernels (WebAssembly SIMD, or native C when built) handed in as an object
 *   ({@link CpuBackendOptions.kernels}; see `kernels.ts`), never a process-global switch;
 * - GEMM: the best that loads (OpenBLAS `sgemm`, WebAssembly SIMD, TypeScript; see
 *   `gemm.ts`), or the reference loops.
 * Ops run eagerly; `submit` is a no-op and `sync` resolves at once.
 *
 * With `threads > 1` storage lives on `SharedArrayBuffer`s and the non-GEMM ops above a
 * work threshold run in shares on a {@link CpuPool} of workers (see `pool.ts`) that run
 * the same kernels: the same thread count gives bit-identical results run to run;
 * `threads: 1` runs every op inline. {@link CpuBackend.reference} is the plain reference:
 * reference loops and GEMM, one thread.
 *
 * @module
 */
import { describeBackend, shapeSize } from "../backend.ts";
import type {
  AdamwBufs,
  AdamwDims,
  AddBufs,
  AttentionBackwardBufs,
  AttentionBufs,
  AttentionDims,
  Backend,
  BackendFacts,
  BiasGradBufs,
  CosineDims,
  CrossEntropyBufs,
  DType,
  GatherRowsBackwardBufs,
  GatherRowsBufs,
  GeluBackwardBufs,
  GradNormBufs,
  GradNormDims,
  HeadDims,
  HostArray,
  LayernormBackwardBufs,
  LayernormBackwardDims,
  LayernormBufs,
  MatmulBufs,
  MatmulDims,
  MergeHeadsBackwardBufs,
  NormDims,
  OutInpBufs,
  PatchifyDims,
  RelPosBiasBackwardBufs,
  RelPosBiasBufs,
  RelPosDims,
  RowLossBufs,
  RowsDims,
  ScaleColsBackwardBufs,
  ScaleColsBufs,
  ScaleRowsBufs,
  SmoothL1Dims,
  SoftmaxBackwardBufs,
  SoftmaxDims,
  SplitHeadsBackwardBufs,
  SplitHeadsBufs,
  Storage,
  Tensor,
} from "../backend.ts";
import {
  checkAdamw,
  checkAdd,
  checkAttention,
  checkAttentionBackward,
  checkBiasGrad,
  checkCrossEntropy,
  checkDtype,
  checkGatherRows,
  checkGatherRowsBackward,
  checkGelu,
  checkGeluBackward,
  checkGradNorm,
  checkLayernorm,
  checkLayernormBackward,
  checkMatmul,
  checkMergeHeads,
  checkMergeHeadsBackward,
  checkPatchify,
  checkRowLoss,
  checkScaleRows,
  checkSize,
  checkSoftmax,
  checkSoftmaxBackward,
  checkSplitHeads,
  checkSplitHeadsBackward,
  checkStandardizeRows,
} from "../checks.ts";
import { isOpenBlas, loadGemm, type NativeGemmUse, withNativeGemm } from "./gemm.ts";
import type { Gemm } from "./gemm_types.ts";
import {
  type CpuKernels,
  type KernelChoice,
  type KernelOps,
  kernelOps,
  loadKernels,
  withGemm,
} from "./kernels.ts";
import { composedAttention, composedAttentionBackward } from "../attention.ts";
import { attentionBackwardUnits, attentionUnits } from "./attention.ts";
import { attentionBackward, attentionForward } from "./ref/attention.ts";
import { cosineLoss } from "./ref/cosine_loss.ts";
import { crossEntropyLoss } from "./ref/cross_entropy.ts";
import { clipFactor, gradNorm } from "./ref/grad_norm.ts";
import {
  mergeHeadsBackward,
  mergeHeadsForward,
  splitHeadsBackward,
  splitHeadsForward,
} from "./ref/heads.ts";
import { gemmRef, matmulForward } from "./ref/matmul.ts";
import type { MatmulEpilogue, SplitMatmul } from "./ref/matmul.ts";
import { gatherRowsBackward, gatherRowsForward } from "./ref/rows.ts";
import { quickGeluBackward, quickGeluForward } from "./ref/quickgelu.ts";
import { relPosBiasBackward, relPosBiasForward } from "./ref/relpos.ts";
import { relPosBiasBackwardFast, relPosBiasFast } from "./relpos.ts";
import { scaleColsBackward, scaleColsForward } from "./ref/scale_cols.ts";
import { CpuPool } from "./pool.ts";
import type { PoolBufs, PoolOpName, PoolParams } from "./pool_ops.ts";

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
  /**
   * GEMM to use: `"auto"` (default: OpenBLAS when it loads, with the native kernels' GEMM
   * for the small-K products where those kernels are built and the CPU has AVX2 + FMA; else
   * that native GEMM for every product, else the WebAssembly SIMD GEMM; see `withNativeGemm`
   * in `gemm.ts`), `"openblas"` (OpenBLAS alone, required), `"native"` (the native GEMM for
   * every product, required), `"wasm"` (the WebAssembly SIMD GEMM of `wasm_gemm/`), `"ts"`
   * (the blocked TypeScript GEMM) or `"ref"` (the reference loops of `ref/matmul.ts`).
   */
  gemm?: "auto" | "openblas" | "native" | "wasm" | "ts" | "ref";
  /**
   * The fast f32 kernels of the elementwise and row ops: a choice (`"auto"`, default:
   * native when built, else WebAssembly SIMD; `"native"`; `"wasm"`; `"js"`: the reference
   * loops) or a loaded kernel set (see `kernels.ts`; with native kernels from another
   * path, give {@link CpuBackendOptions.nativeLibrary} too). The worker pool loads the same.
   */
  kernels?: KernelChoice | CpuKernels;
  /**
   * Path of the native kernels library (`libdbot_cpu.so`; default: `native/build/` of
   * this checkout). The tasks' `--native-lib` flag sets it.
   */
  nativeLibrary?: string;
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

/** Smallest `M·N·K` that {@link CpuBackendOptions.splitGemm} splits over the threads. */
export const SPLIT_GEMM_MIN = 1 << 16;

/** The f32 views of a record of tensors (optional ones stay optional). */
type F32Views<T> = {
  [k in keyof T]: T[k] extends Tensor ? Float32Array : Float32Array | undefined;
};

/** Pre-training step speed-up of the native kernels over the WebAssembly ones (README). */
const NATIVE_SPEEDUP = 1.2;

/** The reference GEMM as a {@link Gemm}. */
const REF_GEMM: Gemm = Object.freeze({ name: "reference GEMM", sgemm: gemmRef });

/**
 * The CPU backend.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "./backend.ts";
 * const be = new CpuBackend({ gemm: "ts", kernels: "wasm" });
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
  readonly #ops: KernelOps;
  readonly #nativeReason: string;
  readonly #epilogue: MatmulEpilogue;
  readonly #split: SplitMatmul;
  readonly #splitGemm: boolean;
  #ones = new Float32Array(0);
  readonly #pool: CpuPool | null;
  readonly #noPool: string;
  readonly #minWork: number;
  #disposed = false;
  readonly #freed = new Map<number, ArrayBufferLike[]>(); // freed buffers by byte length
  readonly #freedStorages = new WeakSet<CpuStorage>();

  /**
   * Loads the GEMM (`options.gemm`, default `"auto"`) and the kernels (`options.kernels`,
   * default `"auto"`) and, with more than one thread, prepares the worker pool (workers
   * start on the first op big enough to split).
   */
  constructor(options: CpuBackendOptions = {}) {
    const threads = options.threads ?? navigator.hardwareConcurrency ?? 1;
    if (!Number.isInteger(threads) || threads < 1) {
      throw new RangeError(
        `Cannot create CpuBackend: threads must be an integer >= 1, current value is ${threads}`,
      );
    }
    const choice = options.kernels ?? "auto";
    const loaded = typeof choice === "string"
      ? loadKernels(choice, options.nativeLibrary)
      : { kernels: choice, nativeReason: "" };
    const want = options.gemm ?? "auto";
    const base = want === "ref" ? REF_GEMM : loadGemm(want === "native" ? "wasm" : want);
    // "auto": the native GEMM where it is built (and AVX2 is there) for the small-K
    // products beside OpenBLAS, or for every product instead of the WebAssembly GEMM
    const use: NativeGemmUse | undefined =
      want === "native" || (want === "auto" && !isOpenBlas(base))
        ? "all"
        : want === "auto"
        ? "small"
        : undefined;
    this.#gemm = use ? withNativeGemm(base, loaded.kernels, use) : base;
    if (want === "native" && this.#gemm === base) {
      throw new Error(
        `Cannot use the native GEMM: ${loaded.nativeReason || "this CPU has no AVX2 and FMA"}`,
      );
    }
    const gemm = this.#gemm;
    this.#sgemm = (args) => gemm.sgemm(args);
    this.#ops = withGemm(kernelOps(loaded.kernels), gemm); // the main thread's pool shares use this GEMM
    this.#nativeReason = loaded.nativeReason;
    this.#minWork = options.minParallelWork ?? DEFAULT_MIN_PARALLEL_WORK;
    this.#splitGemm = options.splitGemm ?? true;
    const pool = threads > 1
      ? CpuPool.create(threads, {
        ops: this.#ops,
        nativeLibrary: options.nativeLibrary,
        blasPath: gemm.path,
        nativeGemm: gemm !== base ? use : undefined,
      })
      : null;
    this.#pool = pool instanceof CpuPool ? pool : null;
    this.#noPool = pool && !(pool instanceof CpuPool) ? pool.reason : "";
    this.#epilogue = (bufs, dims) => {
      const { c, bias, pre } = bufs as { c: Float32Array; bias?: Float32Array; pre?: Float32Array };
      const p = { N: dims.N, gelu: dims.gelu ? 1 : 0 };
      if (!this.#par("matmulEpilogue", { c, bias, pre }, p, dims.M, dims.M * dims.N)) {
        this.#ops.matmulEpilogue(bufs, dims);
      }
    };
    // Plain batches (attention) split by product; single products by slab (see below).
    this.#split = (bufs, dims) => {
      const f32 = bufs as MatmulBufs<Float32Array>; // this backend's views are all f32 (#f32)
      if (dims.batch > 1) return !bufs.bias && !dims.gelu && this.#batchedGemm(f32, dims);
      return this.#splitGemm && this.#gemmSlabs(f32, dims);
    };
  }

  /**
   * The plain reference: the reference loops of `ref/` (GEMM included), no fast kernels,
   * one thread. WebGPU kernels and the fast CPU paths are tested against it.
   */
  static reference(): CpuBackend {
    return new CpuBackend({ gemm: "ref", kernels: "js", threads: 1 });
  }

  /**
   * {@link describeBackend} of {@link CpuBackend.facts}: which GEMM runs matmul, how many
   * threads run the other ops, which kernels, and what would be faster, e.g.
   * `"cpu: WebAssembly SIMD GEMM, 2 threads, native kernels; OpenBLAS not found (…)"`.
   */
  get description(): string {
    return describeBackend(this.facts);
  }

  /** The GEMM, threads and kernels as fields; what would be faster; the loader errors. */
  get facts(): BackendFacts {
    const gemm = this.#gemm;
    const hints: string[] = [];
    const details = [`GEMM: ${gemm.name}`, ...(gemm.tried ?? []).map((t) => `tried ${t}`)];
    if (gemm.note) hints.push(gemm.note);
    const native = this.#nativeReason.replace(/(Could not open library: )+/g, "");
    if (this.#ops.name === "wasm" && native) {
      details.push(`native kernels: ${native}`);
      if (native.includes("no FFI permission")) {
        hints.push("native kernels off (no --allow-ffi for native/build/)");
      } else if (native.includes("did not load")) {
        const built = !/No such file|cannot find|not found/i.test(native);
        hints.push(
          `native kernels ${built ? "did not load" : "not built"} ` +
            `(deno task build-native: ~${NATIVE_SPEEDUP}× faster step)`,
        );
      }
    }
    const why = this.#pool?.broken ?? this.#noPool;
    if (why) details.push(`workers unavailable: ${why}`);
    return {
      name: "cpu",
      engine: gemm.name.replace(/ \(.*$/, ""),
      threads: this.threads,
      kernels: this.#ops.name,
      hints,
      details,
    };
  }

  /** Threads the non-GEMM ops run on (1 when the pool is off or fell back). */
  get threads(): number {
    const pool = this.#pool;
    return pool && !pool.broken ? pool.threads : 1;
  }

  /** Ops run in shares on the pool so far (the rest ran inline); 0 without a pool. */
  get poolDispatches(): number {
    return this.#pool?.dispatches ?? 0;
  }

  /** Which fast kernels the ops run: `"native"`, `"wasm"` or `"js"` (the reference loops). */
  get kernels(): "native" | "wasm" | "js" {
    return this.#ops.name;
  }

  /**
   * Runs pool op `name` when the pool is on and `work` (elements touched) reaches the
   * threshold; false means "run it inline".
   */
  #par<N extends PoolOpName>(
    name: N,
    bufs: PoolBufs<N>,
    params: PoolParams<N>,
    units: number,
    work: number,
  ): boolean {
    const pool = this.#pool;
    if (pool === null || work < this.#minWork || !(units >= 2) || !Number.isInteger(units)) {
      return false;
    }
    return pool.run(name, bufs, params, units);
  }

  // ---- views ----------------------------------------------------------------

  /** The `Float32Array` view of `t`, after checking it is an f32 tensor of this backend. */
  #f32(op: string, arg: string, t: Tensor): Float32Array {
    checkDtype(op, arg, t, "f32");
    return this.#data(op, arg, t) as Float32Array;
  }

  /** The `Int32Array` view of `t`, after checking it is an i32 tensor of this backend. */
  #i32(op: string, arg: string, t: Tensor): Int32Array {
    checkDtype(op, arg, t, "i32");
    return this.#data(op, arg, t) as Int32Array;
  }

  /** Views of every tensor of `ts` (f32), keyed like `ts`; absent ones stay absent. */
  #views<T extends Partial<Record<keyof T, Tensor>>>(op: string, ts: T): F32Views<T> {
    const out: Record<string, Float32Array> = {};
    for (const k in ts) {
      const t = ts[k] as Tensor | undefined;
      if (t) out[k] = this.#f32(op, k, t);
    }
    return out as F32Views<T>;
  }

  #data(op: string, arg: string, t: Tensor): Float32Array | Int32Array {
    if (this.#disposed) throw new TypeError(`Cannot run ${op}: the backend was disposed`);
    const s = t.storage;
    if (!(s instanceof CpuStorage)) {
      throw new TypeError(
        `Cannot run ${op}: ${arg} must live in CPU storage, current storage is "${s.label}"`,
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
    // a freed buffer of the same size first (zeroed), so a model rebuilt at a stage switch
    // reuses its predecessor's memory instead of waiting for the garbage collector
    const reused = this.#freed.get(4 * size)?.pop();
    if (reused) new Uint8Array(reused).fill(0);
    // Shared memory only when a pool may read it: SABs cost a little more to create.
    const buf = reused ??
      (this.#pool ? new SharedArrayBuffer(4 * size) : new ArrayBuffer(4 * size));
    const data = dtype === "i32" ? new Int32Array(buf) : new Float32Array(buf);
    return { storage: new CpuStorage(data, label), offset: 0, shape: [...shape], size, dtype };
  }

  /**
   * Keeps `t`'s buffer for the next {@link CpuBackend.tensor} of the same size (the garbage
   * collector cannot free it while the old model is still referenced, e.g. during a stage
   * switch). Using `t` afterwards aliases that new tensor.
   */
  free(t: Tensor): void {
    const storage = t.storage as CpuStorage;
    if (this.#freedStorages.has(storage)) return; // freeing twice is a no-op
    this.#freedStorages.add(storage);
    const buf = storage.data.buffer;
    const list = this.#freed.get(buf.byteLength) ?? [];
    list.push(buf);
    this.#freed.set(buf.byteLength, list);
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
    checkSize("copy", "dst", dst, src.size);
    const d = this.#data("copy", "dst", dst);
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
    this.#freed.clear();
    this.#work.clear();
    this.#pool?.dispose();
  }

  // ---- dense --------------------------------------------------------------------

  /** See {@link Backend.matmul}. */
  matmul(bufs: MatmulBufs, dims: MatmulDims): void {
    checkMatmul(bufs, dims);
    const { out, a, b, bias, pre } = this.#views("matmul", bufs);
    matmulForward({ out, a, b, bias, pre }, dims, {
      gemm: this.#sgemm,
      epilogue: this.#epilogue,
      split: this.#split,
    });
  }

  /**
   * Runs pool op `op` with OpenBLAS single-threaded (OpenBLAS's own threads stay asleep)
   * or the WebAssembly GEMM on every pool thread; false when there is no pool or the GEMM
   * is the TS one.
   */
  #runBlasShares<N extends "gemmSlab" | "batchedGemm" | "attention" | "attentionBackward">(
    op: N,
    bufs: PoolBufs<N>,
    params: PoolParams<N>,
    units: number,
  ): boolean {
    const gemm = this.#gemm;
    const pool = this.#pool;
    // gemm.path: the workers can open the same GEMM (OpenBLAS or the WebAssembly one)
    if (!pool || pool.broken || !gemm.path) return false;
    gemm.setThreads?.(1);
    try {
      return pool.run(op, bufs, params, units);
    } finally {
      gemm.setThreads?.(gemm.threads ?? 1);
    }
  }

  /**
   * One checked product split over the pool in slabs of rows (or of columns when there
   * are few rows), one single-threaded OpenBLAS call per thread, the epilogue fused into
   * each row slab. False (nothing run) for a small product, or with no pool or OpenBLAS.
   */
  #gemmSlabs(
    { out, a, b, bias, pre }: MatmulBufs<Float32Array>,
    dims: Required<MatmulDims>,
  ): boolean {
    const { M, N, K: k, gelu } = dims;
    const T = this.#pool?.threads ?? 1;
    if (M * N * k < SPLIT_GEMM_MIN) return false;
    const byCols = M < 16 * T && N >= 16 * T;
    if (!byCols && M < 2 * T) return false;
    const p = {
      M,
      N,
      K: k,
      transA: dims.transA ? 1 : 0,
      transB: dims.transB ? 1 : 0,
      beta: dims.accumulate ? 1 : 0,
      byCols: byCols ? 1 : 0,
      // columns slabs leave the epilogue to one pass over the whole product, below
      gelu: gelu && !byCols ? 1 : 0,
    };
    const slabBufs = byCols ? { out, a, b } : { out, a, b, bias, pre };
    const ran = this.#runBlasShares("gemmSlab", slabBufs, p, byCols ? N : M);
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
    { out, a, b }: MatmulBufs<Float32Array>,
    dims: Required<MatmulDims>,
  ): boolean {
    const { M, N, K: k, batch } = dims;
    // big products use OpenBLAS's own threads; a GEMM without threads splits them all
    if (M * N * k > BATCHED_GEMM_MAX && this.#gemm.setThreads) return false;
    const p = {
      M,
      N,
      K: k,
      transA: dims.transA ? 1 : 0,
      transB: dims.transB ? 1 : 0,
      accumulate: dims.accumulate ? 1 : 0,
    };
    return this.#runBlasShares("batchedGemm", { out, a, b }, p, batch);
  }

  /** See {@link Backend.biasGrad}. */
  biasGrad(bufs: BiasGradBufs, dims: RowsDims): void {
    checkBiasGrad(bufs, dims);
    const { dbias: db, dout: d } = this.#views("biasGrad", bufs);
    const { rows, C } = dims;
    const gemv = this.#gemm.sgemvT;
    if (gemv && rows * C >= this.#minWork) {
      // OpenBLAS's sgemv: dbias += doutᵀ·1 (6× the pool's JS column sums; level with the
      // pool's native f64 sums in wall time, 14–16 vs 16–20 ms a vit-micro b256 step, for
      // less CPU time). Single-threaded beside a pool: OpenBLAS's woken threads spin after
      // the call and slow the pool's next op (measured: step CPU time -14% with OpenBLAS at
      // one thread, vit-micro).
      if (this.#ones.length < rows) this.#ones = new Float32Array(rows).fill(1);
      const gemm = this.#gemm;
      if (this.#pool) gemm.setThreads?.(1);
      try {
        gemv({ rows, cols: C, a: d, x: this.#ones, beta: 1, y: db });
      } finally {
        if (this.#pool) gemm.setThreads?.(gemm.threads ?? 1);
      }
      return;
    }
    // without OpenBLAS: each thread's rows summed by the kernels (native: f64 column sums in
    // C, 1.6–2.3× the JS loop's pooled time), the partials added in thread order
    const T = this.#pool?.threads ?? 1;
    const part = this.#pool?.scratch(T * C);
    if (
      part && C >= 1 && this.#par("biasGrad", { partials: part, dout: d }, { C }, rows, rows * C)
    ) {
      addPartials(db, part, T, C);
      return;
    }
    this.#ops.biasGrad({ dbias: db, dout: d }, dims);
  }

  // ---- elementwise ----------------------------------------------------------------

  /** See {@link Backend.add}. */
  add(bufs: AddBufs): void {
    checkAdd(bufs);
    const v = this.#views("add", bufs);
    const [n, m] = [v.a.length, v.b.length];
    // Same size: split elements; broadcast: split whole copies of b.
    const unit = m === n ? 1 : m;
    if (m > 0 && this.#par("add", v, { m: unit }, n / unit, n)) return;
    this.#ops.add(v);
  }

  /** See {@link Backend.gelu}. */
  gelu(bufs: OutInpBufs): void {
    checkGelu(bufs);
    const v = this.#views("gelu", bufs);
    const n = v.inp.length;
    if (this.#par("gelu", v, {}, n, 4 * n)) return;
    this.#ops.geluForward(v);
  }

  /** See {@link Backend.geluBackward}. */
  geluBackward(bufs: GeluBackwardBufs): void {
    checkGeluBackward(bufs);
    const v = this.#views("geluBackward", bufs);
    const n = v.inp.length;
    if (this.#par("geluBackward", v, {}, n, 4 * n)) return;
    this.#ops.geluBackward(v);
  }

  /** See {@link Backend.quickGelu} (f32 loop of `ref/quickgelu.ts`, one thread). */
  quickGelu(bufs: OutInpBufs): void {
    quickGeluForward(this.#views("quickGelu", bufs));
  }

  /** See {@link Backend.quickGeluBackward}. */
  quickGeluBackward(bufs: GeluBackwardBufs): void {
    quickGeluBackward(this.#views("quickGeluBackward", bufs));
  }

  /** See {@link Backend.scaleCols}. */
  scaleCols(bufs: ScaleColsBufs, dims: RowsDims): void {
    scaleColsForward(this.#views("scaleCols", bufs), dims);
  }

  /** See {@link Backend.scaleColsBackward}. */
  scaleColsBackward(bufs: ScaleColsBackwardBufs, dims: RowsDims): void {
    scaleColsBackward(this.#views("scaleColsBackward", bufs), dims);
  }

  /** See {@link Backend.scaleRows}. */
  scaleRows(bufs: ScaleRowsBufs, dims: RowsDims): void {
    checkScaleRows(bufs, dims);
    const v = this.#views("scaleRows", bufs);
    if (this.#par("scaleRows", v, { C: dims.C }, dims.rows, dims.rows * dims.C)) return;
    this.#ops.scaleRows(v, dims);
  }

  // ---- normalisation --------------------------------------------------------------

  /** See {@link Backend.layernorm}. */
  layernorm(bufs: LayernormBufs, dims: NormDims): void {
    checkLayernorm(bufs, dims);
    const v = this.#views("layernorm", bufs);
    const { rows, C } = dims;
    if (this.#par("layernorm", v, { C, eps: dims.eps }, rows, 2 * rows * C)) return;
    this.#ops.layernormForward(v, dims);
  }

  /** See {@link Backend.layernormBackward}. */
  layernormBackward(bufs: LayernormBackwardBufs, dims: LayernormBackwardDims): void {
    checkLayernormBackward(bufs, dims);
    const v = this.#views("layernormBackward", bufs);
    const { rows, C } = dims;
    const T = this.#pool?.threads ?? 1;
    // partials (T, 2, C): share t's dweight then dbias sums, added here in share order
    const part = this.#pool?.scratch(2 * T * C);
    if (part && C >= 1) {
      const p = { C, accumulate: dims.accumulate ? 1 : 0 };
      if (this.#par("layernormBackward", { ...v, partials: part }, p, rows, 3 * rows * C)) {
        for (let c = 0; c < C; c++) {
          let sw = 0;
          let sb = 0;
          for (let t = 0; t < T; t++) {
            sw += part[2 * t * C + c];
            sb += part[(2 * t + 1) * C + c];
          }
          v.dweight[c] += sw;
          v.dbias[c] += sb;
        }
        return;
      }
    }
    this.#ops.layernormBackward(v, dims);
  }

  /** See {@link Backend.standardizeRows}. */
  standardizeRows(bufs: OutInpBufs, dims: NormDims): void {
    checkStandardizeRows(bufs, dims);
    const v = this.#views("standardizeRows", bufs);
    const { rows, C } = dims;
    if (this.#par("standardizeRows", v, { C, eps: dims.eps }, rows, rows * C)) return;
    this.#ops.standardizeRows(v, dims);
  }

  // ---- attention --------------------------------------------------------------------

  /** See {@link Backend.softmax}. */
  softmax(bufs: OutInpBufs, dims: SoftmaxDims): void {
    checkSoftmax(bufs, dims);
    const v = this.#views("softmax", bufs);
    const { rows, C, scale } = dims;
    if (this.#par("softmax", v, { C, scale }, rows, 2 * rows * C)) return;
    this.#ops.softmaxForward(v, dims);
  }

  /** See {@link Backend.softmaxBackward}. */
  softmaxBackward(bufs: SoftmaxBackwardBufs, dims: SoftmaxDims): void {
    checkSoftmaxBackward(bufs, dims);
    const v = this.#views("softmaxBackward", bufs);
    const { rows, C, scale } = dims;
    if (this.#par("softmaxBackward", v, { C, scale }, rows, 3 * rows * C)) return;
    this.#ops.softmaxBackward(v, dims);
  }

  /** See {@link Backend.relPosBias}: the reference loops with `kernels: "js"`, else `relpos.ts`. */
  relPosBias(bufs: RelPosBiasBufs, dims: RelPosDims): void {
    const op = "relPosBias";
    const v = this.#views(op, { out: bufs.out, inp: bufs.inp, table: bufs.table });
    const index = this.#i32(op, "index", bufs.index);
    if (this.#ops.name === "js") relPosBiasForward({ ...v, index }, dims);
    else relPosBiasFast({ ...v, index }, dims);
  }

  /** See {@link Backend.relPosBiasBackward}. */
  relPosBiasBackward(bufs: RelPosBiasBackwardBufs, dims: RelPosDims): void {
    const op = "relPosBiasBackward";
    const v = this.#views(op, { dtable: bufs.dtable, dout: bufs.dout });
    const b = {
      ...v,
      index: this.#i32(op, "index", bufs.index),
      starts: this.#i32(op, "starts", bufs.starts),
      positions: this.#i32(op, "positions", bufs.positions),
    };
    if (this.#ops.name === "js") relPosBiasBackward(b, dims);
    else relPosBiasBackwardFast(b, dims);
  }

  /** See {@link Backend.splitHeads}. */
  splitHeads(bufs: SplitHeadsBufs, dims: HeadDims): void {
    checkSplitHeads(bufs, dims);
    const v = this.#views("splitHeads", bufs);
    const { B, N, NH, HS } = dims;
    if (this.#par("splitHeads", v, { N, NH, HS }, B, 6 * B * N * NH * HS)) return;
    splitHeadsForward(v, dims);
  }

  /** See {@link Backend.splitHeadsBackward}. */
  splitHeadsBackward(bufs: SplitHeadsBackwardBufs, dims: HeadDims): void {
    checkSplitHeadsBackward(bufs, dims);
    const v = this.#views("splitHeadsBackward", bufs);
    const { B, N, NH, HS } = dims;
    if (this.#par("splitHeadsBackward", v, { N, NH, HS }, B, 6 * B * N * NH * HS)) return;
    splitHeadsBackward(v, dims);
  }

  /** See {@link Backend.mergeHeads}. */
  mergeHeads(bufs: OutInpBufs, dims: HeadDims): void {
    checkMergeHeads(bufs, dims);
    const v = this.#views("mergeHeads", bufs);
    const { B, N, NH, HS } = dims;
    if (this.#par("mergeHeads", v, { N, NH, HS }, B, 2 * B * N * NH * HS)) return;
    mergeHeadsForward(v, dims);
  }

  /** See {@link Backend.mergeHeadsBackward}. */
  mergeHeadsBackward(bufs: MergeHeadsBackwardBufs, dims: HeadDims): void {
    checkMergeHeadsBackward(bufs, dims);
    const v = this.#views("mergeHeadsBackward", bufs);
    const { B, N, NH, HS } = dims;
    if (this.#par("mergeHeadsBackward", v, { N, NH, HS }, B, 2 * B * N * NH * HS)) return;
    mergeHeadsBackward(v, dims);
  }

  /**
   * See {@link Backend.attention}: the reference loops with `kernels: "js"`; with native or
   * WebAssembly kernels and no relative position bias, their fused units (scores, softmax
   * and both products of a (sample, head) in one call, no GEMM calls) over the pool
   * (`bench/attention_bench.ts`, vit-micro's attention at batch 256, CPU ms per forward +
   * backward: native 40 vs 58 for per-unit OpenBLAS calls, WebAssembly 87 vs 121 for the
   * head-copy composition); else, with a GEMM that batches small products (the WebAssembly
   * one) the head-copy composition; else one unit per (sample, head) reading q, k, v in
   * place (`attention.ts`), each thread's GEMM single-threaded.
   */
  attention(bufs: AttentionBufs, dims: AttentionDims): void {
    checkAttention(bufs, dims);
    const op = "attention";
    const { out, att, qkv, relTable } = bufs;
    const v = this.#views(op, { out, att, qkv, relTable });
    const a = { ...v, relIndex: bufs.relIndex && this.#i32(op, "relIndex", bufs.relIndex) };
    if (this.#ops.name === "js") return attentionForward(a, dims);
    const { B, N, NH, HS, scale } = dims;
    const p = { B, N, NH, HS, scale };
    if (this.#ops.attentionUnits && !relTable) {
      // the native fused units: no GEMM calls, so no GEMM needed on the pool's threads
      if (!this.#par(op, a, p, B * NH, B * NH * N * (N + 3 * HS))) {
        attentionUnits(a, dims, 0, B * NH, this.#ops);
      }
      return;
    }
    if (this.#gemm.sgemmBatch) return composedAttention(this, bufs, dims, this.#workspace);
    if (this.#runBlasShares(op, a, p, B * NH)) return;
    attentionUnits(a, dims, 0, B * NH, this.#ops);
  }

  /** See {@link Backend.attentionBackward} (the same paths as {@link CpuBackend.attention}). */
  attentionBackward(bufs: AttentionBackwardBufs, dims: AttentionDims): void {
    checkAttentionBackward(bufs, dims);
    const a = this.#views("attentionBackward", bufs);
    if (this.#ops.name === "js") return attentionBackward(a, dims);
    const { B, N, NH, HS, scale } = dims;
    const p = { B, N, NH, HS, scale };
    if (this.#ops.attentionBackwardUnits) {
      if (!this.#par("attentionBackward", a, p, B * NH, B * NH * N * (2 * N + 6 * HS))) {
        attentionBackwardUnits(a, dims, 0, B * NH, this.#ops);
      }
      return;
    }
    if (this.#gemm.sgemmBatch) {
      return composedAttentionBackward(this, bufs, dims, this.#workspace);
    }
    if (this.#runBlasShares("attentionBackward", a, p, B * NH)) return;
    attentionBackwardUnits(a, dims, 0, B * NH, this.#ops);
  }

  /** Workspace of the composed attention: one tensor per name and size (a few shapes a model). */
  readonly #work = new Map<string, Tensor>();
  readonly #workspace = (name: string, size: number): Tensor => {
    const key = `${name}:${size}`;
    let t = this.#work.get(key);
    if (!t) {
      t = this.tensor([size], "f32", `attention.${name}`);
      this.#work.set(key, t);
    }
    return t;
  };

  // ---- rows -----------------------------------------------------------------------------

  /** See {@link Backend.gatherRows}. */
  gatherRows(bufs: GatherRowsBufs, dims: RowsDims): void {
    checkGatherRows(bufs, dims);
    const op = "gatherRows";
    const { out, inp, fill } = this.#views(op, { out: bufs.out, inp: bufs.inp, fill: bufs.fill });
    const index = this.#i32(op, "index", bufs.index);
    const { rows, C } = dims;
    if (this.#par(op, { out, inp, index, fill }, { C }, rows, 2 * rows * C)) return;
    gatherRowsForward({ out, inp, index, fill }, dims);
  }

  /** See {@link Backend.gatherRowsBackward}. */
  gatherRowsBackward(bufs: GatherRowsBackwardBufs, dims: RowsDims): void {
    checkGatherRowsBackward(bufs, dims);
    const op = "gatherRowsBackward";
    const { dinp, dfill, dout } = this.#views(op, {
      dinp: bufs.dinp,
      dfill: bufs.dfill,
      dout: bufs.dout,
    });
    gatherRowsBackward({ dinp, dfill, dout, index: this.#i32(op, "index", bufs.index) }, dims);
  }

  /** See {@link Backend.patchify}. */
  patchify(bufs: OutInpBufs, dims: PatchifyDims): void {
    checkPatchify(bufs, dims);
    const v = this.#views("patchify", bufs);
    const { B, C, H, W, P } = dims;
    if (this.#par("patchify", v, { C, H, W, P }, B, 2 * v.inp.length)) return;
    this.#ops.patchify(v, dims);
  }

  // ---- losses ------------------------------------------------------------------------------

  /** See {@link Backend.smoothL1Loss}. */
  smoothL1Loss(bufs: RowLossBufs, dims: SmoothL1Dims): void {
    checkRowLoss("smoothL1Loss", bufs, dims);
    this.#ops.smoothL1Loss(this.#views("smoothL1Loss", bufs), dims);
  }

  /** See {@link Backend.cosineLoss}. */
  cosineLoss(bufs: RowLossBufs, dims: CosineDims): void {
    checkRowLoss("cosineLoss", bufs, dims);
    cosineLoss(this.#views("cosineLoss", bufs), dims);
  }

  /** See {@link Backend.crossEntropyLoss}. */
  crossEntropyLoss(bufs: CrossEntropyBufs, dims: RowsDims): void {
    checkCrossEntropy(bufs, dims);
    crossEntropyLoss(this.#views("crossEntropyLoss", bufs), dims);
  }

  // ---- optimiser ------------------------------------------------------------------------------

  /** See {@link Backend.gradNorm}. */
  gradNorm(bufs: GradNormBufs, dims: GradNormDims): void {
    checkGradNorm(bufs, dims);
    const v = this.#views("gradNorm", bufs);
    const T = this.#pool?.threads ?? 1;
    const part = this.#pool?.scratch(T);
    const n = v.grad.length;
    if (part && this.#par("gradNorm", { partials: part, grad: v.grad }, {}, n, n)) {
      let ss = 0;
      for (let t = 0; t < T; t++) ss += part[t];
      v.norm[0] = Math.sqrt(ss);
      v.clipScale[0] = clipFactor(v.norm[0], dims.maxNorm);
      return;
    }
    gradNorm(v, dims);
  }

  /** See {@link Backend.adamw}. */
  adamw(bufs: AdamwBufs, dims: AdamwDims): void {
    checkAdamw(bufs, dims);
    const op = "adamw";
    const { offsets, ...floats } = bufs;
    const v = { ...this.#views(op, floats), offsets: this.#i32(op, "offsets", offsets) };
    const n = v.param.length;
    if (this.#par(op, v, dims, n, 4 * n)) return;
    this.#ops.adamw(v, dims);
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
