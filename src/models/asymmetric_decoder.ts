/**
 * The asymmetric (MAE-style) dBOT decoder, beside the symmetric student's head
 * (`symmetric_student.ts`): its parameter table ({@link asymmetricDecoderSpecs}) and the
 * head that runs it forward and backward over the encoder's kept tokens
 * ({@link AsymmetricHead}).
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
import {
  blockParams,
  layernormParams,
  linearParams,
  param,
  type ParamSet,
  type ParamSpec,
} from "../nn/params.ts";
import { type DecoderConfig, deriveVit, type VitConfig } from "./vit_config.ts";
import type { StudentHead } from "./student_head.ts";

/**
 * The asymmetric decoder's parameter table (after the encoder's, at layer id depth + 1):
 * `mask_token`, `decoder_embed`, the fixed sin-cos `decoder_pos_embed`, the decoder blocks,
 * `decoder_norm` and `decoder_predp` to the target width `Dt`.
 */
export function asymmetricDecoderSpecs(
  student: VitConfig,
  decoder: DecoderConfig,
  Dt: number,
): ParamSpec[] {
  const d = deriveVit(student);
  deriveVit(
    { ...student, embedDim: decoder.embedDim, numHeads: decoder.numHeads },
    "decoder",
  );
  const Dd = decoder.embedDim;
  const top = student.depth + 1;
  const specs: ParamSpec[] = [];
  specs.push(
    param("mask_token", [1, 1, Dd], { kind: "normal", std: 0.02 }, top),
    ...linearParams("decoder_embed", student.embedDim, Dd, top),
    {
      name: "decoder_pos_embed",
      shape: [1, 1 + d.numPatches, Dd],
      init: { kind: "sincos", grid: d.grid, dim: Dd },
      decay: false,
      layerId: top,
      trainable: false,
    },
  );
  for (let i = 0; i < decoder.depth; i++) {
    specs.push(...blockParams(`decoder_blocks.${i}`, Dd, Dd * student.mlpRatio, top));
  }
  specs.push(
    ...layernormParams("decoder_norm", Dd, top),
    ...linearParams("decoder_predp", Dd, Dt, top),
  );
  return specs;
}

/**
 * The reference decoder (DBOT_SPEC.md): decoder embed of the kept tokens, unshuffle with
 * mask tokens, + decoder_pos_embed, decoder blocks, decoder_norm, decoder_predp.
 */
export class AsymmetricHead implements StudentHead {
  readonly #be: Backend;
  readonly #student: VitConfig;
  readonly #decoder: DecoderConfig;
  readonly #ps: ParamSet;
  readonly #B: number;
  readonly #L: number;
  readonly #keep: number;
  readonly #Dd: number;
  readonly #Dt: number;
  readonly #decIdx: Tensor;
  readonly #drop: (i: number) => DropScales | null;
  readonly #decEmb: Tensor; // [B, 1+K, Dd]
  readonly #xd: Tensor[]; // decoder residual stream [B, 1+L, Dd] × (Nd + 1)
  readonly #decActs: BlockActs[];
  readonly #decScratch: BlockScratch;
  readonly #bd: BlockDims;
  readonly #decOut: Tensor;
  readonly #decMean: Tensor;
  readonly #decRstd: Tensor;
  readonly #dDecOut: Tensor;
  readonly #dres: Tensor;
  readonly #dDecEmb: Tensor;
  readonly #dEnc: Tensor;
  #encOut: Tensor | null = null;

  constructor(
    be: Backend,
    { student, decoder, Dt, ps, B, keep, decIdx, drop }: {
      student: VitConfig;
      decoder: DecoderConfig;
      Dt: number;
      ps: ParamSet;
      B: number;
      keep: number;
      decIdx: Tensor;
      drop: (i: number) => DropScales | null;
    },
  ) {
    this.#be = be;
    this.#student = student;
    this.#decoder = decoder;
    this.#ps = ps;
    this.#B = B;
    const L = (this.#L = deriveVit(student).numPatches);
    this.#keep = keep;
    const Dd = (this.#Dd = decoder.embedDim);
    this.#Dt = Dt;
    this.#decIdx = decIdx;
    this.#drop = drop;
    const t = (shape: number[], name: string) => be.tensor(shape, "f32", `dbot.${name}`);
    this.#decEmb = t([B, 1 + keep, Dd], "decEmb");
    this.#bd = { B, N: 1 + L, D: Dd, NH: decoder.numHeads, hidden: Dd * student.mlpRatio };
    this.#xd = Array.from({ length: decoder.depth + 1 }, (_, i) => t([B, 1 + L, Dd], `xd${i}`));
    this.#decActs = Array.from(
      { length: decoder.depth },
      (_, i) => allocBlockActs(be, this.#bd, `decoder.block${i}`),
    );
    this.#decScratch = allocBlockScratch(be, this.#bd, true, "decoder.scratch");
    this.#decOut = t([B, 1 + L, Dd], "decOut");
    this.#decMean = t([B * (1 + L)], "decMean");
    this.#decRstd = t([B * (1 + L)], "decRstd");
    this.#dDecOut = t([B, 1 + L, Dd], "dDecOut");
    this.#dres = t([B, 1 + L, Dd], "dres");
    this.#dDecEmb = t([B, 1 + keep, Dd], "dDecEmb");
    this.#dEnc = t([B, 1 + keep, student.embedDim], "dEnc");
  }

  dispose(): void {
    freeTensors(this.#be, [
      this.#decEmb,
      this.#xd,
      this.#decActs,
      this.#decScratch,
      this.#decOut,
      this.#decMean,
      this.#decRstd,
      this.#dDecOut,
      this.#dres,
      this.#dDecEmb,
      this.#dEnc,
    ]);
  }

  forward(encOut: Tensor, pred: Tensor): void {
    const be = this.#be;
    const ps = this.#ps;
    const B = this.#B;
    const L = this.#L;
    const Dd = this.#Dd;
    const D = this.#student.embedDim;
    this.#encOut = encOut;
    // decoder embed [B, 1+K, Dd], unshuffle with mask tokens, + decoder_pos_embed
    linearForward(
      be,
      {
        out: this.#decEmb,
        inp: encOut,
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
    for (let i = 0; i < this.#decoder.depth; i++) {
      blockForward(
        be,
        {
          out: this.#xd[i + 1],
          inp: this.#xd[i],
          w: blockWeights(ps, `decoder_blocks.${i}`),
          acts: this.#decActs[i],
          s: this.#decScratch,
          drop: this.#drop(i),
        },
        this.#bd,
      );
    }
    be.layernorm(
      {
        out: this.#decOut,
        mean: this.#decMean,
        rstd: this.#decRstd,
        inp: this.#xd[this.#decoder.depth],
        weight: ps.get("decoder_norm.weight"),
        bias: ps.get("decoder_norm.bias"),
      },
      { rows: B * (1 + L), C: Dd, eps: LN_EPS },
    );
    linearForward(
      be,
      {
        out: pred,
        inp: this.#decOut,
        weight: ps.get("decoder_predp.weight"),
        bias: ps.get("decoder_predp.bias"),
      },
      { rows: B * (1 + L), inF: Dd, outF: this.#Dt },
    );
  }

  backward(dpred: Tensor): Tensor {
    const be = this.#be;
    const ps = this.#ps;
    const B = this.#B;
    const L = this.#L;
    const Dd = this.#Dd;
    const D = this.#student.embedDim;
    const rows = B * (1 + L);
    if (!this.#encOut) throw new RangeError("Cannot run the decoder backward before its forward");
    linearBackward(
      be,
      {
        dinp: this.#dDecOut,
        dweight: ps.grad("decoder_predp.weight"),
        dbias: ps.grad("decoder_predp.bias"),
        dout: dpred,
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
        inp: this.#xd[this.#decoder.depth],
        weight: ps.get("decoder_norm.weight"),
        mean: this.#decMean,
        rstd: this.#decRstd,
      },
      { rows, C: Dd },
    );
    for (let i = this.#decoder.depth - 1; i >= 0; i--) {
      blockBackward(
        be,
        {
          d: this.#dres,
          inp: this.#xd[i],
          w: blockWeights(ps, `decoder_blocks.${i}`),
          g: blockWeights(ps, `decoder_blocks.${i}`, true),
          acts: this.#decActs[i],
          s: this.#decScratch,
          drop: this.#drop(i),
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
        inp: this.#encOut,
        weight: ps.get("decoder_embed.weight"),
      },
      { rows: B * (1 + this.#keep), inF: D, outF: Dd },
    );
    return this.#dEnc;
  }
}
