/**
 * The one place that owns the WebGPU adapter and device: limits, optional
 * features, error handling, compile diagnostics and the pipeline cache.
 *
 * @module
 */
import { DeviceFaultError } from "../backend.ts";

import { type StorageAccess, storageAccess } from "./bindings.ts";

/** A kernel's storage bindings: binding number → access and WGSL name. */
export type Access = ReadonlyMap<number, { access: StorageAccess; name: string }>;

/** Thrown when WebGPU (or a usable adapter) is not available. */
export class GpuUnavailableError extends Error {
  /** `message` should say what was tried and what to do instead. */
  constructor(message: string) {
    super(message);
    this.name = "GpuUnavailableError";
  }
}

/** Thrown when the device reports an error (validation, out of memory, device lost). */
export class GpuError extends DeviceFaultError {
  /** `message` says what happened and what to try. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GpuError";
  }
}

/** What to try after a device loss or an out-of-memory error. */
export const GPU_FAULT_HINT = "Try a smaller --batch, or --backend cpu.";

/**
 * `e` as a {@link GpuError} when it is a GPU fault, else null. Besides GpuErrors this
 * recognises the `OperationError`/`AbortError` DOMExceptions that WebGPU calls such as
 * `mapAsync` reject with once the device is lost, and gives them the usual hint.
 */
export function asGpuError(e: unknown): GpuError | null {
  if (e instanceof GpuError) return e;
  if (
    e instanceof DOMException && (e.name === "OperationError" || e.name === "AbortError")
  ) {
    return new GpuError(
      `WebGPU operation failed (${e.name}: ${e.message}); the device may have been lost. ` +
        GPU_FAULT_HINT,
      { cause: e },
    );
  }
  return null;
}

/** A WGSL compute kernel and the storage buffers it binds. */
export interface KernelSpec {
  /** Label used for the pipeline and in every diagnostic. */
  readonly label: string;
  /**
   * WGSL source. Binding 0 is the uniform params; storage buffers are bindings 1..n, each
   * `var<storage, read>` when the kernel only reads it, else `var<storage, read_write>`
   * (the bind group layout follows these declarations).
   */
  readonly code: string;
  /** Number of tensors a dispatch passes (storage bindings 1..n). */
  readonly storageBindings: number;
  /**
   * Pairs `[out, inp]` of tensor positions (0-based) where `inp` may be `out` or another
   * view of its buffer: such a dispatch runs the in-place variant, which reads `inp`
   * through `out`'s `read_write` binding (see `bindings.ts`). Default: none.
   */
  readonly inPlace?: readonly (readonly [number, number])[];
  /** Entry point (default `main`). */
  readonly entryPoint?: string;
}

/** Adapter facts, for reports and backend selection. */
export interface AdapterFacts {
  /** Adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  /** Vendor string or id. */
  vendor: string;
  /** True for software adapters (lavapipe, SwiftShader, WARP). */
  isFallbackAdapter: boolean;
  /**
   * True for Mesa's software OpenGL (llvmpipe through wgpu's GL backend): what a Linux machine
   * with Mesa's GL but no Vulkan driver offers. There a kernel with a workgroup barrier (and
   * every kernel with workgroup memory: wgpu zero-fills it, then waits at a barrier) is
   * compiled as an LLVM coroutine, in time quadratic in its size: seconds to a minute per
   * pipeline for the tiled matmuls (see {@link isSoftwareGl}).
   */
  softwareGl: boolean;
  /** `shader-f16` is available. */
  shaderF16: boolean;
  /** `timestamp-query` is available. */
  timestampQuery: boolean;
}

/**
 * Whether `info` describes Mesa's software OpenGL adapter: a fallback (CPU) adapter with
 * the subgroup sizes wgpu's GL backend reports for every GL adapter (its placeholders 4 and
 * 128; Vulkan reports the driver's, 8 and 8 on lavapipe).
 */
export function isSoftwareGl(info: GPUAdapterInfo): boolean {
  const i = info as GPUAdapterInfo & {
    isFallbackAdapter?: boolean;
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
  };
  return Boolean(i.isFallbackAdapter && i.subgroupMinSize === 4 && i.subgroupMaxSize === 128);
}

/** Owns adapter + device; creates and caches pipelines; collects device errors. */
export class GpuContext {
  /** The device every buffer and pipeline belongs to. */
  readonly device: GPUDevice;
  /** What the adapter says about itself. */
  readonly facts: AdapterFacts;
  #pipelines = new Map<
    string,
    { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; access: Access }
  >();
  #pending: Promise<string | null>[] = [];
  #errors: string[] = [];
  #lost: string | null = null;

  private constructor(device: GPUDevice, facts: AdapterFacts) {
    this.device = device;
    this.facts = facts;
    device.addEventListener("uncapturederror", (e) => {
      const err = (e as GPUUncapturedErrorEvent).error;
      this.#errors.push(describeDeviceError(err));
    });
    device.lost.then((info) => {
      if (info.reason !== "destroyed") {
        this.#lost = `WebGPU device lost (${info.reason}): ${info.message || "no detail"}. ` +
          "The driver may have reset after a timeout or run out of memory. " + GPU_FAULT_HINT;
      }
    });
  }

  /**
   * Just the adapter, or null when WebGPU has none. Never throws. (Under Deno,
   * `quietWaylandProbe` of `headless.ts` keeps the probe quiet on a headless terminal;
   * `selectBackend` and the tasks call it first.)
   */
  static async adapter(): Promise<GPUAdapter | null> {
    if (typeof navigator === "undefined" || !("gpu" in navigator)) return null;
    try {
      return await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    } catch {
      return null;
    }
  }

  /** Requests an adapter and a device with the adapter's limits and the useful features. */
  static async create(): Promise<GpuContext> {
    const adapter = await GpuContext.adapter();
    if (!adapter) {
      throw new GpuUnavailableError(
        "Cannot create a WebGPU device as no adapter was found. On Linux without a GPU, " +
          "install Mesa's Vulkan drivers (apt-get install mesa-vulkan-drivers) and set " +
          "DENO_WEBGPU_BACKEND=vulkan, or use --backend cpu.",
      );
    }
    const requiredFeatures: GPUFeatureName[] = [];
    for (const f of ["shader-f16", "timestamp-query"] as GPUFeatureName[]) {
      if (adapter.features.has(f)) requiredFeatures.push(f);
    }
    const requiredLimits: Record<string, number> = {};
    for (
      const k of [
        "maxStorageBuffersPerShaderStage",
        "maxStorageBufferBindingSize",
        "maxBufferSize",
        "maxComputeWorkgroupStorageSize",
        "maxComputeInvocationsPerWorkgroup",
        "maxComputeWorkgroupSizeX",
        "maxComputeWorkgroupSizeY",
        "maxComputeWorkgroupsPerDimension",
      ]
    ) {
      const v = (adapter.limits as unknown as Record<string, number>)[k];
      if (typeof v === "number") requiredLimits[k] = v;
    }
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    } catch (e) {
      throw new GpuUnavailableError(
        `Cannot create a WebGPU device on "${adapter.info.description || adapter.info.vendor}" ` +
          `(${(e as Error).message}); update the GPU driver or use --backend cpu.`,
      );
    }
    const info = adapter.info;
    return new GpuContext(device, {
      description: info.description || info.device || "unknown adapter",
      vendor: info.vendor,
      isFallbackAdapter: Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter),
      softwareGl: isSoftwareGl(info),
      shaderF16: device.features.has("shader-f16"),
      timestampQuery: device.features.has("timestamp-query"),
    });
  }

  /**
   * The pipeline for `kernel` with override `constants`, created once and cached.
   * Compilation and validation errors surface at the next {@link GpuContext.check}.
   */
  pipeline(
    kernel: KernelSpec,
    constants: Record<string, number> = {},
  ): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; key: string; access: Access } {
    const key = `${kernel.label}|${JSON.stringify(constants)}`;
    const hit = this.#pipelines.get(key);
    if (hit) return { ...hit, key };
    const device = this.device;
    const entries: GPUBindGroupLayoutEntry[] = [{
      binding: 0,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: "uniform", hasDynamicOffset: true },
    }];
    const access = storageAccess(kernel.code);
    for (const [binding, { access: mode }] of access) {
      if (binding < 1 || binding > kernel.storageBindings) {
        throw new RangeError(
          `Cannot build WGSL kernel "${kernel.label}": it declares storage @binding(${binding}) ` +
            `but binds tensors 1..${kernel.storageBindings}`,
        );
      }
      const type = mode === "read" ? "read-only-storage" : "storage";
      entries.push({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type } });
    }
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ label: kernel.label, code: kernel.code });
    const layout = device.createBindGroupLayout({ label: kernel.label, entries });
    const pipeline = device.createComputePipeline({
      label: kernel.label,
      layout: device.createPipelineLayout({ label: kernel.label, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: kernel.entryPoint ?? "main", constants },
    });
    const scope = device.popErrorScope();
    this.#pending.push(
      Promise.all([scope, module.getCompilationInfo()]).then(([err, info]) => {
        const msgs = info.messages
          .filter((m) => m.type === "error")
          .map((m) => `  ${kernel.label}:${m.lineNum}:${m.linePos}: ${m.message}`);
        if (err || msgs.length) {
          return `Cannot build WGSL kernel "${kernel.label}" (${JSON.stringify(constants)}):\n` +
            [...msgs, err ? `  ${err.message}` : ""].filter(Boolean).join("\n");
        }
        return null;
      }),
    );
    const entry = { pipeline, layout, access };
    this.#pipelines.set(key, entry);
    return { ...entry, key };
  }

  /** Throws a {@link GpuError} for any compile, validation or device error seen so far. */
  async check(): Promise<void> {
    const pending = this.#pending;
    this.#pending = [];
    for (const msg of await Promise.all(pending)) if (msg) this.#errors.push(msg);
    if (this.#lost) throw new GpuError(this.#lost);
    if (this.#errors.length) {
      const errs = this.#errors;
      this.#errors = [];
      throw new GpuError(errs.join("\n"));
    }
  }

  /** Destroys the device. */
  destroy(): void {
    this.device.destroy();
  }
}

/** One device error as a sentence with what to try. */
export function describeDeviceError(err: GPUError): string {
  if (err instanceof GPUOutOfMemoryError) {
    return `WebGPU ran out of memory: ${err.message || "no detail"}. ${GPU_FAULT_HINT}`;
  }
  if (err instanceof GPUInternalError) {
    return `WebGPU internal error (often memory or a driver limit): ${err.message}. ${GPU_FAULT_HINT}`;
  }
  return `WebGPU validation error: ${err.message}. This is a bug in dbot; ` +
    "please report it with the output of the same command with --debug, and use --backend cpu meanwhile.";
}
