/**
 * WebGPU matmul vs the CPU reference backend: every transpose combination × {plain, bias,
 * accumulate, gelu, gelu+pre} on awkward shapes for each kernel (simple, tiled64, split-K;
 * tiled128: each transpose and each epilogue, see `TILED128_PAIRS`), attention-like
 * batched products and ViT Linear shapes, all on views at a nonzero offset. On a software
 * OpenGL adapter (`softwareGl` in gpu.ts) the backend uses the simple kernel for every shape
 * and the tests that force a tiled kernel are skipped, the reason printed (`TILED_ON_GL`).
 *
 * Tolerance: `|gpu − cpu| ≤ atol + rtol·|cpu|` with rtol 1e-5 and atol 2e-6·√K: inputs are
 * uniform in [−1, 1), so a dot product is O(√K) and f32 rounding differences between the
 * two summation orders grow like ε·√K. GELU adds its erfc error (< 1.2e-7 relative).
 *
 *   DENO_WEBGPU_BACKEND=vulkan XDG_RUNTIME_DIR=/tmp DBOT_REQUIRE_WEBGPU=1 \
 *     deno test --allow-read --allow-env --allow-ffi tests/webgpu_matmul_test.ts
 *
 * Set MATMUL_REPORT=1 to print the max abs error of every case.
 *
 * @module
 */
import { type MatmulDims, type Tensor, view } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import type { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import {
  chooseMatmul,
  matmul,
  type MatmulKernel,
  type MatmulOptions,
} from "../src/backend/webgpu/ops/matmul.ts";
import { Rng } from "../src/util/rng.ts";
import { assertEquals, assertThrows } from "../src/util/assert.ts";
import { gpuTest } from "./gpu.ts";
import { assertAllClose, maxAbsDiff } from "./helpers.ts";

/** The plain reference: `ref/` loops and GEMM, one thread, no SIMD, native code or BLAS. */
const cpu = CpuBackend.reference();
const report = Deno.env.get("MATMUL_REPORT") === "1";

/** Epilogue variants under test. */
type Epi = "plain" | "bias" | "accumulate" | "bias+accumulate" | "gelu" | "bias+gelu+pre";
const EPILOGUES: readonly Epi[] = [
  "plain",
  "bias",
  "accumulate",
  "bias+accumulate",
  "gelu",
  "bias+gelu+pre",
];
const TRANSPOSES = [[false, false], [false, true], [true, false], [true, true]] as const;

/** A view of `n` elements at offset `off` inside a larger GPU tensor. */
function gpuView(be: WebGpuBackend, n: number, off: number, label: string): Tensor {
  return view(be.tensor([n + off + 2], "f32", label), off, [n]);
}

/**
 * Runs one matmul on both backends and compares `out` (and `pre`); returns the max abs error.
 * `off` is the element offset of every GPU view.
 */
async function compare(
  be: WebGpuBackend,
  dims: MatmulDims,
  epi: Epi,
  opts: MatmulOptions = {},
  { off = 3, seed = 1 }: { off?: number; seed?: number } = {},
): Promise<number> {
  const { M, N, K } = dims;
  const batch = dims.batch ?? 1;
  const rng = new Rng(seed + M * 7 + N * 13 + K * 17);
  const hasBias = epi.includes("bias");
  const accumulate = epi.includes("accumulate");
  const gelu = epi.includes("gelu");
  const hasPre = epi.includes("pre");
  const d: MatmulDims = { ...dims, accumulate, gelu };
  // GELU inputs spread over [−4, 4] so both tails and the middle are exercised.
  const scale = gelu ? 4 / Math.sqrt(Math.max(K, 1) / 3) : 1;
  const host = {
    a: rng.uniformArray(batch * M * K, -scale, scale),
    b: rng.uniformArray(batch * K * N, -1, 1),
    bias: rng.uniformArray(N, -1, 1),
    out: rng.uniformArray(batch * M * N, -1, 1),
  };
  const mn = batch * M * N;

  const g = {
    out: gpuView(be, mn, off, "out"),
    a: gpuView(be, host.a.length, off, "a"),
    b: gpuView(be, host.b.length, off, "b"),
    bias: hasBias ? gpuView(be, N, off, "bias") : undefined,
    pre: hasPre ? gpuView(be, mn, off, "pre") : undefined,
  };
  const c = {
    out: cpu.tensor([mn]),
    a: cpu.tensor([host.a.length]),
    b: cpu.tensor([host.b.length]),
    bias: hasBias ? cpu.tensor([N]) : undefined,
    pre: hasPre ? cpu.tensor([mn]) : undefined,
  };
  for (const [be_, t] of [[be, g], [cpu, c]] as const) {
    // Deno 2.9 panics on a zero-length queue.writeBuffer (K = 0), so empty uploads are skipped.
    if (host.a.length) be_.upload(t.a, host.a);
    if (host.b.length) be_.upload(t.b, host.b);
    be_.upload(t.out, host.out);
    if (t.bias) be_.upload(t.bias, host.bias);
  }
  matmul(be, g, d, opts);
  cpu.matmul(c, d);

  const tol = { atol: 2e-6 * Math.sqrt(Math.max(K, 1)), rtol: 1e-5 };
  const kind = `${opts.kernel ?? chooseMatmul(d).kernel}${
    opts.splits ? `/split${opts.splits}` : ""
  }`;
  const what = `${kind} ${M}×${N}×${K} b${batch} tA${+!!dims.transA} tB${+!!dims.transB} ${epi}`;
  const got = await be.download(g.out);
  const want = await cpu.download(c.out);
  assertAllClose(got, want, tol, what);
  let err = maxAbsDiff(got, want);
  if (g.pre && c.pre) {
    const gp = await be.download(g.pre);
    const cp = await cpu.download(c.pre);
    assertAllClose(gp, cp, tol, `${what} pre`);
    err = Math.max(err, maxAbsDiff(gp, cp));
  }
  if (report) {
    console.log(
      `  ${what}: max abs err ${err.toExponential(2)} (atol ${tol.atol.toExponential(2)})`,
    );
  }
  return err;
}

/** Every transpose × every epilogue for `dims` with a forced kernel. */
async function allCombos(be: WebGpuBackend, dims: MatmulDims, opts: MatmulOptions): Promise<void> {
  for (const [transA, transB] of TRANSPOSES) {
    for (const epi of EPILOGUES) await compare(be, { ...dims, transA, transB }, epi, opts);
  }
}

/**
 * tiled128's transpose × epilogue pairs: each transpose and each epilogue at least once.
 * tiled64 and tiled128 are one generator (`matmulTiled`) at two tile shapes, so every pair
 * runs on tiled64 (and simple); tiled128 adds its tile shape, which any pair exercises.
 * Each pair is its own pipeline, and on a software adapter with a cold shader cache one
 * tiled128 pipeline takes seconds to compile: all 24 took minutes on a 2-core machine.
 * Six of these eight pairs are compiled by the other tests of this file anyway.
 */
const TILED128_PAIRS: readonly (readonly [boolean, boolean, Epi])[] = [
  [false, false, "plain"],
  [false, false, "bias"],
  [false, false, "accumulate"],
  [false, true, "plain"],
  [false, true, "bias"],
  [false, true, "bias+gelu+pre"],
  [true, false, "bias+accumulate"],
  [true, true, "gelu"],
];

const KERNELS: readonly MatmulKernel[] = ["simple", "tiled64", "tiled128"];

/**
 * Why the tests that force a tiled kernel do not run on a software OpenGL adapter (see
 * `softwareGl` in gpu.ts); there the backend itself uses the simple kernel for every shape
 * (`Dispatcher.preferSimpleKernels`), which every other test here runs.
 */
const TILED_ON_GL = "the tests that force a tiled matmul kernel (tiled64, tiled128: about " +
  "40 pipelines, 15 s to over a minute each to compile here: llvmpipe compiles a kernel " +
  "with workgroup barriers as an LLVM coroutine in time quadratic in its size, and wgpu's " +
  "GL backend zero-fills their 16 KiB of workgroup tiles one element at a time); on this " +
  "adapter the backend uses the simple kernel for every shape, which the other tests run, " +
  "and every tiled variant runs on Vulkan (CI: lavapipe, DENO_WEBGPU_BACKEND=vulkan)";

/** Options of a test that forces `kernel`: skipped on a software OpenGL adapter unless simple. */
function forcing(kernel: MatmulKernel): { notOnSoftwareGl?: string } {
  return kernel === "simple" ? {} : { notOnSoftwareGl: TILED_ON_GL };
}

for (const kernel of KERNELS) {
  for (const [M, N, K] of [[1, 1, 1], [3, 7, 5], [65, 197, 33]]) {
    if (kernel === "tiled128") {
      gpuTest(
        `matmul() matches the CPU backend for ${M}×${N}×${K}, ${kernel}, each transpose and epilogue`,
        async (be) => {
          for (const [transA, transB, epi] of TILED128_PAIRS) {
            await compare(be, { M, N, K, transA, transB }, epi, { kernel });
          }
        },
        forcing(kernel),
      );
      continue;
    }
    gpuTest(
      `matmul() matches the CPU backend for ${M}×${N}×${K}, ${kernel}, all variants`,
      (be) => allCombos(be, { M, N, K }, { kernel }),
      forcing(kernel),
    );
  }
  gpuTest(
    `matmul() matches the CPU backend for K=0 and for an offset-0 view, ${kernel}`,
    async (be) => {
      await compare(be, { M: 5, N: 6, K: 0 }, "bias", { kernel });
      await compare(be, { M: 5, N: 6, K: 0 }, "accumulate", { kernel });
      await compare(be, { M: 20, N: 36, K: 24, transB: true }, "bias", { kernel }, { off: 0 });
    },
    forcing(kernel),
  );
  gpuTest(
    `matmul() matches the CPU backend for 197×64×197 batch 3 (attention·V), ${kernel}`,
    (be) => compare(be, { M: 197, N: 64, K: 197, batch: 3 }, "plain", { kernel }).then(() => {}),
    forcing(kernel),
  );
}

gpuTest(
  "matmul() matches the CPU backend for split-K 70×65×1000, tiled64, all variants",
  (be) => allCombos(be, { M: 70, N: 65, K: 1000 }, { kernel: "tiled64", splits: 3 }),
  forcing("tiled64"),
);

gpuTest("matmul() matches the CPU backend for split-K 33×17×301, simple", async (be) => {
  await compare(be, { M: 33, N: 17, K: 301, transA: true }, "bias+gelu+pre", {
    kernel: "simple",
    splits: 4,
  });
});

gpuTest(
  "matmul() matches the CPU backend for split-K 130×129×77, tiled128",
  async (be) => {
    await compare(be, { M: 130, N: 129, K: 77, transB: true }, "bias+accumulate", {
      kernel: "tiled128",
      splits: 5,
    });
  },
  forcing("tiled128"),
);

gpuTest(
  "matmul() matches the CPU backend for attention·V's backward (197×…×…, batch 3)",
  async (be) => {
    // dA = dY·Vᵀ (NT) and dV = Aᵀ·dY (TN), with the backend's choice of kernel.
    await compare(be, { M: 197, N: 197, K: 64, batch: 3, transB: true }, "plain");
    await compare(be, { M: 197, N: 64, K: 197, batch: 3, transA: true }, "plain");
  },
);

gpuTest("matmul() matches the CPU backend for 394×576×192 NT (ViT-Ti qkv forward)", async (be) => {
  await compare(be, { M: 394, N: 576, K: 192, transB: true }, "bias");
});

gpuTest(
  "matmul() matches the CPU backend for 394×576×192 NT with GELU, tiled128",
  async (be) => {
    await compare(be, { M: 394, N: 576, K: 192, transB: true }, "bias+gelu+pre", {
      kernel: "tiled128",
    });
  },
  forcing("tiled128"),
);

gpuTest("matmul() matches the CPU backend for 394×192×576 NN (ViT-Ti dX = dY·W)", async (be) => {
  await compare(be, { M: 394, N: 192, K: 576 }, "plain");
});

gpuTest("matmul() matches the CPU backend for 192×192×394 TN (weight grad)", async (be) => {
  await compare(be, { M: 192, N: 192, K: 394, transA: true }, "accumulate");
});

gpuTest(
  "matmul() matches the CPU backend for 192×192×394 TN with split-K 2, tiled64",
  async (be) => {
    await compare(be, { M: 192, N: 192, K: 394, transA: true }, "accumulate", {
      kernel: "tiled64",
      splits: 2,
    });
  },
  forcing("tiled64"),
);

gpuTest("matmul() matches the CPU backend for batch 70000 (grid z chunked)", async (be) => {
  await compare(be, { M: 2, N: 3, K: 2, batch: 70000 }, "bias");
});

gpuTest(
  "matmul() matches the CPU backend when chosen split-K runs (64×64×2048)",
  async (be) => {
    assertEquals(chooseMatmul({ M: 64, N: 64, K: 2048 }), { kernel: "tiled64", splits: 4 });
    await compare(be, { M: 64, N: 64, K: 2048, transA: true }, "bias+accumulate");
  },
  forcing("tiled64"),
);

gpuTest("matmul() rejects mismatched sizes and contract violations", async (be) => {
  const t = (n: number) => be.tensor([n]);
  assertThrows(
    () => matmul(be, { out: t(6), a: t(6), b: t(5) }, { M: 2, N: 3, K: 3 }),
    RangeError,
    "b must have 9 elements",
  );
  assertThrows(
    () =>
      matmul(be, { out: t(4), a: t(4), b: t(4) }, {
        M: 2,
        N: 2,
        K: 2,
        gelu: true,
        accumulate: true,
      }),
    RangeError,
    "gelu and accumulate",
  );
  assertThrows(
    () => matmul(be, { out: t(4), a: t(4), b: t(4), pre: t(4) }, { M: 2, N: 2, K: 2 }),
    RangeError,
    "pre",
  );
  await be.sync();
});

Deno.test("chooseMatmul() picks simple, tiled64, tiled128 and split-K by shape", () => {
  assertEquals(chooseMatmul({ M: 1, N: 1, K: 1 }).kernel, "simple");
  assertEquals(chooseMatmul({ M: 3, N: 700, K: 50 }).kernel, "simple");
  assertEquals(chooseMatmul({ M: 394, N: 576, K: 192, transB: true }), {
    kernel: "tiled64",
    splits: 1,
  });
  assertEquals(chooseMatmul({ M: 12608, N: 2304, K: 768, transB: true }), {
    kernel: "tiled128",
    splits: 1,
  });
  // ViT-B weight gradient dW[768,768] = dYᵀ·X over 12608 rows: few tiles, long K.
  assertEquals(chooseMatmul({ M: 768, N: 768, K: 12608, transA: true }), {
    kernel: "tiled64",
    splits: 8,
  });
  // Without tiled kernels (the backend on software OpenGL): simple, no split-K.
  assertEquals(chooseMatmul({ M: 768, N: 768, K: 12608, transA: true }, { tiled: false }), {
    kernel: "simple",
    splits: 1,
  });
});
