/**
 * GEMM tests: the pure-TS GEMM (f64 and f32) and OpenBLAS (f32) against a
 * naive f64 triple loop, over all transpose combinations, alpha/beta,
 * awkward shapes, padded strides and offset subarrays.
 *
 * OpenBLAS tests are skipped when the library is missing, unless
 * `DBOT_REQUIRE_OPENBLAS=1`, which turns a missing library into a failure.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  strictEqual as assertStrictEquals,
} from "node:assert";
import { AssertionError } from "node:assert";
import type { FloatArray, Gemm, GemmArgs } from "../src/backend/cpu/gemm_types.ts";
import { gemmTs, tsGemm } from "../src/backend/cpu/gemm_ts.ts";
import { loadGemm } from "../src/backend/cpu/gemm.ts";
import { loadOpenBlas } from "../src/backend/cpu/openblas.ts";
import { assertAllClose } from "./helpers.ts";

/** Asserts `fn` throws an instance of `type` whose message includes `includes`; returns it. */
function assertThrows(fn: () => unknown, type: ErrorConstructor, includes: string): Error {
  try {
    fn();
  } catch (e) {
    assert(e instanceof type, `expected ${type.name}, got ${e}`);
    assert(e.message.includes(includes), `expected "${includes}" in: ${e.message}`);
    return e;
  }
  throw new AssertionError({ message: `expected ${type.name} including "${includes}"` });
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

const requireBlas = readEnv("DBOT_REQUIRE_OPENBLAS") === "1";
const blasFailures: string[] = [];
const blas = loadOpenBlas(blasFailures);

/** The loaded OpenBLAS, or a failure explaining why it is required but missing. */
function needBlas(): Gemm {
  if (!blas) {
    throw new Error(
      `DBOT_REQUIRE_OPENBLAS=1 but OpenBLAS did not load: ${blasFailures.join("; ")}`,
    );
  }
  return blas;
}

/** Seeded uniform [-1, 1) so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

const PAD = 42; // sentinel in the gaps of padded rows; must survive every call

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

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
  /** Leading elements before each matrix; operands are subarrays starting there. */
  offset: number;
  /** Fill C's logical region with NaN (only meaningful with beta = 0). */
  nanC: boolean;
}

/** Stored `rows × cols` with row stride `ld` inside a larger array, from `offset`. */
function matrix(
  T: Ctor,
  rows: number,
  cols: number,
  ld: number,
  offset: number,
  next: () => number,
  fill: (() => number) | null = null,
): FloatArray {
  const whole = new T(offset + Math.max(0, rows * ld)).fill(PAD);
  const m = whole.subarray(offset);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) m[r * ld + c] = fill ? fill() : next();
  }
  return m;
}

function makeArgs(T: Ctor, t: Case, seed: number): GemmArgs {
  const next = rng(seed);
  const { transA, transB, M, N, K, pad, offset } = t;
  const [aRows, aCols] = transA ? [K, M] : [M, K];
  const [bRows, bCols] = transB ? [N, K] : [K, N];
  const lda = aCols + pad, ldb = bCols + pad, ldc = N + pad;
  return {
    transA,
    transB,
    M,
    N,
    K,
    alpha: t.alpha,
    a: matrix(T, aRows, aCols, lda, offset, next),
    lda,
    b: matrix(T, bRows, bCols, ldb, offset, next),
    ldb,
    beta: t.beta,
    c: matrix(T, M, N, ldc, offset, next, t.nanC ? () => NaN : null),
    ldc,
  };
}

/** Naive f64 triple loop over the stored layouts; returns the whole expected `c` array. */
function reference(g: GemmArgs): Float64Array {
  const out = Float64Array.from(g.c);
  for (let i = 0; i < g.M; i++) {
    for (let j = 0; j < g.N; j++) {
      let s = 0;
      for (let k = 0; k < g.K; k++) {
        const x = g.transA ? g.a[k * g.lda + i] : g.a[i * g.lda + k];
        const y = g.transB ? g.b[j * g.ldb + k] : g.b[k * g.ldb + j];
        s += x * y;
      }
      const old = g.c[i * g.ldc + j];
      out[i * g.ldc + j] = g.alpha * s + (g.beta === 0 ? 0 : g.beta * old);
    }
  }
  return out;
}

const AWKWARD = [1, 3, 7, 65, 197];
// Cross the pure-TS block edges (MC = 128, KC = 256, NC = 128) with remainders of 1.
const BLOCK_EDGES: [number, number, number][] = [[129, 257, 513], [2, 129, 257], [257, 1, 2]];
const SCALINGS = [
  { alpha: 1, beta: 0, nanC: true }, // beta = 0 overwrites NaN
  { alpha: 0.5, beta: 1, nanC: false }, // accumulate
  { alpha: -1.5, beta: 0.25, nanC: false },
];
const TRANSPOSES = [[false, false], [false, true], [true, false], [true, true]] as const;

/** Every case for one transpose combination: awkward shapes × scalings, then strided cases. */
function cases(transA: boolean, transB: boolean): Case[] {
  const out: Case[] = [];
  const base = { transA, transB, pad: 0, offset: 0 };
  let n = 0;
  for (const M of AWKWARD) {
    for (const N of AWKWARD) {
      for (const K of AWKWARD) {
        // Rotate the scalings so each shape is covered once and each scaling on many shapes.
        out.push({ ...base, M, N, K, ...SCALINGS[n++ % SCALINGS.length] });
      }
    }
  }
  for (const [M, N, K] of BLOCK_EDGES) {
    for (const s of SCALINGS) out.push({ ...base, M, N, K, ...s });
  }
  // Submatrices (padded rows) of offset subarrays.
  for (const [M, N, K] of [[7, 65, 3], [65, 1, 197], [1, 197, 7], [129, 130, 257]]) {
    for (const s of SCALINGS) out.push({ ...base, M, N, K, ...s, pad: 5, offset: 3 });
  }
  return out;
}

function describe(t: Case): string {
  return `transA=${t.transA} transB=${t.transB} ${t.M}×${t.N}×${t.K} alpha=${t.alpha} ` +
    `beta=${t.beta}${t.nanC ? " (NaN C)" : ""} pad=${t.pad} offset=${t.offset}`;
}

function checkAll(
  run: (g: GemmArgs) => void,
  T: Ctor,
  transA: boolean,
  transB: boolean,
  tol: { atol: number; rtol: number },
): void {
  let seed = 1;
  for (const t of cases(transA, transB)) {
    const g = makeArgs(T, t, seed++);
    const expected = reference(g);
    run(g);
    assertAllClose(g.c, expected, tol, describe(t));
  }
}

const F64_TOL = { atol: 1e-12, rtol: 1e-12 };
const F32_TOL = { atol: 1e-4, rtol: 1e-4 };

for (const [transA, transB] of TRANSPOSES) {
  const combo = `transA=${transA} transB=${transB}`;
  Deno.test(`gemmTs() matches the f64 triple loop in f64 for ${combo}`, () => {
    checkAll(gemmTs, Float64Array, transA, transB, F64_TOL);
  });
  Deno.test(`gemmTs() matches the f64 triple loop within 1e-4 in f32 for ${combo}`, () => {
    checkAll(gemmTs, Float32Array, transA, transB, F32_TOL);
  });
  Deno.test({
    name: `OpenBLAS sgemm() matches the f64 triple loop within 1e-4 for ${combo}`,
    ignore: blas === null && !requireBlas,
    fn() {
      const gemm = needBlas();
      checkAll((g) => gemm.sgemm(g), Float32Array, transA, transB, F32_TOL);
    },
  });
}

/** Zero-size cases; strides are the bare minimum (0 where a dimension is 0). */
function checkZeroDims(gemm: Gemm): void {
  // K = 0: C = beta·C, with lda = 0 (A has 0 columns), which BLAS itself would reject.
  const c = new Float32Array([1, 2, 3, 4, 5, 6]);
  const empty = new Float32Array(0);
  const base = { transA: false, transB: false, alpha: 1, a: empty, b: empty };
  gemm.sgemm({ ...base, M: 2, N: 3, K: 0, lda: 0, ldb: 3, beta: 2, c, ldc: 3 });
  assertEquals(Array.from(c), [2, 4, 6, 8, 10, 12]);
  c.fill(NaN);
  gemm.sgemm({ ...base, M: 2, N: 3, K: 0, lda: 0, ldb: 3, beta: 0, c, ldc: 3 });
  assertEquals(Array.from(c), [0, 0, 0, 0, 0, 0]);
  // M = 0 or N = 0: nothing to write, C untouched.
  const d = new Float32Array([7]);
  const a = new Float32Array(2), b = new Float32Array(6);
  gemm.sgemm({ ...base, M: 0, N: 3, K: 2, b, lda: 2, ldb: 3, beta: 0, c: d, ldc: 3 });
  gemm.sgemm({ ...base, M: 1, N: 0, K: 2, a, lda: 2, ldb: 0, beta: 0, c: d, ldc: 0 });
  assertEquals(d[0], 7);
}

Deno.test("gemmTs() handles M, N or K = 0 (K = 0 gives C = beta·C)", () => {
  checkZeroDims(tsGemm);
});

Deno.test({
  name: "OpenBLAS sgemm() handles M, N or K = 0 without passing BLAS invalid strides",
  ignore: blas === null && !requireBlas,
  fn() {
    checkZeroDims(needBlas());
  },
});

/** Too-short arrays, too-small strides and bad dimensions are RangeErrors naming the culprit. */
function checkValidation(gemm: Gemm): void {
  const ok = (): GemmArgs => ({
    transA: false,
    transB: true,
    M: 3,
    N: 4,
    K: 5,
    alpha: 1,
    a: new Float32Array(15),
    lda: 5,
    b: new Float32Array(20),
    ldb: 5,
    beta: 0,
    c: new Float32Array(12),
    ldc: 4,
  });
  gemm.sgemm(ok());
  assertThrows(
    () => gemm.sgemm({ ...ok(), a: new Float32Array(14) }),
    RangeError,
    "a is too short",
  );
  assertThrows(() => gemm.sgemm({ ...ok(), transB: false, ldb: 3 }), RangeError, "ldb must be");
  assertThrows(() => gemm.sgemm({ ...ok(), ldb: 6 }), RangeError, "b is too short");
  assertThrows(
    () => gemm.sgemm({ ...ok(), c: new Float32Array(11) }),
    RangeError,
    "c is too short",
  );
  assertThrows(() => gemm.sgemm({ ...ok(), lda: 4 }), RangeError, "lda must be");
  assertThrows(() => gemm.sgemm({ ...ok(), M: -1 }), RangeError, "M must be");
  assertThrows(() => gemm.sgemm({ ...ok(), K: 2.5 }), RangeError, "K must be");
  // transA: a is stored [K, M] = [5, 3], so lda = 5 is fine but 15 elements with lda 3 are too.
  gemm.sgemm({ ...ok(), transA: true, lda: 3 });
}

Deno.test("gemmTs() rejects short arrays and small strides with a RangeError", () => {
  checkValidation(tsGemm);
});

Deno.test({
  name: "OpenBLAS sgemm() rejects short arrays, small strides and f64 arrays",
  ignore: blas === null && !requireBlas,
  fn() {
    const gemm = needBlas();
    checkValidation(gemm);
    const x = new Float64Array(4);
    assertThrows(
      () =>
        gemm.sgemm({
          transA: false,
          transB: false,
          M: 2,
          N: 2,
          K: 2,
          alpha: 1,
          a: x,
          lda: 2,
          b: x,
          ldb: 2,
          beta: 0,
          c: new Float64Array(4),
          ldc: 2,
        }),
      TypeError,
      "Float32Array",
    );
  },
});

Deno.test({
  name: "loadGemm() picks OpenBLAS when it loads and the pure-TS GEMM for 'ts'",
  ignore: blas === null && !requireBlas,
  fn() {
    const gemm = needBlas();
    assertStrictEquals(loadGemm("auto"), gemm);
    assertStrictEquals(loadGemm("openblas"), gemm);
    assertStrictEquals(loadGemm("ts"), tsGemm);
    assert(/^OpenBLAS \(.+, (\d+|\?) threads(, \w+ kernels)?\)$/.test(gemm.name), gemm.name);
    assertEquals(tsGemm.name, "pure-TS GEMM");
  },
});

Deno.test("loadGemm() falls back to the WebAssembly GEMM only when OpenBLAS is missing", () => {
  if (blas) return; // covered above
  const auto = loadGemm("auto");
  assert(auto.name.startsWith("WebAssembly SIMD GEMM"), auto.name);
  assert(auto.note?.includes("apt-get install libopenblas0-pthread"), auto.note);
  const err = assertThrows(() => loadGemm("openblas"), Error, "not found");
  assert(err.message.includes("libopenblas.so.0"), err.message);
  assert(err.message.includes("apt-get install libopenblas0-pthread"), err.message);
  assert(err.message.includes("DBOT_OPENBLAS"), err.message);
});

Deno.test({
  name: "loadGemm() throws naming the path when DBOT_OPENBLAS fails to load",
  ignore: Deno.permissions.querySync({ name: "env" }).state !== "granted",
  fn() {
    const old = readEnv("DBOT_OPENBLAS");
    const path = "/nonexistent/libopenblas-dbot-test.so";
    Deno.env.set("DBOT_OPENBLAS", path);
    try {
      for (const prefer of ["auto", "openblas"] as const) {
        assertThrows(() => loadGemm(prefer), Error, path);
      }
      assertStrictEquals(loadGemm("ts"), tsGemm);
    } finally {
      if (old === undefined) Deno.env.delete("DBOT_OPENBLAS");
      else Deno.env.set("DBOT_OPENBLAS", old);
    }
  },
});
