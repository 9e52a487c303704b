/**
 * The process-group seam for data parallelism. A run has `size` ranks; each computes the
 * gradient of its shard of the global batch, and {@link Collective.allReduceMean} (called
 * once per optimiser step, in `trainStep`) makes every rank hold the mean, so all ranks take
 * the same update. Only the {@link Collective.isWriter} rank (rank 0) writes run files.
 *
 * {@link SINGLE_PROCESS} is the default: rank 0 of 1, every collective does nothing (and
 * costs nothing: no GPU readback). `src/parallel/mpi.ts` implements it over MPI.
 *
 * Every rank must make the same sequence of collective calls.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";

/** A group of processes training one model together. */
export interface Collective {
  /** This process's rank, 0 … size − 1. */
  readonly rank: number;
  /** Number of ranks. */
  readonly size: number;
  /** Whether this rank writes checkpoints, state, metrics and summaries (rank 0). */
  readonly isWriter: boolean;
  /** `t ← mean over ranks of t` (a flat f32 gradient), in place. */
  allReduceMean(be: Backend, t: Tensor): Promise<void>;
  /** `buf ← Σ over ranks of buf` (host f32), in place. */
  allReduceSum(buf: Float32Array<ArrayBuffer>): Promise<void>;
  /** Rank `root`'s bytes to every rank (in place; root defaults to 0). */
  broadcast(buf: Uint8Array<ArrayBuffer>, root?: number): Promise<void>;
  /** Waits until every rank reaches it. */
  barrier(): Promise<void>;
  /**
   * Throws (on every rank) when the ranks hold different `value`s for `what` (a hash of the
   * resolved config, of the source, of the initial weights), naming the ranks that differ.
   */
  agree(what: string, value: string): Promise<void>;
}

/** One process: rank 0 of 1. */
export const SINGLE_PROCESS: Collective = Object.freeze({
  rank: 0,
  size: 1,
  isWriter: true,
  allReduceMean: (_be: Backend, _t: Tensor): Promise<void> => Promise.resolve(),
  allReduceSum: (_buf: Float32Array): Promise<void> => Promise.resolve(),
  broadcast: (_buf: Uint8Array, _root?: number): Promise<void> => Promise.resolve(),
  barrier: (): Promise<void> => Promise.resolve(),
  agree: (_what: string, _value: string): Promise<void> => Promise.resolve(),
});
