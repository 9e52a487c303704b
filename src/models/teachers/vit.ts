/**
 * A ViT teacher (DBOT_SPEC.md step 5): the student's encoder architecture at any depth
 * (zero depth = patch embedding + position, the ViT-L/H stage-0 teacher), frozen, on the
 * full image without masking or drop path; target = the last block's output WITHOUT the
 * final norm, standardised per token (unbiased variance, eps 1e-6).
 *
 * A teacher at another resolution or patch size works when its token grid is the student's
 * (`vit.imgSize / vit.patchSize` = student grid; `inferVitConfig(…, { student })` gives such a
 * config and `vitWeights` interpolates its position embeddings): it sees the student's crop
 * resized to `vit.imgSize` (antialiased bicubic, `resize.ts`).
 *
 * @module
 */
import { type Backend, freeTensors, type Tensor } from "../../backend/backend.ts";
import { deriveVit, type VitConfig } from "../vit_config.ts";
import { ParamSet } from "../../nn/params.ts";
import type { Teacher, TeacherKind } from "../teacher.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "../vit.ts";
import { TeacherInput } from "./resize.ts";

/** Epsilon of the per-token target standardisation. */
export const TARGET_EPS = 1e-6;

/** The ViT teacher kind. */
export const vitTeacher: TeacherKind<{ kind: "vit"; vit: VitConfig }> = {
  width: (cfg) => cfg.vit.embedDim,
  build: (be, cfg, student, B) => new VitTeacher(be, cfg.vit, student, B),
};

class VitTeacher implements Teacher {
  readonly cfg: { kind: "vit"; vit: VitConfig };
  readonly width: number;
  readonly hasClsTarget = true;
  readonly params: ParamSet;
  readonly #be: Backend;
  readonly #enc: VitEncoder;
  readonly #idx: Tensor; // [B·(1+L)] every token, cls first
  readonly #rows: number;
  readonly #input: TeacherInput | null; // the student's crop at the teacher's size

  constructor(be: Backend, vit: VitConfig, student: VitConfig, B: number) {
    checkTeacherGrid(vit, student, "ViT");
    this.#be = be;
    this.#input = vit.imgSize === student.imgSize ? null : new TeacherInput(be, {
      B,
      C: vit.inChans,
      from: student.imgSize,
      to: vit.imgSize,
      label: "teacher.input",
    });
    this.cfg = { kind: "vit", vit };
    this.width = vit.embedDim;
    const L = deriveVit(vit, "teacher").numPatches;
    this.#rows = B * (1 + L);
    this.params = new ParamSet(be, vitParamSpecs(vit), { grads: false, label: "teacher" });
    this.#enc = new VitEncoder(be, vit, {
      ps: this.params,
      B,
      N: 1 + L,
      trainable: false,
      finalNorm: false,
      label: "teacher",
    });
    this.#idx = be.tensor([this.#rows], "i32", "teacher.idx");
    be.upload(this.#idx, fullIndex(B, L));
  }

  targets(images: Tensor, out: Tensor): void {
    this.#enc.patchify(this.#input ? this.#input.run(images) : images);
    this.#enc.forward(this.#idx);
    this.#be.standardizeRows({ out, inp: this.#enc.out }, {
      rows: this.#rows,
      C: this.width,
      eps: TARGET_EPS,
    });
  }

  dispose(): void {
    this.#enc.dispose();
    this.#input?.dispose();
    this.params.dispose();
    freeTensors(this.#be, this.#idx);
  }
}

/**
 * Throws one RangeError unless `teacher` sees the student's token grid with the student's
 * channels: `teacher.imgSize / teacher.patchSize` = `student.imgSize / student.patchSize`.
 */
export function checkTeacherGrid(teacher: VitConfig, student: VitConfig, what: string): void {
  const s = deriveVit(student, "student");
  const t = deriveVit(teacher, `the ${what} teacher`);
  const problems: string[] = [];
  if (t.grid !== s.grid) {
    problems.push(
      `its ${t.grid}×${t.grid} tokens (${teacher.imgSize} px / patch ${teacher.patchSize}) differ from the ` +
        `student's ${s.grid}×${s.grid} (${student.imgSize} px / patch ${student.patchSize}): run it at ` +
        `${s.grid * teacher.patchSize} px (inferVitConfig or clipTeacherConfig with { student })`,
    );
  }
  if (teacher.inChans !== student.inChans) {
    problems.push(`it takes ${teacher.inChans} channels, the student ${student.inChans}`);
  }
  if (problems.length) {
    throw new RangeError(
      `Cannot pair the ${what} teacher with the student: ${problems.join("; ")}`,
    );
  }
}
