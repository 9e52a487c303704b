/**
 * The CPU {@link Backend}: plain-TypeScript ops over `Float32Array`/`Int32Array` storage,
 * with OpenBLAS `sgemm` for matmul when it loads (else a pure-TS GEMM). Ops run eagerly;
 * `submit` is a no-op and `sync` resolves at once.
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
import { gradNorm } from "./ops/grad_norm.ts";
import {
  mergeHeadsBackward,
  mergeHeadsForward,
  splitHeadsBackward,
  splitHeadsForward,
} from "./ops/heads.ts";
import { layernormBackward, layernormForward } from "./ops/layernorm.ts";
import { matmulForward } from "./ops/matmul.ts";
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
}

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
  /** Which GEMM runs matmul, e.g. `"cpu with OpenBLAS (libopenblas.so.0, 2 threads)"`. */
  readonly description: string;
  readonly #gemm: Gemm;
  readonly #sgemm: Gemm["sgemm"];
  #disposed = false;

  /** Loads the GEMM (`options.gemm`, default `"auto"`). */
  constructor(options: CpuBackendOptions = {}) {
    this.#gemm = loadGemm(options.gemm ?? "auto");
    const gemm = this.#gemm;
    this.#sgemm = (args) => gemm.sgemm(args);
    this.description = `cpu with ${gemm.name}`;
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
    const data = dtype === "i32" ? new Int32Array(size) : new Float32Array(size);
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

  /** Marks the backend disposed; later ops throw. Storage is freed by the GC. */
  dispose(): void {
    this.#disposed = true;
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
    );
  }

  /** See {@link Backend.biasGrad}. */
  biasGrad(
    { dbias, dout }: { dbias: Tensor; dout: Tensor },
    dims: { rows: number; C: number },
  ): void {
    const op = "biasGrad";
    biasGrad(
      {
        dbias: this.#f32(op, "dbias", dbias, dims.C),
        dout: this.#f32(op, "dout", dout, dims.rows * dims.C),
      },
      dims,
    );
  }

  // ---- elementwise ----------------------------------------------------------------

  /** See {@link Backend.add}. */
  add({ out, a, b }: { out: Tensor; a: Tensor; b: Tensor }): void {
    const op = "add";
    add({
      out: this.#f32(op, "out", out, a.size),
      a: this.#f32(op, "a", a),
      b: this.#f32(op, "b", b),
    });
  }

  /** See {@link Backend.gelu}. */
  gelu({ out, inp }: { out: Tensor; inp: Tensor }): void {
    geluForward({
      out: this.#f32("gelu", "out", out, inp.size),
      inp: this.#f32("gelu", "inp", inp),
    });
  }

  /** See {@link Backend.geluBackward}. */
  geluBackward({ dinp, dout, inp }: { dinp: Tensor; dout: Tensor; inp: Tensor }): void {
    const op = "geluBackward";
    geluBackward({
      dinp: this.#f32(op, "dinp", dinp, inp.size),
      dout: this.#f32(op, "dout", dout, inp.size),
      inp: this.#f32(op, "inp", inp),
    });
  }

  /** See {@link Backend.scaleRows}. */
  scaleRows(
    { out, inp, scale }: { out: Tensor; inp: Tensor; scale: Tensor },
    dims: { rows: number; C: number },
  ): void {
    const op = "scaleRows";
    const n = dims.rows * dims.C;
    scaleRows(
      {
        out: this.#f32(op, "out", out, n),
        inp: this.#f32(op, "inp", inp, n),
        scale: this.#f32(op, "scale", scale, dims.rows),
      },
      dims,
    );
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
    layernormForward(
      {
        out: this.#f32(op, "out", out, rows * C),
        mean: this.#f32(op, "mean", mean, rows),
        rstd: this.#f32(op, "rstd", rstd, rows),
        inp: this.#f32(op, "inp", inp, rows * C),
        weight: this.#f32(op, "weight", weight, C),
        bias: this.#f32(op, "bias", bias, C),
      },
      dims,
    );
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
    layernormBackward(
      {
        dinp: this.#f32(op, "dinp", dinp, rows * C),
        dweight: this.#f32(op, "dweight", dweight, C),
        dbias: this.#f32(op, "dbias", dbias, C),
        dout: this.#f32(op, "dout", dout, rows * C),
        inp: this.#f32(op, "inp", inp, rows * C),
        weight: this.#f32(op, "weight", weight, C),
        mean: this.#f32(op, "mean", mean, rows),
        rstd: this.#f32(op, "rstd", rstd, rows),
      },
      dims,
    );
  }

  /** See {@link Backend.standardizeRows}. */
  standardizeRows(
    { out, inp }: { out: Tensor; inp: Tensor },
    dims: { rows: number; C: number; eps: number },
  ): void {
    const op = "standardizeRows";
    const n = dims.rows * dims.C;
    standardizeRows({ out: this.#f32(op, "out", out, n), inp: this.#f32(op, "inp", inp, n) }, dims);
  }

  // ---- attention --------------------------------------------------------------------

  /** See {@link Backend.softmax}. */
  softmax(
    { out, inp }: { out: Tensor; inp: Tensor },
    dims: { rows: number; C: number; scale: number },
  ): void {
    const op = "softmax";
    const n = dims.rows * dims.C;
    softmaxForward({ out: this.#f32(op, "out", out, n), inp: this.#f32(op, "inp", inp, n) }, dims);
  }

  /** See {@link Backend.softmaxBackward}. */
  softmaxBackward(
    { dinp, dout, out }: { dinp: Tensor; dout: Tensor; out: Tensor },
    dims: { rows: number; C: number; scale: number },
  ): void {
    const op = "softmaxBackward";
    const n = dims.rows * dims.C;
    softmaxBackward(
      {
        dinp: this.#f32(op, "dinp", dinp, n),
        dout: this.#f32(op, "dout", dout, n),
        out: this.#f32(op, "out", out, n),
      },
      dims,
    );
  }

  /** See {@link Backend.splitHeads}. */
  splitHeads(
    { q, k, v, qkv }: { q: Tensor; k: Tensor; v: Tensor; qkv: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    const op = "splitHeads";
    const n = dims.B * dims.N * dims.NH * dims.HS;
    splitHeadsForward(
      {
        q: this.#f32(op, "q", q, n),
        k: this.#f32(op, "k", k, n),
        v: this.#f32(op, "v", v, n),
        qkv: this.#f32(op, "qkv", qkv, 3 * n),
      },
      dims,
    );
  }

  /** See {@link Backend.splitHeadsBackward}. */
  splitHeadsBackward(
    { dqkv, dq, dk, dv }: { dqkv: Tensor; dq: Tensor; dk: Tensor; dv: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    const op = "splitHeadsBackward";
    const n = dims.B * dims.N * dims.NH * dims.HS;
    splitHeadsBackward(
      {
        dqkv: this.#f32(op, "dqkv", dqkv, 3 * n),
        dq: this.#f32(op, "dq", dq, n),
        dk: this.#f32(op, "dk", dk, n),
        dv: this.#f32(op, "dv", dv, n),
      },
      dims,
    );
  }

  /** See {@link Backend.mergeHeads}. */
  mergeHeads(
    { out, inp }: { out: Tensor; inp: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    const op = "mergeHeads";
    const n = dims.B * dims.N * dims.NH * dims.HS;
    mergeHeadsForward(
      { out: this.#f32(op, "out", out, n), inp: this.#f32(op, "inp", inp, n) },
      dims,
    );
  }

  /** See {@link Backend.mergeHeadsBackward}. */
  mergeHeadsBackward(
    { dinp, dout }: { dinp: Tensor; dout: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    const op = "mergeHeadsBackward";
    const n = dims.B * dims.N * dims.NH * dims.HS;
    mergeHeadsBackward(
      { dinp: this.#f32(op, "dinp", dinp, n), dout: this.#f32(op, "dout", dout, n) },
      dims,
    );
  }

  // ---- rows -----------------------------------------------------------------------------

  /** See {@link Backend.gatherRows}. */
  gatherRows(
    { out, inp, index, fill }: { out: Tensor; inp: Tensor; index: Tensor; fill?: Tensor },
    dims: { rows: number; C: number },
  ): void {
    const op = "gatherRows";
    gatherRowsForward(
      {
        out: this.#f32(op, "out", out, dims.rows * dims.C),
        inp: this.#f32(op, "inp", inp),
        index: this.#i32(op, "index", index, dims.rows),
        fill: fill && this.#f32(op, "fill", fill, dims.C),
      },
      dims,
    );
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
    patchify({ out: this.#f32(op, "out", out, n), inp: this.#f32(op, "inp", inp, n) }, dims);
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
    gradNorm(
      {
        norm: this.#f32(op, "norm", norm, 1),
        clipScale: this.#f32(op, "clipScale", clipScale, 1),
        grad: this.#f32(op, "grad", grad),
      },
      dims,
    );
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
    adamw(
      {
        param: this.#f32(op, "param", param),
        grad: this.#f32(op, "grad", grad, n),
        m: this.#f32(op, "m", m, n),
        v: this.#f32(op, "v", v, n),
        offsets: this.#i32(op, "offsets", offsets),
        hyper: this.#f32(op, "hyper", hyper, 2 * S),
        clipScale: clipScale && this.#f32(op, "clipScale", clipScale, 1),
      },
      dims,
    );
  }
}
