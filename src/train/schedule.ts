/**
 * Stage and learning-rate schedules as data plus pure functions.
 *
 * Stages are given by epoch boundaries (reference: `0 800 1600` = two stages of
 * 800 epochs). Within each stage the LR warms up linearly and then follows a
 * half-cosine to `minLr`, per iteration (MAE `adjust_learning_rate`); it
 * restarts at every stage.
 *
 * @module
 */

/** Where an epoch falls in the stage plan. */
export interface StageInfo {
  /** Stage index, 0-based. */
  stage: number;
  /** First epoch of the stage. */
  start: number;
  /** One past the last epoch of the stage. */
  end: number;
}

/** Boundaries `[0, e, 2e, …, stages·e]` for `stages` stages of `epochsPerStage` epochs. */
export function stageBoundaries(stages: number, epochsPerStage: number): number[] {
  for (const [k, v] of [["stages", stages], ["epochsPerStage", epochsPerStage]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(
        `Cannot plan stages as ${k} must be a positive integer: current value is ${v}`,
      );
    }
  }
  return Array.from({ length: stages + 1 }, (_, i) => i * epochsPerStage);
}

/** Checks explicit boundaries: start at 0, strictly increasing integers, at least one stage. */
export function checkBoundaries(boundaries: readonly number[]): number[] {
  const b = [...boundaries];
  const ok = b.length >= 2 && b[0] === 0 &&
    b.every((x, i) => Number.isInteger(x) && (i === 0 || x > b[i - 1]));
  if (!ok) {
    throw new RangeError(
      `Cannot plan stages from boundaries [${b}]: give increasing whole epochs starting at 0, e.g. 0,800,1600`,
    );
  }
  return b;
}

/**
 * The stage of `epoch` (0 ≤ epoch < last boundary).
 *
 * @example
 * ```ts
 * import { stageAt } from "./schedule.ts";
 * stageAt([0, 800, 1600], 800); // { stage: 1, start: 800, end: 1600 }
 * ```
 */
export function stageAt(boundaries: readonly number[], epoch: number): StageInfo {
  const last = boundaries[boundaries.length - 1];
  if (!(epoch >= 0 && epoch < last)) {
    throw new RangeError(
      `Cannot find the stage of epoch ${epoch}: the plan covers epochs [0, ${last})`,
    );
  }
  let s = 0;
  while (epoch >= boundaries[s + 1]) s++;
  return { stage: s, start: boundaries[s], end: boundaries[s + 1] };
}

/** One stage's LR schedule. */
export interface LrSchedule {
  /** Peak LR (already scaled by batch/256). */
  lr: number;
  /** Warmup epochs (linear from 0). */
  warmupEpochs: number;
  /** Epochs in the stage. */
  stageEpochs: number;
  /** Final LR of the cosine. */
  minLr: number;
}

/**
 * LR at fractional epoch `t` within a stage (`t = epochInStage + iter/itersPerEpoch`).
 *
 * @example
 * ```ts
 * import { lrAt } from "./schedule.ts";
 * lrAt(5, { lr: 1e-3, warmupEpochs: 10, stageEpochs: 100, minLr: 0 }); // 5e-4
 * ```
 */
export function lrAt(t: number, s: LrSchedule): number {
  if (t < s.warmupEpochs) return (s.lr * t) / s.warmupEpochs;
  const span = s.stageEpochs - s.warmupEpochs;
  const progress = span > 0 ? Math.min(1, (t - s.warmupEpochs) / span) : 1;
  return s.minLr + (s.lr - s.minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** The effective LR `baseLr × batch / 256` (computed once and logged). */
export function effectiveLr(baseLr: number, batch: number): number {
  return (baseLr * batch) / 256;
}
