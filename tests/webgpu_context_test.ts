/**
 * The GPU context reports WGSL compile errors with the kernel label, line and column, and
 * recognises Mesa's software OpenGL adapter.
 */
import { GpuError, isSoftwareGl, type KernelSpec } from "../src/backend/webgpu/context.ts";
import { Params } from "../src/backend/webgpu/backend.ts";
import { assert } from "../src/util/assert.ts";
import { gpuTest } from "./gpu.ts";

const BROKEN: KernelSpec = {
  label: "broken_test_kernel",
  storageBindings: 1,
  code: `struct Params { off_t: u32, n: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> t: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  t[P.off_t + gid.x] = undefined_name;
}
`,
};

gpuTest(
  "a WGSL compile error surfaces as a GpuError naming the kernel, line and column",
  async (be) => {
    const t = be.tensor([4]);
    be.dispatch(BROKEN, [t], { params: new Params().u32(4), groups: [1] });
    let err: unknown = null;
    try {
      await be.sync();
    } catch (e) {
      err = e;
    }
    assert(err instanceof GpuError, `expected a GpuError, got ${err}`);
    const msg = (err as Error).message;
    assert(msg.includes("broken_test_kernel"), msg);
    assert(/broken_test_kernel:6:\d+/.test(msg), `no line:column in: ${msg}`);
    await be.sync(); // the error is reported once; the backend stays usable
  },
);

Deno.test("isSoftwareGl() is true for llvmpipe through wgpu's GL backend only", () => {
  const info = (isFallbackAdapter: boolean, subgroupMinSize: number, subgroupMaxSize: number) =>
    ({ isFallbackAdapter, subgroupMinSize, subgroupMaxSize }) as unknown as GPUAdapterInfo;
  assert(isSoftwareGl(info(true, 4, 128)), "llvmpipe through GL (wgpu's placeholders 4, 128)");
  assert(!isSoftwareGl(info(true, 8, 8)), "lavapipe through Vulkan");
  assert(!isSoftwareGl(info(false, 4, 128)), "a hardware GPU through GL");
  assert(!isSoftwareGl({} as GPUAdapterInfo), "an adapter that reports nothing");
});
