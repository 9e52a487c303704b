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
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { freeTensors, view } from "../backend/backend.ts";
import {
  allocBlockActs,
  allocBlockScratch,
  type BlockActs,
  blockBackward,
  type BlockDims,
  blockForward,
  type BlockScratch,
  blockWeights,
  type DropScales,
  LN_EPS,
} from "../nn/block.ts";
import { linearBackward, linearForward } from "../nn/linear.ts";
import { Rng } from "../util/rng.ts";
import { type DecoderConfig, deriveVit, type VitConfig } from "./config.ts";
import { decoderIndex, encoderIndex, keptPatches, lossWeights, randomMasking } from "./masking.ts";
import {
  blockParams,
  layernormParams,
  linearParams,
  param,
  ParamSet,
  type ParamSpec,
} from "../nn/params.ts";
import { createLoss, type DistillLoss, type LossName } from "./losses.ts";
import { buildTeacher, type Teacher, type TeacherConfig, teacherWidth } from "./teacher.ts";
import { VitEncoder, vitParamSpecs } from "./vit.ts";

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
}

/** Target width Dt: the teacher's width, or C·P·P for pixel targets. */
export function targetDim(cfg: DbotConfig): number {
  return teacherWidth(cfg.teacher, cfg.student);
}

/** The student's parameter table: encoder, then `mask_token` and the decoder. */
export function dbotStudentSpecs(cfg: DbotConfig): ParamSpec[] {
  const d = deriveVit(cfg.student);
  deriveVit(
    { ...cfg.student, embedDim: cfg.decoder.embedDim, numHeads: cfg.decoder.numHeads },
    "decoder",
  );
  const Dd = cfg.decoder.embedDim;
  const top = cfg.student.depth + 1;
  const specs = vitParamSpecs(cfg.student);
  specs.push(
    param("mask_token", [1, 1, Dd], { kind: "normal", std: 0.02 }, top),
    ...linearParams("decoder_embed", cfg.student.embedDim, Dd, top),
    {
      name: "decoder_pos_embed",
      shape: [1, 1 + d.numPatches, Dd],
      init: { kind: "sincos", grid: d.grid, dim: Dd },
      decay: false,
      layerId: top,
      trainable: false,
    },
  );
  for (let i = 0; i < cfg.decoder.depth; i++) {
    specs.push(...blockParams(`decoder_blocks.${i}`, Dd, Dd * cfg.student.mlpRatio, top));
  }
  specs.push(
    ...layernormParams("decoder_norm", Dd, top),
    ...linearParams("decoder_predp", Dd, targetDim(cfg), top),
  );
  return specs;
}

/** Drop-path rates per block: `linspace(0, rate, depth)`. */
export function dropPathRates(rate: number, depth: number): number[] {
  return Array.from({ length: depth }, (_, i) => (depth > 1 ? (rate * i) / (depth - 1) : 0));
}

/** The student, its decoder, the teacher and every buffer of one training step for batch B. */
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
  readonly #Dd: number;
  readonly #Dt: number;
  readonly #encIdx: Tensor;
  readonly #decIdx: Tensor;
  readonly #weight: Tensor;
  readonly #decEmb: Tensor; // [B, 1+K, Dd]
  readonly #xd: Tensor[]; // decoder residual stream [B, 1+L, Dd] × (Nd + 1)
  readonly #decActs: BlockActs[];
  readonly #decScratch: BlockScratch;
  readonly #bd: BlockDims;
  readonly #decOut: Tensor;
  readonly #decMean: Tensor;
  readonly #decRstd: Tensor;
  readonly #dpred: Tensor;
  readonly #dDecOut: Tensor;
  readonly #dres: Tensor;
  readonly #dDecEmb: Tensor;
  readonly #dEnc: Tensor;
  readonly #dropTable: Tensor | null; // [(depth + Nd)·2·B] drop-path scales
  readonly #dropRates: number[];

  /** Allocates parameters and every activation buffer for batch `B`. */
  constructor(be: Backend, cfg: DbotConfig, B: number) {
    if (!Number.isInteger(B) || B < 1) {
      throw new RangeError(`Cannot build dBOT as the batch must be >= 1: current value is ${B}`);
    }
    this.#be = be;
    this.cfg = cfg;
    this.B = B;
    const d = deriveVit(cfg.student, "student");
    const L = (this.#L = d.numPatches);
    const keep = (this.#keep = keptPatches(L, cfg.maskRatio));
    const Dd = (this.#Dd = cfg.decoder.embedDim);
    const Dt = (this.#Dt = targetDim(cfg));
    const t = (shape: number[], name: string, dtype: "f32" | "i32" = "f32") => {
      const x = be.tensor(shape, dtype, `dbot.${name}`);
      this.#owned.push(x);
      return x;
    };
    this.teacher = buildTeacher(be, cfg.teacher, { student: cfg.student, B });
    this.lossFn = createLoss(be, cfg.loss ?? "smoothl1");
    this.student = new ParamSet(be, dbotStudentSpecs(cfg), { grads: true, label: "student" });
    this.encoder = new VitEncoder(be, cfg.student, {
      ps: this.student,
      B,
      N: 1 + keep,
      trainable: true,
      finalNorm: true,
      label: "student",
    });
    this.images = t([B, cfg.student.inChans, cfg.student.imgSize, cfg.student.imgSize], "images");
    this.loss = t([1], "loss");
    this.target = t([B, 1 + L, Dt], "target");
    this.pred = t([B, 1 + L, Dt], "pred");
    this.#encIdx = t([B * (1 + keep)], "encIdx", "i32");
    this.#decIdx = t([B * (1 + L)], "decIdx", "i32");
    this.#weight = t([B * (1 + L)], "weight");
    this.#decEmb = t([B, 1 + keep, Dd], "decEmb");
    this.#bd = { B, N: 1 + L, D: Dd, NH: cfg.decoder.numHeads, hidden: Dd * cfg.student.mlpRatio };
    this.#xd = Array.from({ length: cfg.decoder.depth + 1 }, (_, i) => t([B, 1 + L, Dd], `xd${i}`));
    this.#decActs = Array.from(
      { length: cfg.decoder.depth },
      (_, i) => allocBlockActs(be, this.#bd, `decoder.block${i}`),
    );
    this.#decScratch = allocBlockScratch(be, this.#bd, true, "decoder.scratch");
    this.#decOut = t([B, 1 + L, Dd], "decOut");
    this.#decMean = t([B * (1 + L)], "decMean");
    this.#decRstd = t([B * (1 + L)], "decRstd");
    this.#dpred = t([B, 1 + L, Dt], "dpred");
    this.#dDecOut = t([B, 1 + L, Dd], "dDecOut");
    this.#dres = t([B, 1 + L, Dd], "dres");
    this.#dDecEmb = t([B, 1 + keep, Dd], "dDecEmb");
    this.#dEnc = t([B, 1 + keep, cfg.student.embedDim], "dEnc");
    this.#dropRates = [
      ...dropPathRates(cfg.dropPath, cfg.student.depth),
      ...dropPathRates(cfg.dropPath, cfg.decoder.depth),
    ];
    this.#dropTable = cfg.dropPath > 0 ? t([this.#dropRates.length * 2 * B], "dropScales") : null;
  }

  /** Patches L, kept patches K, decoder width, target width. */
  get sizes(): { L: number; keep: number; Dd: number; Dt: number } {
    return { L: this.#L, keep: this.#keep, Dd: this.#Dd, Dt: this.#Dt };
  }

  /** Initialises the student from `seed` (the spec's init, every parameter). */
  initStudent(seed: number): void {
    this.student.init(new Rng(seed));
  }

  /** Frees every buffer of the model: student, decoder, teacher, loss and activations. */
  dispose(): void {
    this.encoder.dispose();
    this.student.dispose();
    this.teacher.dispose();
    this.lossFn.dispose();
    freeTensors(this.#be, [this.#owned, this.#decActs, this.#decScratch]);
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
   */
  setBatch(images: Float32Array, noise: Float32Array, rng?: Rng | readonly Rng[]): void {
    const { B } = this;
    const L = this.#L;
    const be = this.#be;
    be.upload(this.images, images);
    const m = randomMasking(noise, { B, L }, this.cfg.maskRatio);
    be.upload(this.#encIdx, encoderIndex(m, B, L));
    be.upload(this.#decIdx, decoderIndex(m, B, L));
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
    this.#studentForward();
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
    this.#studentBackward();
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

  #decDrop(i: number): DropScales | null {
    return this.#drop(this.cfg.student.depth + i);
  }

  #studentForward(): void {
    const be = this.#be;
    const ps = this.student;
    const { B } = this;
    const L = this.#L;
    const Dd = this.#Dd;
    const D = this.cfg.student.embedDim;
    this.encoder.patchify(this.images);
    this.encoder.forward(this.#encIdx, this.#encDrop());
    // decoder embed [B, 1+K, Dd], unshuffle with mask tokens, + decoder_pos_embed
    linearForward(
      be,
      {
        out: this.#decEmb,
        inp: this.encoder.out,
        weight: ps.get("decoder_embed.weight"),
        bias: ps.get("decoder_embed.bias"),
      },
      { rows: B * (1 + this.#keep), inF: D, outF: Dd },
    );
    be.gatherRows(
      {
        out: this.#xd[0],
        inp: this.#decEmb,
        index: this.#decIdx,
        fill: view(ps.get("mask_token"), 0, [Dd]),
      },
      { rows: B * (1 + L), C: Dd },
    );
    be.add({
      out: this.#xd[0],
      a: this.#xd[0],
      b: view(ps.get("decoder_pos_embed"), 0, [(1 + L) * Dd]),
    });
    for (let i = 0; i < this.cfg.decoder.depth; i++) {
      blockForward(
        be,
        {
          out: this.#xd[i + 1],
          inp: this.#xd[i],
          w: blockWeights(ps, `decoder_blocks.${i}`),
          acts: this.#decActs[i],
          s: this.#decScratch,
          drop: this.#decDrop(i),
        },
        this.#bd,
      );
    }
    be.layernorm(
      {
        out: this.#decOut,
        mean: this.#decMean,
        rstd: this.#decRstd,
        inp: this.#xd[this.cfg.decoder.depth],
        weight: ps.get("decoder_norm.weight"),
        bias: ps.get("decoder_norm.bias"),
      },
      { rows: B * (1 + L), C: Dd, eps: LN_EPS },
    );
    linearForward(
      be,
      {
        out: this.pred,
        inp: this.#decOut,
        weight: ps.get("decoder_predp.weight"),
        bias: ps.get("decoder_predp.bias"),
      },
      { rows: B * (1 + L), inF: Dd, outF: this.#Dt },
    );
  }

  #studentBackward(): void {
    const be = this.#be;
    const ps = this.student;
    const { B } = this;
    const L = this.#L;
    const Dd = this.#Dd;
    const D = this.cfg.student.embedDim;
    const rows = B * (1 + L);
    linearBackward(
      be,
      {
        dinp: this.#dDecOut,
        dweight: ps.grad("decoder_predp.weight"),
        dbias: ps.grad("decoder_predp.bias"),
        dout: this.#dpred,
        inp: this.#decOut,
        weight: ps.get("decoder_predp.weight"),
      },
      { rows, inF: Dd, outF: this.#Dt },
    );
    be.layernormBackward(
      {
        dinp: this.#dres,
        dweight: ps.grad("decoder_norm.weight"),
        dbias: ps.grad("decoder_norm.bias"),
        dout: this.#dDecOut,
        inp: this.#xd[this.cfg.decoder.depth],
        weight: ps.get("decoder_norm.weight"),
        mean: this.#decMean,
        rstd: this.#decRstd,
      },
      { rows, C: Dd },
    );
    for (let i = this.cfg.decoder.depth - 1; i >= 0; i--) {
      blockBackward(
        be,
        {
          d: this.#dres,
          inp: this.#xd[i],
          w: blockWeights(ps, `decoder_blocks.${i}`),
          g: blockWeights(ps, `decoder_blocks.${i}`, true),
          acts: this.#decActs[i],
          s: this.#decScratch,
          drop: this.#decDrop(i),
        },
        this.#bd,
      );
    }
    // the fixed pos embed passes the gradient through; the gather splits it into kept tokens and mask_token
    be.gatherRowsBackward(
      {
        dinp: this.#dDecEmb,
        dfill: view(ps.grad("mask_token"), 0, [Dd]),
        dout: this.#dres,
        index: this.#decIdx,
      },
      { rows, C: Dd },
    );
    linearBackward(
      be,
      {
        dinp: this.#dEnc,
        dweight: ps.grad("decoder_embed.weight"),
        dbias: ps.grad("decoder_embed.bias"),
        dout: this.#dDecEmb,
        inp: this.encoder.out,
        weight: ps.get("decoder_embed.weight"),
      },
      { rows: B * (1 + this.#keep), inF: D, outF: Dd },
    );
    this.encoder.backward(this.#dEnc, this.#encIdx, this.#encDrop());
  }
}
