/**
 * A ViT teacher (DBOT_SPEC.md step 5): the student's encoder architecture at any depth
 * (zero depth = patch embedding + position, the ViT-L/H stage-0 teacher), frozen, on the
 * full image without masking or drop path; target = the last block's output WITHOUT the
 * final norm, standardised per token (unbiased variance, eps 1e-6).
 *
 * @module
 */
import { type Backend, freeTensors, type Tensor } from "../../backend/backend.ts";
import { deriveVit, type VitConfig } from "../config.ts";
import { ParamSet } from "../../nn/params.ts";
import type { Teacher, TeacherKind } from "../teacher.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "../vit.ts";

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

  constructor(be: Backend, vit: VitConfig, student: VitConfig, B: number) {
    if (
      vit.imgSize !== student.imgSize || vit.patchSize !== student.patchSize ||
      vit.inChans !== student.inChans
    ) {
      throw new RangeError(
        `Cannot pair teacher and student: image size, patch size and channels must match, got teacher ` +
          `${vit.imgSize}/${vit.patchSize}/${vit.inChans} and student ${student.imgSize}/${student.patchSize}/${student.inChans}`,
      );
    }
    this.#be = be;
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
    this.#enc.patchify(images);
    this.#enc.forward(this.#idx);
    this.#be.standardizeRows({ out, inp: this.#enc.out }, {
      rows: this.#rows,
      C: this.width,
      eps: TARGET_EPS,
    });
  }

  dispose(): void {
    this.#enc.dispose();
    this.params.dispose();
    freeTensors(this.#be, this.#idx);
  }
}
