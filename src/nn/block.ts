/**
 * Pre-norm transformer block (DBOT_SPEC.md "Block"), explicit forward and backward:
 *
 *   x2 = x + DropPath(γ1 ⊙ proj(Attn(LN1(x))))
 *   y  = x2 + DropPath(γ2 ⊙ fc2(act(fc1(LN2(x2)))))
 *
 * Fused qkv with bias, output `[q|k|v]`, heads are contiguous D/NH slices,
 * scale HS^-0.5, LayerNorm eps 1e-6, exact erf GELU. No dropout.
 * Options (the symmetric BEiT student, the CLIP teacher; see {@link BlockDims}):
 * layer scale γ1, γ2 (`gamma_1`, `gamma_2`); BEiT's qkv bias `[q_bias | 0 | v_bias]`;
 * a relative position bias added to the logits, `softmax(scale·q·kᵀ + bias)`;
 * QuickGELU `x·σ(1.702x)` instead of GELU.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { view } from "../backend/backend.ts";
import type { ParamSet } from "./params.ts";
import { linearBackward, linearForward } from "./linear.ts";

/** LayerNorm epsilon everywhere in the ViT. */
export const LN_EPS = 1e-6;

/** Sizes of a block applied to `B` sequences of `N` tokens. */
export interface BlockDims {
  /** Batch. */
  B: number;
  /** Tokens per sequence (cls included). */
  N: number;
  /** Width. */
  D: number;
  /** Heads. */
  NH: number;
  /** MLP hidden width. */
  hidden: number;
  /** MLP activation (default `"gelu"`, exact erf GELU). */
  act?: "gelu" | "quickgelu";
  /** The block has layer scale `gamma_1`, `gamma_2` (allocate the pre-γ branches). */
  layerScale?: boolean;
  /** LayerNorm eps of norm1 and norm2 (default {@link LN_EPS}). */
  eps?: number;
}

/**
 * The shared relative position bias of a block (BEiT): the table (and, in the backward, its
 * gradient) and the fixed pair index with its inverse (see `relPosIndex`).
 */
export interface RelPos {
  /** `[R, NH]`. */
  table: Tensor;
  /** `[N·N]` i32. */
  index: Tensor;
  /** `[R + 1]` i32. */
  starts: Tensor;
  /** `[N·N]` i32. */
  positions: Tensor;
  /** Table rows. */
  R: number;
  /** `[R, NH]`: the table's gradient (backward only). */
  dtable?: Tensor;
}

/**
 * The block's parameters (or their gradients) as views. `qkvB` (timm) or `qBias` + `vBias`
 * (BEiT); `gamma1`, `gamma2` with layer scale.
 */
export interface BlockWeights {
  norm1w: Tensor;
  norm1b: Tensor;
  qkvW: Tensor;
  qkvB?: Tensor;
  qBias?: Tensor;
  vBias?: Tensor;
  gamma1?: Tensor;
  gamma2?: Tensor;
  projW: Tensor;
  projB: Tensor;
  norm2w: Tensor;
  norm2b: Tensor;
  fc1W: Tensor;
  fc1B: Tensor;
  fc2W: Tensor;
  fc2B: Tensor;
}

const NAMES: Record<keyof BlockWeights, string> = {
  norm1w: "norm1.weight",
  norm1b: "norm1.bias",
  qkvW: "attn.qkv.weight",
  qkvB: "attn.qkv.bias",
  qBias: "attn.q_bias",
  vBias: "attn.v_bias",
  gamma1: "gamma_1",
  gamma2: "gamma_2",
  projW: "attn.proj.weight",
  projB: "attn.proj.bias",
  norm2w: "norm2.weight",
  norm2b: "norm2.bias",
  fc1W: "mlp.fc1.weight",
  fc1B: "mlp.fc1.bias",
  fc2W: "mlp.fc2.weight",
  fc2B: "mlp.fc2.bias",
};

/** Optional entries of {@link BlockWeights}: present when the set has the parameter. */
const OPTIONAL = new Set<keyof BlockWeights>(["qkvB", "qBias", "vBias", "gamma1", "gamma2"]);

/** Views of block `prefix`'s parameters (`grad = true`: their gradients). */
export function blockWeights(ps: ParamSet, prefix: string, grad = false): BlockWeights {
  const out = {} as BlockWeights;
  for (const [k, n] of Object.entries(NAMES) as [keyof BlockWeights, string][]) {
    const name = `${prefix}.${n}`;
    if (OPTIONAL.has(k) && !ps.has(name)) continue;
    out[k] = grad ? ps.grad(name) : ps.get(name);
  }
  if (!out.qkvB && !(out.qBias && out.vBias)) {
    throw new RangeError(
      `Cannot build block "${prefix}": it needs attn.qkv.bias, or attn.q_bias and attn.v_bias`,
    );
  }
  return out;
}

/** Activations one block keeps for its backward pass. */
export interface BlockActs {
  ln1: Tensor; // [B, N, D]
  ln1Mean: Tensor; // [B·N]
  ln1Rstd: Tensor; // [B·N]
  qkv: Tensor; // [B, N, 3, NH, HS] qkv projection, read in place by the attention
  att: Tensor; // [B, NH, N, N] softmax output
  attnOut: Tensor; // [B, N, D] heads merged, input of proj
  x2: Tensor; // [B, N, D] residual stream after attention
  ln2: Tensor; // [B, N, D]
  ln2Mean: Tensor; // [B·N]
  ln2Rstd: Tensor; // [B·N]
  pre: Tensor; // [B, N, hidden] fc1 output before GELU
  h: Tensor; // [B, N, hidden] GELU output
  ls1: Tensor; // [B, N, D] proj output before γ1 (layer scale only, else [0])
  ls2: Tensor; // [B, N, D] fc2 output before γ2 (layer scale only, else [0])
}

/** Temporaries shared by all blocks of the same (B, N, D) (forward and backward). */
export interface BlockScratch {
  branch: Tensor; // [B, N, D] proj / fc2 output, and their gradients
  dD: Tensor; // [B, N, D]
  dHidden: Tensor; // [B, N, hidden]
  dHidden2: Tensor; // [B, N, hidden]
  dLogits: Tensor; // [B, NH, N, N] gradient of the attention logits
  dqkv: Tensor; // [B, N, 3D]
  qkvBias: Tensor; // [3D] = [q_bias | 0 | v_bias] (BEiT qkv)
  dqkvBias: Tensor; // [3D] its gradient (backward)
}

/** Allocates one block's activation cache (with `d.layerScale`, the branches before γ too). */
export function allocBlockActs(be: Backend, d: BlockDims, label: string): BlockActs {
  const { B, N, D, NH, hidden, layerScale = false } = d;
  const t = (shape: number[], name: string) => be.tensor(shape, "f32", `${label}.${name}`);
  return {
    ln1: t([B, N, D], "ln1"),
    ln1Mean: t([B * N], "ln1Mean"),
    ln1Rstd: t([B * N], "ln1Rstd"),
    qkv: t([B, N, 3 * D], "qkv"),
    att: t([B, NH, N, N], "att"),
    attnOut: t([B, N, D], "attnOut"),
    x2: t([B, N, D], "x2"),
    ln2: t([B, N, D], "ln2"),
    ln2Mean: t([B * N], "ln2Mean"),
    ln2Rstd: t([B * N], "ln2Rstd"),
    pre: t([B, N, hidden], "pre"),
    h: t([B, N, hidden], "h"),
    ls1: layerScale ? t([B, N, D], "ls1") : be.tensor([0]),
    ls2: layerScale ? t([B, N, D], "ls2") : be.tensor([0]),
  };
}

/** Allocates the temporaries (backward ones only when `backward`). */
export function allocBlockScratch(
  be: Backend,
  d: BlockDims,
  backward: boolean,
  label: string,
): BlockScratch {
  const { B, N, D, NH, hidden } = d;
  const t = (shape: number[], name: string) =>
    backward || !name.startsWith("d")
      ? be.tensor(shape, "f32", `${label}.${name}`)
      : be.tensor([0]);
  return {
    branch: t([B, N, D], "branch"),
    dD: t([B, N, D], "dD"),
    dHidden: t([B, N, hidden], "dHidden"),
    dHidden2: t([B, N, hidden], "dHidden2"),
    dLogits: t([B, NH, N, N], "dLogits"),
    dqkv: t([B, N, 3 * D], "dqkv"),
    qkvBias: t([3 * D], "qkvBias"),
    dqkvBias: t([3 * D], "dqkvBias"),
  };
}

/** Per-sample drop-path scales `[B]` (0 or 1/keep) for the two residual branches. */
export interface DropScales {
  /** Scales of the attention branch. */
  attn: Tensor;
  /** Scales of the MLP branch. */
  mlp: Tensor;
}

/**
 * `out [B, N, D] = block(inp [B, N, D])`, caching what the backward needs in `acts`
 * (`noGrad`: a frozen teacher's forward, which skips keeping the MLP's pre-GELU values).
 * `rel`: the shared relative position bias (BEiT), added to the logits before softmax.
 *
 * In place (`out` = `inp`, only with `noGrad`: the backward would need `inp`): the residual
 * stream is updated where it lies, each branch's last Linear adding its product to it
 * (`accumulate`) instead of writing the branch for a separate add (with layer scale or drop
 * path, the add runs in place).
 */
export function blockForward(
  be: Backend,
  { out, inp, w, acts, s, drop, rel = null, noGrad = false }: {
    out: Tensor;
    inp: Tensor;
    w: BlockWeights;
    acts: BlockActs;
    s: BlockScratch;
    drop: DropScales | null;
    rel?: RelPos | null;
    noGrad?: boolean;
  },
  d: BlockDims,
): void {
  const { B, N, D, NH, hidden } = d;
  const HS = D / NH;
  const rows = B * N;
  const scale = 1 / Math.sqrt(HS);
  const inPlace = out === inp;
  if (inPlace && !noGrad) {
    throw new RangeError(
      "Cannot run blockForward in place (out = inp) with gradients: the backward needs inp; pass noGrad or another out",
    );
  }
  // x2 [B, N, D]: the stream after the attention branch (in place: inp itself)
  const x2 = inPlace ? inp : acts.x2;
  // attention branch
  be.layernorm(
    {
      out: acts.ln1,
      mean: acts.ln1Mean,
      rstd: acts.ln1Rstd,
      inp,
      weight: w.norm1w,
      bias: w.norm1b,
    },
    { rows, C: D, eps: d.eps ?? LN_EPS },
  );
  linearForward(be, { out: acts.qkv, inp: acts.ln1, weight: w.qkvW, bias: qkvBias(be, w, s, D) }, {
    rows,
    inF: D,
    outF: 3 * D,
  });
  // att = softmax(scale · q·kᵀ + bias) ; attnOut = att · v, heads merged
  be.attention(
    {
      out: acts.attnOut,
      att: acts.att,
      qkv: acts.qkv,
      relTable: rel?.table,
      relIndex: rel?.index,
    },
    { B, N, NH, HS, scale },
  );
  residualBranch(be, {
    out: x2,
    res: inp,
    inp: acts.attnOut,
    weight: w.projW,
    bias: w.projB,
    gamma: w.gamma1,
    ls: acts.ls1,
    drop: drop?.attn,
    branch: s.branch,
  }, { B, N, D, inF: D });
  // MLP branch
  be.layernorm(
    {
      out: acts.ln2,
      mean: acts.ln2Mean,
      rstd: acts.ln2Rstd,
      inp: x2,
      weight: w.norm2w,
      bias: w.norm2b,
    },
    { rows, C: D, eps: d.eps ?? LN_EPS },
  );
  if (d.act === "quickgelu") {
    // fc1 into pre, then QuickGELU (no fused epilogue for it)
    linearForward(be, { out: acts.pre, inp: acts.ln2, weight: w.fc1W, bias: w.fc1B }, {
      rows,
      inF: D,
      outF: hidden,
    });
    be.quickGelu({ out: acts.h, inp: acts.pre });
  } else {
    linearForward(
      be,
      {
        out: acts.h,
        pre: noGrad ? undefined : acts.pre,
        inp: acts.ln2,
        weight: w.fc1W,
        bias: w.fc1B,
      },
      { rows, inF: D, outF: hidden },
      true,
    );
  }
  residualBranch(be, {
    out,
    res: x2,
    inp: acts.h,
    weight: w.fc2W,
    bias: w.fc2B,
    gamma: w.gamma2,
    ls: acts.ls2,
    drop: drop?.mlp,
    branch: s.branch,
  }, { B, N, D, inF: hidden });
}

/**
 * `out [B, N, D] = res + dp(γ ⊙ (inp · weightᵀ + bias))`, a block's residual branch. In place
 * (`out` = `res`) without γ or drop path, the product adds itself into the stream (`accumulate`);
 * otherwise the branch goes through `ls` (with γ) and `branch`, then one add (in place or not).
 */
function residualBranch(
  be: Backend,
  { out, res, inp, weight, bias, gamma, ls, drop, branch }: {
    out: Tensor;
    res: Tensor;
    inp: Tensor;
    weight: Tensor;
    bias?: Tensor;
    gamma?: Tensor;
    ls: Tensor;
    drop?: Tensor;
    branch: Tensor;
  },
  { B, N, D, inF }: { B: number; N: number; D: number; inF: number },
): void {
  const rows = B * N;
  const adds = out === res && !gamma && !drop;
  const y = adds ? out : gamma ? ls : branch; // [B, N, D]
  linearForward(be, { out: y, inp, weight, bias }, { rows, inF, outF: D }, false, adds);
  if (adds) return;
  if (gamma) be.scaleCols({ out: branch, inp: y, scale: gamma }, { rows, C: D });
  if (drop) be.scaleRows({ out: branch, inp: branch, scale: drop }, { rows: B, C: N * D });
  be.add({ out, a: res, b: branch });
}

/** The qkv bias `[3D]`: timm's `qkv.bias`, or BEiT's `[q_bias | 0 | v_bias]` built in `s.qkvBias`. */
function qkvBias(be: Backend, w: BlockWeights, s: BlockScratch, D: number): Tensor {
  if (w.qkvB) return w.qkvB;
  // the middle third (k) is never written: it stays 0
  be.copy(view(s.qkvBias, 0, [D]), w.qBias!);
  be.copy(view(s.qkvBias, 2 * D, [D]), w.vBias!);
  return s.qkvBias;
}

/**
 * Backward through the block, in place on the residual gradient: `d [B, N, D]` holds
 * ∂L/∂out on entry and ∂L/∂inp on exit. Parameter gradients accumulate into `g` (and the
 * relative position bias table's into `rel.dtable`).
 */
export function blockBackward(
  be: Backend,
  { d, inp, w, g, acts, s, drop, rel = null }: {
    d: Tensor;
    inp: Tensor;
    w: BlockWeights;
    g: BlockWeights;
    acts: BlockActs;
    s: BlockScratch;
    drop: DropScales | null;
    rel?: RelPos | null;
  },
  dims: BlockDims,
): void {
  const { B, N, D, NH, hidden } = dims;
  const HS = D / NH;
  const rows = B * N;
  const scale = 1 / Math.sqrt(HS);
  // MLP branch: y = x2 + dp(γ2 ⊙ fc2(act(fc1(ln2))))
  let dBranch = d;
  if (drop) {
    be.scaleRows({ out: s.branch, inp: d, scale: drop.mlp }, { rows: B, C: N * D });
    dBranch = s.branch;
  }
  if (w.gamma2) {
    be.scaleColsBackward(
      { dinp: s.branch, dscale: g.gamma2!, dout: dBranch, inp: acts.ls2, scale: w.gamma2 },
      { rows, C: D },
    );
    dBranch = s.branch;
  }
  linearBackward(
    be,
    { dinp: s.dHidden, dweight: g.fc2W, dbias: g.fc2B, dout: dBranch, inp: acts.h, weight: w.fc2W },
    { rows, inF: hidden, outF: D },
  );
  if (dims.act === "quickgelu") {
    be.quickGeluBackward({ dinp: s.dHidden2, dout: s.dHidden, inp: acts.pre });
  } else {
    be.geluBackward({ dinp: s.dHidden2, dout: s.dHidden, inp: acts.pre });
  }
  linearBackward(
    be,
    { dinp: s.dD, dweight: g.fc1W, dbias: g.fc1B, dout: s.dHidden2, inp: acts.ln2, weight: w.fc1W },
    { rows, inF: D, outF: hidden },
  );
  be.layernormBackward(
    {
      dinp: d,
      dweight: g.norm2w,
      dbias: g.norm2b,
      dout: s.dD,
      inp: acts.x2,
      weight: w.norm2w,
      mean: acts.ln2Mean,
      rstd: acts.ln2Rstd,
    },
    { rows, C: D, accumulate: true },
  ); // d = ∂L/∂x2
  // attention branch: x2 = x + dp(γ1 ⊙ proj(attn(ln1)))
  dBranch = d;
  if (drop) {
    be.scaleRows({ out: s.branch, inp: d, scale: drop.attn }, { rows: B, C: N * D });
    dBranch = s.branch;
  }
  if (w.gamma1) {
    be.scaleColsBackward(
      { dinp: s.branch, dscale: g.gamma1!, dout: dBranch, inp: acts.ls1, scale: w.gamma1 },
      { rows, C: D },
    );
    dBranch = s.branch;
  }
  linearBackward(
    be,
    {
      dinp: s.dD,
      dweight: g.projW,
      dbias: g.projB,
      dout: dBranch,
      inp: acts.attnOut,
      weight: w.projW,
    },
    { rows, inF: D, outF: D },
  );
  be.attentionBackward(
    { dqkv: s.dqkv, dlogits: s.dLogits, dout: s.dD, qkv: acts.qkv, att: acts.att },
    { B, N, NH, HS, scale },
  );
  if (rel) {
    if (!rel.dtable) throw new RangeError("Cannot run blockBackward: rel.dtable is missing");
    be.relPosBiasBackward(
      {
        dtable: rel.dtable,
        dout: s.dLogits,
        index: rel.index,
        starts: rel.starts,
        positions: rel.positions,
      },
      { B, NH, N, R: rel.R, scale: 1 / scale },
    );
  }
  const dqkvBias = g.qkvB ?? s.dqkvBias;
  if (!g.qkvB) be.fill(s.dqkvBias, 0);
  linearBackward(
    be,
    { dinp: s.dD, dweight: g.qkvW, dbias: dqkvBias, dout: s.dqkv, inp: acts.ln1, weight: w.qkvW },
    { rows, inF: D, outF: 3 * D },
  );
  if (!g.qkvB) {
    // BEiT: q_bias and v_bias take their thirds of the qkv bias gradient; k's is dropped
    be.add({ out: g.qBias!, a: g.qBias!, b: view(s.dqkvBias, 0, [D]) });
    be.add({ out: g.vBias!, a: g.vBias!, b: view(s.dqkvBias, 2 * D, [D]) });
  }
  be.layernormBackward(
    {
      dinp: d,
      dweight: g.norm1w,
      dbias: g.norm1b,
      dout: s.dD,
      inp,
      weight: w.norm1w,
      mean: acts.ln1Mean,
      rstd: acts.ln1Rstd,
    },
    { rows, C: D, accumulate: true },
  ); // d = ∂L/∂x
}
