/**
 * The `Teacher` seam: what a dBOT student distils. A teacher has a target width `Dt` and
 * records `targets(images) → [B, 1+L, Dt]` (one row per student token, cls first) on the
 * device. Each kind lives in its own file under `teachers/` and is listed once in
 * {@link TEACHER_KINDS}; {@link TeacherConfig} is its JSON-able description (saved with the
 * run state, so a resumed run rebuilds the same teacher).
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import type { VitConfig } from "./vit_config.ts";
import type { ParamSet } from "../nn/params.ts";
import { pixelTeacher } from "./teachers/pixels.ts";
import { vitTeacher } from "./teachers/vit.ts";
import { clipTeacher, type ClipTeacherConfig } from "./teachers/clip.ts";

/**
 * A teacher's description: a ViT (random, zero-depth or loaded, at the student's token grid),
 * per-patch normalised pixels, or a CLIP image tower (`teachers/clip.ts`).
 */
export type TeacherConfig =
  | { kind: "vit"; vit: VitConfig }
  | { kind: "pixels" }
  | ClipTeacherConfig;

/** A frozen target model bound to one student shape and batch size. */
export interface Teacher {
  /** Its description. */
  readonly cfg: TeacherConfig;
  /** Target width `Dt`. */
  readonly width: number;
  /** Whether the cls row holds a real target (false: the loss must give it weight 0). */
  readonly hasClsTarget: boolean;
  /** Its weights (null when it has none, e.g. pixels): loaded from checkpoints, saved in states. */
  readonly params: ParamSet | null;
  /** Records `out [B, 1+L, Dt] = targets(images [B, C, H, W])`. */
  targets(images: Tensor, out: Tensor): void;
  /** Frees its buffers and weights. */
  dispose(): void;
}

/** One kind of teacher: its width for a student, and its constructor. */
export interface TeacherKind<C extends TeacherConfig = TeacherConfig> {
  /** Target width for `student`. */
  width(cfg: C, student: VitConfig): number;
  /** Builds it on `be` for `student` at batch `B`. */
  build(be: Backend, cfg: C, student: VitConfig, B: number): Teacher;
}

/** Every kind, by `TeacherConfig.kind`: a new teacher adds its file and one line here. */
export const TEACHER_KINDS: { readonly [K in TeacherConfig["kind"]]: TeacherKind } = {
  vit: vitTeacher as TeacherKind,
  pixels: pixelTeacher as TeacherKind,
  clip: clipTeacher as TeacherKind,
};

/** The target width of `cfg` for `student`. */
export function teacherWidth(cfg: TeacherConfig, student: VitConfig): number {
  return TEACHER_KINDS[cfg.kind].width(cfg, student);
}

/** Builds the teacher `cfg` on `be` for the encoder `student` at batch `B`. */
export function buildTeacher(
  be: Backend,
  cfg: TeacherConfig,
  { student, B }: { student: VitConfig; B: number },
): Teacher {
  const kind = TEACHER_KINDS[cfg.kind];
  if (!kind) {
    throw new TypeError(
      `Cannot build a teacher of kind "${cfg.kind}": use one of ${
        Object.keys(TEACHER_KINDS).join(", ")
      }`,
    );
  }
  return kind.build(be, cfg, student, B);
}
