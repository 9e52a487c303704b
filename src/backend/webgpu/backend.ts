/**
 * The WebGPU backend: every {@link Backend} op as a WGSL dispatch recorded
 * into one command encoder (one compute pass) that runs at `submit()`.
 *
 * Dispatch contract shared by every kernel (see `kernels/`):
 * - `@binding(0)` is a `var<uniform>` params struct bound with a dynamic offset
 *   into a per-submit uniform arena. Its first fields are the ELEMENT offsets
 *   (u32) of the bound tensors, in binding order; the kernel's own params follow.
 * - `@binding(1..n)` are the tensors, each bound as the byte range of its view
 *   (aligned down; the offset in the uniform is relative to that range start):
 *   `var<storage, read>` where the kernel only reads, `var<storage, read_write>` where it
 *   writes. No dispatch binds one buffer read-only and writable, or writable at two
 *   overlapping ranges (the WebGPU spec's usage-scope rules, checked on every new bind
 *   group in `bindings.ts`); an op whose output may be its input declares the pair in
 *   `KernelSpec.inPlace` and runs an in-place variant with one `read_write` binding.
 * - Pipelines and bind groups are cached; nothing here waits on the device
 *   except `download()` and `sync()`.
 *
 * @module
 */
import type {
  AttentionBackwardBufs,
  AttentionBufs,
  AttentionDims,
  Backend,
  BackendFacts,
  CosineDims,
  DType,
  GeluBackwardBufs,
  HostArray,
  MatmulDims,
  OutInpBufs,
  RelPosBiasBackwardBufs,
  RelPosBiasBufs,
  RelPosDims,
  RowsDims,
  ScaleColsBackwardBufs,
  ScaleColsBufs,
  Storage,
  Tensor,
} from "../backend.ts";
import { describeBackend, shapeSize, view } from "../backend.ts";
import { composedAttention, composedAttentionBackward } from "../attention.ts";
import { checkAttention, checkAttentionBackward } from "../checks.ts";
import { asGpuError, GpuContext, GpuError, type KernelSpec } from "./context.ts";
import { type Dispatcher, type DispatchOptions, linearGroups, Params } from "./dispatch.ts";
import { bindingConflicts, inPlaceVariant, planBindings } from "./bindings.ts";
import { FILL, FILL_I32 } from "../../../kernels/fill.ts";
import * as matmulOps from "./ops/matmul.ts";
import * as elementwiseOps from "./ops/elementwise.ts";
import * as layernormOps from "./ops/layernorm.ts";
import * as attentionOps from "./ops/attention.ts";
import * as rowsOps from "./ops/rows.ts";
import * as lossOps from "./ops/losses.ts";
import * as optimOps from "./ops/optim.ts";
import * as relposOps from "./ops/relpos.ts";

const UNIFORM_SLOT = 256; // bytes per dispatch = minUniformBufferOffsetAlignment
const UNIFORM_WORDS = UNIFORM_SLOT / 4;
const ARENA_SLOTS = 4096; // dispatches per submit before an automatic flush

/** A GPU buffer holding `length` f32 or i32 elements. */
export class GpuStorage implements Storage {
  static #nextId = 1;
  /** Stable id used in bind-group cache keys. */
  readonly id: number = GpuStorage.#nextId++;
  /** Creates the buffer (at least 16 bytes). */
  constructor(
    readonly buffer: GPUBuffer,
    readonly length: number,
    readonly dtype: DType,
    readonly label: string,
  ) {}
}

/** Options of {@link WebGpuBackend.create}. */
export interface WebGpuOptions {
  /** An existing context (tests share one). Default: a new one. */
  context?: GpuContext;
}

export { type Dispatcher, type DispatchOptions, linearGroups, Params } from "./dispatch.ts";

/**
 * {@link Backend} on WebGPU, and the {@link Dispatcher} its ops use. Create with
 * {@link WebGpuBackend.create}.
 */
export class WebGpuBackend implements Backend, Dispatcher {
  /** Always `"webgpu"`. */
  readonly name = "webgpu" as const;
  /** Reads wait for the queued GPU work. */
  readonly deferredReads = true;
  /** Device, limits, pipeline cache. */
  readonly ctx: GpuContext;
  /** The device. */
  readonly device: GPUDevice;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #arenaCpu = new Uint32Array(ARENA_SLOTS * UNIFORM_WORDS);
  #arena: GPUBuffer;
  #arenaCursor = 0;
  #bindGroups = new Map<string, GPUBindGroup>();
  #scratch = new Map<string, Tensor>();
  #staging: GPUBuffer[] = [];
  #storages = new Set<GpuStorage>();
  #ownsContext: boolean;
  #align: number;
  /** Dispatches recorded since creation (for reports and tests). */
  dispatchCount = 0;
  /** Command buffers submitted since creation (for reports and tests). */
  submitCount = 0;

  private constructor(ctx: GpuContext, ownsContext: boolean) {
    this.ctx = ctx;
    this.device = ctx.device;
    this.#ownsContext = ownsContext;
    this.#align = this.device.limits.minStorageBufferOffsetAlignment;
    this.#arena = this.device.createBuffer({
      label: "uniform-arena",
      size: this.#arenaCpu.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
  }

  /** Creates the backend on a new (or the given) {@link GpuContext}. */
  static async create(opts: WebGpuOptions = {}): Promise<WebGpuBackend> {
    const ctx = opts.context ?? await GpuContext.create();
    return new WebGpuBackend(ctx, opts.context === undefined);
  }

  /** E.g. `"webgpu: llvmpipe (LLVM 15.0.6, 256 bits), software"`. */
  get description(): string {
    return describeBackend(this.facts);
  }

  /** True on Mesa's software OpenGL (see {@link Dispatcher.preferSimpleKernels}). */
  get preferSimpleKernels(): boolean {
    return this.ctx.facts.softwareGl;
  }

  /** The adapter, and whether it is a software one. */
  get facts(): BackendFacts {
    const f = this.ctx.facts;
    return {
      name: "webgpu",
      engine: f.description,
      software: f.isFallbackAdapter,
      hints: [],
      details: [`adapter vendor ${f.vendor}`, `shader-f16 ${f.shaderF16}`],
    };
  }

  // ---- memory ---------------------------------------------------------------

  tensor(shape: readonly number[], dtype: DType = "f32", label = "tensor"): Tensor {
    const size = shapeSize(shape);
    const buffer = this.device.createBuffer({
      label,
      size: Math.max(16, Math.ceil(size / 4) * 16),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const storage = new GpuStorage(buffer, size, dtype, label);
    this.#storages.add(storage);
    return { storage, offset: 0, shape: [...shape], size, dtype };
  }

  free(t: Tensor): void {
    const s = t.storage as GpuStorage;
    if (!this.#storages.delete(s)) return;
    // work recorded on the buffer is submitted first; destroy() waits for it on the queue
    this.submit();
    for (const key of [...this.#bindGroups.keys()]) {
      const ids = key.split("|").slice(1).map((b) => b.split(":")[0]);
      if (ids.includes(String(s.id))) this.#bindGroups.delete(key);
    }
    s.buffer.destroy();
  }

  upload(t: Tensor, data: HostArray): void {
    if (data.length !== t.size) {
      throw new RangeError(
        `Cannot upload to "${t.storage.label}": it has ${t.size} elements but the data has ${data.length}`,
      );
    }
    const want = t.dtype === "f32" ? Float32Array : Int32Array;
    if (!(data instanceof want)) {
      throw new TypeError(
        `Cannot upload to "${t.storage.label}": expected ${want.name} for ${t.dtype}`,
      );
    }
    if (data.length === 0) return; // (a zero-length writeBuffer crashes Deno 2.9.6)
    // Queue writes run before any later submit: flush what was recorded first so
    // program order holds.
    this.submit();
    this.device.queue.writeBuffer(
      (t.storage as GpuStorage).buffer,
      t.offset * 4,
      data as unknown as BufferSource,
    );
  }

  async download(t: Tensor): Promise<HostArray> {
    const bytes = t.size * 4;
    const staging = this.#takeStaging(Math.max(16, Math.ceil(bytes / 16) * 16));
    this.#endPass();
    if (bytes > 0) {
      this.#encoderOrNew().copyBufferToBuffer(
        (t.storage as GpuStorage).buffer,
        t.offset * 4,
        staging,
        0,
        Math.ceil(bytes / 4) * 4,
      );
    }
    this.submit();
    await staging.mapAsync(GPUMapMode.READ);
    const copy = staging.getMappedRange(0, bytes).slice(0);
    staging.unmap();
    this.#staging.push(staging);
    await this.ctx.check();
    return t.dtype === "f32" ? new Float32Array(copy) : new Int32Array(copy);
  }

  fill(t: Tensor, value: number): void {
    const p = new Params().u32(t.size);
    if (t.dtype === "f32") p.f32(value);
    else p.u32(value | 0);
    const kernel = t.dtype === "f32" ? FILL_KERNEL : FILL_I32_KERNEL;
    this.dispatch(kernel, [t], { params: p, groups: linearGroups(t.size, 256) });
  }

  copy(dst: Tensor, src: Tensor): void {
    if (dst.size !== src.size || dst.dtype !== src.dtype) {
      throw new RangeError(
        `Cannot copy "${src.storage.label}" [${src.shape}] ${src.dtype} into "${dst.storage.label}" ` +
          `[${dst.shape}] ${dst.dtype}: sizes and dtypes must match`,
      );
    }
    if (src.size === 0) return;
    this.#endPass();
    this.#encoderOrNew().copyBufferToBuffer(
      (src.storage as GpuStorage).buffer,
      src.offset * 4,
      (dst.storage as GpuStorage).buffer,
      dst.offset * 4,
      src.size * 4,
    );
  }

  submit(): void {
    if (!this.#encoder) return;
    this.#endPass();
    if (this.#arenaCursor > 0) {
      this.device.queue.writeBuffer(
        this.#arena,
        0,
        this.#arenaCpu,
        0,
        this.#arenaCursor * UNIFORM_WORDS,
      );
    }
    this.device.queue.submit([this.#encoder.finish()]);
    this.submitCount++;
    this.#encoder = null;
    this.#arenaCursor = 0;
  }

  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    await this.ctx.check();
  }

  /** A GPU fault: a {@link GpuError}, or the DOMException a lost device rejects with. */
  deviceFault(e: unknown): GpuError | null {
    return asGpuError(e);
  }

  dispose(): void {
    this.#encoder = null;
    this.#pass = null;
    for (const s of this.#storages) s.buffer.destroy();
    this.#storages.clear();
    for (const b of this.#staging) b.destroy();
    this.#arena.destroy();
    this.#bindGroups.clear();
    if (this.#ownsContext) this.ctx.destroy();
  }

  // ---- dispatch machinery used by ops/*.ts -----------------------------------

  /**
   * Records one dispatch of `kernel` over `tensors` (bindings 1..n, in order) on
   * `opts.groups` workgroups. The uniform gets the tensors' element offsets, then
   * `opts.params`.
   */
  dispatch(kernel: KernelSpec, tensors: readonly Tensor[], opts: DispatchOptions): void {
    const { params, groups, constants } = opts;
    if (tensors.length !== kernel.storageBindings) {
      throw new RangeError(
        `Cannot dispatch "${kernel.label}": it binds ${kernel.storageBindings} tensors but got ${tensors.length}`,
      );
    }
    const [gx, gy = 1, gz = 1] = groups;
    if (gx === 0 || gy === 0 || gz === 0) return;
    const words = tensors.length + (params ? params.words.length : 0);
    if (words > UNIFORM_WORDS) throw new RangeError(`Kernel "${kernel.label}" has too many params`);
    if (this.#arenaCursor === ARENA_SLOTS) this.submit();
    const { spec, via } = inPlaceVariant(kernel, tensors);
    const { pipeline, layout, key, access } = this.ctx.pipeline(spec, constants);
    const views = tensors.map((t) => {
      const s = t.storage as GpuStorage;
      return {
        buffer: s,
        label: s.label,
        bufferBytes: s.buffer.size,
        offset: t.offset,
        size: t.size,
      };
    });
    const { ranges, offsets } = planBindings(views, via, access, this.#align);
    const base = this.#arenaCursor * UNIFORM_WORDS;
    this.#arenaCpu.set(offsets, base);
    if (params) this.#arenaCpu.set(params.words, base + tensors.length);

    let bgKey = key;
    for (const r of ranges) bgKey += `|${r.buffer.id}:${r.start}:${r.size}`;
    let bg = this.#bindGroups.get(bgKey);
    if (!bg) {
      const conflict = bindingConflicts(ranges);
      if (conflict) {
        throw new GpuError(
          `Cannot dispatch "${spec.label}": ${conflict}. WebGPU forbids this (Chromium refuses ` +
            "the dispatch); bind a copy, or give the kernel an in-place variant (KernelSpec.inPlace)",
        );
      }
      const entries: GPUBindGroupEntry[] = [{
        binding: 0,
        resource: { buffer: this.#arena, offset: 0, size: UNIFORM_SLOT },
      }];
      for (const r of ranges) {
        entries.push({
          binding: r.binding,
          resource: { buffer: r.buffer.buffer, offset: r.start, size: r.size },
        });
      }
      bg = this.device.createBindGroup({ label: spec.label, layout, entries });
      this.#bindGroups.set(bgKey, bg);
    }
    const pass = this.#passOrNew();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bg, [this.#arenaCursor * UNIFORM_SLOT]);
    pass.dispatchWorkgroups(gx, gy, gz);
    this.#arenaCursor++;
    this.dispatchCount++;
  }

  /** A reusable scratch tensor named `key` with at least `size` elements (grows as needed). */
  scratch(key: string, size: number, dtype: DType = "f32"): Tensor {
    const have = this.#scratch.get(key);
    if (have && have.size >= size && have.dtype === dtype) {
      return { ...have, shape: [size], size };
    }
    const t = this.tensor([Math.max(size, have?.size ?? 0)], dtype, `scratch:${key}`);
    this.#scratch.set(key, t);
    return { ...t, shape: [size], size };
  }

  #encoderOrNew(): GPUCommandEncoder {
    if (!this.#encoder) this.#encoder = this.device.createCommandEncoder({ label: "dbot-step" });
    return this.#encoder;
  }

  #passOrNew(): GPUComputePassEncoder {
    if (!this.#pass) this.#pass = this.#encoderOrNew().beginComputePass({ label: "dbot-ops" });
    return this.#pass;
  }

  #endPass(): void {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
  }

  #takeStaging(bytes: number): GPUBuffer {
    const i = this.#staging.findIndex((b) => b.size >= bytes && b.size <= 4 * bytes);
    if (i >= 0) return this.#staging.splice(i, 1)[0];
    return this.device.createBuffer({
      label: "staging",
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  // ---- ops (implemented in ops/*.ts) ------------------------------------------

  matmul(
    bufs: { out: Tensor; a: Tensor; b: Tensor; bias?: Tensor; pre?: Tensor },
    dims: MatmulDims,
  ): void {
    matmulOps.matmul(this, bufs, dims);
  }
  biasGrad(bufs: { dbias: Tensor; dout: Tensor }, dims: { rows: number; C: number }): void {
    elementwiseOps.biasGrad(this, bufs, dims);
  }
  add(bufs: { out: Tensor; a: Tensor; b: Tensor }): void {
    elementwiseOps.add(this, bufs);
  }
  gelu(bufs: { out: Tensor; inp: Tensor }): void {
    elementwiseOps.gelu(this, bufs);
  }
  geluBackward(bufs: { dinp: Tensor; dout: Tensor; inp: Tensor }): void {
    elementwiseOps.geluBackward(this, bufs);
  }
  quickGelu(bufs: OutInpBufs): void {
    elementwiseOps.quickGelu(this, bufs);
  }
  quickGeluBackward(bufs: GeluBackwardBufs): void {
    elementwiseOps.quickGeluBackward(this, bufs);
  }
  scaleCols(bufs: ScaleColsBufs, dims: RowsDims): void {
    elementwiseOps.scaleCols(this, bufs, dims);
  }
  scaleColsBackward(bufs: ScaleColsBackwardBufs, dims: RowsDims): void {
    elementwiseOps.scaleColsBackward(this, bufs, dims);
  }
  relPosBias(bufs: RelPosBiasBufs, dims: RelPosDims): void {
    relposOps.relPosBias(this, bufs, dims);
  }
  relPosBiasBackward(bufs: RelPosBiasBackwardBufs, dims: RelPosDims): void {
    relposOps.relPosBiasBackward(this, bufs, dims);
  }
  scaleRows(
    bufs: { out: Tensor; inp: Tensor; scale: Tensor },
    dims: { rows: number; C: number },
  ): void {
    elementwiseOps.scaleRows(this, bufs, dims);
  }
  layernorm(
    bufs: { out: Tensor; mean: Tensor; rstd: Tensor; inp: Tensor; weight: Tensor; bias: Tensor },
    dims: { rows: number; C: number; eps: number },
  ): void {
    layernormOps.layernorm(this, bufs, dims);
  }
  layernormBackward(
    bufs: {
      dinp: Tensor;
      dweight: Tensor;
      dbias: Tensor;
      dout: Tensor;
      inp: Tensor;
      weight: Tensor;
      mean: Tensor;
      rstd: Tensor;
    },
    dims: { rows: number; C: number; accumulate?: boolean },
  ): void {
    layernormOps.layernormBackward(this, bufs, dims);
  }
  standardizeRows(
    bufs: { out: Tensor; inp: Tensor },
    dims: { rows: number; C: number; eps: number },
  ): void {
    layernormOps.standardizeRows(this, bufs, dims);
  }
  softmax(
    bufs: { out: Tensor; inp: Tensor },
    dims: { rows: number; C: number; scale: number },
  ): void {
    attentionOps.softmax(this, bufs, dims);
  }
  softmaxBackward(
    bufs: { dinp: Tensor; dout: Tensor; out: Tensor },
    dims: { rows: number; C: number; scale: number },
  ): void {
    attentionOps.softmaxBackward(this, bufs, dims);
  }
  splitHeads(
    bufs: { q: Tensor; k: Tensor; v: Tensor; qkv: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    attentionOps.splitHeads(this, bufs, dims);
  }
  splitHeadsBackward(
    bufs: { dqkv: Tensor; dq: Tensor; dk: Tensor; dv: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    attentionOps.splitHeadsBackward(this, bufs, dims);
  }
  mergeHeads(
    bufs: { out: Tensor; inp: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    attentionOps.mergeHeads(this, bufs, dims);
  }
  mergeHeadsBackward(
    bufs: { dinp: Tensor; dout: Tensor },
    dims: { B: number; N: number; NH: number; HS: number },
  ): void {
    attentionOps.mergeHeadsBackward(this, bufs, dims);
  }
  /** See `Backend.attention`: composed from the head, matmul and softmax kernels. */
  attention(bufs: AttentionBufs, dims: AttentionDims): void {
    checkAttention(bufs, dims);
    composedAttention(this, bufs, dims, this.#workspace);
  }
  /** See `Backend.attentionBackward`: composed as {@link WebGpuBackend.attention} is. */
  attentionBackward(bufs: AttentionBackwardBufs, dims: AttentionDims): void {
    checkAttentionBackward(bufs, dims);
    composedAttentionBackward(this, bufs, dims, this.#workspace);
  }
  /** The composed attention's workspace: scratch tensors viewed at their exact size. */
  readonly #workspace = (name: string, size: number): Tensor =>
    view(this.scratch(`attention.${name}`, size), 0, [size]);
  gatherRows(
    bufs: { out: Tensor; inp: Tensor; index: Tensor; fill?: Tensor },
    dims: { rows: number; C: number },
  ): void {
    rowsOps.gatherRows(this, bufs, dims);
  }
  gatherRowsBackward(
    bufs: { dinp: Tensor; dfill?: Tensor; dout: Tensor; index: Tensor },
    dims: { rows: number; C: number },
  ): void {
    rowsOps.gatherRowsBackward(this, bufs, dims);
  }
  patchify(
    bufs: { out: Tensor; inp: Tensor },
    dims: { B: number; C: number; H: number; W: number; P: number },
  ): void {
    rowsOps.patchify(this, bufs, dims);
  }
  smoothL1Loss(
    bufs: { loss: Tensor; dinp: Tensor; inp: Tensor; target: Tensor; weight: Tensor },
    dims: { rows: number; C: number; beta: number },
  ): void {
    lossOps.smoothL1Loss(this, bufs, dims);
  }
  cosineLoss(
    bufs: { loss: Tensor; dinp: Tensor; inp: Tensor; target: Tensor; weight: Tensor },
    dims: CosineDims,
  ): void {
    lossOps.cosineLoss(this, bufs, dims);
  }
  crossEntropyLoss(
    bufs: { loss: Tensor; dlogits: Tensor; logits: Tensor; target: Tensor },
    dims: { rows: number; C: number },
  ): void {
    lossOps.crossEntropyLoss(this, bufs, dims);
  }
  gradNorm(
    bufs: { norm: Tensor; clipScale: Tensor; grad: Tensor },
    dims: { maxNorm: number },
  ): void {
    optimOps.gradNorm(this, bufs, dims);
  }
  adamw(
    bufs: {
      param: Tensor;
      grad: Tensor;
      m: Tensor;
      v: Tensor;
      offsets: Tensor;
      hyper: Tensor;
      clipScale?: Tensor;
    },
    dims: { lr: number; beta1: number; beta2: number; eps: number; step: number },
  ): void {
    optimOps.adamw(this, bufs, dims);
  }
}

const FILL_KERNEL: KernelSpec = { label: "fill_f32", code: FILL, storageBindings: 1 };
const FILL_I32_KERNEL: KernelSpec = { label: "fill_i32", code: FILL_I32, storageBindings: 1 };
