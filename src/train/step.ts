/**
 * One optimiser step, written once for every trainer (pre-training, fine-tuning, the step
 * bench, tests):
 *
 *   micro-batches (gradients accumulate) → scale by 1/accum → all-reduce (mean over ranks)
 *   → finite check → clip (global norm) → AdamW
 *
 * Nothing is read back unless asked: on WebGPU the step stays one stream of recorded work.
 * The all-reduce comes before the finite check so that every rank judges the same gradient.
 *
 * @module
 */
import { type Backend, freeTensors, type Tensor, view } from "../backend/backend.ts";
import type { ParamSet } from "../nn/params.ts";
import type { AdamW } from "./adamw.ts";
import { type Collective, SINGLE_PROCESS } from "../parallel/collective.ts";

/** Thrown when the loss or gradients stop being finite; the last good state is kept. */
export class NonFiniteLossError extends Error {
  /** `message` names the step, the LR and what to do. */
  constructor(message: string) {
    super(message);
    this.name = "NonFiniteLossError";
  }
}

/** What one step reports. */
export interface StepResult {
  /** The last micro-batch's loss, mean over ranks (NaN when not read back). */
  loss: number;
  /** The global gradient norm before clipping (NaN when not read back). */
  norm: number;
  /** False when the step was skipped for a non-finite loss or gradient norm. */
  updated: boolean;
}

/** How a step reads back and judges. */
export interface StepOptions {
  /** Read the loss and gradient norm back after the update (one GPU sync). */
  read?: boolean;
  /** Judge the step before its update and skip the update when not finite (always reads). */
  skipNonFinite?: boolean;
}

/** The step of one model: its parameters, loss tensor, optimiser and process group. */
export class TrainStep {
  readonly #be: Backend;
  readonly #ps: ParamSet;
  readonly #loss: Tensor;
  readonly #opt: AdamW;
  readonly #accum: number;
  readonly #comm: Collective;
  readonly #accumScale: Tensor | null; // [1] = 1/accum
  readonly #probe: Tensor; // [loss, norm]: one download
  readonly #probeClip: Tensor;

  /** Binds the step to `ps` (with gradients), the model's `loss [1]` and `opt`. */
  constructor(
    be: Backend,
    model: { ps: ParamSet; loss: Tensor; opt: AdamW },
    opts: { accum?: number; collective?: Collective } = {},
  ) {
    if (!model.ps.grads) throw new RangeError("Cannot train a parameter set without gradients");
    this.#be = be;
    this.#ps = model.ps;
    this.#loss = model.loss;
    this.#opt = model.opt;
    this.#accum = opts.accum ?? 1;
    this.#comm = opts.collective ?? SINGLE_PROCESS;
    if (!Number.isInteger(this.#accum) || this.#accum < 1) {
      throw new RangeError(`Cannot accumulate ${this.#accum} micro-batches: give an integer >= 1`);
    }
    this.#accumScale = this.#accum > 1 ? be.tensor([1], "f32", "step.accumScale") : null;
    if (this.#accumScale) be.upload(this.#accumScale, new Float32Array([1 / this.#accum]));
    this.#probe = be.tensor([2], "f32", "step.probe");
    this.#probeClip = be.tensor([1], "f32", "step.probeClip");
  }

  /**
   * Runs one step at learning rate `lr`: `micro(i)` records micro-batch i's forward and
   * backward (gradients accumulate into the zeroed buffer).
   */
  async run(
    lr: number,
    micro: (i: number) => void | Promise<void>,
    o: StepOptions = {},
  ): Promise<StepResult> {
    const be = this.#be;
    const grad = this.#ps.grads!;
    be.fill(grad, 0);
    for (let i = 0; i < this.#accum; i++) await micro(i);
    if (this.#accumScale) {
      // the mean of the micro-batch gradients
      be.scaleRows({ out: grad, inp: grad, scale: this.#accumScale }, { rows: 1, C: grad.size });
    }
    await this.#comm.allReduceMean(be, grad);
    const lossView = view(this.#probe, 0, [1]);
    const normView = view(this.#probe, 1, [1]);
    if (o.skipNonFinite) {
      // judge before the update (AdamW recomputes this norm: one cheap reduction)
      be.gradNorm({ norm: normView, clipScale: this.#probeClip, grad }, { maxNorm: Infinity });
      be.copy(lossView, this.#loss);
      const [rankLoss, norm] = await be.download(this.#probe);
      const loss = await this.#meanLoss(rankLoss);
      if (!Number.isFinite(loss) || !Number.isFinite(norm)) return { loss, norm, updated: false };
      this.#opt.update(lr);
      return { loss, norm, updated: true };
    }
    this.#opt.update(lr);
    if (!o.read) return { loss: NaN, norm: NaN, updated: true };
    be.copy(lossView, this.#loss);
    be.copy(normView, this.#opt.norm);
    const [rankLoss, norm] = await be.download(this.#probe);
    return { loss: await this.#meanLoss(rankLoss), norm, updated: true };
  }

  /** The mean over ranks of this rank's loss (every rank reads back at the same steps). */
  async #meanLoss(loss: number): Promise<number> {
    if (this.#comm.size === 1) return loss;
    const buf = new Float32Array([loss]);
    await this.#comm.allReduceSum(buf);
    return buf[0] / this.#comm.size;
  }

  /** Frees the step's own buffers (not the model's or the optimiser's). */
  dispose(): void {
    freeTensors(this.#be, [this.#accumScale, this.#probe, this.#probeClip]);
  }
}
