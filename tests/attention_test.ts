/**
 * `Backend.attention` and its backward on the CPU: the plain loops (`ref/attention.ts`)
 * against the head-copy composition they replace (`splitHeads`, batched `matmul`,
 * `relPosBias`, `softmax`, `mergeHeads` on the reference backend), and every fast path
 * (per (sample, head) GEMMs on q, k, v in place, inline and over the pool, with each GEMM
 * and kernel set this machine loads) against the plain loops. The finite-difference checks
 * of the loops are in `cpu_gradchecks.ts`.
 *
 * @module
 */
import type { Backend, Tensor } from "../src/backend/backend.ts";
import { composedAttention, composedAttentionBackward } from "../src/backend/attention.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { Rng } from "../src/util/rng.ts";
import { assertAllClose, type Tolerance } from "./helpers.ts";
import { requires } from "./requires.ts";

/** `[B, N, NH, HS, rel]`: awkward sizes, then vit-micro's (N 50, HS 32) and vit-tiny's heads. */
const CASES: [number, number, number, number, boolean][] = [
  [1, 1, 1, 1, false],
  [2, 7, 3, 5, false],
  [2, 7, 3, 5, true],
  [3, 50, 3, 32, false],
  [2, 65, 3, 64, true],
  [5, 13, 3, 32, false],
  [2, 50, 4, 16, false],
  [2, 21, 2, 12, false],
];

interface Result {
  out: Float32Array;
  att: Float32Array;
  dqkv: Float32Array;
  dlogits: Float32Array;
}

/** Runs forward then backward on `be` with `compose` (the head-copy route) or the op. */
async function run(
  be: Backend,
  [B, N, NH, HS, rel]: (typeof CASES)[number],
  compose: boolean,
): Promise<Result> {
  const rng = new Rng(B + 10 * N + 100 * NH + 1000 * HS + (rel ? 7 : 0));
  const D = NH * HS;
  const t = (data: Float32Array | Int32Array, dtype: "f32" | "i32" = "f32"): Tensor => {
    const x = be.tensor([data.length], dtype);
    be.upload(x, data);
    return x;
  };
  const qkv = t(rng.uniformArray(3 * B * N * D, -2, 2));
  const dout = t(rng.uniformArray(B * N * D, -1, 1));
  const out = t(new Float32Array(B * N * D).fill(NaN));
  const att = t(new Float32Array(B * NH * N * N).fill(NaN));
  const dqkv = t(new Float32Array(3 * B * N * D).fill(NaN)); // assigned: all written
  const dlogits = t(new Float32Array(B * NH * N * N).fill(NaN));
  const R = 2 * N - 1;
  const relTable = rel ? t(rng.uniformArray(R * NH, -1, 1)) : undefined;
  const relIndex = rel
    ? t(Int32Array.from({ length: N * N }, (_, p) => (p % N) - Math.floor(p / N) + N - 1), "i32")
    : undefined;
  const dims = { B, N, NH, HS, scale: 1 / Math.sqrt(HS) };
  const work = (_name: string, size: number) => be.tensor([size]);
  const fwd = { out, att, qkv, relTable, relIndex };
  const bwd = { dqkv, dlogits, dout, qkv, att };
  if (compose) {
    composedAttention(be, fwd, dims, work);
    composedAttentionBackward(be, bwd, dims, work);
  } else {
    be.attention(fwd, dims);
    be.attentionBackward(bwd, dims);
  }
  const get = async (x: Tensor) => (await be.download(x)) as Float32Array;
  return {
    out: await get(out),
    att: await get(att),
    dqkv: await get(dqkv),
    dlogits: await get(dlogits),
  };
}

function assertResultsClose(got: Result, want: Result, tol: Tolerance, what: string): void {
  for (const k of ["out", "att", "dqkv", "dlogits"] as const) {
    assertAllClose(got[k], want[k], tol, `${what}: ${k}`);
  }
}

const name = ([B, N, NH, HS, rel]: (typeof CASES)[number]) =>
  `B=${B}, N=${N}, NH=${NH}, HS=${HS}${rel ? ", relative position bias" : ""}`;

for (const c of CASES) {
  Deno.test(`attention() loops match the head-copy composition for ${name(c)}`, async () => {
    const ref = CpuBackend.reference();
    const want = await run(ref, c, true);
    const got = await run(ref, c, false);
    assertResultsClose(got, want, { atol: 2e-6, rtol: 1e-5 }, name(c));
  });
}

/** Runs every case on `make()`'s backend against the loops. */
async function checkFast(what: string, make: () => CpuBackend): Promise<void> {
  const be = make();
  try {
    for (const c of CASES) {
      const want = await run(CpuBackend.reference(), c, false);
      const got = await run(be, c, false);
      assertResultsClose(got, want, { atol: 2e-5, rtol: 1e-4 }, `${what}, ${name(c)}`);
    }
  } finally {
    be.dispose();
  }
}

/** The bare machine's paths (WebAssembly GEMM and kernels, the TS GEMM), inline and pooled. */
const BARE: [string, () => CpuBackend][] = [
  [
    "wasm GEMM and kernels, 2 threads",
    () => new CpuBackend({ gemm: "wasm", kernels: "wasm", threads: 2, minParallelWork: 1 }),
  ],
  [
    "wasm GEMM and kernels, 1 thread",
    () => new CpuBackend({ gemm: "wasm", kernels: "wasm", threads: 1 }),
  ],
  [
    "TS GEMM, wasm kernels, 2 threads",
    () => new CpuBackend({ gemm: "ts", kernels: "wasm", threads: 2 }),
  ],
];
for (const [what, make] of BARE) {
  Deno.test(`CpuBackend.attention() and attentionBackward() (${what}) match the loops`, () =>
    checkFast(what, make));
}

const openblas = await requires("openblas");
for (const threads of [1, 2]) {
  const what = `OpenBLAS, default kernels, ${threads} thread${threads > 1 ? "s" : ""}`;
  openblas.test(`CpuBackend.attention() and attentionBackward() (${what}) match the loops`, () =>
    checkFast(what, () => new CpuBackend({ gemm: "openblas", threads })));
}

// The native kernels' fused units (scores, softmax and products of a unit in one call),
// inline and over the pool, with either GEMM beside them (the GEMM only runs the
// relative-position-bias cases, which the fused units leave to GEMM calls).
const native = await requires("native");
const NATIVE: [string, () => CpuBackend][] = [
  [
    "native kernels, wasm GEMM, 1 thread",
    () => new CpuBackend({ gemm: "wasm", kernels: "native", threads: 1 }),
  ],
  [
    "native kernels, wasm GEMM, 2 threads",
    () => new CpuBackend({ gemm: "wasm", kernels: "native", threads: 2, minParallelWork: 1 }),
  ],
];
for (const [what, make] of NATIVE) {
  native.test(`CpuBackend.attention() and attentionBackward() (${what}) match the loops`, () =>
    checkFast(what, make));
}

/**
 * `dqkv` of the fused units against central finite differences of `Σ dout ⊙ out`, in f32
 * (h = 1e-2 on values of order 1: the differences hold ~4 digits, hence the tolerance).
 */
async function checkFiniteDifferences(be: CpuBackend): Promise<void> {
  const [B, N, NH, HS] = [2, 5, 2, 3];
  const D = NH * HS;
  const dims = { B, N, NH, HS, scale: 1 / Math.sqrt(HS) };
  const rng = new Rng(42);
  const t = (data: Float32Array): Tensor => {
    const x = be.tensor([data.length]);
    be.upload(x, data);
    return x;
  };
  const qkvData = rng.uniformArray(3 * B * N * D, -1.5, 1.5);
  const doutData = rng.uniformArray(B * N * D, -1, 1);
  const [qkv, dout] = [t(qkvData), t(doutData)];
  const [out, att] = [be.tensor([B * N * D]), be.tensor([B * NH * N * N])];
  const [dqkv, dlogits] = [be.tensor([3 * B * N * D]), be.tensor([B * NH * N * N])];
  const loss = async (): Promise<number> => {
    be.attention({ out, att, qkv }, dims);
    const o = (await be.download(out)) as Float32Array;
    return o.reduce((s, v, i) => s + v * doutData[i], 0);
  };
  await loss();
  be.attentionBackward({ dqkv, dlogits, dout, qkv, att }, dims);
  const got = (await be.download(dqkv)) as Float32Array;
  const h = 1e-2;
  const fd = new Float64Array(qkvData.length);
  for (let i = 0; i < qkvData.length; i++) {
    const x = qkvData.slice();
    x[i] = qkvData[i] + h;
    be.upload(qkv, x);
    const up = await loss();
    x[i] = qkvData[i] - h;
    be.upload(qkv, x);
    fd[i] = (up - await loss()) / (2 * h);
  }
  assertAllClose(got, fd, { atol: 2e-3, rtol: 1e-2 }, "dqkv vs finite differences");
}

const FUSED: [string, () => CpuBackend, typeof native | null][] = [
  ["WebAssembly", () => new CpuBackend({ gemm: "wasm", kernels: "wasm", threads: 1 }), null],
  ["native", () => new CpuBackend({ gemm: "wasm", kernels: "native", threads: 1 }), native],
];
for (const [what, make, req] of FUSED) {
  const name = `CpuBackend.attentionBackward() (${what} fused units) matches finite differences`;
  const fn = async () => {
    const be = make();
    try {
      await checkFiniteDifferences(be);
    } finally {
      be.dispose();
    }
  };
  if (req) req.test(name, fn);
  else Deno.test(name, fn);
}
