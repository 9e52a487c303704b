/**
 * The scratch memory of a WebAssembly module instance as f32: consecutive 16-byte-aligned
 * regions from a base offset, the memory grown to fit (the SIMD kernels and the GEMM copy
 * their operands in and out of it).
 *
 * @module
 */

/** A module's memory as floats, handing out aligned regions above `base`. */
export class WasmHeap {
  /** The memory as floats (replaced when the memory grows). */
  f32: Float32Array;
  readonly #memory: WebAssembly.Memory;
  readonly #base: number;

  /** `base`: the first float offset the regions may use. */
  constructor(memory: WebAssembly.Memory, base: number) {
    this.#memory = memory;
    this.#base = base;
    this.f32 = new Float32Array(memory.buffer);
  }

  /** Float offsets of consecutive 16-byte-aligned regions of the given sizes, grown to fit. */
  regions(...sizes: number[]): number[] {
    const offs: number[] = [];
    let end = this.#base;
    for (const s of sizes) {
      offs.push(end);
      end += Math.ceil(s / 4) * 4;
    }
    if (end > this.f32.length) {
      const pages = Math.ceil((end * 4 - this.#memory.buffer.byteLength) / 65536);
      this.#memory.grow(pages);
      this.f32 = new Float32Array(this.#memory.buffer);
    }
    return offs;
  }
}
