/**
 * ViT encoder (student or teacher), explicit forward and backward:
 *
 *   patches = patchify(images)                 [B, L, C·P·P]
 *   emb     = patches · Wpeᵀ + bpe + pos[1:]   [B, L, D]
 *   emb     = gather(emb, mask, fill = mask_token)      [B, L, D]  (symmetric student only)
 *   x0      = gather(emb, index, fill = cls + pos[0])   [B, N, D]
 *   x0      = norm_pre(x0)                     (preNorm: CLIP's ln_pre)
 *   x_{i+1} = block_i(x_i)                     [B, N, D]
 *   out     = norm(x_depth)  (teacher: x_depth, no final norm)
 *   out     = out · head.weightᵀ               [B, N, projDim]  (projDim: CLIP's proj)
 *
 * The gather does random masking and prepends cls in one op: `index` holds,
 * per output row, the row of `emb` to take (`b·L + l`) or −1 for cls. The
 * symmetric (BEiT) student keeps every token and instead replaces masked patch
 * embeddings by `mask_token` (`x·(1−m) + mask_token·m`) with a first gather whose
 * index is −1 at masked patches. Options of {@link VitConfig}: no position
 * embedding, a relative position bias shared by all blocks, layer scale, BEiT's
 * q/v biases, QuickGELU, no patch-embedding bias, `norm_pre`, a projection head.
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
import { deriveVit, type VitConfig, type VitDerived } from "./vit_config.ts";
import {
  blockParams,
  layernormParams,
  param,
  type ParamSet,
  type ParamSpec,
} from "../nn/params.ts";
import type { RelPos } from "../nn/block.ts";
import { relPosIndex, relPosRows } from "./symmetric.ts";

/** Parameter table of a ViT encoder with timm names, each name prefixed by `prefix`. */
export function vitParamSpecs(cfg: VitConfig, prefix = ""): ParamSpec[] {
  const d = deriveVit(cfg);
  const D = cfg.embedDim;
  const top = cfg.depth + 1;
  const specs: ParamSpec[] = [
    param(`${prefix}cls_token`, [1, 1, D], { kind: "normal", std: 0.02 }, 0),
  ];
  if (cfg.posEmbed !== "none") {
    specs.push({
      name: `${prefix}pos_embed`,
      shape: [1, 1 + d.numPatches, D],
      init: { kind: "sincos", grid: d.grid, dim: D },
      decay: false,
      layerId: 0,
      trainable: false,
    });
  }
  specs.push(param(
    `${prefix}patch_embed.proj.weight`,
    [D, cfg.inChans, cfg.patchSize, cfg.patchSize],
    { kind: "xavier", fanIn: d.patchDim, fanOut: D },
    0,
  ));
  if (cfg.patchBias !== false) {
    specs.push(param(`${prefix}patch_embed.proj.bias`, [D], {
      kind: "uniform",
      bound: 1 / Math.sqrt(d.patchDim),
    }, 0));
  }
  if (cfg.preNorm) specs.push(...layernormParams(`${prefix}norm_pre`, D, 0));
  if (cfg.relPosBias) {
    specs.push(param(
      `${prefix}rel_pos_bias.relative_position_bias_table`,
      [relPosRows(d.grid, d.grid), cfg.numHeads],
      { kind: "zeros" },
      top,
    ));
  }
  for (let i = 0; i < cfg.depth; i++) {
    specs.push(...vitBlockParams(cfg, `${prefix}blocks.${i}`, i + 1));
  }
  specs.push(...layernormParams(`${prefix}norm`, D, top));
  if (cfg.projDim !== undefined) {
    specs.push(param(`${prefix}head.weight`, [cfg.projDim, D], {
      kind: "xavier",
      fanIn: D,
      fanOut: cfg.projDim,
    }, top));
  }
  return specs;
}

/** One block's rows: timm's, with BEiT's q/v biases and layer scale when `cfg` asks. */
function vitBlockParams(cfg: VitConfig, prefix: string, layerId: number): ParamSpec[] {
  const D = cfg.embedDim;
  const specs = blockParams(prefix, D, deriveVit(cfg).hidden, layerId);
  const out: ParamSpec[] = [];
  for (const s of specs) {
    if (cfg.qvBias && s.name === `${prefix}.attn.qkv.bias`) {
      out.push(param(`${prefix}.attn.q_bias`, [D], { kind: "zeros" }, layerId));
      out.push(param(`${prefix}.attn.v_bias`, [D], { kind: "zeros" }, layerId));
    } else out.push(s);
  }
  if (cfg.layerScale !== undefined) {
    const init = { kind: "constant", value: cfg.layerScale } as const;
    out.push(param(`${prefix}.gamma_1`, [D], init, layerId));
    out.push(param(`${prefix}.gamma_2`, [D], init, layerId));
  }
  return out;
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
   * Replace masked patch embeddings by `mask_token` (the symmetric student): `forward` then
   * takes a mask index, and `ps` must hold `mask_token [1, 1, D]`. Default false.
   */
  maskToken?: boolean;
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
  /** Output `[B, N, D]` (`[B, N, projDim]` with a projection head). */
  readonly out: Tensor;
  readonly #be: Backend;
  readonly #ps: ParamSet;
  readonly #emb: Tensor; // [B, L, D]
  readonly #embM: Tensor | null; // [B, L, D] with mask tokens (maskToken)
  readonly #clsFill: Tensor | null; // [D] = cls_token + pos_embed[0] (absolute position only)
  readonly #x0raw: Tensor | null; // [B, N, D] before norm_pre (preNorm)
  readonly #preMean: Tensor | null; // [B·N]
  readonly #preRstd: Tensor | null; // [B·N]
  readonly #xs: Tensor[]; // residual stream: trainable depth+1 buffers; frozen one, updated in place
  readonly #acts: BlockActs[];
  readonly #scratch: BlockScratch;
  readonly #bd: BlockDims;
  readonly #normOut: Tensor | null; // [B, N, D] final norm output before the head (projDim)
  readonly #normMean: Tensor;
  readonly #normRstd: Tensor;
  readonly #rel: RelPos | null; // shared relative position bias (relPosBias)
  readonly #relIdx: Tensor[]; // index, starts, positions (owned)
  readonly #dres: Tensor | null; // [B, N, D] residual gradient
  readonly #demb: Tensor | null; // [B·L, D]
  readonly #dembM: Tensor | null; // [B·L, D] (maskToken)
  readonly #dx0raw: Tensor | null; // [B, N, D] (preNorm)
  readonly #dnorm: Tensor | null; // [B, N, D] (projDim)
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
    const hasPos = cfg.posEmbed !== "none";
    const posName = `${this.opts.prefix}pos_embed`;
    this.#posGrad = hasPos && opts.trainable && ps.grads !== null &&
      ps.specs.some((s) => s.name === posName && s.trainable);
    const { B, N, trainable, label } = opts;
    const D = cfg.embedDim;
    const L = this.d.numPatches;
    if (cfg.projDim !== undefined && !opts.finalNorm) {
      throw new RangeError(
        `Cannot build encoder "${label}": a projection head (projDim) needs the final norm (finalNorm: true)`,
      );
    }
    if (opts.maskToken && !ps.has(`${this.opts.prefix}mask_token`)) {
      throw new RangeError(
        `Cannot build encoder "${label}" with mask tokens: its parameters have no "${this.opts.prefix}mask_token"`,
      );
    }
    const t = (shape: number[], name: string) => be.tensor(shape, "f32", `${label}.${name}`);
    const tIf = (on: boolean, shape: number[], name: string) => on ? t(shape, name) : null;
    this.patches = t([B, L, this.d.patchDim], "patches");
    this.#emb = t([B, L, D], "emb");
    this.#embM = tIf(opts.maskToken === true, [B, L, D], "embM");
    this.#clsFill = tIf(hasPos, [D], "clsFill");
    this.#x0raw = tIf(cfg.preNorm === true, [B, N, D], "x0raw");
    this.#preMean = tIf(cfg.preNorm === true, [B * N], "preMean");
    this.#preRstd = tIf(cfg.preNorm === true, [B * N], "preRstd");
    const nx = this.#keep ? cfg.depth + 1 : 1;
    this.#xs = Array.from({ length: nx }, (_, i) => t([B, N, D], `x${i}`));
    this.#bd = {
      B,
      N,
      D,
      NH: cfg.numHeads,
      hidden: this.d.hidden,
      act: cfg.act ?? "gelu",
      layerScale: cfg.layerScale !== undefined,
      eps: cfg.lnEps ?? LN_EPS,
    };
    const nActs = cfg.depth === 0 ? 0 : this.#keep ? cfg.depth : 1;
    this.#acts = Array.from(
      { length: nActs },
      (_, i) => allocBlockActs(be, this.#bd, `${label}.block${i}`),
    );
    this.#scratch = allocBlockScratch(be, this.#bd, trainable, `${label}.scratch`);
    this.#normMean = t([B * N], "normMean");
    this.#normRstd = t([B * N], "normRstd");
    const proj = cfg.projDim !== undefined;
    this.#normOut = tIf(proj, [B, N, D], "normOut");
    this.out = proj
      ? t([B, N, cfg.projDim!], "out")
      : opts.finalNorm
      ? t([B, N, D], "out")
      : this.#xs[this.#last()];
    this.#dres = tIf(trainable, [B, N, D], "dres");
    this.#demb = tIf(trainable, [B * L, D], "demb");
    this.#dembM = tIf(trainable && opts.maskToken === true, [B * L, D], "dembM");
    this.#dx0raw = tIf(trainable && cfg.preNorm === true, [B, N, D], "dx0raw");
    this.#dnorm = tIf(trainable && proj, [B, N, D], "dnorm");
    this.#relIdx = [];
    this.#rel = null;
    if (cfg.relPosBias) {
      if (N !== 1 + L) {
        throw new RangeError(
          `Cannot build encoder "${label}" with a relative position bias: it needs every token (N = 1 + L = ${
            1 + L
          }), current value is N = ${N}`,
        );
      }
      const ri = relPosIndex(this.d.grid, this.d.grid);
      const up = (data: Int32Array, name: string) => {
        const x = be.tensor([data.length], "i32", `${label}.${name}`);
        be.upload(x, data);
        this.#relIdx.push(x);
        return x;
      };
      const tableName = "rel_pos_bias.relative_position_bias_table";
      this.#rel = {
        table: this.#p(tableName),
        index: up(ri.index, "relIndex"),
        starts: up(ri.starts, "relStarts"),
        positions: up(ri.positions, "relPositions"),
        R: ri.R,
        dtable: trainable ? this.#g(tableName) : undefined,
      };
    }
  }

  /** Frees every buffer this encoder allocated (not the parameters: their set owns them). */
  dispose(): void {
    freeTensors(this.#be, [
      this.patches,
      this.#emb,
      this.#embM,
      this.#clsFill,
      this.#x0raw,
      this.#preMean,
      this.#preRstd,
      this.#xs,
      this.#acts,
      this.#scratch,
      this.#normOut,
      this.#normMean,
      this.#normRstd,
      this.#relIdx,
      this.out,
      this.#dres,
      this.#demb,
      this.#dembM,
      this.#dx0raw,
      this.#dnorm,
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
   * (students) the final norm, into {@link VitEncoder.out}. `drop[i]`: block i's drop-path
   * scales. `mask` (i32 `[B·L]`, encoders built with `maskToken`): per patch row `b·L + l`
   * itself, or −1 where the patch is masked and its embedding becomes `mask_token`.
   */
  forward(
    index: Tensor,
    drop: (DropScales | null)[] | null = null,
    mask: Tensor | null = null,
  ): void {
    const be = this.#be;
    const { B, N } = this.opts;
    const D = this.cfg.embedDim;
    const L = this.d.numPatches;
    this.#checkMask(mask);
    // emb [B, L, D] = patches · Wpeᵀ + bpe + pos[1:]
    linearForward(
      be,
      {
        out: this.#emb,
        inp: this.patches,
        weight: this.#p("patch_embed.proj.weight"),
        bias: this.#pOpt("patch_embed.proj.bias"),
      },
      { rows: B * L, inF: this.d.patchDim, outF: D },
    );
    let cls = view(this.#p("cls_token"), 0, [D]);
    if (this.#clsFill) {
      const pos = this.#p("pos_embed");
      be.add({ out: this.#emb, a: this.#emb, b: view(pos, D, [L * D]) });
      be.add({ out: this.#clsFill, a: cls, b: view(pos, 0, [D]) });
      cls = this.#clsFill;
    }
    // symmetric student: emb = emb·(1 − m) + mask_token·m, as a gather with fill
    let emb = this.#emb;
    if (this.#embM && mask) {
      be.gatherRows(
        { out: this.#embM, inp: this.#emb, index: mask, fill: view(this.#p("mask_token"), 0, [D]) },
        { rows: B * L, C: D },
      );
      emb = this.#embM;
    }
    // x0 [B, N, D] = gather(emb, index) with cls (+ pos[0]) where index < 0; then norm_pre
    const x0 = this.#x0raw ?? this.#xs[0];
    be.gatherRows({ out: x0, inp: emb, index, fill: cls }, { rows: B * N, C: D });
    if (this.#x0raw) {
      be.layernorm(
        {
          out: this.#xs[0],
          mean: this.#preMean!,
          rstd: this.#preRstd!,
          inp: this.#x0raw,
          weight: this.#p("norm_pre.weight"),
          bias: this.#p("norm_pre.bias"),
        },
        { rows: B * N, C: D, eps: this.cfg.lnEps ?? LN_EPS },
      );
    }
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
          rel: this.#rel,
          noGrad: !this.opts.trainable,
        },
        this.#bd,
      );
    }
    if (this.opts.finalNorm) {
      be.layernorm(
        {
          out: this.#normOut ?? this.out,
          mean: this.#normMean,
          rstd: this.#normRstd,
          inp: this.#x(this.cfg.depth),
          weight: this.#p("norm.weight"),
          bias: this.#p("norm.bias"),
        },
        { rows: B * N, C: D, eps: this.cfg.lnEps ?? LN_EPS },
      );
    }
    if (this.#normOut) {
      // out [B, N, projDim] = norm(x) · head.weightᵀ (CLIP: x @ proj)
      linearForward(
        be,
        { out: this.out, inp: this.#normOut, weight: this.#p("head.weight") },
        { rows: B * N, inF: D, outF: this.cfg.projDim! },
      );
    }
  }

  /**
   * Backward from `dout` (∂L/∂out, `[B, N, D]` or `[B, N, projDim]`) to every parameter
   * gradient; `index`, `drop` and `mask` must be the ones of the matching forward.
   */
  backward(
    dout: Tensor,
    index: Tensor,
    drop: (DropScales | null)[] | null = null,
    mask: Tensor | null = null,
  ): void {
    const be = this.#be;
    const ps = this.#ps;
    if (!this.#dres || !this.#demb) {
      throw new RangeError(`Encoder "${this.opts.label}" was built without gradients`);
    }
    this.#checkMask(mask);
    const { B, N } = this.opts;
    const D = this.cfg.embedDim;
    const L = this.d.numPatches;
    const d = this.#dres;
    let dNormOut = dout;
    if (this.#dnorm && this.#normOut) {
      linearBackward(
        be,
        {
          dinp: this.#dnorm,
          dweight: this.#g("head.weight"),
          dbias: null,
          dout,
          inp: this.#normOut,
          weight: this.#p("head.weight"),
        },
        { rows: B * N, inF: D, outF: this.cfg.projDim! },
      );
      dNormOut = this.#dnorm;
    }
    if (this.opts.finalNorm) {
      be.layernormBackward(
        {
          dinp: d,
          dweight: this.#g("norm.weight"),
          dbias: this.#g("norm.bias"),
          dout: dNormOut,
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
          rel: this.#rel,
        },
        this.#bd,
      );
    }
    // x0 = norm_pre(x0raw): dx0 = ∂L/∂x0raw
    let dx0 = d;
    if (this.#dx0raw && this.#x0raw) {
      be.layernormBackward(
        {
          dinp: this.#dx0raw,
          dweight: this.#g("norm_pre.weight"),
          dbias: this.#g("norm_pre.bias"),
          dout: d,
          inp: this.#x0raw,
          weight: this.#p("norm_pre.weight"),
          mean: this.#preMean!,
          rstd: this.#preRstd!,
        },
        { rows: B * N, C: D },
      );
      dx0 = this.#dx0raw;
    }
    // x0 = gather(emb, index, fill = cls + pos[0]): demb (masked rows 0), dcls += Σ cls rows
    const dE = this.#dembM && mask ? this.#dembM : this.#demb;
    be.gatherRowsBackward(
      { dinp: dE, dfill: view(this.#g("cls_token"), 0, [D]), dout: dx0, index },
      { rows: B * N, C: D },
    );
    if (this.#posGrad) {
      // trainable pos_embed (fine-tuning): dpos[0] += Σ cls rows (a second gather backward
      // rewrites dE with the same values)
      be.gatherRowsBackward(
        { dinp: dE, dfill: view(this.#g("pos_embed"), 0, [D]), dout: dx0, index },
        { rows: B * N, C: D },
      );
    }
    if (this.#dembM && mask) {
      // emb = gather(emb, mask, fill = mask_token): masked rows' gradient goes to mask_token
      be.gatherRowsBackward(
        {
          dinp: this.#demb,
          dfill: view(this.#g("mask_token"), 0, [D]),
          dout: this.#dembM,
          index: mask,
        },
        { rows: B * L, C: D },
      );
    }
    if (this.#posGrad) {
      // dpos[1:] += Σ_b demb[b] (a bias-grad over B)
      const dpos = this.#g("pos_embed");
      be.biasGrad({ dbias: view(dpos, D, [L * D]), dout: this.#demb }, { rows: B, C: L * D });
    }
    const hasBias = this.cfg.patchBias !== false;
    linearBackward(
      be,
      {
        dinp: null,
        dweight: this.#g("patch_embed.proj.weight"),
        dbias: hasBias ? this.#g("patch_embed.proj.bias") : null,
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

  #checkMask(mask: Tensor | null): void {
    if ((mask !== null) !== (this.#embM !== null)) {
      throw new RangeError(
        this.#embM
          ? `Encoder "${this.opts.label}" replaces masked patches by mask_token: pass the mask index`
          : `Encoder "${this.opts.label}" was built without maskToken: it takes no mask index`,
      );
    }
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
    return this.#keep ? this.cfg.depth : 0;
  }

  /** The residual stream after block i (frozen: the one buffer every block updates in place). */
  #x(i: number): Tensor {
    return this.#keep ? this.#xs[i] : this.#xs[0];
  }

  #name(n: string): string {
    return `${this.opts.prefix}${n}`;
  }

  #p(n: string): Tensor {
    return this.#ps.get(this.#name(n));
  }

  #pOpt(n: string): Tensor | undefined {
    return this.#ps.has(this.#name(n)) ? this.#p(n) : undefined;
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
