/**
 * dBOT: masked knowledge distillation from a (bootstrapped) teacher, as the
 * reference code does it (DBOT_SPEC.md "One stage of masked distillation"):
 *
 *   target = standardize(teacher(images))                  [B, 1+L, Dt]  (last block, no final norm)
 *   enc    = norm(student_blocks(gather(embed(images))))   [B, 1+K, D]   (K kept patches + cls)
 *   dec    = gather(enc · Wdeᵀ + b, ids_restore, fill = mask_token) + decoder_pos_embed
 *   pred   = decoder_norm(decoder_blocks(dec)) · Wpredᵀ + b  [B, 1+L, Dt]
 *   loss   = Σ_rows w · mean_C SmoothL1_β=2(pred − target) / Σ w,  w = [1, mask]
 *
 * The teacher ({@link Teacher}: a ViT of any depth, pixels, …) and the loss (`smoothl1`,
 * `cosine`, `mse`; see `losses.ts`) are seams chosen by the config; the reference is a ViT
 * teacher with SmoothL1. One call of {@link DbotModel.forwardBackward} records the whole
 * step (no readbacks).
 *
 * The student's architecture is a config choice too (`arch`): the asymmetric MAE-style
 * encoder + decoder above (default), or the symmetric BEiT-style student of the CLIP
 * branch (`symmetric_student.ts`): the encoder sees every token, masked patches' embeddings
 * replaced by `mask_token`, and `lm_head` predicts every token's target; with random or
 * BEiT block-wise masking (`masking`).
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { freeTensors, view } from "../backend/backend.ts";
import type { DropScales } from "../nn/block.ts";
import { Rng } from "../util/rng.ts";
import { type DecoderConfig, deriveVit, type VitConfig } from "./vit_config.ts";
import {
  blockMaskCount,
  blockMasking,
  decoderIndex,
  encoderIndex,
  keptPatches,
  lossWeights,
  type Masking,
  randomMasking,
} from "./masking.ts";
import { ParamSet, type ParamSpec } from "../nn/params.ts";
import { createLoss, type DistillLoss, type LossName } from "./losses.ts";
import { buildTeacher, type Teacher, type TeacherConfig, teacherWidth } from "./teacher.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "./vit.ts";
import { asymmetricDecoderSpecs, AsymmetricHead } from "./asymmetric_decoder.ts";
import type { StudentHead } from "./student_head.ts";
import {
  maskIndex,
  SymmetricHead,
  symmetricStudentSpecs,
  symmetricVit,
} from "./symmetric_student.ts";

export type { TeacherConfig };

/** A dBOT student + decoder + teacher. */
export interface DbotConfig {
  /** Student encoder. */
  readonly student: VitConfig;
  /** Student decoder. */
  readonly decoder: DecoderConfig;
  /** Teacher (a ViT: random, zero-depth, or loaded; or per-patch normalised pixels). */
  readonly teacher: TeacherConfig;
  /** Fraction of patches removed (reference 0.75). */
  readonly maskRatio: number;
  /** Stochastic depth rate, linearly increasing over blocks (timm rule). */
  readonly dropPath: number;
  /** Distillation loss (default `smoothl1`, the reference). */
  readonly loss?: LossName;
  /**
   * Student architecture: `"asymmetric"` (default: the reference MAE-style encoder on the
   * kept patches + decoder) or `"symmetric"` (BEiT-style, the CLIP branch: see
   * `symmetric_student.ts`; `decoder` is then unused).
   */
  readonly arch?: "asymmetric" | "symmetric";
  /**
   * Masking: `"random"` (default; `maskRatio` of the patches) or `"block"` (BEiT's block-wise
   * masking of `blockMaskCount(L)` patches; symmetric student only).
   */
  readonly masking?: "random" | "block";
}

/** Checks `arch` and `masking` and their combination; a RangeError naming the fix. */
function checkArch(cfg: DbotConfig): "asymmetric" | "symmetric" {
  const arch = cfg.arch ?? "asymmetric";
  if (arch !== "asymmetric" && arch !== "symmetric") {
    throw new RangeError(
      `Cannot build dBOT as arch must be "asymmetric" or "symmetric": current value is ${cfg.arch}`,
    );
  }
  const masking = cfg.masking ?? "random";
  if (masking !== "random" && masking !== "block") {
    throw new RangeError(
      `Cannot build dBOT as masking must be "random" or "block": current value is ${cfg.masking}`,
    );
  }
  if (masking === "block" && arch !== "symmetric") {
    throw new RangeError(
      `Cannot build dBOT with block masking for the asymmetric student: its encoder drops the ` +
        `masked patches at a fixed ratio; use arch "symmetric" (--student symmetric) or masking "random"`,
    );
  }
  return arch;
}

/** Target width Dt: the teacher's width, or C·P·P for pixel targets. */
export function targetDim(cfg: DbotConfig): number {
  return teacherWidth(cfg.teacher, cfg.student);
}

/**
 * The student's parameter table: encoder, then `mask_token` and the decoder; for the
 * symmetric student, the BEiT encoder with `mask_token` and `lm_head`.
 */
export function dbotStudentSpecs(cfg: DbotConfig): ParamSpec[] {
  if (checkArch(cfg) === "symmetric") return symmetricStudentSpecs(cfg.student, targetDim(cfg));
  return [
    ...vitParamSpecs(cfg.student),
    ...asymmetricDecoderSpecs(cfg.student, cfg.decoder, targetDim(cfg)),
  ];
}

/** Drop-path rates per block: `linspace(0, rate, depth)`. */
export function dropPathRates(rate: number, depth: number): number[] {
  return Array.from({ length: depth }, (_, i) => (depth > 1 ? (rate * i) / (depth - 1) : 0));
}

/** The student, its decoder (or head), the teacher and every buffer of one training step for batch B. */
export class DbotModel {
  /** Configuration. */
  readonly cfg: DbotConfig;
  /** Batch size. */
  readonly B: number;
  /** Student encoder + decoder parameters (with gradients). */
  readonly student: ParamSet;
  /** The frozen teacher (its weights: `teacher.params`, null for pixel targets). */
  readonly teacher: Teacher;
  /** The distillation loss. */
  readonly lossFn: DistillLoss;
  /** Input images `[B, C, H, W]`. */
  readonly images: Tensor;
  /** Loss `[1]`, on the device. */
  readonly loss: Tensor;
  /** Standardised targets `[B, 1+L, Dt]`. */
  readonly target: Tensor;
  /** Predictions `[B, 1+L, Dt]`. */
  readonly pred: Tensor;
  /** Student encoder. */
  readonly encoder: VitEncoder;
  readonly #be: Backend;
  readonly #owned: Tensor[] = [];
  readonly #L: number;
  readonly #keep: number;
  readonly #Dt: number;
  readonly #symmetric: boolean;
  readonly #encIdx: Tensor; // [B·N] encoder gather: kept patches (asymmetric) or all (symmetric)
  readonly #decIdx: Tensor | null; // [B·(1+L)] decoder unshuffle (asymmetric)
  readonly #maskIdx: Tensor | null; // [B·L] row or −1 = mask token (symmetric)
  readonly #weight: Tensor;
  readonly #head: StudentHead;
  readonly #dpred: Tensor;
  readonly #dropTable: Tensor | null; // [(depth + Nd)·2·B] drop-path scales
  readonly #dropRates: number[];
  #mask: Float32Array = new Float32Array(0);

  /** Allocates parameters and every activation buffer for batch `B`. */
  constructor(be: Backend, cfg: DbotConfig, B: number) {
    if (!Number.isInteger(B) || B < 1) {
      throw new RangeError(`Cannot build dBOT as the batch must be >= 1: current value is ${B}`);
    }
    this.#be = be;
    this.cfg = cfg;
    this.B = B;
    const symmetric = (this.#symmetric = checkArch(cfg) === "symmetric");
    const svit = symmetric ? symmetricVit(cfg.student) : cfg.student;
    const d = deriveVit(svit, "student");
    const L = (this.#L = d.numPatches);
    // the symmetric student keeps every token; maskRatio then only drives random masking
    const keep = (this.#keep = symmetric ? L : keptPatches(L, cfg.maskRatio));
    if (symmetric) keptPatches(L, cfg.maskRatio); // still checked
    const Dt = (this.#Dt = targetDim(cfg));
    const t = (shape: number[], name: string, dtype: "f32" | "i32" = "f32") => {
      const x = be.tensor(shape, dtype, `dbot.${name}`);
      this.#owned.push(x);
      return x;
    };
    this.teacher = buildTeacher(be, cfg.teacher, { student: cfg.student, B });
    this.lossFn = createLoss(be, cfg.loss ?? "smoothl1");
    this.student = new ParamSet(be, dbotStudentSpecs(cfg), { grads: true, label: "student" });
    this.encoder = new VitEncoder(be, svit, {
      ps: this.student,
      B,
      N: 1 + keep,
      trainable: true,
      finalNorm: true,
      maskToken: symmetric,
      label: "student",
    });
    this.images = t([B, cfg.student.inChans, cfg.student.imgSize, cfg.student.imgSize], "images");
    this.loss = t([1], "loss");
    this.target = t([B, 1 + L, Dt], "target");
    this.pred = t([B, 1 + L, Dt], "pred");
    this.#encIdx = t([B * (1 + keep)], "encIdx", "i32");
    this.#decIdx = symmetric ? null : t([B * (1 + L)], "decIdx", "i32");
    this.#maskIdx = symmetric ? t([B * L], "maskIdx", "i32") : null;
    if (symmetric) be.upload(this.#encIdx, fullIndex(B, L));
    this.#weight = t([B * (1 + L)], "weight");
    this.#dpred = t([B, 1 + L, Dt], "dpred");
    const decoderDepth = symmetric ? 0 : cfg.decoder.depth;
    this.#dropRates = [
      ...dropPathRates(cfg.dropPath, cfg.student.depth),
      ...dropPathRates(cfg.dropPath, decoderDepth),
    ];
    this.#dropTable = cfg.dropPath > 0 ? t([this.#dropRates.length * 2 * B], "dropScales") : null;
    this.#head = symmetric
      ? new SymmetricHead(be, { ps: this.student, rows: B * (1 + L), D: svit.embedDim, Dt })
      : new AsymmetricHead(be, {
        student: cfg.student,
        decoder: cfg.decoder,
        Dt,
        ps: this.student,
        B,
        keep,
        decIdx: this.#decIdx!,
        drop: (i) => this.#drop(cfg.student.depth + i),
      });
  }

  /** Patches L, kept patches K (L for the symmetric student), decoder width, target width. */
  get sizes(): { L: number; keep: number; Dd: number; Dt: number } {
    return { L: this.#L, keep: this.#keep, Dd: this.cfg.decoder.embedDim, Dt: this.#Dt };
  }

  /** The mask `[B, L]` (1 = masked) of the last {@link DbotModel.setBatch} (host copy). */
  get mask(): Float32Array {
    return this.#mask.slice();
  }

  /** Initialises the student from `seed` (the spec's init, every parameter). */
  initStudent(seed: number): void {
    this.student.init(new Rng(seed));
  }

  /** Frees every buffer of the model: student, decoder, teacher, loss and activations. */
  dispose(): void {
    this.encoder.dispose();
    this.#head.dispose();
    this.student.dispose();
    this.teacher.dispose();
    this.lossFn.dispose();
    freeTensors(this.#be, this.#owned);
  }

  /** teacher ← student encoder (same architecture), on the device: stage-0 random teacher and every boundary. */
  copyStudentToTeacher(): void {
    const tp = this.teacher.params;
    if (!tp) throw new RangeError("Cannot copy the student into a teacher without weights");
    for (const s of tp.specs) {
      if (!this.student.has(s.name)) {
        throw new RangeError(
          `Cannot copy the student into the teacher: the student has no "${s.name}"`,
        );
      }
      this.#be.copy(tp.get(s.name), this.student.get(s.name));
    }
  }

  /**
   * Uploads one batch: `images [B, C, H, W]`, masking `noise [B, L]` and (with drop path) draws
   * the per-sample drop-path scales from `rng`: one stream for the batch (layer by layer), or
   * one stream per sample (`rng[b]` draws sample b's attention and MLP scales, layer by
   * layer), so that a sample's scales do not depend on how the batch is split (data
   * parallelism). Call before {@link DbotModel.forwardBackward}.
   *
   * Block masking (symmetric student) draws each sample's blocks from an Rng seeded by that
   * sample's noise, so it is as reproducible and split-independent as random masking.
   */
  setBatch(images: Float32Array, noise: Float32Array, rng?: Rng | readonly Rng[]): void {
    const { B } = this;
    const L = this.#L;
    if ((this.cfg.masking ?? "random") === "block") {
      if (noise.length !== B * L) {
        throw new RangeError(`Cannot mask: noise has ${noise.length} values but B·L = ${B * L}`);
      }
      const g = deriveVit(this.cfg.student).grid;
      const count = blockMaskCount(L);
      const mask = new Float32Array(B * L);
      for (let b = 0; b < B; b++) {
        const seed = noiseSeed(noise.subarray(b * L, (b + 1) * L));
        mask.set(blockMasking(new Rng(seed), { gh: g, gw: g, count }), b * L);
      }
      this.setBatchMasked(images, mask, rng);
      return;
    }
    const m = randomMasking(noise, { B, L }, this.cfg.maskRatio);
    this.#upload(images, m, rng);
  }

  /**
   * Like {@link DbotModel.setBatch} with a given mask `[B, L]` (1 = masked) instead of
   * noise: the symmetric student only (its encoder sees every token, so any count works).
   */
  setBatchMasked(images: Float32Array, mask: Float32Array, rng?: Rng | readonly Rng[]): void {
    const { B } = this;
    const L = this.#L;
    if (!this.#symmetric) {
      throw new RangeError(
        "Cannot set a given mask on the asymmetric student: it keeps a fixed number of patches; use setBatch(images, noise)",
      );
    }
    if (mask.length !== B * L) {
      throw new RangeError(`Cannot mask: mask has ${mask.length} values but B·L = ${B * L}`);
    }
    const keep = L;
    this.#upload(images, {
      keep,
      idsShuffle: new Int32Array(0),
      idsRestore: new Int32Array(0),
      mask,
    }, rng);
  }

  #upload(images: Float32Array, m: Masking, rng?: Rng | readonly Rng[]): void {
    const { B } = this;
    const L = this.#L;
    const be = this.#be;
    be.upload(this.images, images);
    this.#mask = m.mask.slice();
    if (this.#maskIdx) {
      be.upload(this.#maskIdx, maskIndex(m.mask, B, L));
    } else {
      be.upload(this.#encIdx, encoderIndex(m, B, L));
      be.upload(this.#decIdx!, decoderIndex(m, B, L));
    }
    const clsWeight = this.teacher.hasClsTarget ? this.lossFn.clsWeight : 0;
    be.upload(this.#weight, lossWeights(m, B, L, clsWeight));
    if (this.#dropTable) {
      if (!rng) throw new RangeError("Cannot draw drop-path scales: pass an Rng to setBatch()");
      const scales = new Float32Array(this.#dropTable.size);
      const draw = (r: Rng, p: number) => p === 0 ? 1 : r.uniform() < 1 - p ? 1 / (1 - p) : 0;
      if (rng instanceof Rng) {
        this.#dropRates.forEach((p, i) => {
          for (let j = 0; j < 2 * B; j++) scales[i * 2 * B + j] = draw(rng, p);
        });
      } else {
        if (rng.length !== B) {
          throw new RangeError(`Cannot draw drop-path scales: ${rng.length} Rngs for ${B} samples`);
        }
        for (let j = 0; j < B; j++) {
          this.#dropRates.forEach((p, i) => {
            scales[i * 2 * B + j] = draw(rng[j], p); // attention
            scales[i * 2 * B + B + j] = draw(rng[j], p); // MLP
          });
        }
      }
      be.upload(this.#dropTable, scales);
    }
  }

  /** Records teacher forward, target, student forward, loss and backward (gradients accumulate). */
  forwardBackward(): void {
    this.teacher.targets(this.images, this.target);
    this.encoder.patchify(this.images);
    this.encoder.forward(this.#encIdx, this.#encDrop(), this.#maskIdx);
    this.#head.forward(this.encoder.out, this.pred);
    this.lossFn.record(
      {
        loss: this.loss,
        dpred: this.#dpred,
        pred: this.pred,
        target: this.target,
        weight: this.#weight,
      },
      { rows: this.B * (1 + this.#L), C: this.#Dt },
    );
    const dEnc = this.#head.backward(this.#dpred);
    this.encoder.backward(dEnc, this.#encIdx, this.#encDrop(), this.#maskIdx);
  }

  #drop(i: number): DropScales | null {
    if (!this.#dropTable || this.#dropRates[i] === 0) return null;
    const B = this.B;
    return {
      attn: view(this.#dropTable, i * 2 * B, [B]),
      mlp: view(this.#dropTable, i * 2 * B + B, [B]),
    };
  }

  #encDrop(): (DropScales | null)[] {
    return Array.from({ length: this.cfg.student.depth }, (_, i) => this.#drop(i));
  }
}

/** A 31-bit seed from a sample's masking noise (FNV-1a over the f32 bits). */
function noiseSeed(noise: Float32Array): number {
  const bits = new Uint32Array(Float32Array.from(noise).buffer);
  let h = 0x811c9dc5;
  for (const w of bits) {
    h ^= w;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h & 0x7fffffff;
}
