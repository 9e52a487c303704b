/**
 * Weighted k-nearest-neighbour classification of frozen features (DINO / dBOT evaluation),
 * with the fastest GEMM that loads (OpenBLAS, WebAssembly, TypeScript) for the similarities,
 * and feature files as `deno task embed` writes them. The algorithm, its checks and its
 * tie rules are `knn_core.ts` (browser-safe).
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
 * @module
 */
import { loadGemm } from "../backend/cpu/gemm.ts";
import { readSafetensors } from "../io/safetensors_file.ts";
import {
  type FeatureSet,
  featuresFrom,
  knnClassify as knnClassifyWith,
  type KnnClassifyOptions,
  knnClassScores as knnClassScoresWith,
  type KnnOptions,
  type KnnResult,
  type LabeledFeatures,
} from "./knn_core.ts";

export {
  type FeatureSet,
  featuresFrom,
  KNN_DEFAULT_K,
  KNN_DEFAULT_TEMPERATURE,
  type KnnClassifyOptions,
  type KnnOptions,
  type KnnResult,
  type LabeledFeatures,
  type SimilarityGemm,
} from "./knn_core.ts";

/**
 * Top-1 and top-5 accuracy of weighted k-NN on `test` with `train` as the memory bank
 * (see `knn_core.ts`), the similarities by `opts.gemm`, default {@link loadGemm}`("auto")`.
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
  return knnClassifyWith(train, test, { ...opts, gemm: opts.gemm ?? loadGemm() });
}

/**
 * The class scores `[Ntest, numClasses]` (f64) of weighted k-NN (see `knn_core.ts`), the
 * similarities by `opts.gemm`, default {@link loadGemm}`("auto")`.
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
  return knnClassScoresWith(train, trainLabels, test, dim, {
    ...opts,
    gemm: opts.gemm ?? loadGemm(),
  });
}

/**
 * Reads a safetensors file of `features [N, D]` (F32, F16 or BF16) and
 * `labels [N]` (I32), as `deno task embed` writes; see {@link featuresFrom}.
 *
 * @example
 * ```ts ignore
 * const train = await readFeatures("runs/embed/train.safetensors");
 * ```
 */
export async function readFeatures(path: string): Promise<FeatureSet> {
  return featuresFrom((await readSafetensors(path)).tensors, path);
}
