/**
 * The CPU backend's fast f32 kernels — WebAssembly SIMD (`simd/`, shipped in the module)
 * or native C (`native.ts`, when built) — and {@link kernelOps}, which puts them in place
 * of the reference loops (`ref/`) of the ops they cover. A {@link CpuBackend} loads one
 * set ({@link loadKernels}) and hands it to its ops and its worker pool: nothing here is
 * process-global, so backends with different kernels can run side by side.
 *
 * @module
 */
import type {
  AdamwBufs,
  AdamwDims,
  AddBufs,
  AttentionDims,
  BiasGradBufs,
  GeluBackwardBufs,
  LayernormBackwardBufs,
  LayernormBackwardDims,
  LayernormBufs,
  NormDims,
  OutInpBufs,
  PatchifyDims,
  RowLossBufs,
  RowsDims,
  ScaleRowsBufs,
  SmoothL1Dims,
  SoftmaxBackwardBufs,
  SoftmaxDims,
} from "../backend.ts";
import {
  checkAdd,
  checkBiasGrad,
  checkGelu,
  checkGeluBackward,
  checkLayernorm,
  checkLayernormBackward,
  checkPatchify,
  checkRowLoss,
  checkScaleRows,
  checkSoftmax,
  checkSoftmaxBackward,
  checkStandardizeRows,
} from "../checks.ts";
import { adamw, type AdamwSegment } from "./ref/adamw.ts";
import { add } from "./ref/add.ts";
import { biasGrad } from "./ref/bias_grad.ts";
import { smoothL1Loss } from "./ref/smooth_l1.ts";
import { standardizeRows } from "./ref/standardize.ts";
import { patchify } from "./ref/patchify.ts";
import { scaleRows } from "./ref/rows.ts";
import { geluBackward, geluForward } from "./ref/gelu.ts";
import { layernormBackward, layernormForward } from "./ref/layernorm.ts";
import { type MatmulEpilogue, matmulEpilogue } from "./ref/matmul.ts";
import { softmaxBackward, softmaxForward } from "./ref/softmax.ts";
import type { FloatArray } from "./ref/types.ts";
import type { Gemm, GemmArgs, GemmEpilogue } from "./gemm_types.ts";
import { wasmKernels } from "./simd/simd.ts";
import { loadNativeKernels } from "./native.ts";

/** The fast f32 kernels; every array is a plain `Float32Array` of the caller's (any buffer). */
export interface CpuKernels {
  /** `"native"` (C, `native.ts`) or `"wasm"` (WebAssembly SIMD, `simd/`). */
  readonly name: "native" | "wasm";
  /** `out = gelu(inp)`; `out` may alias `inp`. */
  gelu(out: Float32Array, inp: Float32Array): void;
  /** `dinp = dout ⊙ gelu'(inp)`; `dinp` may alias `dout`. */
  geluBackward(dinp: Float32Array, dout: Float32Array, inp: Float32Array): void;
  /** Matmul epilogue of `c [M, N]`: `c += bias`; with `gelu`, `pre = c` then `c = gelu(c)`. */
  biasGelu(
    c: Float32Array,
    bias: Float32Array | undefined,
    pre: Float32Array | undefined,
    M: number,
    N: number,
    gelu: boolean,
  ): void;
  /** `out[r, :] = softmax(scale · inp[r, :])`; `out` may alias `inp`. */
  softmax(out: Float32Array, inp: Float32Array, rows: number, C: number, scale: number): void;
  /** LayerNorm forward of `inp [rows, C]` (see `layernormForward`). */
  layernorm(
    out: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    inp: Float32Array,
    weight: Float32Array,
    bias: Float32Array,
    rows: number,
    C: number,
    eps: number,
  ): void;
  /** `dinp = scale · out ⊙ (dout − Σ dout⊙out)` per row; `dinp` may alias `dout`. */
  softmaxBackward(
    dinp: Float32Array,
    dout: Float32Array,
    out: Float32Array,
    rows: number,
    C: number,
    scale: number,
  ): void;
  /**
   * LayerNorm backward (see `layernormBackward`): `dinp` assigned or accumulated;
   * the column sums are added to `dweight` and `dbias` (f32 or f64 accumulators).
   */
  layernormBackward(
    dinp: Float32Array,
    dweight: Float32Array | Float64Array,
    dbias: Float32Array | Float64Array,
    dout: Float32Array,
    inp: Float32Array,
    weight: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    rows: number,
    C: number,
    accumulate: boolean,
  ): void;
  /**
   * Native only: `C = alpha·op(A)·op(B) + beta·C` then the epilogue, single-threaded, on
   * f32 arrays (`native/dbot_cpu.c`: op(B) packed in blocks that stay in L2, 6 × 16 tiles in
   * vector registers, the epilogue on each finished tile; every element summed in k order
   * whatever the split). `withNativeGemm` in `gemm.ts` routes the products it wins on here.
   */
  sgemm?(args: GemmArgs, epilogue?: GemmEpilogue): void;
  /** Vector width of {@link CpuKernels.sgemm} on this CPU: 256 (AVX2 + FMA) or 128. */
  gemmVectorBits?: number;
  /** `out[i] = a[i] + b[i mod m]` (`m = b.length` divides `a.length`); absent: the JS loop. */
  add?(out: Float32Array, a: Float32Array, b: Float32Array): void;
  /**
   * `acc[c] += Σ_r dout[r, c]` over `[rows, C]`, summed in f64 in row order (what the JS
   * reference computes on an f64 accumulator, bit for bit); absent: the JS loop.
   */
  biasGradF64?(acc: Float64Array, dout: Float32Array, rows: number, C: number): void;
  /** The patches of `ref/patchify.ts` (a copy); absent: the JS loop. */
  patchify?(out: Float32Array, inp: Float32Array, dims: PatchifyDims): void;
  /**
   * The target normalisation of `ref/standardize.ts` over `[rows, C]` (unbiased variance),
   * the same f64 operations in the same order (bit-identical); absent: the JS loop.
   */
  standardizeRows?(
    out: Float32Array,
    inp: Float32Array,
    rows: number,
    C: number,
    eps: number,
  ): void;
  /**
   * The weighted SmoothL1 loss of `ref/smooth_l1.ts` (`loss[0]`, `dinp` assigned), the same
   * f64 operations in the same order (bit-identical); absent: the JS loop.
   */
  smoothL1?(
    loss: Float32Array,
    dinp: Float32Array,
    inp: Float32Array,
    target: Float32Array,
    weight: Float32Array,
    rows: number,
    C: number,
    beta: number,
  ): void;
  /** `out[r, :] = scale[r] · inp[r, :]` over `[rows, C]`; absent: the JS loop. */
  scaleRows?(
    out: Float32Array,
    inp: Float32Array,
    scale: Float32Array,
    rows: number,
    C: number,
  ): void;
  /**
   * Attention units `[lo, hi)` (unit `u`: sample `⌊u/NH⌋`, head `u mod NH`) in one call, the
   * scores of a unit kept in cache from the product to the softmax to the next product; no
   * relative position bias (see `attention.ts`). Native only: absent, the units run on GEMM calls.
   */
  attentionUnits?(
    a: { out: Float32Array; att: Float32Array; qkv: Float32Array },
    dims: AttentionDims,
    lo: number,
    hi: number,
  ): void;
  /** The backward of {@link CpuKernels.attentionUnits} for units `[lo, hi)`. */
  attentionBackwardUnits?(
    a: {
      dqkv: Float32Array;
      dlogits: Float32Array;
      dout: Float32Array;
      qkv: Float32Array;
      att: Float32Array;
    },
    dims: AttentionDims,
    lo: number,
    hi: number,
  ): void;
  /**
   * AdamW on elements `[lo, hi)` of one segment: `step = lr/bc1`, `invBc2 = 1/bc2`,
   * `decay = 1 − lr·wd` (see `adamw`).
   */
  adamw(
    a: { param: Float32Array; grad: Float32Array; m: Float32Array; v: Float32Array },
    lo: number,
    hi: number,
    s: {
      clip: number;
      beta1: number;
      beta2: number;
      step: number;
      invBc2: number;
      eps: number;
      decay: number;
    },
  ): void;
}

/**
 * Which kernels a CPU backend runs: `"auto"` (native when built and loadable, else
 * WebAssembly SIMD, else the reference loops), `"native"` or `"wasm"` (that one or an
 * error), `"js"` (the reference loops of `ref/`).
 */
export type KernelChoice = "auto" | "native" | "wasm" | "js";

/** What {@link loadKernels} found. */
export interface LoadedKernels {
  /** The kernels, or null for the reference loops. */
  kernels: CpuKernels | null;
  /** Why native kernels are not in use ("" when they are or were not asked for). */
  nativeReason: string;
}

/**
 * Loads the kernels of `choice` on this thread (each thread loads its own: a WebAssembly
 * instance has its own memory). `nativeLibrary` overrides where the native library is
 * looked for (default: `native/build/` of this checkout). Throws when `"native"` or
 * `"wasm"` was asked for and cannot load.
 *
 * @example
 * ```ts
 * import { loadKernels } from "./kernels.ts";
 * const { kernels } = loadKernels("wasm");
 * console.log(kernels?.name); // "wasm"
 * ```
 */
export function loadKernels(choice: KernelChoice = "auto", nativeLibrary?: string): LoadedKernels {
  if (choice === "js") return { kernels: null, nativeReason: "" };
  if (choice === "wasm") {
    const k = wasmKernels();
    if (!k) throw new Error("Cannot load the WebAssembly SIMD kernels: the engine rejected them");
    return { kernels: k, nativeReason: "" };
  }
  const native = loadNativeKernels(nativeLibrary);
  if (!("reason" in native)) return { kernels: native, nativeReason: "" };
  if (choice === "native") throw new Error(`Cannot load the native kernels: ${native.reason}`);
  return { kernels: wasmKernels(), nativeReason: native.reason };
}

/**
 * The ops that have fast kernels, with the reference ops' signatures. The CPU backend and
 * its pool call these; {@link kernelOps} builds them from a kernel set.
 */
export interface KernelOps {
  /** Which kernels run: `"native"`, `"wasm"` or `"js"` (the reference loops). */
  readonly name: "native" | "wasm" | "js";
  /**
   * This thread's GEMM for the pool's matmul and attention shares (see {@link withGemm}):
   * OpenBLAS, or this thread's own WebAssembly GEMM instance with its fused and batched
   * calls; absent where the thread has none.
   */
  readonly gemm?: Gemm;
  /** The fused attention units of the kernels, where they have them (see {@link CpuKernels}). */
  readonly attentionUnits?: CpuKernels["attentionUnits"];
  /** The fused attention backward units, where the kernels have them. */
  readonly attentionBackwardUnits?: CpuKernels["attentionBackwardUnits"];
  /** See `add` (`ref/add.ts`). */
  add(bufs: AddBufs<FloatArray>): void;
  /** See `scaleRows` (`ref/rows.ts`). */
  scaleRows(bufs: ScaleRowsBufs<FloatArray>, dims: RowsDims): void;
  /** See `biasGrad` (`ref/bias_grad.ts`). */
  biasGrad(bufs: BiasGradBufs<FloatArray>, dims: RowsDims): void;
  /** See `patchify` (`ref/patchify.ts`). */
  patchify(bufs: OutInpBufs<FloatArray>, dims: PatchifyDims): void;
  /** See `standardizeRows` (`ref/standardize.ts`). */
  standardizeRows(bufs: OutInpBufs<FloatArray>, dims: NormDims): void;
  /** See `smoothL1Loss` (`ref/smooth_l1.ts`). */
  smoothL1Loss(bufs: RowLossBufs<FloatArray>, dims: SmoothL1Dims): void;
  /** See `geluForward`. */
  geluForward(bufs: OutInpBufs<FloatArray>): void;
  /** See `geluBackward`. */
  geluBackward(bufs: GeluBackwardBufs<FloatArray>): void;
  /** See `matmulEpilogue`. */
  matmulEpilogue: MatmulEpilogue;
  /** See `softmaxForward`. */
  softmaxForward(bufs: OutInpBufs<FloatArray>, dims: SoftmaxDims): void;
  /** See `softmaxBackward`. */
  softmaxBackward(bufs: SoftmaxBackwardBufs<FloatArray>, dims: SoftmaxDims): void;
  /** See `layernormForward`. */
  layernormForward(bufs: LayernormBufs<FloatArray>, dims: NormDims): void;
  /** See `layernormBackward`. */
  layernormBackward(bufs: LayernormBackwardBufs<FloatArray>, dims: LayernormBackwardDims): void;
  /** See `adamw` (with `range`: only elements `[lo, hi)`). */
  adamw(
    bufs: AdamwBufs<FloatArray, Int32Array>,
    dims: AdamwDims,
    range?: { lo: number; hi: number },
  ): void;
}

/** The reference loops of `ref/`, no fast kernel. */
export const REF_OPS: KernelOps = Object.freeze<KernelOps>({
  name: "js",
  add,
  scaleRows,
  biasGrad,
  smoothL1Loss,
  standardizeRows,
  patchify,
  geluForward,
  geluBackward,
  matmulEpilogue,
  softmaxForward,
  softmaxBackward,
  layernormForward,
  layernormBackward,
  adamw: (bufs, dims, range) => adamw(bufs, dims, { range }),
});

/**
 * `ops` with `gemm` as this thread's GEMM ({@link KernelOps.gemm}): what a backend hands
 * its pool's main thread and what a worker builds from the GEMM it opened.
 */
export function withGemm(ops: KernelOps, gemm: Gemm | undefined): KernelOps {
  return Object.freeze({ ...ops, gemm });
}

const f32 = (...xs: (FloatArray | undefined)[]): boolean =>
  xs.every((x) => x === undefined || x instanceof Float32Array);

/**
 * The ops run by `k`: each one checks its arguments as the reference does, then runs the
 * fast kernel on f32 arrays (any f64 array, as in the finite-difference tests, takes the
 * reference loop). `null` gives {@link REF_OPS}.
 *
 * @example
 * ```ts
 * import { kernelOps, loadKernels } from "./kernels.ts";
 * const ops = kernelOps(loadKernels("wasm").kernels);
 * const x = new Float32Array([0, 1]);
 * ops.geluForward({ out: x, inp: x });
 * ```
 */
export function kernelOps(k: CpuKernels | null): KernelOps {
  if (!k) return REF_OPS;
  const segment: AdamwSegment = (a, lo, hi, s) =>
    k.adamw(a as Parameters<CpuKernels["adamw"]>[0], lo, hi, {
      clip: s.clip,
      beta1: s.beta1,
      beta2: s.beta2,
      step: s.slr / s.bc1,
      invBc2: 1 / s.bc2,
      eps: s.eps,
      decay: s.decay,
    });
  return Object.freeze({
    name: k.name,
    attentionUnits: k.attentionUnits,
    attentionBackwardUnits: k.attentionBackwardUnits,
    add(b: AddBufs<FloatArray>) {
      if (!k.add || !f32(b.out, b.a, b.b)) return add(b);
      checkAdd(b);
      k.add(b.out as Float32Array, b.a as Float32Array, b.b as Float32Array);
    },
    patchify(b: OutInpBufs<FloatArray>, d: PatchifyDims) {
      if (!k.patchify || !f32(b.out, b.inp)) return patchify(b, d);
      checkPatchify(b, d);
      k.patchify(b.out as Float32Array, b.inp as Float32Array, d);
    },
    standardizeRows(b: OutInpBufs<FloatArray>, d: NormDims) {
      if (!k.standardizeRows || !f32(b.out, b.inp)) return standardizeRows(b, d);
      checkStandardizeRows(b, d);
      k.standardizeRows(b.out as Float32Array, b.inp as Float32Array, d.rows, d.C, d.eps);
    },
    smoothL1Loss(b: RowLossBufs<FloatArray>, d: SmoothL1Dims) {
      if (!k.smoothL1 || !f32(b.loss, b.dinp, b.inp, b.target, b.weight)) {
        return smoothL1Loss(b, d);
      }
      checkRowLoss("smoothL1Loss", b, d);
      const [loss, dinp, inp, target, weight] = [
        b.loss,
        b.dinp,
        b.inp,
        b.target,
        b.weight,
      ] as Float32Array[];
      k.smoothL1(loss, dinp, inp, target, weight, d.rows, d.C, d.beta);
    },
    biasGrad(b: BiasGradBufs<FloatArray>, d: RowsDims) {
      if (!k.biasGradF64 || !f32(b.dout)) return biasGrad(b, d);
      checkBiasGrad(b, d);
      // as ref/bias_grad.ts: the column sums in f64 from 0, then added to dbias (f32 or f64)
      const acc = new Float64Array(d.C);
      k.biasGradF64(acc, b.dout as Float32Array, d.rows, d.C);
      for (let c = 0; c < d.C; c++) b.dbias[c] += acc[c];
    },
    scaleRows(b: ScaleRowsBufs<FloatArray>, d: RowsDims) {
      if (!k.scaleRows || !f32(b.out, b.inp, b.scale)) return scaleRows(b, d);
      checkScaleRows(b, d);
      const [out, inp, scale] = [b.out, b.inp, b.scale] as Float32Array[];
      k.scaleRows(out, inp, scale, d.rows, d.C);
    },
    geluForward(b: OutInpBufs<FloatArray>) {
      if (!f32(b.out, b.inp)) return geluForward(b);
      checkGelu(b);
      k.gelu(b.out as Float32Array, b.inp as Float32Array);
    },
    geluBackward(b: GeluBackwardBufs<FloatArray>) {
      if (!f32(b.dinp, b.dout, b.inp)) return geluBackward(b);
      checkGeluBackward(b);
      k.geluBackward(b.dinp as Float32Array, b.dout as Float32Array, b.inp as Float32Array);
    },
    matmulEpilogue(
      b: { c: FloatArray; bias?: FloatArray; pre?: FloatArray },
      d: { M: number; N: number; gelu: boolean },
    ) {
      if (!f32(b.c, b.bias, b.pre)) return matmulEpilogue(b, d);
      const [c, bias, pre] = [b.c, b.bias, b.pre] as (Float32Array | undefined)[];
      k.biasGelu(c!, bias, pre, d.M, d.N, d.gelu);
    },
    softmaxForward(b: OutInpBufs<FloatArray>, d: SoftmaxDims) {
      if (!f32(b.out, b.inp)) return softmaxForward(b, d);
      checkSoftmax(b, d);
      k.softmax(b.out as Float32Array, b.inp as Float32Array, d.rows, d.C, d.scale);
    },
    softmaxBackward(b: SoftmaxBackwardBufs<FloatArray>, d: SoftmaxDims) {
      if (!f32(b.dinp, b.dout, b.out)) return softmaxBackward(b, d);
      checkSoftmaxBackward(b, d);
      const [dinp, dout, out] = [b.dinp, b.dout, b.out] as Float32Array[];
      k.softmaxBackward(dinp, dout, out, d.rows, d.C, d.scale);
    },
    layernormForward(b: LayernormBufs<FloatArray>, d: NormDims) {
      if (!f32(b.out, b.mean, b.rstd, b.inp, b.weight, b.bias)) return layernormForward(b, d);
      checkLayernorm(b, d);
      const [out, mean, rstd, inp, weight, bias] = [
        b.out,
        b.mean,
        b.rstd,
        b.inp,
        b.weight,
        b.bias,
      ] as Float32Array[];
      k.layernorm(out, mean, rstd, inp, weight, bias, d.rows, d.C, d.eps);
    },
    layernormBackward(b: LayernormBackwardBufs<FloatArray>, d: LayernormBackwardDims) {
      // dweight and dbias may be f64 (the pool's partials): the kernels take either
      if (!f32(b.dinp, b.dout, b.inp, b.weight, b.mean, b.rstd)) return layernormBackward(b, d);
      checkLayernormBackward(b, d);
      const [dinp, dout, inp, weight, mean, rstd] = [
        b.dinp,
        b.dout,
        b.inp,
        b.weight,
        b.mean,
        b.rstd,
      ] as Float32Array[];
      const acc = d.accumulate ?? false;
      k.layernormBackward(
        dinp,
        b.dweight,
        b.dbias,
        dout,
        inp,
        weight,
        mean,
        rstd,
        d.rows,
        d.C,
        acc,
      );
    },
    adamw(b: AdamwBufs<FloatArray, Int32Array>, d: AdamwDims, range?: { lo: number; hi: number }) {
      if (!f32(b.param, b.grad, b.m, b.v)) return adamw(b, d, { range });
      adamw(b, d, { range, segment });
    },
  });
}
