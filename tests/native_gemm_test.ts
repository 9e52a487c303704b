/**
 * The native GEMM (`dbot_sgemm` in native/dbot_cpu.c) against the reference GEMM and
 * epilogue of src/backend/cpu/ref/matmul.ts on awkward shapes: every transpose, sizes
 * around the 6 × 16 tile, inner sizes that take several packed blocks, row strides above
 * the minimum, beta 0 over NaN, alpha ≠ 1, and the fused bias/GELU epilogue. Then the
 * routing of `withNativeGemm` and a CPU backend built with it against the reference backend.
 * Fails, not skips, under `DBOT_REQUIRE_NATIVE=1` (CI) when the library is missing.
 */
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { loadNativeKernels } from "../src/backend/cpu/native.ts";
import type { CpuKernels } from "../src/backend/cpu/kernels.ts";
import { gemmRef, matmulEpilogue } from "../src/backend/cpu/ref/matmul.ts";
import type { Gemm, GemmArgs } from "../src/backend/cpu/gemm_types.ts";
import {
  SMALL_GEMM_KC_MAX,
  SMALL_GEMM_PACK_FLOATS,
  smallGemmFits,
  withNativeGemm,
} from "../src/backend/cpu/gemm.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { Rng } from "../src/util/rng.ts";
import { requires } from "./requires.ts";

const native = await requires("native");
const loaded = loadNativeKernels();

/** A test that needs the native kernels (skipped without them, failed under DBOT_REQUIRE_NATIVE). */
function nativeTest(name: string, fn: (k: CpuKernels) => void | Promise<void>): void {
  native.test(`[native] ${name}`, () => fn(loaded as CpuKernels));
}

/** Seeded uniform [-1, 1) f32 values. */
const rand = (n: number, seed: number): Float32Array => new Rng(seed).uniformArray(n, -1, 1);

interface Case {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number; // default 1
  beta?: number; // default 0
  pad?: number; // extra elements per row stride, default 0
}

/** The operands of a case (row strides `pad` above the minimum), C filled with `fill`. */
function operands(c: Case, seed: number, fill?: number): GemmArgs {
  const { M, N, K, transA = false, transB = false, alpha = 1, beta = 0, pad = 0 } = c;
  const lda = (transA ? M : K) + pad;
  const ldb = (transB ? K : N) + pad;
  const ldc = N + pad;
  const a = rand((transA ? K : M) * lda, seed);
  const b = rand((transB ? N : K) * ldb, seed + 1);
  const cc = fill === undefined ? rand(M * ldc, seed + 2) : new Float32Array(M * ldc).fill(fill);
  return { transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c: cc, ldc };
}

/** The reference result (f64 sums) of `args` as f32, same layout as `args.c`. */
function reference(args: GemmArgs): Float64Array {
  const c = Float64Array.from(args.c);
  gemmRef({ ...args, c });
  return c;
}

/** |got − want| ≤ tol·(1 + |want|) over the M × N elements of a row-strided C. */
function assertClose(
  got: Float32Array,
  want: Float64Array,
  { M, N, ldc }: { M: number; N: number; ldc: number },
  tol: number,
  what: string,
): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const [g, w] = [got[i * ldc + j], want[i * ldc + j]];
      const err = Math.abs(g - w);
      if (!(err <= tol * (1 + Math.abs(w)))) {
        throw new Error(`${what}: C[${i}, ${j}] = ${g}, want ${w} (|err| ${err})`);
      }
    }
  }
}

// M around the 6-row tile, N around the 16-column panel, K across packed blocks: a block
// holds 49152 floats of op(B), all of K up to 1024 (so K = 600 packs 80 columns at a time,
// K = 900 48) and K = 1500 takes two blocks of 750
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [5, 15, 7],
  [6, 16, 96],
  [7, 17, 3],
  [13, 33, 64],
  [50, 96, 32],
  [19, 100, 600],
  [3, 1, 1000],
  [7, 70, 900], // 16-column panels in blocks of 48: two column blocks
  [5, 20, 1500], // two K blocks of 750
];

nativeTest("sgemm matches the reference GEMM for every transpose, stride and beta", (k) => {
  let seed = 1;
  for (const [M, N, K] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const [alpha, beta, pad] of [[1, 0, 0], [1, 1, 3], [0.5, 0.25, 1]]) {
          const c: Case = { M, N, K, transA, transB, alpha, beta, pad };
          const args = operands(c, seed++);
          const want = reference(args);
          k.sgemm!(args);
          // f32 sums of K terms of size ≤ 1: a few ulps of K
          assertClose(args.c as Float32Array, want, args, 4e-7 * K, JSON.stringify(c));
          // nothing past column N of a padded row is written
          for (let i = 0; i < M && pad > 0; i++) {
            const orig = operands(c, seed - 1);
            for (let j = N; j < args.ldc; j++) {
              assertEquals(args.c[i * args.ldc + j], orig.c[i * args.ldc + j]);
            }
          }
        }
      }
    }
  }
});

nativeTest("sgemm with beta 0 overwrites a C full of NaN", (k) => {
  for (const [M, N, K] of SHAPES) {
    const args = operands({ M, N, K, transB: true }, 7, NaN);
    const want = reference({ ...args, c: new Float32Array(args.c.length) });
    k.sgemm!(args);
    assertClose(args.c as Float32Array, want, args, 4e-7 * K, `${M}x${N}x${K}`);
  }
});

nativeTest("sgemm's fused bias and GELU equal the reference epilogue, pre included", (k) => {
  let seed = 100;
  for (const [M, N, K] of SHAPES) {
    for (const gelu of [false, true]) {
      for (const transB of [false, true]) {
        const args = operands({ M, N, K, transB }, seed++);
        const bias = rand(N, seed++);
        const pre = new Float32Array(M * N).fill(NaN);
        const want = reference(args);
        const wantPre = new Float64Array(M * N);
        matmulEpilogue({ c: want, bias: Float64Array.from(bias), pre: wantPre }, { M, N, gelu });
        k.sgemm!(args, { bias, pre, gelu });
        const what = `${M}x${N}x${K} gelu ${gelu} transB ${transB}`;
        assertClose(args.c as Float32Array, want, args, 4e-7 * K + 1e-6, what);
        if (gelu) assertClose(pre, wantPre, args, 4e-7 * K, `${what} pre`);
        else assert(pre.every(Number.isNaN), `${what}: pre written without GELU`);
        // the same as the GEMM then the kernels' own epilogue pass, bit for bit
        const again = operands({ M, N, K, transB }, seed - 2);
        const pre2 = new Float32Array(M * N).fill(NaN);
        k.sgemm!(again);
        k.biasGelu(again.c as Float32Array, bias, gelu ? pre2 : undefined, M, N, gelu);
        assertEquals(Array.from(args.c), Array.from(again.c), `${what}: fused != separate`);
      }
    }
  }
});

nativeTest("sgemm with K = 0 scales C by beta and applies the epilogue", (k) => {
  const c = new Float32Array([1, 2, 3, 4]);
  k.sgemm!({
    transA: false,
    transB: false,
    M: 2,
    N: 2,
    K: 0,
    alpha: 1,
    a: new Float32Array(0),
    lda: 1,
    b: new Float32Array(0),
    ldb: 2,
    beta: 0.5,
    c,
    ldc: 2,
  }, { bias: new Float32Array([10, 20]) });
  assertEquals(Array.from(c), [10.5, 21, 11.5, 22]);
  // rows ldc apart: the padding between them is left alone
  const padded = new Float32Array([1, 2, 99, 3, 4]);
  k.sgemm!({
    transA: false,
    transB: false,
    M: 2,
    N: 2,
    K: 0,
    alpha: 1,
    a: new Float32Array(0),
    lda: 1,
    b: new Float32Array(0),
    ldb: 2,
    beta: 1,
    c: padded,
    ldc: 3,
  }, { bias: new Float32Array([1, 1]) });
  assertEquals(Array.from(padded), [2, 3, 99, 4, 5]);
});

nativeTest("sgemm refuses short operands with a RangeError naming them", (k) => {
  const args = operands({ M: 4, N: 5, K: 6 }, 3);
  assertThrows(() => k.sgemm!({ ...args, a: args.a.subarray(1) }), RangeError, "a is too short");
  assertThrows(() => k.sgemm!({ ...args, ldc: 4 }), RangeError, "ldc");
  assertThrows(() => k.sgemm!(args, { bias: new Float32Array(4) }), RangeError, "bias");
  const f64 = { ...args, c: new Float64Array(args.c.length) };
  assertThrows(() => k.sgemm!(f64), TypeError, "f64");
});

Deno.test("smallGemmFits: forward products up to K = 1024, input gradients whose W packs whole", () => {
  const fits = (transA: boolean, transB: boolean, N: number, K: number) =>
    smallGemmFits({ transA, transB, N, K });
  assert(fits(false, true, 384, 96), "vit-micro fc1");
  assert(fits(false, true, 768, 192), "vit-tiny fc1: column blocks");
  assert(fits(false, true, 16, SMALL_GEMM_KC_MAX), "K at the block's limit");
  assert(!fits(false, true, 16, SMALL_GEMM_KC_MAX + 1), "K past one block");
  assert(fits(false, false, 96, 384), "vit-micro fc2's input gradient");
  assert(!fits(false, false, 768, 192), "vit-tiny fc2's input gradient: W in column blocks");
  assert(fits(false, false, 16, SMALL_GEMM_PACK_FLOATS / 16), "W packed whole");
  assert(!fits(false, false, 17, SMALL_GEMM_PACK_FLOATS / 32 + 1), "W past one block");
  assert(!fits(true, false, 96, 96), "a weight gradient");
});

nativeTest(
  "withNativeGemm sends the small-K products to the native GEMM, the rest to the base",
  (k) => {
    const calls: string[] = [];
    const base: Gemm = {
      name: "base",
      path: "/base",
      sgemm: (args) => {
        calls.push(`base ${args.M}x${args.N}x${args.K}`);
        gemmRef(args);
      },
    };
    const gemm = withNativeGemm(base, k, "small");
    if (k.gemmVectorBits !== 256) {
      assertEquals(gemm, base, "no AVX2: the base GEMM unchanged");
      return;
    }
    assertEquals(gemm.name, "base + native AVX2 GEMM (small-K products; base)");
    assertEquals(gemm.path, "/base");
    const small = operands({ M: 8, N: 40, K: 24, transB: true }, 5);
    const wide = operands({ M: 8, N: 40, K: 24, transA: true }, 6);
    const [ws, ww] = [reference(small), reference(wide)];
    gemm.sgemm(small);
    gemm.sgemm(wide);
    assertEquals(calls, ["base 8x40x24"], "only the transposed-A product reaches the base");
    assertClose(small.c as Float32Array, ws, small, 1e-5, "small");
    assertClose(wide.c as Float32Array, ww, wide, 1e-5, "wide");
    // with an epilogue: fused on the native GEMM (true); a product it does not take is not
    // fused where the base fuses none (false, nothing ran: the caller's blocked pass runs it)
    const bias = rand(40, 9);
    const fused = operands({ M: 8, N: 40, K: 24, transB: true }, 5);
    const want = reference(fused);
    matmulEpilogue({ c: want, bias: Float64Array.from(bias) }, { M: 8, N: 40, gelu: true });
    assertEquals(gemm.sgemmEpilogue!(fused, { bias, gelu: true }), true);
    assertClose(fused.c as Float32Array, want, fused, 1e-5, "small with epilogue");
    const again = operands({ M: 8, N: 40, K: 24, transA: true }, 6);
    const before = Array.from(again.c);
    assertEquals(gemm.sgemmEpilogue!(again, { bias, gelu: true }), false);
    assertEquals(Array.from(again.c), before, "nothing ran");
    assertEquals(calls, ["base 8x40x24"], "and the base was not called");
  },
);

nativeTest("withNativeGemm 'all' runs every product natively and keeps the base's members", (k) => {
  const calls: string[] = [];
  const base: Gemm = {
    name: "WebAssembly SIMD GEMM (relaxed)",
    path: "wasm:relaxed",
    note: "OpenBLAS not found (apt-get install libopenblas0-pthread: ~2.5× faster matmul)",
    sgemm: (args) => {
      calls.push(`base ${args.M}x${args.N}x${args.K}`);
      gemmRef(args);
    },
  };
  const gemm = withNativeGemm(base, k, "all");
  if (k.gemmVectorBits !== 256) return assertEquals(gemm, base, "no AVX2: the base unchanged");
  assertEquals(
    gemm.name,
    "native AVX2 GEMM (batched products: WebAssembly SIMD GEMM (relaxed))",
  );
  assertEquals(gemm.path, "wasm:relaxed");
  assert(gemm.note?.includes("faster weight gradients"), `note: ${gemm.note}`);
  const wide = operands({ M: 8, N: 40, K: 24, transA: true, beta: 1, pad: 2 }, 6);
  const want = reference(wide);
  gemm.sgemm(wide);
  assertEquals(calls, [], "the base GEMM is not called");
  assertClose(wide.c as Float32Array, want, wide, 1e-5, "wide");
});

for (const gemm of ["auto", "native"] as const) {
  nativeTest(
    `a 2-thread CPU backend (gemm ${gemm}) matches the reference backend's matmul`,
    async () => {
      const be = new CpuBackend({ threads: 2, kernels: "native", gemm, minParallelWork: 1 });
      const ref = CpuBackend.reference();
      try {
        assert(be.description.includes("native AVX2 GEMM, 2 threads"), be.description);
        const shapes = [[600, 96, 64, true], [130, 288, 96, false], [37, 20, 384, true]] as const;
        for (const [M, N, K, gelu] of shapes) {
          for (const transA of [false, true]) {
            const [a, w, bias] = [rand(M * K, M), rand(N * K, N), rand(N, K)];
            const run = async (b: CpuBackend): Promise<Float32Array> => {
              const t = (x: Float32Array, shape: number[]) => {
                const tt = b.tensor(shape);
                b.upload(tt, x);
                return tt;
              };
              const out = b.tensor([M, N]);
              const pre = b.tensor([M, N]);
              b.matmul({
                out,
                a: t(a, transA ? [K, M] : [M, K]),
                b: t(w, transA ? [K, N] : [N, K]),
                bias: t(bias, [N]),
                pre: gelu ? pre : undefined,
              }, { M, N, K, transA, transB: !transA, gelu });
              return (await b.download(out)) as Float32Array;
            };
            const [got, want] = [await run(be), await run(ref)];
            const what = `${M}x${N}x${K} transA ${transA}`;
            assertClose(got, Float64Array.from(want), { M, N, ldc: N }, 1e-5, what);
          }
        }
      } finally {
        be.dispose();
        ref.dispose();
      }
    },
  );
}
