/**
 * Weighted k-nearest-neighbour classification of frozen features, as in the
 * DINO and dBOT evaluations: features are L2-normalised, each test feature
 * takes the `k` train features of highest cosine similarity, neighbour `j`
 * votes for its class with weight `exp(sim_j / T)`, and the class scores are
 * the summed votes.
 *
 * Similarities are computed a block of test rows at a time as one GEMM
 * (`[rows, D] · [Ntrain, D]ᵀ`, OpenBLAS when it loads), then each row keeps its
 * top `k` with a single pass of insertion into a sorted list of `k` (no sort
 * of `Ntrain` values).
 *
 * Ties are deterministic: among equal similarities the lower train index ranks
 * first, and among equal class scores the lower class index ranks first.
 *
 * @example
 * ```ts
 * import { knnClassify } from "./knn.ts";
 * const train = new Float32Array([1, 0, 0, 1]); // [2, D=2]
 * const test = new Float32Array([0.9, 0.1]); // [1, D=2]
 * const r = knnClassify(
 *   { features: train, labels: new Int32Array([0, 1]) },
 *   { features: test, labels: new Int32Array([0]) },
 *   { dim: 2, k: 1 },
 * );
 * console.log(r.top1); // 100
 * ```
 *
 * This module has no file access and runs in a browser too; `knn_file.ts` adds the fast
 * GEMM ({@link SimilarityGemm} `similarityGemm()`) and feature files.
 *
 * @module
 */
import type { Gemm } from "../backend/cpu/gemm_types.ts";
import { type NamedTensor, toFloat32 } from "../io/safetensors.ts";

/**
 * The part of a GEMM (`backend/cpu/gemm_types.ts`'s `Gemm`) k-NN uses: row-major
 * `c[M, N] = alpha·a[M, K]·b[N, K]ᵀ + beta·c` with `transB` (a type-only import of a
 * dependency-free file, so this module stays browser-safe).
 */
export type SimilarityGemm = Pick<Gemm, "sgemm">;

/** Options of {@link knnClassify}. */
export interface KnnOptions {
  /** Neighbours per test feature; clamped to the train set size. Default 20. */
  k?: number;
  /** Temperature `T` of the vote weights `exp(sim / T)`. Default 0.07. */
  temperature?: number;
  /** Number of classes; default one more than the largest label (train or test). */
  numClasses?: number;
  /**
   * The GEMM for the similarities (on Deno, `knn_file.ts`'s `similarityGemm()`); without one,
   * plain dot products (no file, FFI or WebAssembly: fine for the browser's few thousand rows).
   */
  gemm?: SimilarityGemm;
}

/** Options of {@link knnClassify}: the feature size, and the {@link KnnOptions}. */
export interface KnnClassifyOptions extends KnnOptions {
  /** Feature size `dim` of both the train and the test features. */
  dim: number;
}

/** Features `[rows, dim]` with one class label per row, as {@link knnClassify} takes them. */
export interface LabeledFeatures {
  /** `[rows, dim]` features. */
  features: Float32Array;
  /** `[rows]` class labels, integers in `[0, numClasses)`. */
  labels: Int32Array;
}

/** Accuracies of {@link knnClassify}. */
export interface KnnResult {
  /** Top-1 accuracy in percent (0..100). */
  top1: number;
  /** Top-5 accuracy in percent: the label is among the 5 highest class scores. */
  top5: number;
  /** Test features classified. */
  count: number;
  /** Neighbours used (after clamping to the train set size). */
  k: number;
}

/** Default neighbours, as in DINO's k-NN evaluation. */
export const KNN_DEFAULT_K = 20;
/** Default vote temperature, as in DINO's k-NN evaluation. */
export const KNN_DEFAULT_TEMPERATURE = 0.07;

/** Size of one block of similarities, in f32 elements (16 MiB). */
const BLOCK_ELEMS = 1 << 22;

/**
 * Top-1 and top-5 accuracy of weighted k-NN on `test` with `train` as the
 * memory bank.
 *
 * - `train.features [Ntrain, dim]`, `train.labels [Ntrain]`, `test.features [Ntest, dim]`,
 *   `test.labels [Ntest]`; labels are integers in `[0, numClasses)`; `dim` and the
 *   {@link KnnOptions} come in `opts`. Errors call the label arrays `trainLabels` and
 *   `testLabels`.
 * - Throws a `RangeError` naming the arrays and sizes when they disagree, and
 *   when a feature holds a non-finite value.
 *
 * @example
 * ```ts
 * import { knnClassify } from "./knn.ts";
 * const train = new Float32Array([1, 0, 0.9, 0.1, 0, 1]); // [3, D=2]
 * const test = new Float32Array([0.1, 0.9]); // [1, D=2]
 * const r = knnClassify(
 *   { features: train, labels: new Int32Array([0, 0, 1]) },
 *   { features: test, labels: new Int32Array([1]) },
 *   { dim: 2, k: 3 },
 * );
 * console.log(r); // { top1: 100, top5: 100, count: 1, k: 3 }
 * ```
 */
export function knnClassify(
  train: LabeledFeatures,
  test: LabeledFeatures,
  opts: KnnClassifyOptions,
): KnnResult {
  const { features: trainFeatures, labels: trainLabels } = train;
  const { features: testFeatures, labels: testLabels } = test;
  const { dim } = opts;
  const numClasses = resolveClasses(opts, [trainLabels, testLabels]);
  checkLabels("test", testLabels, testFeatures, dim, numClasses);
  let hit1 = 0;
  let hit5 = 0;
  const k = forEachClassScores(trainFeatures, trainLabels, testFeatures, dim, {
    ...opts,
    numClasses,
  }, (i, s) => {
    // Rank of the true class: classes scoring higher, or equal with a lower index.
    const y = testLabels[i];
    const sy = s[y];
    let rank = 0;
    for (let c = 0; c < numClasses; c++) {
      if (s[c] > sy || (s[c] === sy && c < y)) rank++;
    }
    if (rank === 0) hit1++;
    if (rank < 5) hit5++;
  });
  const count = testLabels.length;
  return { top1: (100 * hit1) / count, top5: (100 * hit5) / count, count, k };
}

/**
 * The class scores `[Ntest, numClasses]` (f64) of weighted k-NN: row `i`, column
 * `c` is `Σ exp(sim_j / T)` over the `k` nearest train features `j` of class
 * `c`. Same checks as {@link knnClassify}, without test labels: `train [Ntrain, dim]`,
 * `trainLabels [Ntrain]`, `test [Ntest, dim]`.
 *
 * @example
 * ```ts
 * import { knnClassScores } from "./knn.ts";
 * const train = new Float32Array([1, 0, 0, 1]); // [2, D=2]
 * const { scores } = knnClassScores(train, new Int32Array([0, 1]), new Float32Array([1, 0]), 2, {
 *   k: 2,
 *   temperature: 1,
 * });
 * console.log(scores); // Float64Array [e, 1]
 * ```
 */
export function knnClassScores(
  train: Float32Array,
  trainLabels: Int32Array,
  test: Float32Array,
  dim: number,
  opts: KnnOptions = {},
): { scores: Float64Array; numClasses: number; k: number } {
  const numClasses = resolveClasses(opts, [trainLabels]);
  const scores = new Float64Array((test.length / dim) * numClasses);
  const k = forEachClassScores(train, trainLabels, test, dim, { ...opts, numClasses }, (i, s) => {
    scores.set(s, i * numClasses);
  });
  return { scores, numClasses, k };
}

/**
 * Calls `visit(i, scores)` for every test row `i` in order with its class
 * scores (a reused buffer of `numClasses`); returns the clamped `k`.
 */
function forEachClassScores(
  train: Float32Array,
  trainLabels: Int32Array,
  test: Float32Array,
  dim: number,
  opts: KnnOptions & { numClasses: number },
  visit: (i: number, scores: Float64Array) => void,
): number {
  const { numClasses } = opts;
  const Ntrain = checkLabels("train", trainLabels, train, dim, numClasses);
  const Ntest = rowsOf("test", test, dim);
  if (Ntrain === 0) throw new RangeError("Cannot run k-NN as train is empty: it has 0 rows");
  if (Ntest === 0) throw new RangeError("Cannot run k-NN as test is empty: it has 0 rows");
  const kWanted = opts.k ?? KNN_DEFAULT_K;
  if (!Number.isInteger(kWanted) || kWanted < 1) {
    throw new RangeError(
      `Cannot run k-NN as k must be a positive integer: current value is ${kWanted}`,
    );
  }
  const T = opts.temperature ?? KNN_DEFAULT_TEMPERATURE;
  if (!(T > 0) || !Number.isFinite(T)) {
    throw new RangeError(
      `Cannot run k-NN as temperature must be positive and finite: current value is ${T}`,
    );
  }
  const k = Math.min(kWanted, Ntrain);
  const gemm = opts.gemm ?? DOT_GEMM;

  const trainN = normalizeRows("train", train, Ntrain, dim);
  const testN = normalizeRows("test", test, Ntest, dim);
  const R = Math.max(1, Math.min(Ntest, Math.floor(BLOCK_ELEMS / Ntrain)));
  const sims = new Float32Array(R * Ntrain); // [R, Ntrain]: one block of test rows
  const topSim = new Float64Array(k); // descending
  const topIdx = new Int32Array(k);
  const scores = new Float64Array(numClasses);
  const invT = 1 / T;

  for (let r0 = 0; r0 < Ntest; r0 += R) {
    const rows = Math.min(R, Ntest - r0);
    // sims[rows, Ntrain] = testN[r0 : r0+rows] · trainNᵀ
    gemm.sgemm({
      transA: false,
      transB: true,
      M: rows,
      N: Ntrain,
      K: dim,
      alpha: 1,
      a: testN.subarray(r0 * dim, (r0 + rows) * dim),
      lda: dim,
      b: trainN,
      ldb: dim,
      beta: 0,
      c: sims,
      ldc: Ntrain,
    });
    for (let i = 0; i < rows; i++) {
      topK(topSim, topIdx, sims, i * Ntrain, Ntrain);
      scores.fill(0);
      for (let j = 0; j < k; j++) scores[trainLabels[topIdx[j]]] += Math.exp(topSim[j] * invT);
      visit(r0 + i, scores);
    }
  }
  return k;
}

/** `sims[rows, N] = a[rows, K] · b[N, K]ᵀ` by plain dot products: the default without a GEMM. */
const DOT_GEMM: SimilarityGemm = {
  sgemm({ M, N, K, a, b, c }) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let q = 0; q < K; q++) s += a[i * K + q] * b[j * K + q];
        c[i * N + j] = s;
      }
    }
  },
};

/**
 * The `k = topSim.length` largest of `v[off : off+n]` into `topSim` (descending)
 * and their positions into `topIdx`; on ties the lower position ranks first.
 * Requires `n >= k` and finite values.
 */
function topK(
  topSim: Float64Array,
  topIdx: Int32Array,
  v: Float32Array,
  off: number,
  n: number,
): void {
  topSim.fill(-Infinity);
  topIdx.fill(-1);
  let thr = -Infinity; // topSim[k - 1]: a value must beat it strictly to enter
  const end = off + n;
  let j = off;
  // Almost every value loses to thr: testing four at once halves the scan time
  // (0.6 vs 1.2 ns per value at Ntrain 60000).
  for (; j + 4 <= end; j += 4) {
    if (v[j] > thr || v[j + 1] > thr || v[j + 2] > thr || v[j + 3] > thr) {
      for (let q = j; q < j + 4; q++) {
        if (v[q] > thr) thr = insert(topSim, topIdx, v[q], q - off);
      }
    }
  }
  for (; j < end; j++) if (v[j] > thr) thr = insert(topSim, topIdx, v[j], j - off);
}

/** Inserts `(s, j)` into the sorted top list, dropping its last entry; returns the new last value. */
function insert(topSim: Float64Array, topIdx: Int32Array, s: number, j: number): number {
  // Shift down the entries strictly below s: equal ones (lower index) stay ahead.
  let p = topSim.length - 1;
  while (p > 0 && topSim[p - 1] < s) {
    topSim[p] = topSim[p - 1];
    topIdx[p] = topIdx[p - 1];
    p--;
  }
  topSim[p] = s;
  topIdx[p] = j;
  return topSim[topSim.length - 1];
}

/** Rows of `x [rows, dim]`; throws a `RangeError` when `x` is not a whole number of rows. */
function rowsOf(name: string, x: Float32Array, dim: number): number {
  if (!Number.isInteger(dim) || dim < 1) {
    throw new RangeError(
      `Cannot run k-NN as dim must be a positive integer: current value is ${dim}`,
    );
  }
  if (x.length % dim !== 0) {
    throw new RangeError(
      `Cannot run k-NN as ${name} is not [rows, dim=${dim}]: it has ${x.length} values, ` +
        `not a multiple of ${dim}`,
    );
  }
  return x.length / dim;
}

/** Checks `labels` against `x [rows, dim]` and `[0, numClasses)`; returns rows. */
function checkLabels(
  name: string,
  labels: Int32Array,
  x: Float32Array,
  dim: number,
  numClasses: number,
): number {
  const rows = rowsOf(name, x, dim);
  if (labels.length !== rows) {
    throw new RangeError(
      `Cannot run k-NN as ${name}Labels must have one label per ${name} row: ` +
        `${name} is [${rows}, ${dim}] and ${name}Labels has ${labels.length} labels`,
    );
  }
  for (let i = 0; i < rows; i++) {
    const y = labels[i];
    if (y < 0 || y >= numClasses) {
      throw new RangeError(
        `Cannot run k-NN as ${name}Labels[${i}] must be in [0, numClasses=${numClasses}): ` +
          `current value is ${y}`,
      );
    }
  }
  return rows;
}

/** `opts.numClasses` (checked), or one more than the largest label. */
function resolveClasses(opts: KnnOptions, labelSets: Int32Array[]): number {
  let max = -1;
  for (const labels of labelSets) {
    for (let i = 0; i < labels.length; i++) max = Math.max(max, labels[i]);
  }
  if (opts.numClasses === undefined) return Math.max(1, max + 1);
  const C = opts.numClasses;
  if (!Number.isInteger(C) || C < 1) {
    throw new RangeError(
      `Cannot run k-NN as numClasses must be a positive integer: current value is ${C}`,
    );
  }
  return C;
}

/**
 * A copy of `x [rows, dim]` with every row divided by its L2 norm (at least
 * 1e-12, as `F.normalize`; a zero row stays zero). Throws a `RangeError` on a
 * non-finite value.
 */
function normalizeRows(name: string, x: Float32Array, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let d = 0; d < dim; d++) ss += x[o + d] * x[o + d];
    if (!Number.isFinite(ss)) {
      throw new RangeError(`Cannot run k-NN as ${name} row ${r} holds a non-finite value`);
    }
    const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
    for (let d = 0; d < dim; d++) out[o + d] = x[o + d] * inv;
  }
  return out;
}

/** Features and labels as `deno task embed` writes them. */
export interface FeatureSet {
  /** `[count, dim]` features. */
  features: Float32Array;
  /** `[count]` class labels. */
  labels: Int32Array;
  /** Rows. */
  count: number;
  /** Feature size. */
  dim: number;
}

/**
 * The feature set in decoded safetensors `tensors` from `source` (named in
 * errors). Throws a `RangeError` when a tensor is missing or the shapes or
 * dtypes disagree.
 *
 * @example
 * ```ts
 * import { featuresFrom } from "./knn.ts";
 * import { decodeSafetensors, encodeSafetensors } from "../io/safetensors.ts";
 * const bytes = encodeSafetensors({
 *   features: { dtype: "F32", shape: [1, 2], data: new Float32Array([1, 2]) },
 *   labels: { dtype: "I32", shape: [1], data: new Int32Array([0]) },
 * });
 * console.log(featuresFrom(decodeSafetensors(bytes).tensors, "<memory>").dim); // 2
 * ```
 */
export function featuresFrom(
  tensors: ReadonlyMap<string, NamedTensor>,
  source: string,
): FeatureSet {
  const path = source;
  const f = tensors.get("features");
  const l = tensors.get("labels");
  if (!f || !l) {
    throw new RangeError(
      `Cannot read features from "${path}" as it must hold "features" [N, D] and "labels" [N]: ` +
        `it holds ${[...tensors.keys()].map((n) => `"${n}"`).join(", ") || "no tensors"}`,
    );
  }
  if (f.shape.length !== 2 || l.shape.length !== 1 || l.shape[0] !== f.shape[0]) {
    throw new RangeError(
      `Cannot read features from "${path}" as features must be [N, D] and labels [N]: ` +
        `current shapes are [${f.shape}] and [${l.shape}]`,
    );
  }
  if (f.dtype !== "F32" && f.dtype !== "F16" && f.dtype !== "BF16") {
    throw new RangeError(
      `Cannot read features from "${path}" as features must be F32, F16 or BF16: current dtype is ${f.dtype}`,
    );
  }
  if (l.dtype !== "I32") {
    throw new RangeError(
      `Cannot read features from "${path}" as labels must be I32: current dtype is ${l.dtype}`,
    );
  }
  const [count, dim] = f.shape;
  return { features: toFloat32(f), labels: l.data as Int32Array, count, dim };
}
