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

/** The op set the dBOT ViT needs. See the module doc for conventions. */
export interface Backend {
  /** `"cpu"` or `"webgpu"`. */
  readonly name: "cpu" | "webgpu";
  /** Human-readable detail: GEMM library, adapter name. */
  readonly description: string;

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
  /** Release all memory and device objects. */
  dispose(): void;

  // ---- dense --------------------------------------------------------------

  /**
   * `out[M,N] (=|+=) epilogue(op(a)[M,K] · op(b)[K,N] + bias[N])`, `batch` times.
   * `pre`, when given with `gelu`, receives `z` (needed by the GELU backward).
   * Per batch, `a`, `b`, `out` (and `pre`) advance by one matrix; `bias` is shared.
   */
  matmul(
    bufs: { out: Tensor; a: Tensor; b: Tensor; bias?: Tensor; pre?: Tensor },
    dims: MatmulDims,
  ): void;
  /** `dbias[C] += Σ_r dout[r, C]`. */
  biasGrad(bufs: { dbias: Tensor; dout: Tensor }, dims: { rows: number; C: number }): void;

  // ---- elementwise --------------------------------------------------------

  /** `out[i] = a[i] + b[i mod b.size]`: residual add (same size) or broadcast add (pos embed). */
  add(bufs: { out: Tensor; a: Tensor; b: Tensor }): void;
  /** `out = gelu(inp)`, exact erf GELU. */
  gelu(bufs: { out: Tensor; inp: Tensor }): void;
  /** `dinp = dout · gelu'(inp)`. */
  geluBackward(bufs: { dinp: Tensor; dout: Tensor; inp: Tensor }): void;
  /**
   * Drop-path scaling: `out[r, :] = inp[r, :] · scale[r]` for `rows` samples of `C`
   * elements; `scale[r]` is 0 (dropped) or 1/keep. Its own backward (`dinp = dout·scale`).
   */
  scaleRows(
    bufs: { out: Tensor; inp: Tensor; scale: Tensor },
    dims: { rows: number; C: number },
  ): void;

  // ---- normalisation ------------------------------------------------------

  /**
   * LayerNorm over the last `C`: `out = (inp − mean)·rstd·weight + bias`,
   * biased variance, `rstd = 1/sqrt(var + eps)`. Saves `mean`, `rstd` `[rows]`.
   */
  layernorm(
    bufs: { out: Tensor; mean: Tensor; rstd: Tensor; inp: Tensor; weight: Tensor; bias: Tensor },
    dims: { rows: number; C: number; eps: number },
  ): void;
  /** LayerNorm backward: `dinp (=|+=)`, `dweight += `, `dbias += `. */
  layernormBackward(
    bufs: {
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
  ): void;
  /**
   * Per-row standardise (teacher targets): `out = (inp − mean)/sqrt(var + eps)` with the
   * UNBIASED variance (÷(C−1)). No backward: targets are constants.
   */
  standardizeRows(
    bufs: { out: Tensor; inp: Tensor },
    dims: { rows: number; C: number; eps: number },
  ): void;

  // ---- attention ----------------------------------------------------------

  /** `out[r, :] = softmax(scale · inp[r, :])` over the last `C`. */
  softmax(
    bufs: { out: Tensor; inp: Tensor },
    dims: { rows: number; C: number; scale: number },
  ): void;
  /** Gradient w.r.t. the pre-scale input: `dinp = scale · out ⊙ (dout − Σ dout⊙out)`. */
  softmaxBackward(
    bufs: { dinp: Tensor; dout: Tensor; out: Tensor },
    dims: { rows: number; C: number; scale: number },
  ): void;
  /** `qkv [B, N, 3·NH·HS]` (order `[q|k|v]`, heads contiguous) → `q, k, v [B, NH, N, HS]`. */
  splitHeads(
    bufs: { q: Tensor; k: Tensor; v: Tensor; qkv: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void;
  /** Inverse of {@link Backend.splitHeads}: `dqkv = join(dq, dk, dv)` (assign). */
  splitHeadsBackward(
    bufs: { dqkv: Tensor; dq: Tensor; dk: Tensor; dv: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void;
  /** `inp [B, NH, N, HS]` → `out [B, N, NH·HS]`. */
  mergeHeads(
    bufs: { out: Tensor; inp: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void;
  /** Inverse of {@link Backend.mergeHeads}: `dinp [B, NH, N, HS] = split(dout [B, N, NH·HS])`. */
  mergeHeadsBackward(
    bufs: { dinp: Tensor; dout: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void;

  // ---- rows: masking, unshuffle, mask tokens -------------------------------

  /**
   * `out[r, :] = inp[index[r], :]`, or `fill[:]` (zeros when no `fill`) where `index[r] < 0`.
   * `rows` is the row count of `out`; `index` is i32 `[rows]` of row ids into `inp`.
   */
  gatherRows(
    bufs: { out: Tensor; inp: Tensor; index: Tensor; fill?: Tensor },
    dims: { rows: number; C: number },
  ): void;
  /**
   * Backward of {@link Backend.gatherRows}: `dinp[index[r], :] = dout[r, :]` for `index[r] ≥ 0`
   * (indices must be unique; rows of `dinp` no index names are set to 0), and
   * `dfill[:] += Σ_{index[r] < 0} dout[r, :]` when `dfill` is given.
   */
  gatherRowsBackward(
    bufs: { dinp: Tensor; dfill?: Tensor; dout: Tensor; index: Tensor },
    dims: { rows: number; C: number },
  ): void;
  /**
   * Patchify images `inp [B, C, H, W]` → `out [B, L, C·P·P]`, patches row-major
   * (`l = h·(W/P) + w`), each patch channel-major (`c, i, j`) like a conv weight `[D, C, P, P]`.
   */
  patchify(
    bufs: { out: Tensor; inp: Tensor },
    dims: { B: number; C: number; H: number; W: number; P: number },
  ): void;

  // ---- losses (value and gradient in one op; the loss stays on the device) --

  /**
   * Weighted SmoothL1: `d = inp − target`, `e = 0.5·d²/beta` if `|d| < beta` else `|d| − 0.5·beta`,
   * row loss = mean over `C`, `loss[0] = Σ_r w_r·row_r / Σ_r w_r`; `dinp = ∂loss/∂inp`.
   */
  smoothL1Loss(
    bufs: { loss: Tensor; dinp: Tensor; inp: Tensor; target: Tensor; weight: Tensor },
    dims: { rows: number; C: number; beta: number },
  ): void;
  /** Weighted `1 − cos(inp_r, target_r)` (eps 1e-8 on norms), weighted mean over rows, and `dinp`. */
  cosineLoss(
    bufs: { loss: Tensor; dinp: Tensor; inp: Tensor; target: Tensor; weight: Tensor },
    dims: { rows: number; C: number },
  ): void;
  /**
   * Softmax cross-entropy with soft targets (one-hot, label smoothing, mixup):
   * `loss[0] = mean_r −Σ_c target[r,c]·log softmax(logits[r])_c`; `dlogits = (softmax − target)/rows`.
   */
  crossEntropyLoss(
    bufs: { loss: Tensor; dlogits: Tensor; logits: Tensor; target: Tensor },
    dims: { rows: number; C: number },
  ): void;

  // ---- optimiser ------------------------------------------------------------

  /**
   * `norm[0] = sqrt(Σ grad²)` and `clipScale[0] = min(1, maxNorm / (norm + 1e-6))`
   * (torch `clip_grad_norm_`); pass `maxNorm = Infinity` for no clipping.
   */
  gradNorm(
    bufs: { norm: Tensor; clipScale: Tensor; grad: Tensor },
    dims: { maxNorm: number },
  ): void;
  /**
   * AdamW (torch semantics, decoupled decay) on flat buffers, one call for all parameters.
   * Segment `s` covers elements `[offsets[s], offsets[s+1])` (i32 `[S+1]`) and uses
   * `hyper[s] = (lrScale, weightDecay)` (f32 `[S, 2]`). `g = grad · clipScale[0]` if given;
   * `p -= lr·lrScale·wd·p`; `m = β1 m + (1−β1) g`; `v = β2 v + (1−β2) g²`;
   * `p -= lr·lrScale · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + eps)`.
   */
  adamw(
    bufs: {
      param: Tensor;
      grad: Tensor;
      m: Tensor;
      v: Tensor;
      offsets: Tensor;
      hyper: Tensor;
      clipScale?: Tensor;
    },
    dims: { lr: number; beta1: number; beta2: number; eps: number; step: number },
  ): void;
}
