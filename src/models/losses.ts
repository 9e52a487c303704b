/**
 * Distillation losses, chosen by name in the model config (`DbotConfig.loss`). Each records
 * `loss [1]` and `dpred = ∂loss/∂pred` from `pred, target [rows, C]` and per-row weights
 * `weight [rows]` (`Σ_r w_r·loss_r / Σ_r w_r`): the mask gives 1 to removed patches and 0
 * to visible ones; the cls row's weight is {@link DistillLoss.clsWeight}.
 *
 * - `smoothl1` (the reference dBOT loss): SmoothL1 with β = 2, mean over channels; the cls
 *   row counts as masked.
 * - `cosine` (the CLIP-teacher branch): `1 − cos(pred, target)` over masked patches only
 *   (cls weight 0), eps {@link COSINE_EPS} with torch 1.13's `F.cosine_similarity`
 *   semantics: `cos = x·y / (max(‖x‖, eps)·max(‖y‖, eps))`.
 * - `mse` (MAE): `(pred − target)²`, mean over channels, over masked patches. Recorded as
 *   `2β·SmoothL1_β` with β = 2^20, which is exactly `d²` for `|d| < 2^20` (scaling by powers
 *   of two is exact) — targets are standardised, so every `d` of a sane run is far inside.
 *
 * A new loss is one entry in {@link LOSSES}.
 *
 * @module
 */
import { type Backend, type CosineDims, freeTensors, type Tensor } from "../backend/backend.ts";

/** SmoothL1 β of the reference loss. */
export const SMOOTH_L1_BETA = 2;

/** Norm clamp of the `cosine` loss (the reference `beit` branch: `eps=1e-6`). */
export const COSINE_EPS = 1e-6;

/** The names of {@link LOSSES}. */
export type LossName = "smoothl1" | "cosine" | "mse";

/** The buffers a loss records into and reads. */
export interface LossBuffers {
  /** `[1]`, on the device. */
  loss: Tensor;
  /** `[rows, C]` gradient (assigned). */
  dpred: Tensor;
  /** `[rows, C]` predictions. */
  pred: Tensor;
  /** `[rows, C]` targets. */
  target: Tensor;
  /** `[rows]` weights. */
  weight: Tensor;
}

/** A loss bound to a backend. */
export interface DistillLoss {
  /** Its name in {@link LOSSES}. */
  readonly name: LossName;
  /** Weight of the cls row when the teacher has a cls target (reference dBOT: 1). */
  readonly clsWeight: number;
  /** What the loss is, for plots and logs. */
  readonly label: string;
  /** Records `loss` and `dpred`. */
  record(bufs: LossBuffers, dims: { rows: number; C: number }): void;
  /** Frees what it allocated. */
  dispose(): void;
}

const MSE_BETA = 2 ** 20;

/** Every loss by name: a constructor on a backend. */
export const LOSSES: { readonly [K in LossName]: (be: Backend) => DistillLoss } = {
  smoothl1: (be) => ({
    name: "smoothl1",
    clsWeight: 1,
    label: `SmoothL1 (β ${SMOOTH_L1_BETA})`,
    record: (b, { rows, C }) =>
      be.smoothL1Loss({
        loss: b.loss,
        dinp: b.dpred,
        inp: b.pred,
        target: b.target,
        weight: b.weight,
      }, {
        rows,
        C,
        beta: SMOOTH_L1_BETA,
      }),
    dispose: () => {},
  }),
  cosine: (be) => ({
    name: "cosine",
    clsWeight: 0,
    label: "1 − cosine",
    record: (b, { rows, C }) =>
      be.cosineLoss({
        loss: b.loss,
        dinp: b.dpred,
        inp: b.pred,
        target: b.target,
        weight: b.weight,
      }, cosineDims(rows, C)),
    dispose: () => {},
  }),
  mse: (be) => {
    const scale = be.tensor([1], "f32", "mse.scale");
    be.upload(scale, new Float32Array([2 * MSE_BETA]));
    return {
      name: "mse",
      clsWeight: 0,
      label: "MSE",
      record: (b, { rows, C }) => {
        be.smoothL1Loss(
          { loss: b.loss, dinp: b.dpred, inp: b.pred, target: b.target, weight: b.weight },
          { rows, C, beta: MSE_BETA },
        );
        be.scaleRows({ out: b.loss, inp: b.loss, scale }, { rows: 1, C: 1 });
        be.scaleRows({ out: b.dpred, inp: b.dpred, scale }, { rows: 1, C: rows * C });
      },
      dispose: () => freeTensors(be, scale),
    };
  },
};

/** Dims of the `cosine` loss: rows, C and the norm clamp {@link COSINE_EPS}. */
export function cosineDims(rows: number, C: number): CosineDims {
  return { rows, C, eps: COSINE_EPS };
}

/** The loss `name` on `be`; an unknown name is a TypeError listing the choices. */
export function createLoss(be: Backend, name: string): DistillLoss {
  const make = LOSSES[name as LossName];
  if (!make) {
    throw new TypeError(
      `Cannot use loss "${name}": use one of ${Object.keys(LOSSES).join(", ")}`,
    );
  }
  return make(be);
}
