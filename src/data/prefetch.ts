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
 * A worker that crashes (an uncaught exception outside a job) is replaced by a fresh one,
 * which is given the crashed worker's unfinished jobs again (a part depends only on its
 * indices and seeds, so the batch is the same); after {@link MAX_WORKER_RESTARTS} crashes
 * of one worker, or on a job's own error (a `DataError` under `--strict-data`), every
 * pending batch fails with the message: the run ends with that error, never waits forever.
 * A worker that ends without an error (code that calls `self.close()` or `Deno.exit()` in
 * it) or hangs sends no heartbeat: silent for {@link DATA_WORKER_STALL_MS} while it has jobs,
 * it is treated as crashed.
 *
 * {@link defaultDataWorkers} is the pool size a run uses when not told.
 *
 * @module
 */
import { type PreparedBatch, renderBatch } from "./render.ts";
import type { AugmentOptions } from "./pipeline.ts";

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

/** Crashes of one worker that are restarted; the next one ends the run with its error. */
export const MAX_WORKER_RESTARTS = 3;

/** A worker says "alive" at most this often (ms; or a tenth of the stall): idle, or per sample. */
export const HEARTBEAT_MS = 1000;

/**
 * A worker with unfinished jobs that has said nothing for this long (ms) — not even between
 * two samples — has exited or hangs: it is restarted like a crashed one.
 */
export const DATA_WORKER_STALL_MS = 120_000;

/** Most data workers {@link defaultDataWorkers} picks. */
export const MAX_DEFAULT_DATA_WORKERS = 8;

/**
 * Data workers a run starts when not told (`--data-workers -1`, the default): the CPUs this
 * process may use that training leaves free — `cores / ranks on the machine − training
 * threads` — at least 1 (so decoding overlaps the step even when training uses every core)
 * and at most {@link MAX_DEFAULT_DATA_WORKERS} (each worker is a JavaScript isolate of
 * ~30 MB, and decoding rarely needs more to feed a step).
 *
 * @example
 * ```ts
 * import { defaultDataWorkers } from "./prefetch.ts";
 * defaultDataWorkers({ cores: 2, trainThreads: 2 }); // 1: CPU training on 2 cores
 * defaultDataWorkers({ cores: 16, trainThreads: 1 }); // 8: WebGPU training, 16 cores
 * ```
 */
export function defaultDataWorkers(
  o: { cores: number; trainThreads: number; ranks?: number },
): number {
  const mine = Math.floor(Math.max(1, o.cores) / Math.max(1, o.ranks ?? 1));
  return Math.max(1, Math.min(MAX_DEFAULT_DATA_WORKERS, mine - o.trainThreads));
}

/**
 * A message to a worker (`crash` and `exit` are for tests: the worker throws outside any job,
 * or closes itself without a word).
 */
export type PrefetchRequest =
  | { kind: "init"; init: PrefetchInit; heartbeatMs: number }
  | { kind: "job"; id: number; indices: Int32Array; seed: number | Uint32Array }
  | { kind: "crash" }
  | { kind: "exit" };

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
  | { kind: "error"; id: number; message: string }
  | { kind: "alive" };

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
  readonly #init: PrefetchInit;
  readonly #url: URL;
  readonly #warn: (msg: string) => void;
  /** Per worker: its unfinished jobs by part id, in the order they were sent. */
  readonly #inflight: Map<number, PrefetchRequest>[];
  readonly #restarts: number[];
  /** Per worker: when it last said anything (performance.now()). */
  readonly #lastHeard: number[];
  readonly #stallMs: number;
  readonly #watch: ReturnType<typeof setInterval>;
  #lastTick = performance.now();
  readonly #pending = new Map<number, Pending>();
  readonly #order: number[] = [];
  #nextId = 0;
  #failed: Error | null = null;

  private constructor(
    url: URL,
    init: PrefetchInit,
    workers: number,
    warn: (msg: string) => void,
    stallMs: number,
  ) {
    this.#url = url;
    this.#init = init;
    this.#warn = warn;
    this.#stallMs = stallMs;
    this.#inflight = Array.from({ length: workers }, () => new Map());
    this.#restarts = new Array(workers).fill(0);
    this.#lastHeard = new Array(workers).fill(performance.now());
    this.#workers = [];
    try {
      for (let k = 0; k < workers; k++) this.#workers.push(this.#start(k));
    } catch (e) {
      for (const w of this.#workers) w.terminate();
      throw e;
    }
    const every = Math.max(10, Math.min(5000, stallMs / 4));
    this.#watch = setInterval(() => this.#checkStalls(every), every);
    // (a ref'd timer: while a batch waits on a worker that exited, only this keeps the
    // process alive to find it; dispose() clears it)
  }

  /** Starts worker k and sends it the init message. */
  #start(k: number): Worker {
    const w = new Worker(this.#url, { type: "module", name: `dbot-data-${k}` });
    this.#lastHeard[k] = performance.now();
    w.onmessage = (e: MessageEvent<PrefetchReply>) => {
      this.#lastHeard[k] = performance.now();
      const r = e.data;
      if (r.kind !== "alive") this.#reply(k, r);
    };
    w.onerror = (e) => {
      e.preventDefault();
      this.#crashed(k, e.message);
    };
    const heartbeatMs = Math.min(HEARTBEAT_MS, this.#stallMs / 10);
    w.postMessage({ kind: "init", init: this.#init, heartbeatMs } satisfies PrefetchRequest);
    return w;
  }

  /** Number of workers. */
  get workers(): number {
    return this.#workers.length;
  }

  /** Workers restarted after a crash so far. */
  get restarts(): number {
    return this.#restarts.reduce((a, b) => a + b, 0);
  }

  /**
   * A pool of `workers` (≥ 1) for `init`, or null when workers cannot start here (use the
   * inline path). `warn` hears of each restarted worker; `stallMs` is how long a worker with
   * jobs may stay silent before it counts as crashed.
   */
  static create(
    init: PrefetchInit,
    workers = 1,
    warn: (msg: string) => void = () => {},
    stallMs = DATA_WORKER_STALL_MS,
  ): Prefetcher | null {
    if (typeof Worker === "undefined") return null;
    const url = new URL("./prefetch_worker.ts", import.meta.url);
    if (url.protocol !== "file:") return null;
    try {
      if (Deno.permissions.querySync({ name: "read", path: url }).state !== "granted") return null;
      return new Prefetcher(url, init, Math.max(1, workers), warn, stallMs);
    } catch {
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
      const job: PrefetchRequest = {
        kind: "job",
        id: id * 64 + k,
        indices: indices.slice(a, b),
        seed: part,
      };
      this.#inflight[k].set(job.id, job);
      this.#workers[k].postMessage(job);
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

  /**
   * For tests: makes worker `k` throw outside any job, as a crash would, or (`"exit"`) close
   * itself without a word.
   */
  crashForTest(k: number, how: "crash" | "exit" = "crash"): void {
    this.#workers[k].postMessage({ kind: how } satisfies PrefetchRequest);
  }

  /** Stops the workers; pending batches are dropped. */
  dispose(): void {
    clearInterval(this.#watch);
    for (const w of this.#workers) w.terminate();
    for (const p of this.#pending.values()) p.done.promise.catch(() => {}); // nobody awaits them
    this.#pending.clear();
    this.#order.length = 0;
    for (const m of this.#inflight) m.clear();
  }

  /**
   * The watch: a worker with jobs that said nothing for `stallMs` exited or hangs. A tick
   * that comes late means this thread was busy (a long synchronous step) and could not hear
   * the workers' messages either: that tick checks nothing.
   */
  #checkStalls(every: number): void {
    if (this.#failed) return;
    const now = performance.now();
    const late = now - this.#lastTick > 2 * every + 50;
    this.#lastTick = now;
    for (let k = 0; k < this.#workers.length; k++) {
      if (late || this.#inflight[k].size === 0) {
        this.#lastHeard[k] = Math.max(this.#lastHeard[k], now - every);
        continue;
      }
      const silent = now - this.#lastHeard[k];
      if (silent < this.#stallMs) continue;
      this.#crashed(
        k,
        `it exited or hangs: nothing from it for ${(silent / 1000).toFixed(1)} s with ` +
          `${this.#inflight[k].size} unfinished job(s)`,
      );
    }
  }

  /** Worker k died of an uncaught error: restart it with its unfinished jobs, or fail. */
  #crashed(k: number, message: string): void {
    this.#workers[k].terminate();
    if (this.#failed) return;
    if (this.#restarts[k] >= MAX_WORKER_RESTARTS) {
      this.#fail(
        new Error(
          `data worker ${k} crashed ${this.#restarts[k] + 1} times, the last with: ${message}`,
        ),
      );
      return;
    }
    this.#restarts[k]++;
    const jobs = [...this.#inflight[k].values()];
    this.#warn(
      `warning: data worker ${k} crashed (${message}); restarted it with its ${jobs.length} ` +
        `unfinished job(s)`,
    );
    try {
      this.#workers[k] = this.#start(k);
    } catch (e) {
      this.#fail(new Error(`data worker ${k} crashed (${message}) and could not restart: ${e}`));
      return;
    }
    for (const job of jobs) this.#workers[k].postMessage(job);
  }

  #reply(worker: number, r: Exclude<PrefetchReply, { kind: "alive" }>): void {
    // a part answered twice (by a worker that crashed after replying, then its successor)
    if (!this.#inflight[worker].delete(r.id)) return;
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
