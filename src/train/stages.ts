/**
 * Multi-stage bootstrapping (DBOT_SPEC.md "Multi-stage bootstrapping"): the stage-0 teacher
 * and the boundary transition.
 *
 *   stage 0:    teacher = copy of the student's random init (`random`), its zero-depth
 *               version (`random0`), pixels (`pixels`), or a checkpoint (any width/depth)
 *   boundary:   teacher ← student encoder (no EMA); student re-initialised except the
 *               patch-embed bias; AdamW moments and step kept; LR warmup + cosine restart
 *
 * When the stage-0 teacher had another architecture the model is rebuilt with a
 * student-shaped teacher, the moments move over by parameter name, and the old model and
 * optimiser are freed.
 *
 * Browser-safe: the checkpoint teacher is read by `stages_file.ts`.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { deriveSeed } from "../data/pipeline.ts";
import { PRESETS, type VitConfig } from "../models/vit_config.ts";
import { type DbotConfig, DbotModel } from "../models/dbot.ts";
import type { TeacherConfig } from "../models/teacher.ts";
import { vitParamSpecs } from "../models/vit.ts";
import { AdamW, type AdamWConfig } from "./adamw.ts";
import type { PretrainConfig } from "./pretrain_config.ts";

/** A teacher description and, for checkpoint teachers, its weights. */
export interface TeacherSource {
  /** What to build. */
  cfg: TeacherConfig;
  /** Weights to load (null: copy the student's init, or none needed). */
  weights: Map<string, Float32Array> | null;
}

/** The DbotConfig of a run with the given teacher. */
export function dbotConfig(
  cfg: PretrainConfig,
  student: VitConfig,
  teacher: TeacherConfig,
): DbotConfig {
  return {
    student,
    decoder: PRESETS[cfg.model].decoder,
    teacher,
    maskRatio: cfg.maskRatio,
    dropPath: cfg.dropPath,
    loss: cfg.loss,
    arch: cfg.student,
    masking: cfg.mask,
  };
}

/** AdamW settings of a pre-training run. */
export function adamwConfig(cfg: PretrainConfig): AdamWConfig {
  return {
    beta1: cfg.beta1,
    beta2: cfg.beta2,
    eps: cfg.eps,
    weightDecay: cfg.weightDecay,
    clipGrad: cfg.clipGrad > 0 ? cfg.clipGrad : Infinity,
  };
}

/**
 * A built-in stage-0 teacher (`random`, `random0`, `pixels`); null for a checkpoint path
 * (read by `stages_file.ts`, Deno only).
 */
export function builtinTeacher(cfg: PretrainConfig, student: VitConfig): TeacherSource | null {
  switch (cfg.teacher) {
    case "random":
      return { cfg: { kind: "vit", vit: student }, weights: null };
    case "random0":
      return { cfg: { kind: "vit", vit: { ...student, depth: 0 } }, weights: null };
    case "pixels":
      return { cfg: { kind: "pixels" }, weights: null };
  }
  return null;
}

/** A model and its optimiser. */
export interface Trainee {
  /** The dBOT model. */
  model: DbotModel;
  /** Its AdamW. */
  opt: AdamW;
}

/** Builds the model of `cfg` with `teacher` and its AdamW (zero moments). */
export function buildTrainee(
  be: Backend,
  cfg: PretrainConfig,
  student: VitConfig,
  teacher: TeacherConfig,
): Trainee {
  const model = new DbotModel(be, dbotConfig(cfg, student, teacher), cfg.batch);
  return { model, opt: new AdamW(be, model.student, adamwConfig(cfg)) };
}

/** The stage-0 state: the student's init for stage 0, and the teacher from `src`. */
export function startStageZero(t: Trainee, cfg: PretrainConfig, src: TeacherSource): void {
  t.model.initStudent(deriveSeed(cfg.seed, 1, 0));
  if (src.weights) t.model.teacher.params!.load(src.weights);
  else if (t.model.teacher.params) t.model.copyStudentToTeacher(); // an exact copy of the init
}

/** A stage boundary (see the module doc); returns the trainee of the new stage. */
export async function nextStage(
  be: Backend,
  t: Trainee,
  cfg: PretrainConfig,
  student: VitConfig,
  stage: number,
  log: (s: string) => void,
): Promise<Trainee> {
  const names = new Set(vitParamSpecs(student).map((s) => s.name));
  const host = await t.model.student.toHost();
  const encoder = new Map([...host].filter(([n]) => names.has(n)));
  const tc = t.model.teacher.cfg;
  let next = t;
  if (tc.kind !== "vit" || JSON.stringify(tc.vit) !== JSON.stringify(student)) {
    // free the old model before building the new one, so the two never coexist
    const m = (await be.download(t.opt.m)) as Float32Array;
    const v = (await be.download(t.opt.v)) as Float32Array;
    const layout = momentLayout(t.model);
    const step = t.opt.step;
    t.model.dispose();
    t.opt.dispose();
    next = buildTrainee(be, cfg, student, { kind: "vit", vit: student });
    next.opt.step = step;
    be.upload(next.opt.m, remapMoments(layout, next.model, m));
    be.upload(next.opt.v, remapMoments(layout, next.model, v));
  }
  next.model.teacher.params!.load(encoder);
  next.model.initStudent(deriveSeed(cfg.seed, 1, stage));
  be.upload(next.model.student.get("patch_embed.proj.bias"), host.get("patch_embed.proj.bias")!);
  log(
    `stage ${stage}: teacher ← student encoder; student re-initialised (patch-embed bias kept), AdamW moments kept`,
  );
  return next;
}

/** Where each trainable parameter of `model`'s student sits in its flat buffers. */
function momentLayout(model: DbotModel): Map<string, { offset: number; size: number }> {
  const out = new Map<string, { offset: number; size: number }>();
  for (const s of model.student.specs) {
    if (!s.trainable) continue;
    const t = model.student.get(s.name);
    out.set(s.name, { offset: t.offset, size: t.size });
  }
  return out;
}

/** A flat moment buffer of layout `from` moved into `to`'s, by name (changed shapes start at 0). */
function remapMoments(
  from: Map<string, { offset: number; size: number }>,
  to: DbotModel,
  flat: Float32Array,
): Float32Array {
  const out = new Float32Array(to.student.count);
  for (const s of to.student.specs) {
    const a = from.get(s.name);
    if (!s.trainable || !a) continue;
    const b = to.student.get(s.name);
    if (a.size !== b.size) continue;
    out.set(flat.subarray(a.offset, a.offset + a.size), b.offset);
  }
  return out;
}
