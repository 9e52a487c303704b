/**
 * `@dbot/dbot/model`: the ViT and dBOT models written once against the Backend contract:
 * presets and configs, the encoder, the dBOT student/decoder with its {@link Teacher} and
 * loss seams, masking, the fine-tuning classifier and the parameter table.
 *
 * @example
 * ```ts
 * import { CpuBackend } from "@dbot/dbot/backend";
 * import { DbotModel, PRESETS, vitFromPreset } from "@dbot/dbot/model";
 *
 * const be = new CpuBackend({ threads: 1 });
 * const vit = vitFromPreset("vit-micro", { imgSize: 16, patchSize: 4, inChans: 3 });
 * const model = new DbotModel(be, {
 *   student: vit,
 *   decoder: PRESETS["vit-micro"].decoder,
 *   teacher: { kind: "vit", vit },
 *   maskRatio: 0.75,
 *   dropPath: 0,
 * }, 2);
 * model.initStudent(0);
 * model.copyStudentToTeacher(); // stage-0 teacher = the student's own random init
 * model.setBatch(new Float32Array(2 * 3 * 16 * 16).fill(0.5), new Float32Array(2 * 16).fill(0.5));
 * model.forwardBackward();
 * const [loss] = await be.download(model.loss);
 * if (!Number.isFinite(loss)) throw new Error(`loss ${loss}`);
 * be.dispose();
 * ```
 *
 * @module
 */
export {
  type DecoderConfig,
  deriveVit,
  type Preset,
  PRESETS,
  type VitConfig,
  type VitDerived,
  vitFromPreset,
} from "./vit_config.ts";
export { type DbotConfig, DbotModel, dbotStudentSpecs, dropPathRates, targetDim } from "./dbot.ts";
export type { StudentHead } from "./student_head.ts";
export {
  maskIndex,
  SYMMETRIC_LAYER_SCALE,
  SymmetricHead,
  symmetricStudentSpecs,
  symmetricVit,
} from "./symmetric_student.ts";
export { type RelPosIndex, relPosIndex, relPosRows } from "./symmetric.ts";
export {
  buildTeacher,
  type Teacher,
  TEACHER_KINDS,
  type TeacherConfig,
  type TeacherKind,
  teacherWidth,
} from "./teacher.ts";
export {
  createLoss,
  type DistillLoss,
  type LossBuffers,
  LOSSES,
  type LossName,
  SMOOTH_L1_BETA,
} from "./losses.ts";
export { TARGET_EPS } from "./teachers/vit.ts";
export { type Masking, randomMasking } from "./masking.ts";
export { BLOCK_MIN_PATCHES, blockMaskCount, blockMasking } from "./masking.ts";
export { COSINE_EPS } from "./losses.ts";
export {
  CLIP_LN_EPS,
  CLIP_MEAN,
  CLIP_STD,
  ClipCheckpointError,
  clipConfigFromHeader,
  type ClipConfigOptions,
  clipPrefix,
  type ClipTeacherConfig,
  clipWeights,
  type StoredTensorInfo,
} from "./teachers/clip.ts";
export {
  antialiasBicubicMatrix,
  bicubicMatrix,
  interpolatePosEmbed,
  renormalization,
  TeacherInput,
  type TeacherInputOptions,
} from "./teachers/resize.ts";
export { VitEncoder, type VitEncoderOptions, vitParamSpecs } from "./vit.ts";
export {
  type ClassifierOptions,
  classifierSpecs,
  layerDecayScale,
  VitClassifier,
} from "./classifier.ts";
export { type Init, ParamSet, type ParamSpec, sincosPosEmbed } from "../nn/params.ts";
export type { BlockDims, DropScales, RelPos } from "../nn/block.ts";
export { Rng } from "../util/rng.ts";
