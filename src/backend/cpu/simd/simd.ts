/**
 * The CPU backend's f32 elementwise kernels in WebAssembly SIMD (`kernels.c`, built by
 * `build.sh` into `kernels_wasm.ts`): GELU and its derivative, the matmul bias/GELU
 * epilogue, row softmax and LayerNorm (forward and backward), AdamW, and the fused
 * attention units (see `../attention.ts`).
 *
 * Each thread (main or pool worker) instantiates the module once, with its own memory.
 * A call copies a block of the caller's arrays into that memory (a few tens of KiB, so
 * it stays in cache), runs the kernel over the block with 4-lane SIMD, and copies the
 * result out; the copies cost far less than the scalar JS they replace. The reference
 * ops in `../ref/` are what these are tested against, and the fallback when WebAssembly
 * is unavailable (see `../kernels.ts`).
 *
 * @module
 */
import { WasmHeap } from "../wasm_heap.ts";
import { KERNELS_WASM_BASE64 } from "./kernels_wasm.ts";
import type { CpuKernels } from "../kernels.ts";

/** The module's exports; pointers are byte offsets into `memory`. */
interface Exports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  gelu(out: number, inp: number, n: number): void;
  gelu_backward(dinp: number, dout: number, inp: number, n: number): void;
  bias_gelu(c: number, bias: number, pre: number, rows: number, N: number, gelu: number): void;
  softmax(out: number, inp: number, rows: number, C: number, scale: number): void;
  layernorm(
    out: number,
    mean: number,
    rstd: number,
    inp: number,
    weight: number,
    bias: number,
    rows: number,
    C: number,
    eps: number,
  ): void;
  softmax_backward(
    dinp: number,
    dout: number,
    out: number,
    rows: number,
    C: number,
    scale: number,
  ): void;
  layernorm_backward(
    dinp: number,
    dweight: number,
    dbias: number,
    dout: number,
    inp: number,
    weight: number,
    mean: number,
    rstd: number,
    rows: number,
    C: number,
    accumulate: number,
  ): void;
  attention_scratch(N: number, HS: number): number;
  attention(
    out: number,
    att: number,
    qkv: number,
    work: number,
    h0: number,
    h1: number,
    N: number,
    NH: number,
    HS: number,
    scale: number,
  ): void;
  attention_backward(
    dqkv: number,
    dlogits: number,
    dout: number,
    qkv: number,
    att: number,
    work: number,
    h0: number,
    h1: number,
    N: number,
    NH: number,
    HS: number,
    scale: number,
  ): void;
  adamw(
    param: number,
    grad: number,
    m: number,
    v: number,
    n: number,
    clip: number,
    beta1: number,
    beta2: number,
    step: number,
    invBc2: number,
    eps: number,
    decay: number,
  ): void;
}

/** Floats per array per block: small enough to stay in L2 with a few arrays. */
export const BLOCK = 8192;

let wasm: CpuKernels | null | undefined;

/**
 * This thread's WebAssembly SIMD kernels (instantiated once per thread), or null where
 * the engine rejects the module.
 *
 * @example
 * ```ts
 * import { wasmKernels } from "./simd.ts";
 * console.log(wasmKernels()?.name); // "wasm"
 * ```
 */
export function wasmKernels(): CpuKernels | null {
  if (wasm === undefined) wasm = instantiate();
  return wasm;
}

function instantiate(): CpuKernels | null {
  if (typeof WebAssembly === "undefined") return null;
  let ex: Exports;
  try {
    const bytes = Uint8Array.from(atob(KERNELS_WASM_BASE64), (ch) => ch.charCodeAt(0));
    ex = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as Exports;
  } catch {
    return null; // an engine without SIMD rejects the module
  }
  return makeKernels(ex);
}

function makeKernels(ex: Exports): CpuKernels {
  // Scratch starts at the heap base (16-byte aligned), in floats.
  const base = Math.ceil((ex.__heap_base.value as number) / 16) * 4;
  const heap = new WasmHeap(ex.memory, base);
  const regions = (...sizes: number[]): number[] => heap.regions(...sizes);
  const put = (at: number, src: Float32Array) => heap.f32.set(src, at);
  const get = (dst: Float32Array, at: number, n: number, to = 0) =>
    dst.set(heap.f32.subarray(at, at + n), to);
  /**
   * Copies the columns `[c, c + w)` for each `c` of `cols` of the `rows` rows (stride `ld`) at
   * heap offset `at` into `dst` from `to`: one copy when they are the whole rows.
   */
  const headColumns = (
    dst: Float32Array,
    to: number,
    at: number,
    rows: number,
    ld: number,
    cols: number[],
    w: number,
  ) => {
    if (cols.length * w === ld) return get(dst, at, rows * ld, to);
    for (let i = 0; i < rows; i++) {
      for (const c of cols) get(dst, at + i * ld + c, w, to + i * ld + c);
    }
  };
  /** Rows per block for rows of C floats (at least one). */
  const rowBlock = (C: number) => Math.max(1, Math.floor(BLOCK / C));

  return {
    name: "wasm",
    gelu(out, inp) {
      const n = inp.length;
      const [x] = regions(Math.min(BLOCK, n));
      for (let s = 0; s < n; s += BLOCK) {
        const m = Math.min(BLOCK, n - s);
        put(x, inp.subarray(s, s + m));
        ex.gelu(4 * x, 4 * x, m);
        get(out, x, m, s);
      }
    },
    geluBackward(dinp, dout, inp) {
      const n = inp.length;
      const [g, x] = regions(Math.min(BLOCK, n), Math.min(BLOCK, n));
      for (let s = 0; s < n; s += BLOCK) {
        const m = Math.min(BLOCK, n - s);
        put(g, dout.subarray(s, s + m));
        put(x, inp.subarray(s, s + m));
        ex.gelu_backward(4 * g, 4 * g, 4 * x, m);
        get(dinp, g, m, s);
      }
    },
    biasGelu(c, bias, pre, M, N, gelu) {
      const R = Math.min(rowBlock(N), M);
      const keepPre = gelu && pre !== undefined;
      const [cb, bb, pb] = regions(R * N, N, keepPre ? R * N : 0);
      if (bias) put(bb, bias);
      for (let r = 0; r < M; r += R) {
        const rows = Math.min(R, M - r);
        const [s, e] = [r * N, (r + rows) * N];
        put(cb, c.subarray(s, e));
        ex.bias_gelu(4 * cb, bias ? 4 * bb : 0, keepPre ? 4 * pb : 0, rows, N, gelu ? 1 : 0);
        if (keepPre) get(pre!, pb, e - s, s);
        get(c, cb, e - s, s);
      }
    },
    softmax(out, inp, rows, C, scale) {
      const R = Math.min(rowBlock(C), rows);
      const [x] = regions(R * C);
      for (let r = 0; r < rows; r += R) {
        const n = Math.min(R, rows - r);
        put(x, inp.subarray(r * C, (r + n) * C));
        ex.softmax(4 * x, 4 * x, n, C, scale);
        get(out, x, n * C, r * C);
      }
    },
    layernorm(out, mean, rstd, inp, weight, bias, rows, C, eps) {
      const R = Math.min(rowBlock(C), rows);
      const [x, mu, rs, w, b] = regions(R * C, R, R, C, C);
      put(w, weight);
      put(b, bias);
      for (let r = 0; r < rows; r += R) {
        const n = Math.min(R, rows - r);
        put(x, inp.subarray(r * C, (r + n) * C));
        ex.layernorm(4 * x, 4 * mu, 4 * rs, 4 * x, 4 * w, 4 * b, n, C, eps);
        get(out, x, n * C, r * C);
        get(mean, mu, n, r);
        get(rstd, rs, n, r);
      }
    },
    softmaxBackward(dinp, dout, out, rows, C, scale) {
      const R = Math.min(rowBlock(C), rows);
      const [g, y] = regions(R * C, R * C);
      for (let r = 0; r < rows; r += R) {
        const n = Math.min(R, rows - r);
        const [s, e] = [r * C, (r + n) * C];
        put(g, dout.subarray(s, e));
        put(y, out.subarray(s, e));
        ex.softmax_backward(4 * g, 4 * g, 4 * y, n, C, scale);
        get(dinp, g, e - s, s);
      }
    },
    layernormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, rows, C, accumulate) {
      const R = Math.min(rowBlock(C), rows);
      const [d, g, x, mu, rs, w, dw, db] = regions(R * C, R * C, R * C, R, R, C, C, C);
      put(w, weight);
      heap.f32.fill(0, dw, dw + C);
      heap.f32.fill(0, db, db + C);
      for (let r = 0; r < rows; r += R) {
        const n = Math.min(R, rows - r);
        const [s, e] = [r * C, (r + n) * C];
        put(g, dout.subarray(s, e));
        put(x, inp.subarray(s, e));
        put(mu, mean.subarray(r, r + n));
        put(rs, rstd.subarray(r, r + n));
        if (accumulate) put(d, dinp.subarray(s, e));
        ex.layernorm_backward(
          4 * d,
          4 * dw,
          4 * db,
          4 * g,
          4 * x,
          4 * w,
          4 * mu,
          4 * rs,
          n,
          C,
          accumulate ? 1 : 0,
        );
        get(dinp, d, e - s, s);
      }
      for (let c = 0; c < C; c++) {
        dweight[c] += heap.f32[dw + c];
        dbias[c] += heap.f32[db + c];
      }
    },
    // Attention one sample at a time: its qkv rows in, the heads [h0, h1) of units
    // [lo, hi) that it holds computed, their columns of out (or of dqkv) copied back.
    attentionUnits({ out, att, qkv }, { N, NH, HS, scale }, lo, hi) {
      const [D, NN] = [NH * HS, N * N];
      const [q, o, a, w] = regions(3 * N * D, N * D, NH * NN, ex.attention_scratch(N, HS));
      for (let u = lo; u < hi;) {
        const b = Math.floor(u / NH);
        const [h0, h1] = [u - b * NH, Math.min(NH, hi - b * NH)];
        put(q, qkv.subarray(3 * b * N * D, 3 * (b + 1) * N * D));
        ex.attention(4 * o, 4 * a, 4 * q, 4 * w, h0, h1, N, NH, HS, scale);
        get(att, a, (h1 - h0) * NN, (b * NH + h0) * NN);
        headColumns(out, b * N * D, o, N, D, [h0 * HS], (h1 - h0) * HS);
        u = b * NH + h1;
      }
    },
    attentionBackwardUnits({ dqkv, dlogits, dout, qkv, att }, { N, NH, HS, scale }, lo, hi) {
      const [D, NN] = [NH * HS, N * N];
      const [q, g, a, dq, dl, w] = regions(
        3 * N * D,
        N * D,
        NH * NN,
        3 * N * D,
        NH * NN,
        ex.attention_scratch(N, HS),
      );
      for (let u = lo; u < hi;) {
        const b = Math.floor(u / NH);
        const [h0, h1] = [u - b * NH, Math.min(NH, hi - b * NH)];
        put(q, qkv.subarray(3 * b * N * D, 3 * (b + 1) * N * D));
        put(g, dout.subarray(b * N * D, (b + 1) * N * D));
        put(a, att.subarray((b * NH + h0) * NN, (b * NH + h1) * NN));
        ex.attention_backward(4 * dq, 4 * dl, 4 * g, 4 * q, 4 * a, 4 * w, h0, h1, N, NH, HS, scale);
        get(dlogits, dl, (h1 - h0) * NN, (b * NH + h0) * NN);
        const cols = [h0 * HS, D + h0 * HS, 2 * D + h0 * HS]; // q, k, v of the heads
        headColumns(dqkv, 3 * b * N * D, dq, N, 3 * D, cols, (h1 - h0) * HS);
        u = b * NH + h1;
      }
    },
    adamw({ param, grad, m, v }, lo, hi, s) {
      const n = hi - lo;
      const B = Math.min(BLOCK, n);
      const [p, g, mm, vv] = regions(B, B, B, B);
      for (let i = lo; i < hi; i += BLOCK) {
        const k = Math.min(BLOCK, hi - i);
        put(p, param.subarray(i, i + k));
        put(g, grad.subarray(i, i + k));
        put(mm, m.subarray(i, i + k));
        put(vv, v.subarray(i, i + k));
        ex.adamw(
          4 * p,
          4 * g,
          4 * mm,
          4 * vv,
          k,
          s.clip,
          s.beta1,
          s.beta2,
          s.step,
          s.invBc2,
          s.eps,
          s.decay,
        );
        get(param, p, k, i);
        get(m, mm, k, i);
        get(v, vv, k, i);
      }
    },
  };
}
