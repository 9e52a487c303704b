/**
 * The Deno side of k-NN (`knn.ts` is the browser-safe algorithm, its checks and its tie
 * rules): the fastest GEMM that loads (OpenBLAS, WebAssembly, TypeScript) for the
 * similarities, and feature files as `deno task embed` writes them.
 *
 * @example
 * ```ts
 * import { knnClassify } from "./knn.ts";
 * import { similarityGemm } from "./knn_file.ts";
 * const train = new Float32Array([1, 0, 0, 1]); // [2, D=2]
 * const test = new Float32Array([0.9, 0.1]); // [1, D=2]
 * const r = knnClassify(
 *   { features: train, labels: new Int32Array([0, 1]) },
 *   { features: test, labels: new Int32Array([0]) },
 *   { dim: 2, k: 1, gemm: similarityGemm() },
 * );
 * console.log(r.top1); // 100
 * ```
 *
 * @module
 */
import { loadGemm } from "../backend/cpu/gemm.ts";
import { readSafetensors } from "../io/safetensors_file.ts";
import { type FeatureSet, featuresFrom, type SimilarityGemm } from "./knn.ts";

/**
 * The GEMM for k-NN similarities on Deno: {@link loadGemm}`("auto")` (OpenBLAS when it
 * loads, else WebAssembly, else TypeScript). Pass it as `gemm` to `knnClassify`.
 */
export function similarityGemm(): SimilarityGemm {
  return loadGemm();
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
