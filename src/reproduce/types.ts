/**
 * The rows of a reproduction as data: how each is made ({@link RowPlan}, {@link SeedPlan}) and
 * what it measured ({@link RowResult}, {@link CurvePoint}).
 *
 * @module
 */
import type { PretrainConfig } from "../train/pretrain_config.ts";

/** One k-NN measurement during pre-training. */
export interface CurvePoint {
  /** Epochs of pre-training done. */
  epoch: number;
  /** k-NN top-1 (%) on the cls token. */
  knnCls: number;
  /** k-NN top-1 (%) on the mean of the patch tokens. */
  knnMean: number;
}

/** How one row is made. */
export interface RowPlan {
  /** Row name, as the table shows it. */
  row: string;
  /** Its folder under the seed's folder: one of `ROW_NAMES` (`--rows`), or "teacher". */
  folder: string;
  /** How it was pre-trained, in words. */
  recipe: string;
  /** Its pre-training (null: the random init, not trained). */
  pretrain: PretrainConfig | null;
  /** Stage boundaries in epochs ([0] for the random init). */
  boundaries: number[];
  /** The row's folder. */
  dir: string;
  /** The encoder evaluated. */
  checkpoint: string;
  /** The larger teacher is trained before this row. */
  teacherRun: boolean;
  /** k-NN curve during pre-training. */
  curve: boolean;
  /** The equivalent `deno task pretrain` command ("" for the random init). */
  command: string;
}

/** The rows of one seed, and the teacher run the distilled row needs. */
export interface SeedPlan {
  /** The seed. */
  seed: number;
  /** Its folder. */
  seedDir: string;
  /** The table's rows (random init first). */
  rows: RowPlan[];
  /** The larger teacher's pre-training (not a row). */
  teacher: RowPlan | null;
}

/** Top-1 (%) by label count: "600", "6000", "all" (see `labelKey`). */
export type LabelFigures = Record<string, number>;

/** Where a row's evaluation seconds went. */
export interface EvalTimes {
  /** k-NN curve points during pre-training. */
  curve: number;
  /** Embedding the pool and the test set once (raw pixels: gathering them). */
  embed: number;
  /** k-NN on the bank (cls and mean). */
  knn: number;
  /** Every linear probe (each label count, cls and mean). */
  probe: number;
  /** Each fine-tuning, by label key. */
  finetune: Record<string, number>;
}

/** One row's figures for one seed (null: does not apply, e.g. fine-tuning raw pixels). */
export interface RowResult {
  /** Row name. */
  row: string;
  /** How it was pre-trained. */
  recipe: string;
  /** The seed. */
  seed: number;
  /** The equivalent pre-training command. */
  command: string;
  /** The encoder evaluated ("" for raw pixels). */
  checkpoint: string;
  /** Stage boundaries in epochs. */
  boundaries: number[];
  /** k-NN during pre-training. */
  curve: CurvePoint[];
  /** Fine-tuning test top-1 (%) by label count (from the random init: from scratch). */
  finetune: LabelFigures | null;
  /** Linear probe test top-1 (%) by label count, cls token. */
  probeCls: LabelFigures | null;
  /** Linear probe test top-1 (%) by label count, mean of the patch tokens. */
  probeMean: LabelFigures | null;
  /** k-NN test top-1 (%), cls token, the budget's pre-training images as the bank. */
  knnCls: number | null;
  /** k-NN test top-1 (%), mean of the patch tokens. */
  knnMean: number | null;
  /** Pre-training wall seconds (training steps and run start-up, over every invocation). */
  pretrainS: number;
  /** Wall seconds of the larger teacher's pre-training (distilled row only, else 0). */
  teacherS: number;
  /** Evaluation wall seconds (the sum of `times`). */
  evalS: number;
  /** Where the evaluation seconds went. */
  times: EvalTimes;
}

/** A pre-trained (or initialised) encoder and its curve. */
export interface TrainedRow {
  /** Final checkpoint. */
  checkpoint: string;
  /** k-NN during pre-training. */
  curve: CurvePoint[];
  /** Pre-training wall seconds. */
  pretrainS: number;
  /** Curve wall seconds. */
  curveS: number;
}

/** One row of the table, per seed (for the report). */
export type ReproduceRow = RowResult;
