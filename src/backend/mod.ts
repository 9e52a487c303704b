/**
 * `@dbot/dbot/backend`: the compute layer. The {@link Backend} contract that the ViT is
 * written against (tensors, upload/download, the op set), its CPU implementation (the plain
 * reference ops plus fast WebAssembly/native kernels and OpenBLAS, on a worker pool) and its
 * WebGPU implementation (hand-written WGSL), and {@link selectBackend}, which picks one and
 * says why.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "@dbot/dbot/backend";
 *
 * const be = new CpuBackend({ threads: 1 });
 * const a = be.tensor([2, 3]);
 * be.upload(a, new Float32Array([1, 2, 3, 4, 5, 6]));
 * const out = be.tensor([2, 2]);
 * be.matmul({ out, a, b: a }, { M: 2, N: 2, K: 3, transB: true }); // a·aᵀ
 * const got = Array.from(await be.download(out));
 * if (got.join() !== "14,32,32,77") throw new Error(`a·aᵀ is ${got}`);
 * be.dispose();
 * ```
 *
 * @module
 */
export type * from "./backend.ts";
export {
  backendSummary,
  describeBackend,
  DeviceFaultError,
  freeTensors,
  shapeSize,
  view,
} from "./backend.ts";
export { CpuBackend, type CpuBackendOptions } from "./cpu/backend.ts";
export {
  type CpuKernels,
  type KernelChoice,
  type LoadedKernels,
  loadKernels,
} from "./cpu/kernels.ts";
export { type GemmChoice, loadGemm } from "./cpu/gemm.ts";
export type { FloatArray, Gemm, GemmArgs, GemmEpilogue } from "./cpu/gemm_types.ts";
export {
  type Dispatcher,
  type DispatchOptions,
  Params,
  WebGpuBackend,
  type WebGpuOptions,
} from "./webgpu/backend.ts";
export {
  type AdapterFacts,
  GpuContext,
  GpuError,
  GpuUnavailableError,
  type KernelSpec,
} from "./webgpu/context.ts";
export {
  type BackendKind,
  parseBackendKind,
  selectBackend,
  type SelectBackendOptions,
  type SelectedBackend,
} from "./select.ts";
