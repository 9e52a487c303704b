/**
 * The WebAssembly SIMD GEMM (`src/backend/cpu/wasm_gemm/`): both builds (relaxed-SIMD
 * FMA and plain SIMD) against the pure-TS GEMM on awkward shapes, all transposes,
 * alpha/beta (beta 0 over NaN), padded strides and offset subarrays, across its chunk
 * boundaries; its fused bias/GELU epilogue against the reference GEMM and epilogue (and
 * bit for bit against the GEMM followed by the WebAssembly kernels' epilogue); its
 * batched call against one product at a time; split over a 2-thread `CpuBackend`
 * against the reference backend; chosen by `loadGemm` without OpenBLAS; and the
 * committed `gemm_wasm.ts` is checked against `gemm.c` (no compiler needed).
 */
import { ok as assert, strictEqual as assertStrictEquals } from "node:assert";
import type { Gemm, GemmArgs, GemmEpilogue } from "../src/backend/cpu/gemm_types.ts";
import { gemmTs } from "../src/backend/cpu/gemm_ts.ts";
import { loadGemm } from "../src/backend/cpu/gemm.ts";
import { gemmRef, matmulEpilogue } from "../src/backend/cpu/ref/matmul.ts";
import { wasmKernels } from "../src/backend/cpu/simd/simd.ts";
import {
  createWasmGemm,
  wasmGemm,
  type WasmGemmVariant,
} from "../src/backend/cpu/wasm_gemm/wasm_gemm.ts";
import {
  GEMM_WASM_FLAGS,
  GEMM_WASM_RELAXED_BASE64,
  GEMM_WASM_SIMD_BASE64,
  GEMM_WASM_SOURCE_SHA256,
} from "../src/backend/cpu/wasm_gemm/gemm_wasm.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { assertAllClose } from "./helpers.ts";

const VARIANTS: WasmGemmVariant[] = ["relaxed", "simd"];
const PAD = 42; // sentinel in the gaps of padded rows and before offset operands

/** Seeded uniform [-1, 1) so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

interface Case {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
  /** Extra elements per stored row (lda = cols + pad, likewise ldb, ldc). */
  pad: number;
  /** Leading elements before each operand. */
  offset: number;
  /** C's logical region starts as NaN (with beta 0 it must be overwritten). */
  nanC: boolean;
}

/** Stored `rows × cols`, row stride `ld`, as a subarray from `offset` of a PAD-filled array. */
function matrix(
  rows: number,
  cols: number,
  ld: number,
  offset: number,
  fill: () => number,
): Float32Array {
  const m = new Float32Array(offset + rows * ld).fill(PAD).subarray(offset);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) m[r * ld + c] = fill();
  return m;
}

function makeArgs(t: Case, seed: number): GemmArgs & { c: Float32Array } {
  const next = rng(seed);
  const { transA, transB, M, N, K, pad, offset } = t;
  const [aRows, aCols] = transA ? [K, M] : [M, K];
  const [bRows, bCols] = transB ? [N, K] : [K, N];
  const [lda, ldb, ldc] = [aCols + pad, bCols + pad, N + pad];
  return {
    transA,
    transB,
    M,
    N,
    K,
    alpha: t.alpha,
    a: matrix(aRows, aCols, lda, offset, next),
    lda,
    b: matrix(bRows, bCols, ldb, offset, next),
    ldb,
    beta: t.beta,
    c: matrix(M, N, ldc, offset, t.nanC ? () => NaN : next),
    ldc,
  };
}

/** Runs `gemm` and the pure-TS GEMM on copies of the same operands and compares all of C. */
function check(gemm: Gemm, t: Case, seed: number): void {
  const args = makeArgs(t, seed);
  const want = { ...args, c: args.c.slice() };
  gemmTs(want);
  gemm.sgemm(args);
  const name = `${gemm.name} ${JSON.stringify(t)}`;
  // Whole stored C, gaps included: the PAD sentinels must survive.
  assertAllClose(args.c, want.c, { atol: 1e-5 * Math.max(1, t.K), rtol: 1e-4 }, name);
}

const DIMS = [1, 3, 7, 17, 65, 197];
const TRANSPOSES = [[false, false], [false, true], [true, false], [true, true]] as const;

for (const variant of VARIANTS) {
  const gemm = wasmGemm(variant);
  Deno.test({
    name: `WebAssembly GEMM (${variant}) matches the TS GEMM: awkward shapes × all transposes`,
    fn() {
      assert(gemm, `this engine rejects the ${variant} build`);
      let seed = 1;
      for (const [transA, transB] of TRANSPOSES) {
        for (const M of DIMS) {
          for (const N of DIMS) {
            for (const K of [1, 7, 65, 197]) {
              // A spread of alpha/beta/pad/offset without the full product of them all.
              const alpha = [1, 0.5, -2][seed % 3];
              const beta = [0, 1, 0.25][(seed >> 1) % 3];
              const pad = seed % 4 === 0 ? 3 : 0;
              const offset = seed % 5 === 0 ? 5 : 0;
              check(
                gemm!,
                { transA, transB, M, N, K, alpha, beta, pad, offset, nanC: false },
                seed,
              );
              seed++;
            }
          }
        }
      }
    },
  });

  Deno.test({
    name: `WebAssembly GEMM (${variant}): beta 0 overwrites NaN, alpha 0 and K 0 scale C, strides`,
    fn() {
      assert(gemm, `this engine rejects the ${variant} build`);
      let seed = 1000;
      for (const [transA, transB] of TRANSPOSES) {
        for (const [M, N, K] of [[17, 65, 33], [1, 197, 7], [65, 1, 300], [7, 9, 0]]) {
          const base = { transA, transB, M, N, K, pad: 0, offset: 0, nanC: false };
          check(gemm!, { ...base, alpha: 1, beta: 0, nanC: true }, seed++);
          check(gemm!, { ...base, alpha: 0.75, beta: 0, pad: 5, offset: 3, nanC: true }, seed++);
          check(gemm!, { ...base, alpha: -1.5, beta: 0.5, pad: 2, offset: 1 }, seed++);
          check(gemm!, { ...base, alpha: 0, beta: 0.5 }, seed++);
          check(gemm!, { ...base, alpha: 0, beta: 0, nanC: true }, seed++);
        }
      }
      // Zero-size products touch nothing.
      const c = new Float32Array([PAD]);
      gemm!.sgemm({
        transA: false,
        transB: false,
        M: 0,
        N: 1,
        K: 3,
        alpha: 1,
        a: new Float32Array(0),
        lda: 3,
        b: new Float32Array(3),
        ldb: 1,
        beta: 0,
        c,
        ldc: 1,
      });
      assertStrictEquals(c[0], PAD);
    },
  });

  Deno.test({
    name: `WebAssembly GEMM (${variant}) across its row and column chunks`,
    fn() {
      // Chunks of a few hundred floats: several column chunks of op(B) (reused packed
      // across row chunks), several row chunks of A and C, and KC=256 blocks of K.
      const small = createWasmGemm(variant, { bFloats: 600 * 24, cFloats: 2000 });
      assert(small, `this engine rejects the ${variant} build`);
      let seed = 2000;
      for (const [transA, transB] of TRANSPOSES) {
        for (const [M, N, K] of [[50, 70, 600], [97, 41, 257], [13, 130, 513]]) {
          const base = { transA, transB, M, N, K, pad: 1, offset: 2, nanC: false };
          check(small!, { ...base, alpha: 1, beta: 0, nanC: true }, seed++);
          check(small!, { ...base, alpha: 0.5, beta: 1 }, seed++);
          check(small!, { ...base, alpha: 1, beta: -0.5 }, seed++);
        }
      }
    },
  });
}

/** The reference: `gemmRef` then `matmulEpilogue` row by row (C and pre with row stride ldc). */
function refEpilogue(args: GemmArgs, epi: GemmEpilogue): void {
  gemmRef(args);
  const { M, N, ldc } = args;
  for (let i = 0; i < M; i++) {
    const row = (x: Float32Array) => x.subarray(i * ldc, i * ldc + N);
    const pre = epi.pre && row(epi.pre);
    matmulEpilogue({ c: row(args.c as Float32Array), bias: epi.bias, pre }, {
      M: 1,
      N,
      gelu: epi.gelu ?? false,
    });
  }
}

/** Epilogue cases: bias alone, GELU alone, bias + GELU with and without pre. */
const EPILOGUES = [
  { bias: true, gelu: false, pre: false },
  { bias: false, gelu: true, pre: true },
  { bias: true, gelu: true, pre: true },
  { bias: true, gelu: true, pre: false },
];

/**
 * Runs `gemm.sgemmEpilogue` and the reference on copies of the same operands; compares C
 * and pre (gaps included: PAD sentinels must survive).
 */
function checkEpilogue(gemm: Gemm, t: Case, e: (typeof EPILOGUES)[number], seed: number): void {
  const args = makeArgs(t, seed);
  const next = rng(seed + 7);
  const bias = e.bias ? Float32Array.from({ length: t.N }, () => 2 * next()) : undefined;
  const pre = e.pre ? matrix(t.M, t.N, args.ldc, 0, () => NaN) : undefined;
  const want = { ...args, c: args.c.slice() };
  const wantPre = pre?.slice();
  refEpilogue(want, { bias, pre: wantPre, gelu: e.gelu });
  gemm.sgemmEpilogue!(args, { bias, pre, gelu: e.gelu });
  const name = `${gemm.name} ${JSON.stringify({ ...t, ...e })}`;
  const tol = { atol: 1e-5 * Math.max(1, t.K), rtol: 1e-4 };
  assertAllClose(args.c, want.c, tol, name);
  if (pre) assertAllClose(pre, wantPre!, tol, `${name} pre`);
}

for (const variant of VARIANTS) {
  Deno.test({
    name:
      `WebAssembly GEMM (${variant}): fused bias/GELU epilogue matches the reference GEMM + epilogue`,
    fn() {
      // default chunks, and chunks of a few hundred floats (several row and column chunks,
      // K over KC = 256: the epilogue after the last K block only)
      const gemms = [
        createWasmGemm(variant),
        createWasmGemm(variant, { bFloats: 600 * 24, cFloats: 2000, aFloats: 4000 }),
      ];
      let seed = 3000;
      for (const gemm of gemms) {
        assert(gemm?.sgemmEpilogue, `this engine rejects the ${variant} build`);
        for (const [transA, transB] of TRANSPOSES) {
          for (
            const [M, N, K] of [[1, 1, 1], [3, 17, 7], [17, 1, 65], [65, 67, 33], [9, 13, 300]]
          ) {
            for (const e of EPILOGUES) {
              const base = { transA, transB, M, N, K, pad: 0, offset: 0, nanC: false };
              checkEpilogue(gemm, { ...base, alpha: 1, beta: 0, nanC: true }, e, seed++);
              checkEpilogue(gemm, { ...base, alpha: 1, beta: 0, pad: 3, offset: 2 }, e, seed++);
            }
            // accumulate with a bias (no GELU: the backend never combines the two)
            const acc = { transA, transB, M, N, K, alpha: 1, beta: 1, pad: 1, offset: 1 };
            checkEpilogue(gemm, { ...acc, nanC: false }, EPILOGUES[0], seed++);
          }
          // K = 0: C = beta·C, then the epilogue
          const zero = { transA, transB, M: 5, N: 9, K: 0, alpha: 1, beta: 0, pad: 0, offset: 0 };
          checkEpilogue(gemm, { ...zero, nanC: true }, EPILOGUES[2], seed++);
        }
      }
    },
  });

  Deno.test({
    name:
      `WebAssembly GEMM (${variant}): the fused epilogue gives the bits of the GEMM then the WebAssembly kernels' epilogue`,
    fn() {
      const gemm = createWasmGemm(variant);
      const kernels = wasmKernels();
      assert(gemm?.sgemmEpilogue && kernels, `this engine rejects the ${variant} build`);
      let seed = 4000;
      for (const [M, N, K] of [[65, 67, 33], [130, 384, 96], [7, 5, 260]]) {
        const t = { transA: false, transB: true, M, N, K, alpha: 1, beta: 0, pad: 0, offset: 0 };
        const args = makeArgs({ ...t, nanC: false }, seed++);
        const next = rng(seed++);
        const bias = Float32Array.from({ length: N }, () => 4 * next());
        const [pre, wantPre] = [new Float32Array(M * N), new Float32Array(M * N)];
        const want = { ...args, c: args.c.slice() };
        gemm.sgemm(want);
        kernels.biasGelu(want.c, bias, wantPre, M, N, true);
        gemm.sgemmEpilogue(args, { bias, pre, gelu: true });
        assert(args.c.every((x, i) => Object.is(x, want.c[i])), `C differs (${M}×${N}×${K})`);
        assert(pre.every((x, i) => Object.is(x, wantPre[i])), `pre differs (${M}×${N}×${K})`);
      }
    },
  });

  Deno.test({
    name:
      `WebAssembly GEMM (${variant}): sgemmBatch matches one GEMM per product, across its blocks`,
    fn() {
      const gemms = [createWasmGemm(variant), createWasmGemm(variant, { batchFloats: 3000 })];
      let seed = 5000;
      for (const gemm of gemms) {
        assert(gemm?.sgemmBatch, `this engine rejects the ${variant} build`);
        for (const [transA, transB] of TRANSPOSES) {
          for (const [M, N, K, batch] of [[1, 1, 1, 1], [17, 17, 32, 5], [65, 16, 65, 7]]) {
            for (const [alpha, beta, pad] of [[1, 0, 0], [1, 1, 0], [0.5, 0.25, 2]]) {
              // batch products one after another (each padded like one stored matrix)
              const one = makeArgs(
                { transA, transB, M, N, K, alpha, beta, pad, offset: 0, nanC: beta === 0 },
                seed,
              );
              const stored = (rows: number, ld: number) => rows * ld;
              const [sa, sb, sc] = [
                stored(transA ? K : M, one.lda),
                stored(transB ? N : K, one.ldb),
                stored(M, one.ldc),
              ];
              const next = rng(seed++);
              const fill = (n: number, nan: boolean) =>
                Float32Array.from({ length: n }, () => (nan ? NaN : next()));
              const args = {
                ...one,
                a: fill(batch * sa, false),
                b: fill(batch * sb, false),
                c: fill(batch * sc, beta === 0),
              };
              const want = args.c.slice();
              for (let p = 0; p < batch; p++) {
                gemmTs({
                  ...args,
                  a: args.a.subarray(p * sa),
                  b: args.b.subarray(p * sb),
                  c: want.subarray(p * sc),
                });
              }
              // gaps of a padded C are never written: the TS GEMM leaves them as they were
              gemm.sgemmBatch(args, batch);
              const name = `${gemm.name} batch ${batch} ${
                JSON.stringify({ transA, transB, M, N, K, alpha, beta, pad })
              }`;
              const sameGaps = (x: Float32Array) =>
                x.map((v, i) => (i % one.ldc >= N ? 0 : Number.isNaN(v) ? -999 : v));
              assertAllClose(
                sameGaps(args.c),
                sameGaps(want),
                { atol: 1e-5 * Math.max(1, K), rtol: 1e-4 },
                name,
              );
            }
          }
        }
        // too short for the last product: an error naming the array and the fix's size
        const a = new Float32Array(2 * 4 * 3 - 1);
        let message = "";
        try {
          gemm.sgemmBatch({
            transA: false,
            transB: false,
            M: 4,
            N: 2,
            K: 3,
            alpha: 1,
            a,
            lda: 3,
            b: new Float32Array(12),
            ldb: 2,
            beta: 0,
            c: new Float32Array(16),
            ldc: 2,
          }, 2);
        } catch (e) {
          message = (e as Error).message;
        }
        assert(message.includes("a is too short for 2 products"), message);
      }
    },
  });
}

Deno.test("the relaxed build carries f32x4.relaxed_madd and the plain build no relaxed opcode", () => {
  const bytes = (b64: string) => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  const count = (b: Uint8Array, pat: number[]) => {
    let n = 0;
    for (let i = 0; i + pat.length <= b.length; i++) {
      if (pat.every((x, j) => b[i + j] === x)) n++;
    }
    return n;
  };
  const relaxed = bytes(GEMM_WASM_RELAXED_BASE64);
  const simd = bytes(GEMM_WASM_SIMD_BASE64);
  assert(count(relaxed, [0xfd, 0x85, 0x02]) > 0, "no f32x4.relaxed_madd in the relaxed build");
  assertStrictEquals(count(relaxed, [0xfd, 0xaf, 0x01]), 0, "clang-14's prototype opcode left");
  assertStrictEquals(count(simd, [0xfd, 0x85, 0x02]), 0, "relaxed_madd in the plain build");
  assert(WebAssembly.validate(simd), "the plain SIMD build does not validate");
});

Deno.test("gemm_wasm.ts is not stale: its SHA-256 matches build.sh's flags and gemm.c", async () => {
  const dir = new URL("../src/backend/cpu/wasm_gemm/", import.meta.url);
  const source = await Deno.readFile(new URL("gemm.c", dir));
  const script = await Deno.readTextFile(new URL("build.sh", dir));
  assert(
    script.includes(`FLAGS="${GEMM_WASM_FLAGS}"`),
    "build.sh's FLAGS differ from the generated file's: run bash src/backend/cpu/wasm_gemm/build.sh",
  );
  const head = new TextEncoder().encode(GEMM_WASM_FLAGS + "\n");
  const all = new Uint8Array(head.length + source.length);
  all.set(head);
  all.set(source, head.length);
  const hex = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", all)),
    (x) => x.toString(16).padStart(2, "0"),
  ).join("");
  assertStrictEquals(
    hex,
    GEMM_WASM_SOURCE_SHA256,
    "gemm.c changed since gemm_wasm.ts was generated: run bash src/backend/cpu/wasm_gemm/build.sh",
  );
});

Deno.test("loadGemm('wasm') is the WebAssembly GEMM, relaxed where the engine has it", () => {
  const gemm = loadGemm("wasm");
  assert(gemm.name.startsWith("WebAssembly SIMD GEMM"), gemm.name);
  assertStrictEquals(gemm, wasmGemm());
  assertStrictEquals(gemm.path, wasmGemm("relaxed") ? "wasm:relaxed" : "wasm:simd");
});

Deno.test({
  name:
    "without FFI permission loadGemm() and CpuBackend.description pick the WebAssembly GEMM and say how to get OpenBLAS",
  // Spawns `deno run --allow-read` (the permissions of a JSR user without --allow-ffi).
  ignore: (await Deno.permissions.query({ name: "run", command: "deno" })).state !== "granted",
  async fn() {
    const backend = new URL("../src/backend/cpu/backend.ts", import.meta.url).href;
    const code = `import { CpuBackend } from ${JSON.stringify(backend)};
      const be = new CpuBackend({ threads: 1 });
      console.log(be.description);`;
    const out = await new Deno.Command("deno", {
      args: ["run", "--allow-read", "--no-prompt", "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = out.stdin.getWriter();
    await w.write(new TextEncoder().encode(code));
    await w.close();
    const { code: rc, stdout, stderr } = await out.output();
    const text = new TextDecoder().decode(stdout);
    assertStrictEquals(rc, 0, new TextDecoder().decode(stderr));
    assert(text.startsWith("cpu: WebAssembly SIMD GEMM"), text);
    assert(
      text.includes("--allow-ffi") && text.includes("apt-get install libopenblas0-pthread"),
      text,
    );
    assert(/~[\d.]+× faster matmul/.test(text), text);
  },
});

Deno.test("CpuBackend({ gemm: 'wasm', threads: 2 }) splits matmuls over both threads (fused epilogue, batched products) and matches the reference backend", async () => {
  const one = CpuBackend.reference();
  const two = new CpuBackend({ gemm: "wasm", threads: 2, minParallelWork: 1 });
  try {
    assert(two.description.startsWith("cpu: WebAssembly SIMD GEMM"), two.description);
    assertStrictEquals(two.threads, 2, two.description);
    const next = rng(7);
    const data = (n: number) => Float32Array.from({ length: n }, next);
    const cases = [
      // row slabs with the bias/GELU epilogue (and pre), row slabs accumulating,
      // column slabs (few rows) with an epilogue, transposed operands, a batch.
      { M: 197, N: 96, K: 64, transB: true, bias: true, gelu: true, pre: true },
      { M: 130, N: 72, K: 100, transA: true, accumulate: true },
      { M: 5, N: 300, K: 128, transB: true, bias: true, gelu: true },
      { M: 64, N: 65, K: 65, transA: true, transB: true, bias: true },
      { M: 65, N: 65, K: 32, transB: true, batch: 6 },
      { M: 65, N: 32, K: 65, batch: 6, accumulate: true },
      // odd shapes: the fused epilogue on row slabs with edge tiles and K over KC, 1 row
      // (column slabs), batched products with every transpose
      { M: 257, N: 67, K: 33, transA: true, bias: true, gelu: true, pre: true },
      { M: 33, N: 129, K: 301, transA: true, transB: true, gelu: true },
      { M: 131, N: 9, K: 65, transB: true, bias: true, accumulate: true },
      { M: 1, N: 301, K: 257, transB: true, bias: true, gelu: true, pre: true },
      { M: 17, N: 33, K: 9, transA: true, batch: 9 },
      { M: 17, N: 1, K: 17, transA: true, transB: true, batch: 13, accumulate: true },
    ];
    for (const t of cases) {
      const { M, N, K } = t;
      const batch = t.batch ?? 1;
      const inputs = {
        a: data(batch * M * K),
        b: data(batch * K * N),
        bias: t.bias ? data(N) : undefined,
        out: data(batch * M * N),
      };
      const results: Float32Array[][] = [];
      for (const be of [one, two]) {
        const up = (d: Float32Array, shape: number[]) => {
          const x = be.tensor(shape);
          be.upload(x, d);
          return x;
        };
        const a = up(inputs.a, [batch * M * K]);
        const b = up(inputs.b, [batch * K * N]);
        const out = up(inputs.out, [batch * M * N]);
        const bias = inputs.bias && up(inputs.bias, [N]);
        const pre = t.pre ? be.tensor([batch * M * N]) : undefined;
        be.matmul({ out, a, b, bias, pre }, {
          M,
          N,
          K,
          batch,
          transA: t.transA,
          transB: t.transB,
          accumulate: t.accumulate,
          gelu: t.gelu,
        });
        const got = [(await be.download(out)) as Float32Array];
        if (pre) got.push((await be.download(pre)) as Float32Array);
        results.push(got);
      }
      for (let i = 0; i < results[0].length; i++) {
        assertAllClose(results[1][i], results[0][i], { atol: 1e-4, rtol: 1e-4 }, JSON.stringify(t));
      }
    }
  } finally {
    one.dispose();
    two.dispose();
  }
});
