/**
 * Argument checks of every op, shared by the CPU reference ops (typed arrays), the CPU
 * backend and the WebGPU ops (tensors), so both backends reject the same calls with the
 * same words: `Cannot run <op>: <what is wrong>, current value is <value>`. `RangeError`
 * for sizes and dims, `TypeError` for dtypes. Checks that need the data (index bounds,
 * offsets order) stay with the CPU ops that read it.
 *
 * @module
 */
import type {
  AdamwBufs,
  AdamwDims,
  AddBufs,
  AttentionBackwardBufs,
  AttentionBufs,
  AttentionDims,
  BiasGradBufs,
  CrossEntropyBufs,
  DType,
  GatherRowsBackwardBufs,
  GatherRowsBufs,
  GeluBackwardBufs,
  GradNormBufs,
  GradNormDims,
  HeadDims,
  LayernormBackwardBufs,
  LayernormBufs,
  MatmulBufs,
  MatmulDims,
  MergeHeadsBackwardBufs,
  NormDims,
  OutInpBufs,
  PatchifyDims,
  RelPosBiasBackwardBufs,
  RelPosBiasBufs,
  RelPosDims,
  RowLossBufs,
  RowsDims,
  ScaleColsBackwardBufs,
  ScaleColsBufs,
  ScaleRowsBufs,
  SmoothL1Dims,
  SoftmaxBackwardBufs,
  SplitHeadsBackwardBufs,
  SplitHeadsBufs,
  Tensor,
} from "./backend.ts";

/** What a check measures: a tensor (its `size`) or an array (its `length`). */
export type Sized = Tensor | ArrayLike<number>;

/** Elements of `x`. */
function count(x: Sized): number {
  return "storage" in x ? x.size : x.length;
}

/** Throws a `RangeError` with `msg()` unless `ok` (the message is built only on failure). */
export function check(ok: boolean, msg: () => string): void {
  if (!ok) throw new RangeError(msg());
}

/**
 * Checks every entry of `dims` is an integer `>= min` (default 0).
 *
 * @example
 * ```ts
 * import { checkDims } from "./checks.ts";
 * checkDims("softmax", { rows: 2, C: 3 });
 * ```
 */
export function checkDims(op: string, dims: Record<string, number>, min = 0): void {
  for (const [k, v] of Object.entries(dims)) {
    check(
      Number.isInteger(v) && v >= min,
      () => `Cannot run ${op}: ${k} must be an integer >= ${min}, current value is ${v}`,
    );
  }
}

/**
 * Checks `x` has `size` elements; `what` names the size in the message.
 *
 * @example
 * ```ts
 * import { checkSize } from "./checks.ts";
 * checkSize("layernorm", "mean", new Float32Array(7), 7, "rows = ");
 * // with 6 elements: "Cannot run layernorm: mean must have rows = 7 elements, current value is 6"
 * ```
 */
export function checkSize(op: string, name: string, x: Sized, size: number, what = ""): void {
  const n = count(x);
  check(
    n === size,
    () =>
      `Cannot run ${op}: ${name} must have ${what}${size} element${
        size === 1 ? "" : "s"
      }, current value is ${n}`,
  );
}

/** Checks `x` holds whole rows of `C` elements; returns the row count (0 when `C` is 0). */
export function checkRows(op: string, name: string, x: Sized, C: number): number {
  const n = count(x);
  const rows = C === 0 ? 0 : n / C;
  check(
    Number.isInteger(rows),
    () => `Cannot run ${op}: ${name} must hold whole rows of C = ${C}, current value is ${n}`,
  );
  return rows;
}

/** Throws a `TypeError` unless `t` has dtype `dtype`. */
export function checkDtype(op: string, name: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype) {
    throw new TypeError(`Cannot run ${op}: ${name} must be ${dtype}, current dtype is ${t.dtype}`);
  }
}

/** Throws a `TypeError` unless every tensor of `ts` (keyed by name) is f32. */
export function checkF32(op: string, ts: Record<string, Tensor | undefined>): void {
  for (const [name, t] of Object.entries(ts)) if (t) checkDtype(op, name, t, "f32");
}

// ---- one check per op (see `Backend` for the shapes) ------------------------------------

/** `Backend.matmul`: dims, the flag contract, and every operand's size. */
export function checkMatmul(b: MatmulBufs<Sized>, d: MatmulDims): void {
  const op = "matmul";
  const { M, N, K, batch = 1 } = d;
  checkDims(op, { M, N, K, batch });
  check(
    !(d.accumulate && d.gelu),
    () => `Cannot run ${op}: gelu and accumulate cannot be combined`,
  );
  check(!b.pre || !!d.gelu, () => `Cannot run ${op}: pre is only written with gelu, which is off`);
  checkSize(op, "out", b.out, batch * M * N, "batch·M·N = ");
  checkSize(op, "a", b.a, batch * M * K, "batch·M·K = ");
  checkSize(op, "b", b.b, batch * K * N, "batch·K·N = ");
  if (b.bias) checkSize(op, "bias", b.bias, N, "N = ");
  if (b.pre) checkSize(op, "pre", b.pre, batch * M * N, "batch·M·N = ");
}

/** `Backend.biasGrad`. */
export function checkBiasGrad(b: BiasGradBufs<Sized>, { rows, C }: RowsDims): void {
  const op = "biasGrad";
  checkDims(op, { rows, C });
  checkSize(op, "dbias", b.dbias, C, "C = ");
  checkSize(op, "dout", b.dout, rows * C, "rows·C = ");
}

/** `Backend.add`: `out` as long as `a`, `b`'s length divides `a`'s. */
export function checkAdd(b: AddBufs<Sized>): void {
  const op = "add";
  const [n, m] = [count(b.a), count(b.b)];
  checkSize(op, "out", b.out, n, "a's ");
  check(
    m === 0 ? n === 0 : n % m === 0,
    () =>
      `Cannot run ${op}: the length of b must divide the length of a, current values are ${m} and ${n}`,
  );
}

/** `Backend.gelu`. */
export function checkGelu(b: OutInpBufs<Sized>): void {
  checkSize("gelu", "out", b.out, count(b.inp), "inp's ");
}

/** `Backend.geluBackward`. */
export function checkGeluBackward(b: GeluBackwardBufs<Sized>): void {
  const n = count(b.inp);
  checkSize("geluBackward", "dinp", b.dinp, n, "inp's ");
  checkSize("geluBackward", "dout", b.dout, n, "inp's ");
}

/** `Backend.quickGelu`. */
export function checkQuickGelu(b: OutInpBufs<Sized>): void {
  checkSize("quickGelu", "out", b.out, count(b.inp), "inp's ");
}

/** `Backend.quickGeluBackward`. */
export function checkQuickGeluBackward(b: GeluBackwardBufs<Sized>): void {
  const n = count(b.inp);
  checkSize("quickGeluBackward", "dinp", b.dinp, n, "inp's ");
  checkSize("quickGeluBackward", "dout", b.dout, n, "inp's ");
}

/** `Backend.scaleCols`. */
export function checkScaleCols(b: ScaleColsBufs<Sized>, { rows, C }: RowsDims): void {
  const op = "scaleCols";
  checkDims(op, { rows, C });
  checkSize(op, "out", b.out, rows * C, "rows·C = ");
  checkSize(op, "inp", b.inp, rows * C, "rows·C = ");
  checkSize(op, "scale", b.scale, C, "C = ");
}

/** `Backend.scaleColsBackward`. */
export function checkScaleColsBackward(
  b: ScaleColsBackwardBufs<Sized>,
  { rows, C }: RowsDims,
): void {
  const op = "scaleColsBackward";
  checkDims(op, { rows, C });
  for (const k of ["dinp", "dout", "inp"] as const) checkSize(op, k, b[k], rows * C, "rows·C = ");
  checkSize(op, "dscale", b.dscale, C, "C = ");
  checkSize(op, "scale", b.scale, C, "C = ");
}

/** `Backend.relPosBias` and its backward's shared dims. */
function checkRelPosDims(op: string, { B, NH, N, R, scale }: RelPosDims): void {
  checkDims(op, { B, NH, N, R });
  check(
    Number.isFinite(scale),
    () => `Cannot run ${op}: scale must be finite, current value is ${scale}`,
  );
}

/** `Backend.relPosBias`. */
export function checkRelPosBias(b: RelPosBiasBufs<Sized>, d: RelPosDims): void {
  const op = "relPosBias";
  checkRelPosDims(op, d);
  const { B, NH, N, R } = d;
  checkSize(op, "out", b.out, B * NH * N * N, "B·NH·N·N = ");
  checkSize(op, "inp", b.inp, B * NH * N * N, "B·NH·N·N = ");
  checkSize(op, "table", b.table, R * NH, "R·NH = ");
  checkSize(op, "index", b.index, N * N, "N·N = ");
}

/** `Backend.relPosBiasBackward`. */
export function checkRelPosBiasBackward(b: RelPosBiasBackwardBufs<Sized>, d: RelPosDims): void {
  const op = "relPosBiasBackward";
  checkRelPosDims(op, d);
  const { B, NH, N, R } = d;
  checkSize(op, "dtable", b.dtable, R * NH, "R·NH = ");
  checkSize(op, "dout", b.dout, B * NH * N * N, "B·NH·N·N = ");
  checkSize(op, "index", b.index, N * N, "N·N = ");
  checkSize(op, "starts", b.starts, R + 1, "R + 1 = ");
  checkSize(op, "positions", b.positions, N * N, "N·N = ");
}

/** `Backend.scaleRows`. */
export function checkScaleRows(b: ScaleRowsBufs<Sized>, { rows, C }: RowsDims): void {
  const op = "scaleRows";
  checkDims(op, { rows, C });
  checkSize(op, "out", b.out, rows * C, "rows·C = ");
  checkSize(op, "inp", b.inp, rows * C, "rows·C = ");
  checkSize(op, "scale", b.scale, rows, "rows = ");
}

/** `Backend.layernorm`. */
export function checkLayernorm(b: LayernormBufs<Sized>, { rows, C }: NormDims): void {
  const op = "layernorm";
  checkDims(op, { rows, C });
  checkSize(op, "out", b.out, rows * C, "rows·C = ");
  checkSize(op, "inp", b.inp, rows * C, "rows·C = ");
  checkSize(op, "mean", b.mean, rows, "rows = ");
  checkSize(op, "rstd", b.rstd, rows, "rows = ");
  checkSize(op, "weight", b.weight, C, "C = ");
  checkSize(op, "bias", b.bias, C, "C = ");
}

/** `Backend.layernormBackward`. */
export function checkLayernormBackward(
  b: LayernormBackwardBufs<Sized>,
  { rows, C }: RowsDims,
): void {
  const op = "layernormBackward";
  checkDims(op, { rows, C });
  checkSize(op, "dinp", b.dinp, rows * C, "rows·C = ");
  checkSize(op, "dout", b.dout, rows * C, "rows·C = ");
  checkSize(op, "inp", b.inp, rows * C, "rows·C = ");
  checkSize(op, "dweight", b.dweight, C, "C = ");
  checkSize(op, "dbias", b.dbias, C, "C = ");
  checkSize(op, "weight", b.weight, C, "C = ");
  checkSize(op, "mean", b.mean, rows, "rows = ");
  checkSize(op, "rstd", b.rstd, rows, "rows = ");
}

/** `Backend.standardizeRows`: `C >= 2` (the unbiased variance needs two samples). */
export function checkStandardizeRows(b: OutInpBufs<Sized>, { rows, C }: NormDims): void {
  const op = "standardizeRows";
  checkDims(op, { rows });
  checkDims(op, { C }, 2);
  checkSize(op, "out", b.out, rows * C, "rows·C = ");
  checkSize(op, "inp", b.inp, rows * C, "rows·C = ");
}

/** `Backend.softmax`. */
export function checkSoftmax(b: OutInpBufs<Sized>, { rows, C }: RowsDims): void {
  const op = "softmax";
  checkDims(op, { rows, C });
  checkSize(op, "out", b.out, rows * C, "rows·C = ");
  checkSize(op, "inp", b.inp, rows * C, "rows·C = ");
}

/** `Backend.softmaxBackward`. */
export function checkSoftmaxBackward(b: SoftmaxBackwardBufs<Sized>, { rows, C }: RowsDims): void {
  const op = "softmaxBackward";
  checkDims(op, { rows, C });
  checkSize(op, "dinp", b.dinp, rows * C, "rows·C = ");
  checkSize(op, "dout", b.dout, rows * C, "rows·C = ");
  checkSize(op, "out", b.out, rows * C, "rows·C = ");
}

/** `Backend.splitHeads`. */
export function checkSplitHeads(b: SplitHeadsBufs<Sized>, d: HeadDims): void {
  checkQkv("splitHeads", ["q", "k", "v", "qkv"], [b.q, b.k, b.v, b.qkv], d);
}

/** `Backend.splitHeadsBackward`. */
export function checkSplitHeadsBackward(b: SplitHeadsBackwardBufs<Sized>, d: HeadDims): void {
  checkQkv("splitHeadsBackward", ["dq", "dk", "dv", "dqkv"], [b.dq, b.dk, b.dv, b.dqkv], d);
}

function checkQkv(op: string, names: string[], xs: Sized[], { B, N, NH, HS }: HeadDims): void {
  checkDims(op, { B, N, NH, HS });
  const per = B * NH * N * HS;
  for (let i = 0; i < 3; i++) checkSize(op, names[i], xs[i], per, "B·NH·N·HS = ");
  checkSize(op, names[3], xs[3], 3 * per, "B·N·3·NH·HS = ");
}

/** `Backend.attention`. */
export function checkAttention(b: AttentionBufs<Sized>, d: AttentionDims): void {
  const op = "attention";
  checkAttentionDims(op, d);
  const { B, N, NH, HS } = d;
  checkSize(op, "out", b.out, B * N * NH * HS, "B·N·NH·HS = ");
  checkSize(op, "att", b.att, B * NH * N * N, "B·NH·N·N = ");
  checkSize(op, "qkv", b.qkv, 3 * B * N * NH * HS, "B·N·3·NH·HS = ");
  if (!b.relTable !== !b.relIndex) {
    throw new RangeError(
      `Cannot run attention: relTable and relIndex go together, current values are ` +
        `${b.relTable ? "a table" : "no table"} and ${b.relIndex ? "an index" : "no index"}`,
    );
  }
  if (b.relIndex) checkSize(op, "relIndex", b.relIndex, N * N, "N·N = ");
  if (b.relTable && count(b.relTable) % NH !== 0) {
    throw new RangeError(
      `Cannot run attention: relTable must be [R, NH] with NH = ${NH}, current size is ${
        count(b.relTable)
      }`,
    );
  }
}

/** `Backend.attentionBackward`. */
export function checkAttentionBackward(b: AttentionBackwardBufs<Sized>, d: AttentionDims): void {
  const op = "attentionBackward";
  checkAttentionDims(op, d);
  const { B, N, NH, HS } = d;
  checkSize(op, "dout", b.dout, B * N * NH * HS, "B·N·NH·HS = ");
  for (const [name, t] of [["att", b.att], ["dlogits", b.dlogits]] as const) {
    checkSize(op, name, t, B * NH * N * N, "B·NH·N·N = ");
  }
  for (const [name, t] of [["qkv", b.qkv], ["dqkv", b.dqkv]] as const) {
    checkSize(op, name, t, 3 * B * N * NH * HS, "B·N·3·NH·HS = ");
  }
}

function checkAttentionDims(op: string, d: AttentionDims): void {
  checkDims(op, { B: d.B, N: d.N, NH: d.NH, HS: d.HS });
  if (!Number.isFinite(d.scale) || d.scale <= 0) {
    throw new RangeError(
      `Cannot run ${op}: scale must be a positive finite number, current value is ${d.scale}`,
    );
  }
}

/** `Backend.mergeHeads`. */
export function checkMergeHeads(b: OutInpBufs<Sized>, d: HeadDims): void {
  checkHeads("mergeHeads", ["out", "inp"], [b.out, b.inp], d);
}

/** `Backend.mergeHeadsBackward`. */
export function checkMergeHeadsBackward(b: MergeHeadsBackwardBufs<Sized>, d: HeadDims): void {
  checkHeads("mergeHeadsBackward", ["dout", "dinp"], [b.dout, b.dinp], d);
}

function checkHeads(op: string, names: string[], xs: Sized[], { B, N, NH, HS }: HeadDims): void {
  checkDims(op, { B, N, NH, HS });
  for (let i = 0; i < 2; i++) checkSize(op, names[i], xs[i], B * N * NH * HS, "B·N·NH·HS = ");
}

/** `Backend.gatherRows`; returns the rows of `inp`. */
export function checkGatherRows(b: GatherRowsBufs<Sized>, { rows, C }: RowsDims): number {
  const op = "gatherRows";
  checkDims(op, { rows, C });
  checkSize(op, "out", b.out, rows * C, "rows·C = ");
  checkSize(op, "index", b.index, rows, "rows = ");
  if (b.fill) checkSize(op, "fill", b.fill, C, "C = ");
  return checkRows(op, "inp", b.inp, C);
}

/** `Backend.gatherRowsBackward`; returns the rows of `dinp`. */
export function checkGatherRowsBackward(
  b: GatherRowsBackwardBufs<Sized>,
  { rows, C }: RowsDims,
): number {
  const op = "gatherRowsBackward";
  checkDims(op, { rows, C });
  checkSize(op, "dout", b.dout, rows * C, "rows·C = ");
  checkSize(op, "index", b.index, rows, "rows = ");
  if (b.dfill) checkSize(op, "dfill", b.dfill, C, "C = ");
  return checkRows(op, "dinp", b.dinp, C);
}

/** `Backend.patchify`. */
export function checkPatchify(b: OutInpBufs<Sized>, { B, C, H, W, P }: PatchifyDims): void {
  const op = "patchify";
  checkDims(op, { B, C, H, W });
  checkDims(op, { P }, 1);
  check(
    H % P === 0 && W % P === 0,
    () =>
      `Cannot run ${op}: H and W must be divisible by P, current values are ${H}, ${W} and ${P}`,
  );
  checkSize(op, "out", b.out, B * C * H * W, "B·C·H·W = ");
  checkSize(op, "inp", b.inp, B * C * H * W, "B·C·H·W = ");
}

/** `Backend.smoothL1Loss` (with `beta`) and `Backend.cosineLoss`. */
export function checkRowLoss(
  op: "smoothL1Loss" | "cosineLoss",
  b: RowLossBufs<Sized>,
  d: RowsDims | SmoothL1Dims,
): void {
  const { rows, C } = d;
  checkDims(op, { rows, C });
  if ("beta" in d) {
    check(d.beta > 0, () => `Cannot run ${op}: beta must be > 0, current value is ${d.beta}`);
  }
  checkSize(op, "loss", b.loss, 1);
  checkSize(op, "dinp", b.dinp, rows * C, "rows·C = ");
  checkSize(op, "inp", b.inp, rows * C, "rows·C = ");
  checkSize(op, "target", b.target, rows * C, "rows·C = ");
  checkSize(op, "weight", b.weight, rows, "rows = ");
}

/** `Backend.crossEntropyLoss`. */
export function checkCrossEntropy(b: CrossEntropyBufs<Sized>, { rows, C }: RowsDims): void {
  const op = "crossEntropyLoss";
  checkDims(op, { rows, C });
  checkSize(op, "loss", b.loss, 1);
  checkSize(op, "dlogits", b.dlogits, rows * C, "rows·C = ");
  checkSize(op, "logits", b.logits, rows * C, "rows·C = ");
  checkSize(op, "target", b.target, rows * C, "rows·C = ");
}

/** `Backend.gradNorm`. */
export function checkGradNorm(b: GradNormBufs<Sized>, { maxNorm }: GradNormDims): void {
  const op = "gradNorm";
  checkSize(op, "norm", b.norm, 1);
  checkSize(op, "clipScale", b.clipScale, 1);
  check(maxNorm > 0, () => `Cannot run ${op}: maxNorm must be > 0, current value is ${maxNorm}`);
}

/** `Backend.adamw`; returns the segment count `S`. */
export function checkAdamw(b: AdamwBufs<Sized>, { step }: AdamwDims): number {
  const op = "adamw";
  const n = count(b.param);
  checkSize(op, "grad", b.grad, n, "param's ");
  checkSize(op, "m", b.m, n, "param's ");
  checkSize(op, "v", b.v, n, "param's ");
  check(
    count(b.offsets) >= 1,
    () => `Cannot run ${op}: offsets must have S+1 >= 1 elements, current value is 0`,
  );
  const S = count(b.offsets) - 1;
  checkSize(op, "hyper", b.hyper, 2 * S, "2·S = ");
  if (b.clipScale) checkSize(op, "clipScale", b.clipScale, 1);
  checkDims(op, { step }, 1);
  return S;
}
