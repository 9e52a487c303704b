/**
 * The Backend contract: the narrow interface between the ViT model code and
 * the compute (CPU or WebGPU). The model never touches WGSL or typed-array
 * loops; it calls these ops.
 *
 * Conventions (every op, both backends):
 * - f32, row-major. Index tensors are i32.
 * - A {@link Tensor} is a view: `storage` + element `offset` + `shape`. Ops read
 *   and write exactly `size` elements starting at `offset`.
 * - Linear weights are stored `[out, in]` (PyTorch layout): `y = x·Wᵀ + b`.
 * - Parameter gradients ACCUMULATE (`+=`): `dweight`, `dbias`, `dfill`, and
 *   `matmul` / `biasGrad` when asked to. Activation gradients ASSIGN (`=`)
 *   unless the op's `accumulate` flag says otherwise.
 * - Ops are recorded in order; on WebGPU they are encoded into one command
 *   encoder and only run at {@link Backend.submit} (or a download). Nothing
 *   inside an op waits on the device.
 * - Dimension letters: `B` batch, `N` tokens, `L` patches, `C` channels,
 *   `NH` heads, `HS` head size, `P` patch size.
 *
 * @module
 */

/** Element type of a tensor. */
export type DType = "f32" | "i32";

/** Host-side array of a tensor's elements. */
export type HostArray = Float32Array | Int32Array;

/** Backend-owned memory that tensors view into. Opaque to model code. */
export interface Storage {
  /** Number of elements the storage holds. */
  readonly length: number;
  /** Element type. */
  readonly dtype: DType;
  /** Debug label (shown in GPU validation errors). */
  readonly label: string;
}

/** A view of `size` elements of a {@link Storage}, from `offset`, with a shape. */
export interface Tensor {
  /** The memory this view reads and writes. */
  readonly storage: Storage;
  /** Element offset of the first element inside `storage`. */
  readonly offset: number;
  /** Shape, row-major. */
  readonly shape: readonly number[];
  /** Product of `shape`. */
  readonly size: number;
  /** Element type (the storage's). */
  readonly dtype: DType;
}

/** Product of the entries of a shape (1 for a scalar `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(
        `Cannot build a tensor: shape entries must be integers >= 0, got [${shape}]`,
      );
    }
    n *= d;
  }
  return n;
}

/**
 * A view of `shape` into `t` starting `offset` elements after `t`'s own offset.
 *
 * @example
 * ```ts ignore
 * const w = view(flatParams, 0, [192, 64]);   // a parameter inside one flat buffer
 * ```
 */
export function view(t: Tensor, offset: number, shape: readonly number[]): Tensor {
  const size = shapeSize(shape);
  if (offset < 0 || offset + size > t.size) {
    throw new RangeError(
      `Cannot take a view of [${shape}] at offset ${offset}: it ends at ${
        offset + size
      } but the tensor has ${t.size} elements`,
    );
  }
  return { storage: t.storage, offset: t.offset + offset, shape: [...shape], size, dtype: t.dtype };
}

/** Options of {@link Backend.matmul}. */
export interface MatmulDims {
  /** Rows of `op(a)` and of `out`. */
  M: number;
  /** Columns of `op(b)` and of `out`. */
  N: number;
  /** Inner dimension. */
  K: number;
  /** `a` is stored `[K, M]` and used transposed. Default false (`[M, K]`). */
  transA?: boolean;
  /** `b` is stored `[N, K]` and used transposed (a Linear weight). Default false (`[K, N]`). */
  transB?: boolean;
  /** Number of independent, contiguously stored matrix products (attention heads). Default 1. */
  batch?: number;
  /** `out += …` instead of `out = …` (parameter gradients). Not with `gelu`. */
  accumulate?: boolean;
  /** Epilogue `out = gelu(z)` (erf GELU) where `z = op(a)·op(b) + bias`. */
  gelu?: boolean;
}

// ---- op buffers and dims -------------------------------------------------------
// Each op's buffers are written once here, generic over what holds the elements: the
// Backend takes Tensors (`T = Tensor`); the CPU reference ops (`cpu/ref/`) take typed
// arrays (`T = Float32Array | Float64Array`, index arrays `I = Int32Array`).

/** Buffers of {@link Backend.matmul}. */
export interface MatmulBufs<T = Tensor> {
  /** `[batch, M, N]`. */
  out: T;
  /** `[batch, M, K]`, or `[batch, K, M]` with `transA`. */
  a: T;
  /** `[batch, K, N]`, or `[batch, N, K]` with `transB`. */
  b: T;
  /** `[N]`, shared by the batch. */
  bias?: T;
  /** `[batch, M, N]`: the pre-GELU values (only with `gelu`). */
  pre?: T;
}

/** An op with one output and one input of the same layout: `{ out, inp }`. */
export interface OutInpBufs<T = Tensor> {
  /** Output. */
  out: T;
  /** Input. */
  inp: T;
}

/** Buffers of {@link Backend.add}: `out = a + b` (b broadcast). */
export interface AddBufs<T = Tensor> {
  /** `[n]`. */
  out: T;
  /** `[n]`. */
  a: T;
  /** `[m]`, `m` divides `n`. */
  b: T;
}

/** Buffers of {@link Backend.geluBackward}. */
export interface GeluBackwardBufs<T = Tensor> {
  /** `[n]`. */
  dinp: T;
  /** `[n]`. */
  dout: T;
  /** `[n]`. */
  inp: T;
}

/** Buffers of {@link Backend.scaleRows}. */
export interface ScaleRowsBufs<T = Tensor> {
  /** `[rows, C]`. */
  out: T;
  /** `[rows, C]`. */
  inp: T;
  /** `[rows]`. */
  scale: T;
}

/** Buffers of {@link Backend.biasGrad}. */
export interface BiasGradBufs<T = Tensor> {
  /** `[C]`, accumulated. */
  dbias: T;
  /** `[rows, C]`. */
  dout: T;
}

/** Rows of `C` elements: the dims of most row ops. */
export interface RowsDims {
  /** Rows. */
  rows: number;
  /** Elements per row. */
  C: number;
}

/** Buffers of {@link Backend.layernorm}. */
export interface LayernormBufs<T = Tensor> {
  /** `[rows, C]`. */
  out: T;
  /** `[rows]`, saved for the backward. */
  mean: T;
  /** `[rows]`, saved for the backward. */
  rstd: T;
  /** `[rows, C]`. */
  inp: T;
  /** `[C]`. */
  weight: T;
  /** `[C]`. */
  bias: T;
}

/** Dims of {@link Backend.layernorm} and {@link Backend.standardizeRows}. */
export interface NormDims extends RowsDims {
  /** Added to the variance. */
  eps: number;
}

/** Buffers of {@link Backend.layernormBackward}. */
export interface LayernormBackwardBufs<T = Tensor> {
  /** `[rows, C]`, assigned (or accumulated). */
  dinp: T;
  /** `[C]`, accumulated. */
  dweight: T;
  /** `[C]`, accumulated. */
  dbias: T;
  /** `[rows, C]`. */
  dout: T;
  /** `[rows, C]`. */
  inp: T;
  /** `[C]`. */
  weight: T;
  /** `[rows]` from the forward. */
  mean: T;
  /** `[rows]` from the forward. */
  rstd: T;
}

/** Dims of {@link Backend.layernormBackward}. */
export interface LayernormBackwardDims extends RowsDims {
  /** `dinp += …` instead of `dinp = …`. Default false. */
  accumulate?: boolean;
}

/** Dims of {@link Backend.softmax} and its backward. */
export interface SoftmaxDims extends RowsDims {
  /** Pre-scale of the input. */
  scale: number;
}

/** Buffers of {@link Backend.softmaxBackward}. */
export interface SoftmaxBackwardBufs<T = Tensor> {
  /** `[rows, C]`. */
  dinp: T;
  /** `[rows, C]`. */
  dout: T;
  /** `[rows, C]`: the forward's output. */
  out: T;
}

/** Buffers of {@link Backend.splitHeads}. */
export interface SplitHeadsBufs<T = Tensor> {
  /** `[B, NH, N, HS]`. */
  q: T;
  /** `[B, NH, N, HS]`. */
  k: T;
  /** `[B, NH, N, HS]`. */
  v: T;
  /** `[B, N, 3·NH·HS]`. */
  qkv: T;
}

/** Buffers of {@link Backend.splitHeadsBackward}. */
export interface SplitHeadsBackwardBufs<T = Tensor> {
  /** `[B, N, 3·NH·HS]`. */
  dqkv: T;
  /** `[B, NH, N, HS]`. */
  dq: T;
  /** `[B, NH, N, HS]`. */
  dk: T;
  /** `[B, NH, N, HS]`. */
  dv: T;
}

/** Buffers of {@link Backend.mergeHeadsBackward}. */
export interface MergeHeadsBackwardBufs<T = Tensor> {
  /** `[B, NH, N, HS]`. */
  dinp: T;
  /** `[B, N, NH·HS]`. */
  dout: T;
}

/** Dims of the head ops: batch, tokens, heads, head size. */
export interface HeadDims {
  /** Batch size. */
  B: number;
  /** Tokens per sample. */
  N: number;
  /** Attention heads. */
  NH: number;
  /** Head size. */
  HS: number;
}

/**
 * Buffers of {@link Backend.attention}: self-attention read straight from the qkv
 * projection and written with heads merged; `I` holds the i32 indices.
 */
export interface AttentionBufs<T = Tensor, I = T> {
  /** `[B, N, NH·HS]`: `out[b, n, h·HS + i] = Σ_m att[b, h, n, m]·v[b, m, h·HS + i]` (heads merged). */
  out: T;
  /** `[B, NH, N, N]`: the softmax probabilities (row = query), kept for the backward. */
  att: T;
  /** `[B, N, 3·NH·HS]`: the qkv projection, order `[q|k|v]`, heads contiguous. */
  qkv: T;
  /** `[R, NH]`: a relative position bias table (BEiT), added to the logits; with `relIndex`. */
  relTable?: T;
  /** `[N·N]`, i32: the table row of each (query, key) pair (see {@link RelPosBiasBufs}). */
  relIndex?: I;
}

/** Buffers of {@link Backend.attentionBackward}. */
export interface AttentionBackwardBufs<T = Tensor> {
  /** `[B, N, 3·NH·HS]`: ∂L/∂qkv (assigned). */
  dqkv: T;
  /**
   * `[B, NH, N, N]`: workspace; on exit ∂L/∂ of the unscaled logits `q·kᵀ (+ bias)`, which
   * `relPosBiasBackward` reads for the table's gradient.
   */
  dlogits: T;
  /** `[B, N, NH·HS]`: ∂L/∂out. */
  dout: T;
  /** `[B, N, 3·NH·HS]`: the forward's qkv. */
  qkv: T;
  /** `[B, NH, N, N]`: the forward's softmax probabilities. */
  att: T;
}

/** Dims of {@link Backend.attention}: the head dims and the logit scale (`HS^-0.5`). */
export interface AttentionDims extends HeadDims {
  /**
   * `att = softmax(scale·(q·kᵀ + bias/scale))`: the logits are scaled, the relative
   * position bias (when given) is not.
   */
  scale: number;
}

/** Buffers of {@link Backend.gatherRows}; `I` holds the i32 indices. */
export interface GatherRowsBufs<T = Tensor, I = T> {
  /** `[rows, C]`. */
  out: T;
  /** `[inpRows, C]`. */
  inp: T;
  /** `[rows]`, i32. */
  index: I;
  /** `[C]`: the row written where `index < 0` (zeros when absent). */
  fill?: T;
}

/** Buffers of {@link Backend.gatherRowsBackward}; `I` holds the i32 indices. */
export interface GatherRowsBackwardBufs<T = Tensor, I = T> {
  /** `[inpRows, C]`, assigned. */
  dinp: T;
  /** `[C]`, accumulated. */
  dfill?: T;
  /** `[rows, C]`. */
  dout: T;
  /** `[rows]`, i32. */
  index: I;
}

/** Dims of {@link Backend.patchify}. */
export interface PatchifyDims {
  /** Images. */
  B: number;
  /** Channels. */
  C: number;
  /** Height. */
  H: number;
  /** Width. */
  W: number;
  /** Patch size. */
  P: number;
}

/** Buffers of {@link Backend.smoothL1Loss} and {@link Backend.cosineLoss}. */
export interface RowLossBufs<T = Tensor> {
  /** `[1]`. */
  loss: T;
  /** `[rows, C]`, assigned. */
  dinp: T;
  /** `[rows, C]`. */
  inp: T;
  /** `[rows, C]`. */
  target: T;
  /** `[rows]`. */
  weight: T;
}

/** Dims of {@link Backend.smoothL1Loss}. */
export interface SmoothL1Dims extends RowsDims {
  /** Quadratic-to-linear switch point. */
  beta: number;
}

/** Dims of {@link Backend.cosineLoss}. */
export interface CosineDims extends RowsDims {
  /** Norm clamp: `‖x‖ → max(‖x‖, eps)` (torch 1.13 `F.cosine_similarity`). Default 1e-8. */
  eps?: number;
}

/** Buffers of {@link Backend.crossEntropyLoss}. */
export interface CrossEntropyBufs<T = Tensor> {
  /** `[1]`. */
  loss: T;
  /** `[rows, C]`, assigned. */
  dlogits: T;
  /** `[rows, C]`. */
  logits: T;
  /** `[rows, C]`: distributions. */
  target: T;
}

/** Buffers of {@link Backend.gradNorm}. */
export interface GradNormBufs<T = Tensor> {
  /** `[1]`. */
  norm: T;
  /** `[1]`. */
  clipScale: T;
  /** `[n]`. */
  grad: T;
}

/** Dims of {@link Backend.gradNorm}. */
export interface GradNormDims {
  /** Clip threshold (`Infinity`: no clipping). */
  maxNorm: number;
}

/** Buffers of {@link Backend.adamw}; `I` holds the i32 segment offsets. */
export interface AdamwBufs<T = Tensor, I = T> {
  /** `[n]`. */
  param: T;
  /** `[n]`. */
  grad: T;
  /** `[n]`: first moment. */
  m: T;
  /** `[n]`: second moment. */
  v: T;
  /** `[S + 1]`, i32. */
  offsets: I;
  /** `[S, 2]`: `(lrScale, weightDecay)` per segment. */
  hyper: T;
  /** `[1]`: gradient scale from {@link Backend.gradNorm}. */
  clipScale?: T;
}

/** Scalar hyper-parameters of {@link Backend.adamw}; `step` is the 1-based step `t`. */
export interface AdamwDims {
  /** Base learning rate (scaled per segment). */
  lr: number;
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** Added to the denominator. */
  eps: number;
  /** 1-based step count for the bias corrections. */
  step: number;
}

/** Buffers of {@link Backend.scaleCols}: `out[r, c] = inp[r, c]·scale[c]` (layer scale). */
export interface ScaleColsBufs<T = Tensor> {
  /** `[rows, C]`. */
  out: T;
  /** `[rows, C]`. */
  inp: T;
  /** `[C]`. */
  scale: T;
}

/** Buffers of {@link Backend.scaleColsBackward}. */
export interface ScaleColsBackwardBufs<T = Tensor> {
  /** `[rows, C]`, assigned: `dout·scale`. */
  dinp: T;
  /** `[C]`, accumulated: `Σ_r dout ⊙ inp`. */
  dscale: T;
  /** `[rows, C]`. */
  dout: T;
  /** `[rows, C]`: the forward's input. */
  inp: T;
  /** `[C]`. */
  scale: T;
}

/** Buffers of {@link Backend.relPosBias}; `I` holds the i32 indices. */
export interface RelPosBiasBufs<T = Tensor, I = T> {
  /** `[B, NH, N, N]` attention logits with the bias added (may be `inp`). */
  out: T;
  /** `[B, NH, N, N]`. */
  inp: T;
  /** `[R, NH]`: the shared relative position bias table. */
  table: T;
  /** `[N·N]`, i32: the table row of each (query, key) pair, in `[0, R)`. */
  index: I;
}

/**
 * Buffers of {@link Backend.relPosBiasBackward}; `I` holds the i32 indices. `starts` and
 * `positions` are the inverse of `index` (pairs grouped by table row), built once per grid
 * with `index` (see `relPosIndex` in `src/models/symmetric.ts`).
 */
export interface RelPosBiasBackwardBufs<T = Tensor, I = T> {
  /** `[R, NH]`, accumulated. */
  dtable: T;
  /** `[B, NH, N, N]`. */
  dout: T;
  /** `[N·N]`, i32, as in the forward. */
  index: I;
  /** `[R + 1]`, i32: pairs of row `r` are `positions[starts[r] .. starts[r+1])`. */
  starts: I;
  /** `[N·N]`, i32: pair ids `i·N + j` sorted by table row. */
  positions: I;
}

/** Dims of {@link Backend.relPosBias} and its backward. */
export interface RelPosDims {
  /** Batch. */
  B: number;
  /** Heads. */
  NH: number;
  /** Tokens (queries = keys). */
  N: number;
  /** Table rows. */
  R: number;
  /**
   * Multiplier of the bias: `out = inp + scale·table[index, h]`. The model adds the bias to
   * the UNSCALED logits `q·kᵀ` and passes `1 / attention scale`, because softmax applies its
   * pre-scale after the add.
   */
  scale: number;
}

/**
 * A fault of the device a backend runs on (a lost device, out of memory): the device cannot be
 * read any more, so a trainer reports its last saved state. Backends throw their own subclass
 * (WebGPU: `GpuError`); trainers catch this one and need no backend file.
 */
export class DeviceFaultError extends Error {
  /** `message` says what happened and what to try. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DeviceFaultError";
  }

  /**
   * The same fault, of the same class, with `more` on a line of its own after the message
   * and `cause` (default: this fault) as its cause.
   */
  withContext(more: string, cause: unknown = this): DeviceFaultError {
    const Same = this.constructor as new (m: string, o?: ErrorOptions) => DeviceFaultError;
    return new Same(`${this.message}\n${more}`, { cause });
  }
}

/**
 * What a backend is, as fields (a run's `summary.json` stores them, less `details`), with
 * what would make it faster and, for `--debug` and `deno task info`, the paths and loader
 * errors behind that.
 */
export interface BackendFacts {
  /** `"cpu"` or `"webgpu"`. */
  name: "cpu" | "webgpu";
  /** What runs matmul: the CPU GEMM (`"OpenBLAS"`, `"WebAssembly SIMD GEMM"`, …) or the adapter. */
  engine: string;
  /** CPU: threads of the non-GEMM ops. */
  threads?: number;
  /** CPU: which elementwise kernels run. */
  kernels?: "native" | "wasm" | "js";
  /** WebGPU: the adapter is a software one (lavapipe, llvmpipe, SwiftShader). */
  software?: boolean;
  /** What would make it faster, each a short clause with the fix and what it buys. */
  hints: string[];
  /** Library paths and loader errors, for `--debug` and `deno task info`. */
  details: string[];
}

const KERNEL_NAMES = { native: "native kernels", wasm: "WebAssembly kernels", js: "JS kernels" };

/**
 * The one line a person reads, e.g. `cpu: WebAssembly SIMD GEMM, 2 threads, native kernels;
 * OpenBLAS not found (apt-get install libopenblas0-pthread: ~2.5× faster matmul)`; `chosen`
 * (how it was picked) goes in parentheses after the name.
 */
export function describeBackend(f: BackendFacts, chosen?: string): string {
  const parts = [f.engine];
  if (f.software) parts.push("software");
  if (f.threads !== undefined) parts.push(`${f.threads} thread${f.threads === 1 ? "" : "s"}`);
  if (f.kernels) parts.push(KERNEL_NAMES[f.kernels]);
  const head = chosen ? `${f.name} (${chosen})` : f.name;
  return `${head}: ${[parts.join(", "), ...f.hints].join("; ")}`;
}

/** What a run's `summary.json` stores about its backend: the facts less the details, and how it was chosen. */
export type BackendSummary = Omit<BackendFacts, "details"> & {
  /** How it was chosen, e.g. `"auto: no WebGPU adapter"`. */
  chosen?: string;
};

/** {@link BackendSummary} of `facts`. */
export function backendSummary(facts: BackendFacts, chosen?: string): BackendSummary {
  const { details: _, ...fields } = facts;
  return chosen === undefined ? fields : { ...fields, chosen };
}

/** The op set the dBOT ViT needs. See the module doc for conventions. */
export interface Backend {
  /** `"cpu"` or `"webgpu"`. */
  readonly name: "cpu" | "webgpu";
  /** {@link describeBackend} of {@link Backend.facts}: one short line. */
  readonly description: string;
  /** What the backend is, as fields, with hints and details. */
  readonly facts: BackendFacts;
  /**
   * Reading a tensor back waits for the queued device work (a GPU), so a trainer reads the
   * loss only every few steps; absent or false: a read costs nothing (the CPU), read every step.
   */
  readonly deferredReads?: boolean;
  /**
   * `e` as a {@link DeviceFaultError} when it is a fault of this backend's device that came
   * under another type (e.g. a DOMException from a lost WebGPU device), else null. Absent:
   * only {@link DeviceFaultError}s are faults.
   */
  deviceFault?(e: unknown): DeviceFaultError | null;

  // ---- memory -------------------------------------------------------------

  /** A new zero-filled tensor with its own storage. */
  tensor(shape: readonly number[], dtype?: DType, label?: string): Tensor;
  /** Copy host data into `t` (lengths must match). */
  upload(t: Tensor, data: HostArray): void;
  /** Run everything recorded so far and copy `t` to the host. */
  download(t: Tensor): Promise<HostArray>;
  /** `t = value` for every element. */
  fill(t: Tensor, value: number): void;
  /** `dst = src` (same size, same dtype). */
  copy(dst: Tensor, src: Tensor): void;
  /** Run everything recorded so far (no wait). A no-op on the CPU. */
  submit(): void;
  /** Wait until everything submitted has finished. */
  sync(): Promise<void>;
  /**
   * Release the storage behind `t` (and so every view of it) before the backend is
   * disposed: a model dropped at a stage switch frees its buffers. Using `t` afterwards is
   * an error; freeing twice is a no-op.
   */
  free(t: Tensor): void;
  /** Release all memory and device objects. */
  dispose(): void;

  // ---- dense --------------------------------------------------------------

  /**
   * `out[M,N] (=|+=) epilogue(op(a)[M,K] · op(b)[K,N] + bias[N])`, `batch` times.
   * `pre`, when given with `gelu`, receives `z` (needed by the GELU backward).
   * Per batch, `a`, `b`, `out` (and `pre`) advance by one matrix; `bias` is shared.
   */
  matmul(bufs: MatmulBufs, dims: MatmulDims): void;
  /** `dbias[C] += Σ_r dout[r, C]`. */
  biasGrad(bufs: BiasGradBufs, dims: RowsDims): void;

  // ---- elementwise --------------------------------------------------------

  /** `out[i] = a[i] + b[i mod b.size]`: residual add (same size) or broadcast add (pos embed). */
  add(bufs: AddBufs): void;
  /** `out = gelu(inp)`, exact erf GELU. */
  gelu(bufs: OutInpBufs): void;
  /** `dinp = dout · gelu'(inp)`. */
  geluBackward(bufs: GeluBackwardBufs): void;
  /** `out = x·σ(1.702·x)` (QuickGELU, OpenAI CLIP). */
  quickGelu(bufs: OutInpBufs): void;
  /** `dinp = dout · quickgelu'(inp)`, `quickgelu'(x) = σ(ax) + a·x·σ(ax)(1 − σ(ax))`, a = 1.702. */
  quickGeluBackward(bufs: GeluBackwardBufs): void;
  /** Layer scale: `out[r, c] = inp[r, c] · scale[c]`; `out` may be `inp`. */
  scaleCols(bufs: ScaleColsBufs, dims: RowsDims): void;
  /** Backward of {@link Backend.scaleCols}: `dinp = dout·scale` (assign), `dscale += Σ_r dout⊙inp`. */
  scaleColsBackward(bufs: ScaleColsBackwardBufs, dims: RowsDims): void;
  /**
   * Drop-path scaling: `out[r, :] = inp[r, :] · scale[r]` for `rows` samples of `C`
   * elements; `scale[r]` is 0 (dropped) or 1/keep. Its own backward (`dinp = dout·scale`).
   */
  scaleRows(bufs: ScaleRowsBufs, dims: RowsDims): void;

  // ---- normalisation ------------------------------------------------------

  /**
   * LayerNorm over the last `C`: `out = (inp − mean)·rstd·weight + bias`,
   * biased variance, `rstd = 1/sqrt(var + eps)`. Saves `mean`, `rstd` `[rows]`.
   */
  layernorm(bufs: LayernormBufs, dims: NormDims): void;
  /** LayerNorm backward: `dinp (=|+=)`, `dweight += `, `dbias += `. */
  layernormBackward(bufs: LayernormBackwardBufs, dims: LayernormBackwardDims): void;
  /**
   * Per-row standardise (teacher targets): `out = (inp − mean)/sqrt(var + eps)` with the
   * UNBIASED variance (÷(C−1)). No backward: targets are constants.
   */
  standardizeRows(bufs: OutInpBufs, dims: NormDims): void;

  // ---- attention ----------------------------------------------------------

  /** `out[r, :] = softmax(scale · inp[r, :])` over the last `C`. */
  softmax(bufs: OutInpBufs, dims: SoftmaxDims): void;
  /** Gradient w.r.t. the pre-scale input: `dinp = scale · out ⊙ (dout − Σ dout⊙out)`. */
  softmaxBackward(bufs: SoftmaxBackwardBufs, dims: SoftmaxDims): void;
  /**
   * Relative position bias (BEiT): `out[b, h, i, j] = inp[b, h, i, j] + scale·table[index[i·N + j], h]`.
   * `out` may be `inp`.
   */
  relPosBias(bufs: RelPosBiasBufs, dims: RelPosDims): void;
  /** Backward of {@link Backend.relPosBias}: `dtable[index[p], h] += scale·Σ_b dout[b, h, p]`. */
  relPosBiasBackward(bufs: RelPosBiasBackwardBufs, dims: RelPosDims): void;
  /** `qkv [B, N, 3·NH·HS]` (order `[q|k|v]`, heads contiguous) → `q, k, v [B, NH, N, HS]`. */
  splitHeads(bufs: SplitHeadsBufs, dims: HeadDims): void;
  /** Inverse of {@link Backend.splitHeads}: `dqkv = join(dq, dk, dv)` (assign). */
  splitHeadsBackward(bufs: SplitHeadsBackwardBufs, dims: HeadDims): void;
  /** `inp [B, NH, N, HS]` → `out [B, N, NH·HS]`. */
  mergeHeads(bufs: OutInpBufs, dims: HeadDims): void;
  /** Inverse of {@link Backend.mergeHeads}: `dinp [B, NH, N, HS] = split(dout [B, N, NH·HS])`. */
  mergeHeadsBackward(bufs: MergeHeadsBackwardBufs, dims: HeadDims): void;
  /**
   * Multi-head self-attention over the qkv projection, heads merged: per sample and head,
   * `att = softmax(scale·q·kᵀ + table[index, h])`, `out = att·v`. What `splitHeads`,
   * `matmul`, `relPosBias`, `softmax`, `matmul` and `mergeHeads` compute in turn (the CPU
   * reads q, k, v in place and writes `out` merged, with no head copies).
   */
  attention(bufs: AttentionBufs, dims: AttentionDims): void;
  /**
   * Backward of {@link Backend.attention}: `dqkv` (assigned) from `dout`, and the logits'
   * gradient left in `dlogits` (for `relPosBiasBackward`).
   */
  attentionBackward(bufs: AttentionBackwardBufs, dims: AttentionDims): void;

  // ---- rows: masking, unshuffle, mask tokens -------------------------------

  /**
   * `out[r, :] = inp[index[r], :]`, or `fill[:]` (zeros when no `fill`) where `index[r] < 0`.
   * `rows` is the row count of `out`; `index` is i32 `[rows]` of row ids into `inp`.
   */
  gatherRows(bufs: GatherRowsBufs, dims: RowsDims): void;
  /**
   * Backward of {@link Backend.gatherRows}: `dinp[index[r], :] = dout[r, :]` for `index[r] ≥ 0`
   * (indices must be unique; rows of `dinp` no index names are set to 0), and
   * `dfill[:] += Σ_{index[r] < 0} dout[r, :]` when `dfill` is given.
   */
  gatherRowsBackward(bufs: GatherRowsBackwardBufs, dims: RowsDims): void;
  /**
   * Patchify images `inp [B, C, H, W]` → `out [B, L, C·P·P]`, patches row-major
   * (`l = h·(W/P) + w`), each patch channel-major (`c, i, j`) like a conv weight `[D, C, P, P]`.
   */
  patchify(bufs: OutInpBufs, dims: PatchifyDims): void;

  // ---- losses (value and gradient in one op; the loss stays on the device) --

  /**
   * Weighted SmoothL1: `d = inp − target`, `e = 0.5·d²/beta` if `|d| < beta` else `|d| − 0.5·beta`,
   * row loss = mean over `C`, `loss[0] = Σ_r w_r·row_r / Σ_r w_r`; `dinp = ∂loss/∂inp`.
   */
  smoothL1Loss(bufs: RowLossBufs, dims: SmoothL1Dims): void;
  /**
   * Weighted `1 − cos(inp_r, target_r)`, weighted mean over rows, and `dinp`, with torch 1.13's
   * `F.cosine_similarity`: `cos = x·y / (nx·ny)`, `nx = max(‖x‖, eps)` (eps default 1e-8), and
   * `∂cos/∂x = y/(nx·ny) − cos·x/nx²` everywhere (torch clamps the norm under no_grad).
   */
  cosineLoss(bufs: RowLossBufs, dims: CosineDims): void;
  /**
   * Softmax cross-entropy with soft targets (one-hot, label smoothing, mixup):
   * `loss[0] = mean_r −Σ_c target[r,c]·log softmax(logits[r])_c`; `dlogits = (softmax − target)/rows`.
   */
  crossEntropyLoss(bufs: CrossEntropyBufs, dims: RowsDims): void;

  // ---- optimiser ------------------------------------------------------------

  /**
   * `norm[0] = sqrt(Σ grad²)` and `clipScale[0] = min(1, maxNorm / (norm + 1e-6))`
   * (torch `clip_grad_norm_`); pass `maxNorm = Infinity` for no clipping.
   */
  gradNorm(bufs: GradNormBufs, dims: GradNormDims): void;
  /**
   * AdamW (torch semantics, decoupled decay) on flat buffers, one call for all parameters.
   * Segment `s` covers elements `[offsets[s], offsets[s+1])` (i32 `[S+1]`) and uses
   * `hyper[s] = (lrScale, weightDecay)` (f32 `[S, 2]`). `g = grad · clipScale[0]` if given;
   * `p -= lr·lrScale·wd·p`; `m = β1 m + (1−β1) g`; `v = β2 v + (1−β2) g²`;
   * `p -= lr·lrScale · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + eps)`.
   */
  adamw(bufs: AdamwBufs, dims: AdamwDims): void;
}

/**
 * Frees every tensor found in `value` (a tensor, or arrays and plain objects holding
 * tensors, nested) on `be`; a storage shared by several views is freed once.
 */
export function freeTensors(be: Backend, value: unknown): void {
  const seen = new Set<Storage>();
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== "object") return;
    if (Array.isArray(v)) return v.forEach(walk);
    const t = v as Partial<Tensor>;
    if (t.storage && Array.isArray(t.shape)) {
      if (!seen.has(t.storage)) be.free(t as Tensor);
      seen.add(t.storage);
      return;
    }
    Object.values(v).forEach(walk);
  };
  walk(value);
}
