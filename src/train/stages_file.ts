/**
 * The stage-0 teacher of a run, a checkpoint teacher read from its file (Deno only; the
 * built-in teachers are `stages.ts`'s {@link builtinTeacher}).
 *
 * @module
 */
import { inferVitConfig, readCheckpoint, vitWeights } from "../io/checkpoint_file.ts";
import { clipTeacherConfig, loadClipWeights } from "../io/clip_checkpoint.ts";
import type { VitConfig } from "../models/vit_config.ts";
import type { PretrainConfig } from "./pretrain_config.ts";
import { builtinTeacher, type TeacherSource } from "./stages.ts";

/**
 * The stage-0 teacher: random copy, zero-depth copy, pixels, a ViT checkpoint, or a CLIP image
 * tower (`clip:PATH`), the checkpoints run at the student's token grid. `stats` is the
 * normalisation of the student's images (a CLIP teacher re-normalises them with CLIP's).
 */
export async function stageZeroTeacher(
  cfg: PretrainConfig,
  student: VitConfig,
  stats?: { mean: readonly number[]; std: readonly number[] },
): Promise<TeacherSource> {
  const builtin = builtinTeacher(cfg, student);
  if (builtin) return builtin;
  const heads = cfg.teacherHeads || undefined;
  if (cfg.teacher.startsWith("clip:")) {
    const path = cfg.teacher.slice("clip:".length);
    const clip = await clipTeacherConfig(path, {
      heads,
      student,
      inputMean: stats?.mean,
      inputStd: stats?.std,
    });
    return { cfg: clip, weights: await loadClipWeights(path, clip) };
  }
  const ckpt = await readCheckpoint(cfg.teacher);
  const vit = inferVitConfig(ckpt, { heads, file: cfg.teacher, student });
  return { cfg: { kind: "vit", vit }, weights: vitWeights(ckpt, vit, { file: cfg.teacher }) };
}
