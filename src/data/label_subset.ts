/**
 * Low-label evaluation's training subsets: `n` labelled images drawn from the first `pool`
 * training images, class-balanced (⌊n/K⌋ per class, the remainder one more each to the first
 * classes), fixed by a seed. One seeded order per class serves every `n`, so a smaller subset
 * is inside a larger one of the same seed (600 ⊂ 6000). No file access.
 *
 * @module
 */
import { deriveSeed, permutation } from "./pipeline.ts";
import { Rng } from "../util/rng.ts";

/** The RNG stream of the label subsets (streams 1–3 pre-training, 10–12 fine-tuning). */
const LABEL_SUBSET_STREAM = 20;

/** Images of each class in a class-balanced subset of `n` over `numClasses` classes. */
export function perClassCounts(n: number, numClasses: number): number[] {
  const base = Math.floor(n / numClasses);
  return Array.from({ length: numClasses }, (_, k) => base + (k < n % numClasses ? 1 : 0));
}

/**
 * Indices (ascending) of a class-balanced subset of `n` images among the first `pool` of
 * `labels`, fixed by `seed`; `n` 0 or `pool` gives every one of the `pool` images. More
 * than `pool`, or a class with too few images in the pool, is a RangeError naming the fix.
 */
export function balancedSubset(
  labels: Int32Array,
  o: { n: number; pool: number; numClasses: number; seed: number },
): Int32Array {
  const pool = Math.min(o.pool || labels.length, labels.length);
  if (!Number.isInteger(o.n) || o.n < 0) {
    throw new RangeError(`Cannot draw ${o.n} labelled images: give a non-negative integer`);
  }
  if (o.n > pool) {
    throw new RangeError(
      `Cannot draw ${o.n} labelled images from the first ${pool}: give at most ${pool} (0: all)`,
    );
  }
  if (o.n === 0 || o.n === pool) return Int32Array.from({ length: pool }, (_, i) => i);
  const byClass: number[][] = Array.from({ length: o.numClasses }, () => []);
  for (let i = 0; i < pool; i++) {
    const y = labels[i];
    if (!(y >= 0 && y < o.numClasses)) {
      throw new RangeError(
        `Cannot draw a subset: image ${i} has label ${y} (${o.numClasses} classes)`,
      );
    }
    byClass[y].push(i);
  }
  const want = perClassCounts(o.n, o.numClasses);
  const out: number[] = [];
  for (let k = 0; k < o.numClasses; k++) {
    const have = byClass[k];
    if (have.length < want[k]) {
      throw new RangeError(
        `Cannot draw ${o.n} class-balanced images from the first ${pool}: class ${k} has ` +
          `${have.length}, ${want[k]} needed; give fewer labels or a larger pool`,
      );
    }
    // one order per (seed, class), whatever n: smaller subsets are prefixes of larger ones
    const order = permutation(have.length, new Rng(deriveSeed(o.seed, LABEL_SUBSET_STREAM, k)));
    for (let j = 0; j < want[k]; j++) out.push(have[order[j]]);
  }
  return Int32Array.from(out.sort((a, b) => a - b));
}

/** Rows `idx` of a row-major `[N, dim]` matrix, as `[idx.length, dim]`. */
export function gatherRows(x: Float32Array, dim: number, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length * dim);
  for (let r = 0; r < idx.length; r++) {
    out.set(x.subarray(idx[r] * dim, (idx[r] + 1) * dim), r * dim);
  }
  return out;
}

/** Entries `idx` of `labels`. */
export function gatherLabels(labels: Int32Array, idx: Int32Array): Int32Array {
  return Int32Array.from(idx, (i) => labels[i]);
}
