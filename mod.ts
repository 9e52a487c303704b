/**
 * dbot: pre-train Vision Transformers with dBOT (masked knowledge distillation
 * from bootstrapped teachers) on Deno's native WebGPU, with a CPU backend
 * (TypeScript + OpenBLAS) that is both the reference and the fallback.
 *
 * This release holds the compute layer: the {@link Backend} op set that the
 * ViT is written against, its CPU and WebGPU implementations, and backend
 * selection.
 *
 * @example
 * ```ts ignore
 * import { selectBackend } from "@dbot/dbot";
 *
 * const { backend, reason } = await selectBackend("auto");
 * console.log(reason);
 * const a = backend.tensor([2, 3]);
 * backend.upload(a, new Float32Array([1, 2, 3, 4, 5, 6]));
 * const out = backend.tensor([2, 2]);
 * backend.matmul({ out, a, b: a }, { M: 2, N: 2, K: 3, transB: true }); // a·aᵀ
 * console.log(await backend.download(out));
 * backend.dispose();
 * ```
 *
 * @module
 */
export type {
  Backend,
  DType,
  HostArray,
  MatmulDims,
  Storage,
  Tensor,
} from "./src/backend/backend.ts";
export { shapeSize, view } from "./src/backend/backend.ts";
export { CpuBackend, type CpuBackendOptions } from "./src/backend/cpu/backend.ts";
export { type FloatArray, type Gemm, type GemmArgs, loadGemm } from "./src/backend/cpu/gemm.ts";
export { type BlockDims, type DropScales } from "./src/nn/block.ts";
export { Params, WebGpuBackend, type WebGpuOptions } from "./src/backend/webgpu/backend.ts";
export {
  type AdapterFacts,
  GpuContext,
  GpuError,
  GpuUnavailableError,
  type KernelSpec,
} from "./src/backend/webgpu/context.ts";
export {
  type BackendKind,
  parseBackendKind,
  selectBackend,
  type SelectedBackend,
} from "./src/backend/select.ts";
export { Rng } from "./src/util/rng.ts";
export {
  type DecoderConfig,
  deriveVit,
  type Preset,
  PRESETS,
  type VitConfig,
  type VitDerived,
  vitFromPreset,
} from "./src/models/config.ts";
export {
  type DbotConfig,
  DbotModel,
  dbotStudentSpecs,
  dropPathRates,
  targetDim,
  type TeacherConfig,
} from "./src/models/dbot.ts";
export { type Init, ParamSet, type ParamSpec, sincosPosEmbed } from "./src/models/params.ts";
export { fullIndex, VitEncoder, type VitEncoderOptions, vitParamSpecs } from "./src/models/vit.ts";
export { type Masking, randomMasking } from "./src/models/masking.ts";
export {
  type Checkpoint,
  type CheckpointConfig,
  CheckpointError,
  inferVitConfig,
  readCheckpoint,
  vitWeights,
  writeCheckpoint,
} from "./src/io/checkpoint.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  type NamedTensor,
  readSafetensors,
  type SafetensorsContents,
  type SafetensorsDType,
  SafetensorsError,
  toFloat32,
  writeSafetensors,
} from "./src/io/safetensors.ts";
export { embedImages, type Pool } from "./src/eval/embed.ts";
export {
  embedDataset,
  Embedder,
  type EmbedOptions,
  type EmbedResult,
  type ImageSource,
} from "./src/eval/embed.ts";
export {
  type FeatureSet,
  featuresFrom,
  knnClassify,
  type KnnOptions,
  type KnnResult,
  readFeatures,
} from "./src/eval/knn.ts";
export {
  type BarChartOptions,
  barChartSvg,
  type BarSeries,
  type LineChartOptions,
  lineChartSvg,
  type LineSeries,
} from "./src/io/plot.ts";
export {
  DataError,
  type Dataset,
  openDataset,
  type OpenOptions,
  type Split,
} from "./src/data/dataset.ts";
export {
  centerCrop,
  evalTransform,
  hflip,
  normalize,
  randomResizedCrop,
  resizeBicubic,
  toChannels,
} from "./src/data/transforms.ts";
export { PRETRAIN_DEFAULTS, type PretrainConfig, resolvePretrain } from "./src/train/config.ts";
export {
  type MetricLine,
  NonFiniteLossError,
  pretrain,
  type PretrainHooks,
  type PretrainProgress,
  type PretrainSummary,
} from "./src/train/pretrain.ts";
export {
  effectiveLr,
  lrAt,
  type LrSchedule,
  stageAt,
  stageBoundaries,
  type StageInfo,
} from "./src/train/schedule.ts";
export { AdamW, type AdamWConfig, PRETRAIN_ADAMW } from "./src/train/adamw.ts";
export {
  type ClassifierOptions,
  classifierSpecs,
  layerDecayScale,
  meanPoolBackward,
  meanPoolForward,
  poolMatrix,
  VitClassifier,
} from "./src/models/classifier.ts";
export {
  batchNormStats,
  larsStep,
  linprobeCheckpoint,
  type LinprobeOptions,
  type LinprobeResult,
  type LinprobeRun,
  trainLinearProbe,
} from "./src/eval/linprobe.ts";
export {
  betaSample,
  evaluate as evaluateClassifier,
  finetune,
  FINETUNE_DEFAULTS,
  type FinetuneConfig,
  type FinetuneSummary,
  mixBatch,
  type MixOptions,
  readClassifier,
  resolveFinetune,
} from "./src/train/finetune.ts";
export {
  type AnalysisReport,
  analyzeCheckpoints,
  analyzeEncoder,
  type AnalyzeOptions,
  ckaMatrix,
  type EncoderAnalysis,
  linearCka,
  meanAttentionDistance,
  singularValues,
  singularValueShare,
  SV_TOP_K,
  symmetricEigenvalues,
} from "./src/eval/analyze.ts";
export {
  reproduce,
  REPRODUCE_BUDGETS,
  type ReproduceBudget,
  type ReproduceOptions,
  type ReproduceRow,
} from "./src/eval/reproduce.ts";
