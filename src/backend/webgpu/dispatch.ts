/**
 * What the WebGPU ops (`ops/*.ts`) need from the backend, and nothing more: record a dispatch
 * of a kernel over tensors ({@link Dispatcher}), the uniform params builder ({@link Params})
 * and the workgroup counts of a 1-D kernel ({@link linearGroups}). The backend implements
 * {@link Dispatcher} and imports the ops; the ops import only this file, so values flow one
 * way.
 *
 * @module
 */
import type { DType, Tensor } from "../backend.ts";
import type { KernelSpec } from "./context.ts";

/** The part of the WebGPU backend an op uses (`WebGpuBackend` implements it). */
export interface Dispatcher {
  /**
   * Records one dispatch of `kernel` over `tensors` (bindings 1..n, in order) on
   * `opts.groups` workgroups. The uniform gets the tensors' element offsets, then
   * `opts.params`.
   */
  dispatch(kernel: KernelSpec, tensors: readonly Tensor[], opts: DispatchOptions): void;
  /** A reusable scratch tensor named `key` with at least `size` elements (grows as needed). */
  scratch(key: string, size: number, dtype?: DType): Tensor;
  /** Sets every element of `t` to `value`. */
  fill(t: Tensor, value: number): void;
  /**
   * Whether an op takes a kernel without workgroup memory where it has one (matmul: the
   * simple kernel for every shape): true on Mesa's software OpenGL, where each pipeline with
   * workgroup memory takes seconds to a minute to compile (`AdapterFacts.softwareGl`).
   */
  readonly preferSimpleKernels: boolean;
}

/** Builder for a kernel's own uniform params (after the tensor offsets). */
export class Params {
  /** Raw words; f32 values are stored by bit pattern. */
  readonly words: number[] = [];
  static #f = new Float32Array(1);
  static #u = new Uint32Array(Params.#f.buffer);

  /** Appends unsigned 32-bit integers. */
  u32(...values: number[]): this {
    for (const v of values) this.words.push(v >>> 0);
    return this;
  }

  /** Appends 32-bit floats. */
  f32(...values: number[]): this {
    for (const v of values) {
      Params.#f[0] = v;
      this.words.push(Params.#u[0]);
    }
    return this;
  }
}

/** Workgroup counts `[x, y, 1]` covering `n` invocations of `wg` each, 2-D past 65535 groups. */
export function linearGroups(n: number, wg: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(n / wg));
  if (groups <= 65535) return [groups, 1, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y, 1];
}

/** What {@link Dispatcher.dispatch} records besides the kernel and its tensors. */
export interface DispatchOptions {
  /** The kernel's own uniform params, after the tensor offsets; none when absent. */
  params?: Params | null;
  /** Workgroup counts `[x, y = 1, z = 1]`; a zero count records nothing. */
  groups: readonly [number, number?, number?];
  /** Pipeline-overridable constants (one pipeline per distinct set). */
  constants?: Record<string, number>;
}
