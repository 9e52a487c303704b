/**
 * Training batches prepared ahead on a pool of data workers, so that reading, decoding
 * and augmenting images overlaps the training step.
 *
 * A batch is a job `(indices, seeds)` with one augmentation seed per sample: it is cut into
 * one contiguous part per worker, each worker renders `pipeline.train(i, new Rng(seed))` for
 * its part and returns the images and each sample's RNG state after them, and the parts are
 * put back in order. A sample depends only on its index and seed, so the batch is
 * bit-identical to the inline path ({@link renderBatch}) for any number of workers.
 *
 * A worker that fails (an exception outside a job, or a job's error) fails every pending
 * batch with its message: the run ends with that error, never waits forever.
 *
 * @module
 */
import { type PreparedBatch, renderBatch } from "./micro_batch.ts";
import type { AugmentOptions } from "../data/pipeline.ts";

export { type PreparedBatch, renderBatch };

/** What a worker needs to rebuild the training pipeline: the dataset spec and transform. */
export interface PrefetchInit {
  /** Dataset spec (`--data`). */
  data: string;
  /** A corrupt folder image is an error (else skipped and reported). */
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

/** A message to a worker. */
export type PrefetchRequest =
  | { kind: "init"; init: PrefetchInit }
  | { kind: "job"; id: number; indices: Int32Array; seed: number | Uint32Array };

/** A message from a worker. */
export type PrefetchReply =
  | {
    kind: "batch";
    id: number;
    images: Float32Array;
    rngState: number;
    rngStates?: Uint32Array;
    skipped?: string[];
  }
  | { kind: "error"; id: number; message: string };

/** One requested batch: its parts as they come back. */
interface Pending {
  parts: (PreparedBatch | undefined)[];
  left: number;
  done: PromiseWithResolvers<PreparedBatch>;
}

/**
 * Jobs are split over the workers; {@link Prefetcher.next} returns the oldest batch.
 *
 * @example
 * ```ts ignore
 * const pf = Prefetcher.create(init, 2);
 * pf?.request(new Int32Array([0, 1]), new Uint32Array([7, 8]));
 * const { images, rngStates } = await pf!.next();
 * pf?.dispose();
 * ```
 */
export class Prefetcher {
  readonly #workers: Worker[];
  readonly #pending = new Map<number, Pending>();
  readonly #order: number[] = [];
  #nextId = 0;
  #failed: Error | null = null;

  private constructor(workers: Worker[]) {
    this.#workers = workers;
    workers.forEach((w, k) => {
      w.onmessage = (e: MessageEvent<PrefetchReply>) => this.#reply(k, e.data);
      w.onerror = (e) => {
        e.preventDefault();
        this.#fail(new Error(`data worker ${k} failed: ${e.message}`));
      };
    });
  }

  /** Number of workers. */
  get workers(): number {
    return this.#workers.length;
  }

  /**
   * A pool of `workers` (≥ 1) for `init`, or null when workers cannot start here (use the
   * inline path).
   */
  static create(init: PrefetchInit, workers = 1): Prefetcher | null {
    if (typeof Worker === "undefined") return null;
    const url = new URL("./prefetch_worker.ts", import.meta.url);
    if (url.protocol !== "file:") return null;
    const started: Worker[] = [];
    try {
      if (Deno.permissions.querySync({ name: "read", path: url }).state !== "granted") return null;
      for (let k = 0; k < Math.max(1, workers); k++) {
        const w = new Worker(url, { type: "module", name: `dbot-data-${k}` });
        started.push(w);
        w.postMessage({ kind: "init", init } satisfies PrefetchRequest);
      }
      return new Prefetcher(started);
    } catch {
      for (const w of started) w.terminate();
      return null;
    }
  }

  /**
   * Queues the batch of `indices` augmented from `seed`: one seed per sample (split over
   * the workers) or one stream (rendered whole by worker 0).
   */
  request(indices: Int32Array, seed: number | Uint32Array): void {
    const id = this.#nextId++;
    const n = typeof seed === "number" ? 1 : Math.min(this.#workers.length, indices.length) || 1;
    const p: Pending = { parts: new Array(n), left: n, done: Promise.withResolvers() };
    this.#pending.set(id, p);
    this.#order.push(id);
    if (this.#failed) {
      p.done.reject(this.#failed);
      return;
    }
    for (let k = 0; k < n; k++) {
      const a = Math.floor((k * indices.length) / n),
        b = Math.floor(((k + 1) * indices.length) / n);
      const part = typeof seed === "number" ? seed : seed.slice(a, b);
      this.#workers[k].postMessage(
        {
          kind: "job",
          id: id * 64 + k,
          indices: indices.slice(a, b),
          seed: part,
        } satisfies PrefetchRequest,
      );
    }
  }

  /** The oldest requested batch (rejects with a worker's error). */
  async next(): Promise<PreparedBatch> {
    const id = this.#order.shift();
    if (id === undefined) throw new Error("Prefetcher.next() without a request");
    const p = this.#pending.get(id);
    if (!p) throw this.#failed ?? new Error(`data job ${id} was lost`);
    try {
      return await p.done.promise;
    } finally {
      this.#pending.delete(id);
    }
  }

  /** Stops the workers; pending batches are dropped. */
  dispose(): void {
    for (const w of this.#workers) w.terminate();
    for (const p of this.#pending.values()) p.done.promise.catch(() => {}); // nobody awaits them
    this.#pending.clear();
    this.#order.length = 0;
  }

  #reply(worker: number, r: PrefetchReply): void {
    const id = Math.floor(r.id / 64), k = r.id % 64;
    const p = this.#pending.get(id);
    if (!p) return;
    if (r.kind === "error") {
      this.#fail(new Error(`data worker ${worker}: ${r.message}`));
      return;
    }
    p.parts[k] = {
      images: r.images,
      rngState: r.rngState,
      rngStates: r.rngStates,
      skipped: r.skipped,
    };
    if (--p.left === 0) p.done.resolve(joinParts(p.parts as PreparedBatch[]));
  }

  #fail(e: Error): void {
    this.#failed ??= e;
    for (const p of this.#pending.values()) p.done.reject(this.#failed); // next() takes and throws
  }
}

/** The parts of one batch, in order, as one batch. */
function joinParts(parts: PreparedBatch[]): PreparedBatch {
  if (parts.length === 1) return parts[0];
  const images = new Float32Array(parts.reduce((s, p) => s + p.images.length, 0));
  const rngStates = new Uint32Array(parts.reduce((s, p) => s + p.rngStates!.length, 0));
  let at = 0, atS = 0;
  for (const p of parts) {
    images.set(p.images, at);
    rngStates.set(p.rngStates!, atS);
    at += p.images.length;
    atS += p.rngStates!.length;
  }
  const last = parts[parts.length - 1];
  const skipped = parts.flatMap((p) => p.skipped ?? []);
  return { images, rngState: last.rngState, rngStates, skipped };
}
