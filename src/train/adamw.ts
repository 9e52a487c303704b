/**
 * AdamW over one {@link ParamSet}: moments, segment tables, gradient norm and
 * clipping, all on the device; one `gradNorm` and one `adamw` dispatch a step.
 *
 * @module
 */
import { type Backend, freeTensors, type Tensor } from "../backend/backend.ts";
import type { ParamSet, ParamSpec } from "../nn/params.ts";

/** AdamW hyper-parameters (reference pre-training: 0.9/0.95, 1e-8, wd 0.05, clip 3.0). */
export interface AdamWConfig {
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** Denominator epsilon. */
  eps: number;
  /** Decoupled weight decay (on parameters whose spec says `decay`). */
  weightDecay: number;
  /** Clip the global gradient norm to this; `Infinity` for none. */
  clipGrad: number;
}

/** Options of an {@link AdamW}: its hyper-parameters, and per-parameter LR factors. */
export interface AdamWOptions extends AdamWConfig {
  /** Per-parameter LR factor (layer decay); default 1 for every parameter. */
  lrScale?: (s: ParamSpec) => number;
}

/** The reference pre-training settings (DBOT_SPEC.md): betas 0.9/0.95, eps 1e-8, wd 0.05, clip 3.0. */
export const PRETRAIN_ADAMW: Readonly<AdamWConfig> = Object.freeze({
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.05,
  clipGrad: 3,
});

/** AdamW state bound to a parameter set. */
export class AdamW {
  /** First moments (flat, same offsets as the parameters). */
  readonly m: Tensor;
  /** Second moments. */
  readonly v: Tensor;
  /** Global gradient norm of the last step `[1]` (before clipping). */
  readonly norm: Tensor;
  /** Steps taken (bias correction uses step + 1). */
  step = 0;
  readonly #be: Backend;
  readonly #ps: ParamSet;
  readonly #cfg: AdamWConfig;
  readonly #offsets: Tensor;
  readonly #hyper: Tensor;
  readonly #clipScale: Tensor;

  /** Allocates zero moments; `cfg.lrScale` gives per-parameter LR factors (layer decay). */
  constructor(be: Backend, ps: ParamSet, cfg: AdamWOptions) {
    const { lrScale } = cfg;
    if (!ps.grads) throw new RangeError("Cannot optimise a parameter set without gradients");
    this.#be = be;
    this.#ps = ps;
    this.#cfg = cfg;
    this.m = be.tensor([ps.count], "f32", "adamw.m");
    this.v = be.tensor([ps.count], "f32", "adamw.v");
    this.norm = be.tensor([1], "f32", "adamw.norm");
    this.#clipScale = be.tensor([1], "f32", "adamw.clipScale");
    const { offsets, hyper } = ps.adamwTables(cfg.weightDecay, lrScale);
    this.#offsets = be.tensor([offsets.length], "i32", "adamw.offsets");
    this.#hyper = be.tensor([hyper.length], "f32", "adamw.hyper");
    be.upload(this.#offsets, offsets);
    be.upload(this.#hyper, hyper);
  }

  /** Frees the moments and tables. */
  dispose(): void {
    freeTensors(this.#be, [this.m, this.v, this.norm, this.#clipScale, this.#offsets, this.#hyper]);
  }

  /** Records the gradient norm (and clip factor), then the AdamW update at `lr`. */
  update(lr: number): void {
    const be = this.#be;
    const grad = this.#ps.grads!;
    be.gradNorm({ norm: this.norm, clipScale: this.#clipScale, grad }, {
      maxNorm: this.#cfg.clipGrad,
    });
    this.step++;
    be.adamw(
      {
        param: this.#ps.params,
        grad,
        m: this.m,
        v: this.v,
        offsets: this.#offsets,
        hyper: this.#hyper,
        clipScale: this.#clipScale,
      },
      { lr, beta1: this.#cfg.beta1, beta2: this.#cfg.beta2, eps: this.#cfg.eps, step: this.step },
    );
  }
}
