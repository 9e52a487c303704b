/**
 * ViT encoder (student or teacher), explicit forward and backward:
 *
 *   patches = patchify(images)                 [B, L, C·P·P]
 *   emb     = patches · Wpeᵀ + bpe + pos[1:]   [B, L, D]
 *   x0      = gather(emb, index, fill = cls + pos[0])   [B, N, D]
 *   x_{i+1} = block_i(x_i)                     [B, N, D]
 *   out     = norm(x_depth)  (teacher: x_depth, no final norm)
 *
 * The gather does random masking and prepends cls in one op: `index` holds,
 * per output row, the row of `emb` to take (`b·L + l`) or −1 for cls.
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
import { deriveVit, type VitConfig, type VitDerived } from "./config.ts";
import {
  blockParams,
  layernormParams,
  param,
  type ParamSet,
  type ParamSpec,
} from "../nn/params.ts";

/** Parameter table of a ViT encoder with timm names, each name prefixed by `prefix`. */
export function vitParamSpecs(cfg: VitConfig, prefix = ""): ParamSpec[] {
  const d = deriveVit(cfg);
  const D = cfg.embedDim;
  const specs: ParamSpec[] = [
    param(`${prefix}cls_token`, [1, 1, D], { kind: "normal", std: 0.02 }, 0),
    {
      name: `${prefix}pos_embed`,
      shape: [1, 1 + d.numPatches, D],
      init: { kind: "sincos", grid: d.grid, dim: D },
      decay: false,
      layerId: 0,
      trainable: false,
    },
    param(
      `${prefix}patch_embed.proj.weight`,
      [D, cfg.inChans, cfg.patchSize, cfg.patchSize],
      { kind: "xavier", fanIn: d.patchDim, fanOut: D },
      0,
    ),
    param(`${prefix}patch_embed.proj.bias`, [D], {
      kind: "uniform",
      bound: 1 / Math.sqrt(d.patchDim),
    }, 0),
  ];
  for (let i = 0; i < cfg.depth; i++) {
    specs.push(...blockParams(`${prefix}blocks.${i}`, D, d.hidden, i + 1));
  }
  specs.push(...layernormParams(`${prefix}norm`, D, cfg.depth + 1));
  return specs;
}

/** Weights and runtime options of a {@link VitEncoder}. */
export interface VitEncoderOptions {
  /** The parameter set holding this encoder's weights (names under `prefix`). */
  ps: ParamSet;
  /** Batch size B. */
  B: number;
  /** Tokens per sequence N, cls included (1 + kept patches). */
  N: number;
  /** Keep activations and gradient buffers for a backward pass. */
  trainable: boolean;
  /** Apply the final `norm` (students); teachers output the last block as is. */
  finalNorm: boolean;
  /** Checkpoint-name prefix of this encoder's parameters inside `ps`. */
  prefix?: string;
  /**
   * Keep every block's activations (attention maps, block outputs) even without gradients,
   * for {@link VitEncoder.attention} and {@link VitEncoder.blockOutput} (analysis). Default false.
   */
  keepActivations?: boolean;
  /** Debug label. */
  label: string;
}

/** A ViT encoder bound to a parameter set, a backend and a fixed (B, N). */
export class VitEncoder {
  /** Shape. */
  readonly cfg: VitConfig;
  /** Derived sizes. */
  readonly d: VitDerived;
  /** Options. */
  readonly opts: Readonly<VitEncoderOptions>;
  /** Patchified input `[B, L, C·P·P]` (filled by {@link VitEncoder.patchify}). */
  readonly patches: Tensor;
  /** Output `[B, N, D]`. */
  readonly out: Tensor;
  readonly #be: Backend;
  readonly #ps: ParamSet;
  readonly #emb: Tensor; // [B, L, D]
  readonly #clsFill: Tensor; // [D] = cls_token + pos_embed[0]
  readonly #xs: Tensor[]; // residual stream: trainable depth+1 buffers; frozen ping-pong 2
  readonly #acts: BlockActs[];
  readonly #scratch: BlockScratch;
  readonly #bd: BlockDims;
  readonly #normMean: Tensor;
  readonly #normRstd: Tensor;
  readonly #dres: Tensor | null; // [B, N, D] residual gradient
  readonly #demb: Tensor | null; // [B·L, D]
  readonly #keep: boolean; // one buffer per residual stream and per block (trainable or keepActivations)
  readonly #posGrad: boolean; // pos_embed is a trainable row of a set with gradients (fine-tuning)

  /** Allocates every buffer once for (B, N); the weights are `opts.ps`. */
  constructor(be: Backend, cfg: VitConfig, opts: VitEncoderOptions) {
    const { ps } = opts;
    this.#be = be;
    this.cfg = cfg;
    this.d = deriveVit(cfg);
    this.opts = { prefix: "", ...opts };
    this.#ps = ps;
    this.#keep = opts.trainable || opts.keepActivations === true;
    const posName = `${this.opts.prefix}pos_embed`;
    this.#posGrad = opts.trainable && ps.grads !== null &&
      ps.specs.some((s) => s.name === posName && s.trainable);
    const { B, N, trainable, label } = opts;
    const D = cfg.embedDim;
    const L = this.d.numPatches;
    const t = (shape: number[], name: string) => be.tensor(shape, "f32", `${label}.${name}`);
    this.patches = t([B, L, this.d.patchDim], "patches");
    this.#emb = t([B, L, D], "emb");
    this.#clsFill = t([D], "clsFill");
    const nx = this.#keep ? cfg.depth + 1 : Math.min(2, cfg.depth + 1);
    this.#xs = Array.from({ length: nx }, (_, i) => t([B, N, D], `x${i}`));
    this.#bd = { B, N, D, NH: cfg.numHeads, hidden: this.d.hidden };
    const nActs = cfg.depth === 0 ? 0 : this.#keep ? cfg.depth : 1;
    this.#acts = Array.from(
      { length: nActs },
      (_, i) => allocBlockActs(be, this.#bd, `${label}.block${i}`),
    );
    this.#scratch = allocBlockScratch(be, this.#bd, trainable, `${label}.scratch`);
    this.#normMean = t([B * N], "normMean");
    this.#normRstd = t([B * N], "normRstd");
    this.out = opts.finalNorm ? t([B, N, D], "out") : this.#xs[this.#last()];
    this.#dres = trainable ? t([B, N, D], "dres") : null;
    this.#demb = trainable ? t([B * L, D], "demb") : null;
  }

  /** Frees every buffer this encoder allocated (not the parameters: their set owns them). */
  dispose(): void {
    freeTensors(this.#be, [
      this.patches,
      this.#emb,
      this.#clsFill,
      this.#xs,
      this.#acts,
      this.#scratch,
      this.#normMean,
      this.#normRstd,
      this.out,
      this.#dres,
      this.#demb,
    ]);
  }

  /** `patches = patchify(images [B, C, H, W])`. */
  patchify(images: Tensor): void {
    const { B } = this.opts;
    const c = this.cfg;
    this.#be.patchify(
      { out: this.patches, inp: images },
      { B, C: c.inChans, H: c.imgSize, W: c.imgSize, P: c.patchSize },
    );
  }

  /**
   * Forward from `patches` through embedding, gather (`index` i32 `[B·N]`), blocks and
   * (students) the final norm, into {@link VitEncoder.out}. `drop[i]`: block i's drop-path scales.
   */
  forward(index: Tensor, drop: (DropScales | null)[] | null = null): void {
    const be = this.#be;
    const { B, N } = this.opts;
    const D = this.cfg.embedDim;
    const L = this.d.numPatches;
    const pos = this.#p("pos_embed");
    // emb [B, L, D] = patches · Wpeᵀ + bpe + pos[1:]
    linearForward(
      be,
      {
        out: this.#emb,
        inp: this.patches,
        weight: this.#p("patch_embed.proj.weight"),
        bias: this.#p("patch_embed.proj.bias"),
      },
      { rows: B * L, inF: this.d.patchDim, outF: D },
    );
    be.add({ out: this.#emb, a: this.#emb, b: view(pos, D, [L * D]) });
    // x0 [B, N, D] = gather(emb, index) with cls + pos[0] where index < 0
    be.add({ out: this.#clsFill, a: view(this.#p("cls_token"), 0, [D]), b: view(pos, 0, [D]) });
    be.gatherRows({ out: this.#xs[0], inp: this.#emb, index, fill: this.#clsFill }, {
      rows: B * N,
      C: D,
    });
    for (let i = 0; i < this.cfg.depth; i++) {
      blockForward(
        be,
        {
          out: this.#x(i + 1),
          inp: this.#x(i),
          w: blockWeights(this.#ps, this.#name(`blocks.${i}`)),
          acts: this.#acts[this.#keep ? i : 0],
          s: this.#scratch,
          drop: drop?.[i] ?? null,
          noGrad: !this.opts.trainable,
        },
        this.#bd,
      );
    }
    if (this.opts.finalNorm) {
      be.layernorm(
        {
          out: this.out,
          mean: this.#normMean,
          rstd: this.#normRstd,
          inp: this.#x(this.cfg.depth),
          weight: this.#p("norm.weight"),
          bias: this.#p("norm.bias"),
        },
        { rows: B * N, C: D, eps: LN_EPS },
      );
    }
  }

  /**
   * Backward from `dout [B, N, D]` (∂L/∂out) to every parameter gradient; `index` and
   * `drop` must be the ones of the matching forward.
   */
  backward(dout: Tensor, index: Tensor, drop: (DropScales | null)[] | null = null): void {
    const be = this.#be;
    const ps = this.#ps;
    if (!this.#dres || !this.#demb) {
      throw new RangeError(`Encoder "${this.opts.label}" was built without gradients`);
    }
    const { B, N } = this.opts;
    const D = this.cfg.embedDim;
    const L = this.d.numPatches;
    const d = this.#dres;
    if (this.opts.finalNorm) {
      be.layernormBackward(
        {
          dinp: d,
          dweight: this.#g("norm.weight"),
          dbias: this.#g("norm.bias"),
          dout,
          inp: this.#x(this.cfg.depth),
          weight: this.#p("norm.weight"),
          mean: this.#normMean,
          rstd: this.#normRstd,
        },
        { rows: B * N, C: D },
      );
    } else {
      be.copy(d, dout);
    }
    for (let i = this.cfg.depth - 1; i >= 0; i--) {
      const name = this.#name(`blocks.${i}`);
      blockBackward(
        be,
        {
          d,
          inp: this.#x(i),
          w: blockWeights(ps, name),
          g: blockWeights(ps, name, true),
          acts: this.#acts[i],
          s: this.#scratch,
          drop: drop?.[i] ?? null,
        },
        this.#bd,
      );
    }
    // x0 = gather(emb, index, fill = cls + pos[0]): demb (masked rows 0), dcls += Σ cls rows
    be.gatherRowsBackward(
      { dinp: this.#demb, dfill: view(this.#g("cls_token"), 0, [D]), dout: d, index },
      { rows: B * N, C: D },
    );
    if (this.#posGrad) {
      // trainable pos_embed (fine-tuning): dpos[0] += Σ cls rows (a second gather backward
      // rewrites demb with the same values), dpos[1:] += Σ_b demb[b] (a bias-grad over B)
      const dpos = this.#g("pos_embed");
      be.gatherRowsBackward(
        { dinp: this.#demb, dfill: view(dpos, 0, [D]), dout: d, index },
        { rows: B * N, C: D },
      );
      be.biasGrad({ dbias: view(dpos, D, [L * D]), dout: this.#demb }, { rows: B, C: L * D });
    }
    linearBackward(
      be,
      {
        dinp: null,
        dweight: this.#g("patch_embed.proj.weight"),
        dbias: this.#g("patch_embed.proj.bias"),
        dout: this.#demb,
        inp: this.patches,
        weight: this.#p("patch_embed.proj.weight"),
      },
      { rows: B * L, inF: this.d.patchDim, outF: D },
    );
  }

  /**
   * Output of block `i` `[B, N, D]` (before the final norm) from the last forward. Needs an
   * encoder built `trainable` or with `keepActivations`.
   */
  blockOutput(i: number): Tensor {
    this.#checkKept("blockOutput", i);
    return this.#xs[i + 1];
  }

  /**
   * Softmax attention probabilities of block `i` `[B, NH, N, N]` (row = query) from the last
   * forward. Needs an encoder built `trainable` or with `keepActivations`.
   */
  attention(i: number): Tensor {
    this.#checkKept("attention", i);
    return this.#acts[i].att;
  }

  #checkKept(what: string, i: number): void {
    if (!this.#keep) {
      throw new RangeError(
        `Cannot read ${what}(${i}) of encoder "${this.opts.label}": build it with keepActivations`,
      );
    }
    if (!Number.isInteger(i) || i < 0 || i >= this.cfg.depth) {
      throw new RangeError(
        `Cannot read ${what}(${i}) of encoder "${this.opts.label}": blocks are 0..${
          this.cfg.depth - 1
        }`,
      );
    }
  }

  #last(): number {
    return this.#keep ? this.cfg.depth : this.cfg.depth % 2;
  }

  #x(i: number): Tensor {
    return this.#keep ? this.#xs[i] : this.#xs[i % this.#xs.length];
  }

  #name(n: string): string {
    return `${this.opts.prefix}${n}`;
  }

  #p(n: string): Tensor {
    return this.#ps.get(this.#name(n));
  }

  #g(n: string): Tensor {
    return this.#ps.grad(this.#name(n));
  }
}

/** Row indices for an unmasked encoder: per sample `[−1 (cls), b·L + 0, …, b·L + L−1]`. */
export function fullIndex(B: number, L: number): Int32Array {
  const idx = new Int32Array(B * (1 + L));
  for (let b = 0; b < B; b++) {
    idx[b * (1 + L)] = -1;
    for (let l = 0; l < L; l++) idx[b * (1 + L) + 1 + l] = b * L + l;
  }
  return idx;
}
