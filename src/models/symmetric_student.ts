/**
 * The symmetric (BEiT-style) dBOT student of the CLIP branch (DBOT_SPEC.md "Variant:
 * symmetric student with a CLIP-like teacher"):
 *
 *   emb  = patch_embed(images)                                  [B, L, D]
 *   emb  = emb·(1 − m) + mask_token·m                           (m = 1: masked patch)
 *   x    = blocks([cls; emb]) with layer scale, q/v biases and one shared relative
 *          position bias; no absolute position embedding         [B, 1+L, D]
 *   pred = lm_head(norm(x))                                     [B, 1+L, Dt]
 *
 * The encoder is {@link VitEncoder} with the BEiT options ({@link symmetricVit}); this file
 * adds the parameter table with the branch's init and `lm_head` ({@link SymmetricHead}).
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { freeTensors } from "../backend/backend.ts";
import { linearBackward, linearForward } from "../nn/linear.ts";
import { param, type ParamSet, type ParamSpec } from "../nn/params.ts";
import type { VitConfig } from "./vit_config.ts";
import { vitParamSpecs } from "./vit.ts";

/** Layer-scale init of the symmetric student (BEiT `init_values`). */
export const SYMMETRIC_LAYER_SCALE = 0.1;

/** Std of the branch's truncated-normal init (Linear, conv, cls and mask tokens). */
const INIT_STD = 0.02;

/**
 * The student encoder config with the BEiT options the symmetric student uses unless
 * `student` sets them: no absolute position embedding, a shared relative position bias,
 * layer scale 0.1, q/v biases.
 */
export function symmetricVit(student: VitConfig): VitConfig {
  return {
    ...student,
    posEmbed: student.posEmbed ?? "none",
    relPosBias: student.relPosBias ?? true,
    layerScale: student.layerScale ?? SYMMETRIC_LAYER_SCALE,
    qvBias: student.qvBias ?? true,
  };
}

/**
 * The symmetric student's parameter table (timm Beit names): the encoder of
 * {@link symmetricVit}, `mask_token [1, 1, D]` and `lm_head` (Linear D → `Dt`). Init as the
 * reference `beit` branch: truncated normal (std 0.02) for every Linear and conv weight and
 * the cls and mask tokens, biases 0, LayerNorms 1/0, layer scale 0.1, relative position
 * table 0; then each block's `attn.proj.weight` and `mlp.fc2.weight` divided by
 * √(2·layer id) (layer id from 1). No weight decay on `cls_token` (BEiT `no_weight_decay`).
 */
export function symmetricStudentSpecs(student: VitConfig, Dt: number): ParamSpec[] {
  const cfg = symmetricVit(student);
  const D = cfg.embedDim;
  const top = cfg.depth + 1;
  const specs = vitParamSpecs(cfg).map(beitInit);
  specs.push(
    param("mask_token", [1, 1, D], { kind: "truncNormal", std: INIT_STD }, 0),
    param("lm_head.weight", [Dt, D], { kind: "truncNormal", std: INIT_STD }, top),
    param("lm_head.bias", [Dt], { kind: "zeros" }, top),
  );
  return specs;
}

/** One row of {@link vitParamSpecs} re-initialised the BEiT way. */
function beitInit(s: ParamSpec): ParamSpec {
  if (s.name === "cls_token") {
    return { ...s, init: { kind: "truncNormal", std: INIT_STD }, decay: false };
  }
  if (s.name.endsWith(".bias") && !/norm\d?\.bias$|norm_pre\.bias$/.test(s.name)) {
    return { ...s, init: { kind: "zeros" } }; // Linear, conv and q/v biases
  }
  const weight = s.name.endsWith(".weight") && s.shape.length > 1;
  if (!weight) return s; // LayerNorm, layer scale, relative position table
  const rescale = /^blocks\.\d+\.(attn\.proj|mlp\.fc2)\.weight$/.test(s.name);
  const scale = rescale ? 1 / Math.sqrt(2 * s.layerId) : 1;
  return { ...s, init: { kind: "truncNormal", std: INIT_STD, scale } };
}

/**
 * The mask-token gather index `[B·L]` from a mask `[B, L]` (1 = masked): `b·L + l` for a
 * visible patch, −1 for a masked one (its embedding becomes `mask_token`).
 */
export function maskIndex(mask: Float32Array, B: number, L: number): Int32Array {
  if (mask.length !== B * L) {
    throw new RangeError(
      `Cannot build a mask index: mask has ${mask.length} values but B·L = ${B * L}`,
    );
  }
  const idx = new Int32Array(B * L);
  for (let r = 0; r < B * L; r++) idx[r] = mask[r] === 1 ? -1 : r;
  return idx;
}

/** `lm_head`: `pred [rows, Dt] = encOut [rows, D] · Wᵀ + b` on every token, and its backward. */
export class SymmetricHead {
  readonly #be: Backend;
  readonly #ps: ParamSet;
  readonly #rows: number;
  readonly #D: number;
  readonly #Dt: number;
  readonly #dEnc: Tensor; // [rows, D]
  #encOut: Tensor | null = null;

  /** Allocates the encoder-output gradient for `rows = B·(1+L)` tokens. */
  constructor(
    be: Backend,
    { ps, rows, D, Dt }: { ps: ParamSet; rows: number; D: number; Dt: number },
  ) {
    this.#be = be;
    this.#ps = ps;
    this.#rows = rows;
    this.#D = D;
    this.#Dt = Dt;
    this.#dEnc = be.tensor([rows, D], "f32", "dbot.dEnc");
  }

  /** `pred = lm_head(encOut)`. */
  forward(encOut: Tensor, pred: Tensor): void {
    this.#encOut = encOut;
    linearForward(
      this.#be,
      {
        out: pred,
        inp: encOut,
        weight: this.#ps.get("lm_head.weight"),
        bias: this.#ps.get("lm_head.bias"),
      },
      { rows: this.#rows, inF: this.#D, outF: this.#Dt },
    );
  }

  /** `lm_head` gradients from `dpred`; returns ∂L/∂encOut `[rows, D]`. */
  backward(dpred: Tensor): Tensor {
    if (!this.#encOut) throw new RangeError("Cannot run lm_head's backward before its forward");
    linearBackward(
      this.#be,
      {
        dinp: this.#dEnc,
        dweight: this.#ps.grad("lm_head.weight"),
        dbias: this.#ps.grad("lm_head.bias"),
        dout: dpred,
        inp: this.#encOut,
        weight: this.#ps.get("lm_head.weight"),
      },
      { rows: this.#rows, inF: this.#D, outF: this.#Dt },
    );
    return this.#dEnc;
  }

  /** Frees the gradient buffer. */
  dispose(): void {
    freeTensors(this.#be, this.#dEnc);
  }
}
