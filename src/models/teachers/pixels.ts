/**
 * Pixel targets: each patch's pixels (`C·P·P`, channel-major), standardised per patch
 * (MAE's `norm_pix_loss`: unbiased variance, eps 1e-6). The cls row is zeros and has no
 * target, so losses give it weight 0.
 *
 * @module
 */
import { type Backend, freeTensors, type Tensor } from "../../backend/backend.ts";
import { deriveVit, type VitConfig } from "../vit_config.ts";
import type { Teacher, TeacherKind } from "../teacher.ts";
import { fullIndex } from "../vit.ts";
import { TARGET_EPS } from "./vit.ts";

/** The pixel teacher kind. */
export const pixelTeacher: TeacherKind<{ kind: "pixels" }> = {
  width: (_cfg, student) => deriveVit(student).patchDim,
  build: (be, _cfg, student, B) => new PixelTeacher(be, student, B),
};

class PixelTeacher implements Teacher {
  readonly cfg = { kind: "pixels" } as const;
  readonly width: number;
  readonly hasClsTarget = false;
  readonly params = null;
  readonly #be: Backend;
  readonly #student: VitConfig;
  readonly #B: number;
  readonly #L: number;
  readonly #patches: Tensor; // [B, L, C·P·P]
  readonly #raw: Tensor; // [B, 1+L, C·P·P]: zeros for cls, then the patches
  readonly #idx: Tensor;

  constructor(be: Backend, student: VitConfig, B: number) {
    const d = deriveVit(student, "student");
    this.#be = be;
    this.#student = student;
    this.#B = B;
    this.#L = d.numPatches;
    this.width = d.patchDim;
    this.#patches = be.tensor([B, d.numPatches, d.patchDim], "f32", "pixels.patches");
    this.#raw = be.tensor([B, 1 + d.numPatches, d.patchDim], "f32", "pixels.raw");
    this.#idx = be.tensor([B * (1 + d.numPatches)], "i32", "pixels.idx");
    be.upload(this.#idx, fullIndex(B, d.numPatches));
  }

  targets(images: Tensor, out: Tensor): void {
    const be = this.#be;
    const s = this.#student;
    const rows = this.#B * (1 + this.#L);
    be.patchify({ out: this.#patches, inp: images }, {
      B: this.#B,
      C: s.inChans,
      H: s.imgSize,
      W: s.imgSize,
      P: s.patchSize,
    });
    be.gatherRows({ out: this.#raw, inp: this.#patches, index: this.#idx }, {
      rows,
      C: this.width,
    });
    be.standardizeRows({ out, inp: this.#raw }, { rows, C: this.width, eps: TARGET_EPS });
  }

  dispose(): void {
    freeTensors(this.#be, [this.#patches, this.#raw, this.#idx]);
  }
}
