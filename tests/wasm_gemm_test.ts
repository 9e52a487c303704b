/**
 * The WebAssembly SIMD GEMM (`src/backend/cpu/wasm_gemm/`): both builds (relaxed-SIMD
 * FMA and plain SIMD) against the pure-TS GEMM on awkward shapes, all transposes,
 * alpha/beta (beta 0 over NaN), padded strides and offset subarrays, across its chunk
 * boundaries; split over a 2-thread `CpuBackend`; chosen by `loadGemm` without OpenBLAS;
 * and the committed `gemm_wasm.ts` is checked against `gemm.c` (no compiler needed).
 */
import { ok as assert, strictEqual as assertStrictEquals } from "node:assert";
import { type Gemm, type GemmArgs, gemmTs, loadGemm } from "../src/backend/cpu/gemm.ts";
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
    assert(text.includes("cpu with WebAssembly SIMD GEMM"), text);
    assert(
      text.includes("--allow-ffi") && text.includes("apt-get install libopenblas0-pthread"),
      text,
    );
    assert(/OpenBLAS would make matmul ~[\d.]+× faster/.test(text), text);
  },
});

Deno.test("CpuBackend({ gemm: 'wasm', threads: 2 }) splits matmuls over both threads and matches the TS GEMM", async () => {
  const one = new CpuBackend({ gemm: "ts", threads: 1 });
  const two = new CpuBackend({ gemm: "wasm", threads: 2, minParallelWork: 1 });
  try {
    assert(two.description.startsWith("cpu with WebAssembly SIMD GEMM"), two.description);
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
