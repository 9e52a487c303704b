/**
 * `@dbot/dbot/eval`: what a pre-trained encoder is worth: features of a dataset (cls token or
 * mean of patch tokens), weighted k-NN, and the paper's analyses (mean attention distance,
 * top-k singular-value share, CKA between checkpoints), and the SVG charts of run reports.
 *
 * @example
 * ```ts
 * import { knnClassify } from "@dbot/dbot/eval";
 *
 * // two classes on a line: features [x, 1]; the test point near class 1
 * const train = new Float32Array([0, 1, 0.1, 1, 5, 1, 5.2, 1]);
 * const r = knnClassify(
 *   { features: train, labels: new Int32Array([0, 0, 1, 1]) },
 *   { features: new Float32Array([4.8, 1]), labels: new Int32Array([1]) },
 *   { dim: 2, k: 2 },
 * );
 * if (r.top1 !== 100) throw new Error(`top-1 ${r.top1}`);
 * ```
 *
 * @module
 */
export {
  embedDataset,
  Embedder,
  embedImages,
  type EmbedOptions,
  type EmbedResult,
  type ImageSource,
  type TokenPooling,
} from "./embed_file.ts";
export {
  type FeatureSet,
  featuresFrom,
  knnClassify,
  type KnnClassifyOptions,
  type KnnOptions,
  type KnnResult,
  type LabeledFeatures,
  type SimilarityGemm,
} from "./knn.ts";
export { readFeatures, similarityGemm } from "./knn_file.ts";
export {
  type AnalysisReport,
  analyzeCheckpoints,
  analyzeEncoder,
  type AnalyzeOptions,
  ckaMatrix,
  type EncoderAnalysis,
  linearCka,
  meanAttentionDistance,
  singularValueShare,
  SV_TOP_K,
} from "./analyze.ts";
export {
  type BarChartOptions,
  barChartSvg,
  type BarSeries,
  type LineChartOptions,
  lineChartSvg,
  type LineSeries,
} from "./chart.ts";
