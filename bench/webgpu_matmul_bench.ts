/**
 * `deno bench` of the WebGPU matmul on ViT-S/B Linear shapes: the tiled kernels
 * against the simple one (the baseline). Each iteration records `REPEAT` products
 * and waits for the GPU inside the timed region (`await be.sync()`); GFLOP/s per
 * case are printed when the run ends.
 *
 *   DENO_WEBGPU_BACKEND=vulkan deno bench --allow-read --allow-env --allow-ffi \
 *     bench/webgpu_matmul_bench.ts
 *
 * On a software adapter (llvmpipe) the rows are 4 images instead of 64 so the run
 * stays short; its speed says nothing about a real GPU.
 *
 * @module
 */
import type { MatmulDims } from "../src/backend/backend.ts";
import { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { GpuContext } from "../src/backend/webgpu/context.ts";
import { matmul, type MatmulKernel } from "../src/backend/webgpu/ops/matmul.ts";
import { Rng } from "../src/util/rng.ts";

const adapter = await GpuContext.adapter();
const be = adapter ? await WebGpuBackend.create() : null;
const software = be?.ctx.facts.isFallbackAdapter ?? true;
/** Images per batch: rows are `B·197` tokens. */
const B = software ? 4 : 64;
const REPEAT = software ? 1 : 10;

/** ViT Linear products, `x[B·197, in] · W[out, in]ᵀ` (NT) and the weight gradient (TN). */
const SHAPES: readonly { name: string; dims: MatmulDims }[] = [
  { name: `ViT-S qkv ${B}·197×1152×384 NT`, dims: { M: B * 197, N: 1152, K: 384, transB: true } },
  { name: `ViT-S proj ${B}·197×384×384 NT`, dims: { M: B * 197, N: 384, K: 384, transB: true } },
  { name: `ViT-B fc1 ${B}·197×3072×768 NT`, dims: { M: B * 197, N: 3072, K: 768, transB: true } },
  { name: `ViT-S dW 384×384×${B}·197 TN`, dims: { M: 384, N: 384, K: B * 197, transA: true } },
];
const KERNELS: readonly MatmulKernel[] = ["simple", "tiled64", "tiled128"];
const gflops = new Map<string, number>();

for (const { name, dims } of SHAPES) {
  const { M, N, K } = dims;
  const rng = new Rng(1);
  const a = be?.tensor([M * K]);
  const b = be?.tensor([K * N]);
  const out = be?.tensor([M * N]);
  if (be && a && b && out) {
    be.upload(a, rng.uniformArray(a.size, -1, 1));
    be.upload(b, rng.uniformArray(b.size, -1, 1));
  }
  for (const kernel of KERNELS) {
    const label = `${kernel} ${name}`;
    let best = Infinity;
    Deno.bench({
      name: label,
      group: name,
      baseline: kernel === "simple",
      ignore: be === null,
      n: software ? 3 : 20,
      warmup: 1,
      async fn(t) {
        const t0 = performance.now();
        t.start();
        for (let i = 0; i < REPEAT; i++) matmul(be!, { out: out!, a: a!, b: b! }, dims, { kernel });
        await be!.sync();
        t.end();
        // deno bench prints times only: keep the best for the GFLOP/s summary.
        best = Math.min(best, (performance.now() - t0) / REPEAT);
        gflops.set(label, (2 * M * N * K) / (best * 1e6));
      },
    });
  }
}

globalThis.addEventListener("unload", () => {
  if (!be) return;
  console.log(`\nBest GFLOP/s on ${be.description} (${REPEAT} products per sync):`);
  for (const [label, gf] of gflops) console.log(`  ${label}: ${gf.toFixed(1)} GFLOP/s`);
});
