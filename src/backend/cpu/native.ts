/**
 * The CPU backend's native elementwise kernels (`native/dbot_cpu.c`, built by
 * `deno task build-native` into `native/build/`) through `Deno.dlopen`: the same kernels
 * as the WebAssembly ones in `simd/`, vectorised by the C compiler (AVX2 + FMA where the
 * CPU has them) and run on the backend's own arrays, with no copies.
 *
 * Optional: when the library is not built, or FFI is not permitted for its directory,
 * {@link loadNativeKernels} returns the reason and the backend uses WebAssembly. The path
 * is the backend's `nativeLibrary` option (the tasks' `--native-lib`), else the checkout's
 * `native/build/`; no environment variable is read.
 *
 * @module
 */
import { ffiGranted, isPermissionError } from "../../util/ffi.ts";
import type { CpuKernels } from "./kernels.ts";
import { type GemmArgs, type GemmEpilogue, validateGemmArgs } from "./gemm_types.ts";

const SYMBOLS = {
  dbot_gelu: { parameters: ["buffer", "buffer", "i32"], result: "void" },
  dbot_gelu_backward: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "void" },
  dbot_bias_gelu: {
    parameters: ["buffer", "buffer", "buffer", "i32", "i32", "i32"],
    result: "void",
  },
  dbot_softmax: { parameters: ["buffer", "buffer", "i32", "i32", "f32"], result: "void" },
  dbot_softmax_backward: {
    parameters: ["buffer", "buffer", "buffer", "i32", "i32", "f32"],
    result: "void",
  },
  dbot_layernorm: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer", "i32", "i32", "f32"],
    result: "void",
  },
  dbot_layernorm_backward: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "i32",
      "i32",
    ],
    result: "void",
  },
  dbot_add: { parameters: ["buffer", "buffer", "buffer", "i32", "i32"], result: "void" },
  dbot_bias_grad_f64: { parameters: ["buffer", "buffer", "i32", "i32"], result: "void" },
  dbot_patchify: {
    parameters: ["buffer", "buffer", "i32", "i32", "i32", "i32", "i32"],
    result: "void",
  },
  dbot_standardize_rows: {
    parameters: ["buffer", "buffer", "i32", "i32", "f64"],
    result: "void",
  },
  dbot_smooth_l1: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "i32", "i32", "f64"],
    result: "void",
  },
  dbot_scale_rows: {
    parameters: ["buffer", "buffer", "buffer", "i32", "i32"],
    result: "void",
  },
  dbot_attention_scratch: { parameters: ["i32", "i32"], result: "i32" },
  dbot_attention: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "i32", "i32", "i32", "i32", "i32", "f32"],
    result: "void",
  },
  dbot_attention_backward: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
    ],
    result: "void",
  },
  dbot_sgemm_scratch: { parameters: ["i32", "i32", "i32", "i32"], result: "i32" },
  dbot_gemm_vector_bits: { parameters: [], result: "i32" },
  dbot_sgemm: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "buffer",
      "i32",
      "buffer",
    ],
    result: "void",
  },
  dbot_adamw: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "f32",
      "f32",
      "f32",
      "f32",
      "f32",
      "f32",
      "f32",
    ],
    result: "void",
  },
} as const;

/**
 * Where the native library is built in this checkout (`native/build/libdbot_cpu.so`, or
 * `.dylib`), or null when the module is not a local file (a JSR or remote import).
 */
export function defaultNativeLibrary(): string | null {
  const ext = Deno.build.os === "darwin" ? "dylib" : "so";
  const url = new URL(`../../../native/build/libdbot_cpu.${ext}`, import.meta.url);
  if (url.protocol !== "file:") return null; // a remote module has no built library
  return decodeURIComponent(url.pathname);
}

/** Kernels (or why not) per library path: each thread opens a library once. */
const loaded = new Map<string, CpuKernels | { reason: string }>();

/**
 * The native kernels from `path` (default {@link defaultNativeLibrary}), or `{ reason }`
 * when they cannot load here.
 */
export function loadNativeKernels(path?: string): CpuKernels | { reason: string } {
  const file = path ?? defaultNativeLibrary();
  if (!file) return { reason: "the module is not a local checkout" };
  let k = loaded.get(file);
  if (!k) {
    k = openNative(file);
    loaded.set(file, k);
  }
  return k;
}

function openNative(path: string): CpuKernels | { reason: string } {
  // Ask first: a dlopen without the permission would stop at a prompt in a terminal.
  try {
    if (!ffiGranted(path)) {
      return { reason: `no FFI permission for ${path}` };
    }
  } catch (e) {
    return { reason: `FFI permission query failed: ${(e as Error).message}` };
  }
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    const why = isPermissionError(e)
      ? `no FFI permission for ${path}`
      : `${path} did not load (run deno task build-native): ${(e as Error).message}`;
    return { reason: why };
  }
  const k = lib.symbols;
  const NULL = null as unknown as Float32Array; // a null pointer for an absent array
  // the attention kernels' per-unit scratch, grown to the largest (N, HS) seen on this thread
  let work = new Float32Array(0);
  const scratch = (N: number, HS: number): Float32Array => {
    const n = k.dbot_attention_scratch(N, HS);
    if (work.length < n) work = new Float32Array(n);
    return work;
  };
  // the GEMM's packing scratch, grown likewise
  let packed = new Float32Array(0);
  const sgemm = (args: GemmArgs, epi: GemmEpilogue = {}): void => {
    validateGemmArgs(args);
    const { M, N, K, a, b, c, ldc } = args;
    if (!(a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array)) {
      throw new TypeError("Cannot run the native GEMM on f64 arrays: it is single precision");
    }
    const { bias, pre, gelu = false } = epi;
    if (bias && bias.length < N) {
      throw new RangeError(`Cannot run GEMM as bias has ${bias.length} elements, needs ${N}`);
    }
    if (gelu && pre && pre.length < (M - 1) * ldc + N) {
      throw new RangeError(`Cannot run GEMM as pre is too short for [${M}, ${N}] with ldc=${ldc}`);
    }
    if (M === 0 || N === 0) return;
    if (K === 0) {
      // C = beta·C (BLAS), then the epilogue, row by row (C's rows are ldc apart)
      for (let i = 0; i < M; i++) {
        const row = c.subarray(i * ldc, i * ldc + N);
        if (args.beta === 0) row.fill(0);
        else for (let j = 0; j < N; j++) row[j] *= args.beta;
        if (!bias && !gelu) continue;
        const p = gelu && pre ? pre.subarray(i * ldc, i * ldc + N) : NULL;
        k.dbot_bias_gelu(row, bias ?? NULL, p, 1, N, gelu ? 1 : 0);
      }
      return;
    }
    const n = k.dbot_sgemm_scratch(args.transA ? 1 : 0, M, N, K);
    if (packed.length < n) packed = new Float32Array(n);
    k.dbot_sgemm(
      args.transA ? 1 : 0,
      args.transB ? 1 : 0,
      M,
      N,
      K,
      args.alpha,
      a,
      args.lda,
      b,
      args.ldb,
      args.beta,
      c,
      ldc,
      bias ?? NULL,
      gelu && pre ? pre : NULL,
      gelu ? 1 : 0,
      packed,
    );
  };
  return {
    name: "native",
    sgemm,
    gemmVectorBits: k.dbot_gemm_vector_bits(),
    gelu: (out, inp) => k.dbot_gelu(out, inp, inp.length),
    geluBackward: (dinp, dout, inp) => k.dbot_gelu_backward(dinp, dout, inp, inp.length),
    biasGelu: (c, bias, pre, M, N, gelu) =>
      k.dbot_bias_gelu(c, bias ?? NULL, gelu && pre ? pre : NULL, M, N, gelu ? 1 : 0),
    softmax: (out, inp, rows, C, scale) => k.dbot_softmax(out, inp, rows, C, scale),
    softmaxBackward: (dinp, dout, out, rows, C, scale) =>
      k.dbot_softmax_backward(dinp, dout, out, rows, C, scale),
    layernorm: (out, mean, rstd, inp, weight, bias, rows, C, eps) =>
      k.dbot_layernorm(out, mean, rstd, inp, weight, bias, rows, C, eps),
    layernormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, rows, C, accumulate) {
      const sums = new Float32Array(2 * C); // f32 column sums, added to the caller's (f32 or f64)
      k.dbot_layernorm_backward(
        dinp,
        sums.subarray(0, C),
        sums.subarray(C),
        dout,
        inp,
        weight,
        mean,
        rstd,
        rows,
        C,
        accumulate ? 1 : 0,
      );
      for (let c = 0; c < C; c++) {
        dweight[c] += sums[c];
        dbias[c] += sums[C + c];
      }
    },
    add: (out, a, b) => k.dbot_add(out, a, b, a.length, b.length),
    biasGradF64: (acc, dout, rows, C) => k.dbot_bias_grad_f64(acc, dout, rows, C),
    patchify: (out, inp, { B, C, H, W, P }) => k.dbot_patchify(out, inp, B, C, H, W, P),
    standardizeRows: (out, inp, rows, C, eps) => k.dbot_standardize_rows(out, inp, rows, C, eps),
    smoothL1(loss, dinp, inp, target, weight, rows, C, beta) {
      const total = new Float64Array(1);
      k.dbot_smooth_l1(total, dinp, inp, target, weight, rows, C, beta);
      loss[0] = total[0];
    },
    scaleRows: (out, inp, scale, rows, C) => k.dbot_scale_rows(out, inp, scale, rows, C),
    attentionUnits({ out, att, qkv }, { N, NH, HS, scale }, lo, hi) {
      k.dbot_attention(out, att, qkv, scratch(N, HS), lo, hi, N, NH, HS, scale);
    },
    attentionBackwardUnits({ dqkv, dlogits, dout, qkv, att }, { N, NH, HS, scale }, lo, hi) {
      const w = scratch(N, HS);
      k.dbot_attention_backward(dqkv, dlogits, dout, qkv, att, w, lo, hi, N, NH, HS, scale);
    },
    adamw({ param, grad, m, v }, lo, hi, s) {
      k.dbot_adamw(
        param.subarray(lo, hi),
        grad.subarray(lo, hi),
        m.subarray(lo, hi),
        v.subarray(lo, hi),
        hi - lo,
        s.clip,
        s.beta1,
        s.beta2,
        s.step,
        s.invBc2,
        s.eps,
        s.decay,
      );
    },
  };
}
