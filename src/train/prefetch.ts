/**
 * Training batches prepared one step ahead on a worker thread, so that decoding,
 * rendering and augmenting images overlaps the training step: the CPU backend's step
 * leaves a core idle in its single-threaded stretches, and WebGPU's leaves the host free.
 *
 * A batch is a job `(indices, seed)`: the worker renders `pipeline.train(i, rng)` for
 * each index with `rng = new Rng(seed)` and returns the images and the RNG state after
 * them, so the caller draws the mask noise from exactly where the synchronous path would:
 * the run is bit-identical with or without the worker.
 *
 * @module
 */
import { type PreparedBatch, renderBatch } from "./micro_batch.ts";
import type { AugmentOptions } from "../data/pipeline.ts";

export { type PreparedBatch, renderBatch };

/** What the worker needs to rebuild the training pipeline: the dataset spec and transform. */
export interface PrefetchInit {
  /** Dataset spec (`--data`). */
  data: string;
  /** A corrupt folder image is an error (else skipped, as on the main thread). */
  strict: boolean;
  /** Output size. */
  size: number;
  /** Output channels. */
  channels: number;
  /** Normalisation mean per channel. */
  mean: number[];
  /** Normalisation std per channel. */
  std: number[];
  /** The training transforms (default: the reference dBOT pre-training). */
  augment?: AugmentOptions;
}

/** A message to the worker. */
export type PrefetchRequest =
  | { kind: "init"; init: PrefetchInit }
  | { kind: "job"; id: number; indices: Int32Array; seed: number | Uint32Array };

/** A message from the worker. */
export type PrefetchReply =
  | { kind: "batch"; id: number; images: Float32Array; rngState: number; rngStates?: Uint32Array }
  | { kind: "error"; id: number; message: string };

/**
 * Jobs run in order on one worker; {@link Prefetcher.next} returns the oldest one's batch.
 *
 * @example
 * ```ts ignore
 * const pf = Prefetcher.create(init);
 * pf?.request(new Int32Array([0, 1]), 7);
 * const { images, rngState } = await pf!.next();
 * pf?.dispose();
 * ```
 */
export class Prefetcher {
  readonly #worker: Worker;
  readonly #pending = new Map<number, PromiseWithResolvers<PreparedBatch>>();
  readonly #order: number[] = [];
  #nextId = 0;
  #failed: Error | null = null;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (e: MessageEvent<PrefetchReply>) => {
      const r = e.data;
      const p = this.#pending.get(r.id); // next() deletes it once settled
      if (!p) return;
      if (r.kind === "batch") {
        p.resolve({ images: r.images, rngState: r.rngState, rngStates: r.rngStates });
      } else p.reject(new Error(r.message));
    };
    worker.onerror = (e) => {
      e.preventDefault();
      this.#fail(new Error(`the data worker failed: ${e.message}`));
    };
  }

  /** A prefetcher for `init`, or null when a worker cannot start here (use the sync path). */
  static create(init: PrefetchInit): Prefetcher | null {
    if (typeof Worker === "undefined") return null;
    const url = new URL("./prefetch_worker.ts", import.meta.url);
    if (url.protocol !== "file:") return null;
    try {
      if (Deno.permissions.querySync({ name: "read", path: url }).state !== "granted") return null;
      const w = new Worker(url, { type: "module", name: "dbot-data" });
      w.postMessage({ kind: "init", init } satisfies PrefetchRequest);
      return new Prefetcher(w);
    } catch {
      return null;
    }
  }

  /** Queues the batch of `indices` augmented from `seed` (one stream, or one seed per sample). */
  request(indices: Int32Array, seed: number | Uint32Array): void {
    const id = this.#nextId++;
    this.#pending.set(id, Promise.withResolvers<PreparedBatch>());
    this.#order.push(id);
    if (this.#failed) {
      this.#pending.get(id)!.reject(this.#failed);
      return;
    }
    this.#worker.postMessage({ kind: "job", id, indices, seed } satisfies PrefetchRequest);
  }

  /** The oldest requested batch (rejects with the worker's error). */
  async next(): Promise<PreparedBatch> {
    const id = this.#order.shift();
    if (id === undefined) throw new Error("Prefetcher.next() without a request");
    const p = this.#pending.get(id);
    if (!p) throw this.#failed ?? new Error(`data job ${id} was lost`);
    try {
      return await p.promise;
    } finally {
      this.#pending.delete(id);
    }
  }

  /** Stops the worker; pending batches are dropped. */
  dispose(): void {
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.promise.catch(() => {}); // nobody awaits them now
    this.#pending.clear();
    this.#order.length = 0;
  }

  #fail(e: Error): void {
    this.#failed = e;
    for (const p of this.#pending.values()) p.reject(e); // next() still takes and throws them
  }
}
