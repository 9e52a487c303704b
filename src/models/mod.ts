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
} from "./config.ts";
export { type DbotConfig, DbotModel, dbotStudentSpecs, dropPathRates, targetDim } from "./dbot.ts";
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
export { VitEncoder, type VitEncoderOptions, vitParamSpecs } from "./vit.ts";
export {
  type ClassifierOptions,
  classifierSpecs,
  layerDecayScale,
  VitClassifier,
} from "./classifier.ts";
export { type Init, ParamSet, type ParamSpec, sincosPosEmbed } from "../nn/params.ts";
export type { BlockDims, DropScales } from "../nn/block.ts";
export { Rng } from "../util/rng.ts";
