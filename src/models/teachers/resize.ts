/**
 * A teacher at another resolution or patch size: its input and its position embeddings
 * resized to the student's token grid.
 *
 * - Images: the student's crop `[B, C, S, S]` resized to the teacher's `T` like torchvision
 *   `Resize(T, BICUBIC, antialias=True)` (= PIL's bicubic: cubic a = −0.5, support widened by
 *   the scale when downsizing, weights normalised), as two matmuls with a fixed `[T, S]`
 *   matrix and two transposes (`mergeHeads` with head size 1): no kernel of its own. Then a
 *   per-channel affine `a_c·x + b_c` re-normalises (student ImageNet mean/std → teacher's).
 * - Position embeddings (host, at load): torch `F.interpolate(mode="bicubic",
 *   align_corners=False)` (a = −0.75, clamped borders) as DINO's `interpolate_pos_encoding`
 *   calls it: `scale_factor = (G_out + 0.1) / G_in`; the cls position is kept.
 *
 * @module
 */
import { type Backend, freeTensors, type Tensor, view } from "../../backend/backend.ts";

/**
 * `[out, in]` row-major: torchvision / PIL antialiased bicubic resize weights from `inSize`
 * to `outSize` samples (torch `_upsample_bicubic2d_aa`, align_corners False).
 */
export function antialiasBicubicMatrix(inSize: number, outSize: number): Float64Array {
  checkSizes(inSize, outSize);
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  const support = scale >= 1 ? 2 * scale : 2;
  const invscale = scale >= 1 ? 1 / scale : 1;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    for (let j = xmin; j < xmax; j++) {
      const w = cubic((j - center + 0.5) * invscale, -0.5);
      m[i * inSize + j] = w;
      total += w;
    }
    if (total !== 0) { for (let j = xmin; j < xmax; j++) m[i * inSize + j] /= total; }
  }
  return m;
}

/**
 * `[out, in]` row-major: torch `F.interpolate(mode="bicubic", align_corners=False)` weights
 * (a = −0.75, border indices clamped) for a source step of `inSize / outSize`, or
 * `1 / scaleFactor` when the call passes `scale_factor`.
 */
export function bicubicMatrix(
  inSize: number,
  outSize: number,
  scaleFactor?: number,
): Float64Array {
  checkSizes(inSize, outSize);
  const m = new Float64Array(outSize * inSize);
  const scale = scaleFactor ? 1 / scaleFactor : inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const real = scale * (i + 0.5) - 0.5;
    const x0 = Math.floor(real);
    const t = real - x0;
    const w = [cubic(t + 1, -0.75), cubic(t, -0.75), cubic(1 - t, -0.75), cubic(2 - t, -0.75)];
    for (let k = 0; k < 4; k++) {
      const j = Math.min(Math.max(x0 - 1 + k, 0), inSize - 1);
      m[i * inSize + j] += w[k];
    }
  }
  return m;
}

/**
 * Position embeddings `[1 + Gi², D]` (cls first, then the `Gi × Gi` grid row-major) at grid
 * `Go`: the cls row kept, the grid interpolated bicubic as DINO's `interpolate_pos_encoding`
 * (torch `F.interpolate(scale_factor=(Go + 0.1)/Gi, mode="bicubic")`). Same grid: a copy.
 */
export function interpolatePosEmbed(
  pos: Float32Array,
  { from, to, dim }: { from: number; to: number; dim: number },
): Float32Array {
  if (pos.length !== (1 + from * from) * dim) {
    throw new RangeError(
      `Cannot interpolate position embeddings: expected (1 + ${from}²)·${dim} = ${
        (1 + from * from) * dim
      } values, got ${pos.length}`,
    );
  }
  if (from === to) return pos.slice();
  const r = bicubicMatrix(from, to, (to + 0.1) / from); // [to, from], both axes
  const out = new Float32Array((1 + to * to) * dim);
  out.set(pos.subarray(0, dim));
  const acc = new Float64Array(dim);
  for (let i = 0; i < to; i++) {
    for (let j = 0; j < to; j++) {
      acc.fill(0);
      for (let p = 0; p < from; p++) {
        const wi = r[i * from + p];
        if (wi === 0) continue;
        for (let q = 0; q < from; q++) {
          const w = wi * r[j * from + q];
          if (w === 0) continue;
          const o = (1 + p * from + q) * dim;
          for (let d = 0; d < dim; d++) acc[d] += w * pos[o + d];
        }
      }
      out.set(acc, (1 + i * to + j) * dim);
    }
  }
  return out;
}

/**
 * Per-channel `x ↦ a_c·x + b_c` taking images normalised with `from` (mean, std) to images
 * normalised with `to`: `a = σ_from/σ_to`, `b = (μ_from − μ_to)/σ_to`.
 */
export function renormalization(
  from: { mean: readonly number[]; std: readonly number[] },
  to: { mean: readonly number[]; std: readonly number[] },
): { scale: number[]; shift: number[] } {
  const C = to.mean.length;
  if (from.mean.length !== C || from.std.length !== C || to.std.length !== C) {
    throw new RangeError(
      `Cannot re-normalise images: mean/std lengths differ (${from.mean.length}, ${from.std.length}, ${C}, ${to.std.length})`,
    );
  }
  return {
    scale: Array.from({ length: C }, (_, c) => from.std[c] / to.std[c]),
    shift: Array.from({ length: C }, (_, c) => (from.mean[c] - to.mean[c]) / to.std[c]),
  };
}

/** What {@link TeacherInput} does: sizes and the per-channel affine. */
export interface TeacherInputOptions {
  /** Batch. */
  B: number;
  /** Channels. */
  C: number;
  /** Student image size S (input). */
  from: number;
  /** Teacher image size T (output). */
  to: number;
  /** Per-channel `a_c` (length C); none: no re-normalisation. */
  scale?: readonly number[];
  /** Per-channel `b_c` (length C). */
  shift?: readonly number[];
  /** Debug label. */
  label: string;
}

/**
 * The teacher's view of the student's images on the device: resized `[B, C, S, S] →
 * [B, C, T, T]` (antialiased bicubic, see the module doc) and re-normalised per channel.
 * With `S = T` and no affine, {@link TeacherInput.run} returns its input unchanged.
 */
export class TeacherInput {
  /** Options. */
  readonly opts: Readonly<TeacherInputOptions>;
  readonly #be: Backend;
  readonly #r: Tensor | null; // [T, S]
  readonly #a: Tensor | null; // [B·C·max(S,T)·T] scratch
  readonly #b: Tensor | null; // [B·C·max(S,T)·T]: output [B, C, T, T] at its start
  readonly #scale: Tensor | null; // [B·C]
  readonly #shift: Tensor | null; // [C·T·T]

  /** Allocates the fixed matrices and the buffers for `opts`. */
  constructor(be: Backend, opts: TeacherInputOptions) {
    const { B, C, from: S, to: T, label } = opts;
    checkSizes(S, T);
    this.#be = be;
    this.opts = opts;
    const affine = opts.scale !== undefined;
    if (affine && (opts.scale!.length !== C || opts.shift?.length !== C)) {
      throw new RangeError(`Cannot build ${label}: scale and shift need ${C} values each`);
    }
    const resize = S !== T;
    const n = B * C * Math.max(S, T) * T;
    this.#r = resize ? be.tensor([T, S], "f32", `${label}.resize`) : null;
    if (this.#r) be.upload(this.#r, Float32Array.from(antialiasBicubicMatrix(S, T)));
    this.#a = resize ? be.tensor([n], "f32", `${label}.scratch`) : null;
    this.#b = resize || affine
      ? be.tensor([resize ? n : B * C * T * T], "f32", `${label}.out`)
      : null;
    this.#scale = affine ? be.tensor([B * C], "f32", `${label}.scale`) : null;
    this.#shift = affine ? be.tensor([C * T * T], "f32", `${label}.shift`) : null;
    if (this.#scale && this.#shift) {
      const a = new Float32Array(B * C);
      const b = new Float32Array(C * T * T);
      for (let i = 0; i < B * C; i++) a[i] = opts.scale![i % C];
      for (let c = 0; c < C; c++) b.fill(opts.shift![c], c * T * T, (c + 1) * T * T);
      be.upload(this.#scale, a);
      be.upload(this.#shift, b);
    }
  }

  /** Records the teacher's images `[B, C, T, T]` from `images [B, C, S, S]`. */
  run(images: Tensor): Tensor {
    const be = this.#be;
    const { B, C, from: S, to: T } = this.opts;
    const P = B * C; // planes
    let x = images;
    if (this.#r && this.#a && this.#b) {
      // z [P·S, T] = x [P·S, S] · Rᵀ (along each row)
      const z = view(this.#a, 0, [P, S, T]);
      be.matmul({ out: z, a: images, b: this.#r }, { M: P * S, N: T, K: S, transB: true });
      // zt [P, T, S] = per plane transpose
      const zt = view(this.#b, 0, [P, T, S]);
      be.mergeHeads({ out: zt, inp: z }, { B: P, N: T, NH: S, HS: 1 });
      // y' [P·T, T] = zt · Rᵀ (along the columns), then transposed back to [P, T, T]
      const yt = view(this.#a, 0, [P, T, T]);
      be.matmul({ out: yt, a: zt, b: this.#r }, { M: P * T, N: T, K: S, transB: true });
      x = view(this.#b, 0, [B, C, T, T]);
      be.mergeHeads({ out: x, inp: yt }, { B: P, N: T, NH: T, HS: 1 });
    }
    if (this.#scale && this.#shift && this.#b) {
      const out = view(this.#b, 0, [B, C, T, T]);
      be.scaleRows({ out, inp: x, scale: this.#scale }, { rows: P, C: T * T });
      be.add({ out, a: out, b: this.#shift });
      x = out;
    }
    return x;
  }

  /** Frees its buffers. */
  dispose(): void {
    freeTensors(this.#be, [this.#r, this.#a, this.#b, this.#scale, this.#shift]);
  }
}

/** Keys cubic convolution kernel (`a`: −0.5 PIL / antialias, −0.75 torch bicubic). */
function cubic(x: number, a: number): number {
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

function checkSizes(inSize: number, outSize: number): void {
  for (const [k, v] of [["input", inSize], ["output", outSize]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`Cannot resize: the ${k} size must be a positive integer, got ${v}`);
    }
  }
}
