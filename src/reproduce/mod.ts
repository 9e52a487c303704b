/**
 * `@dbot/dbot/reproduce`: the paper's comparison at small scale on Fashion-MNIST (random init,
 * MAE, dBOT 1/2/3 stages at equal epochs, dBOT from a larger teacher, raw pixels), each row
 * gated by its gain over the random init ({@link gateRows}), linearly probed and fine-tuned
 * with 1%, 10% and every label and k-NN-evaluated on the cls token and the mean of the patch
 * tokens, with k-NN curves and the CKA / attention-distance analysis. Budgets and settings:
 * {@link REPRODUCE_BUDGETS}, {@link REPRODUCE_CONFIG}; the run: {@link reproduce}.
 *
 * @example
 * ```ts
 * import { REPRODUCE_BUDGETS, reproduceCommand, resolveReproduce } from "@dbot/dbot/reproduce";
 *
 * const cfg = resolveReproduce({ budget: "tiny" });
 * if (REPRODUCE_BUDGETS.tiny.epochs <= 0) throw new Error("the tiny budget trains");
 * console.log(reproduceCommand(cfg)); // deno task reproduce --budget tiny --seeds 0
 * ```
 *
 * @module
 */
export {
  checkBudget,
  FINETUNE_KEYS,
  finetuneProtocol,
  type FinetuneSettings,
  labelKey,
  MICRO_BATCHES,
  REFERENCE_BASE_LR,
  REFERENCE_BATCH,
  REPRODUCE_BUDGETS,
  REPRODUCE_CONFIG,
  REPRODUCE_DEFAULTS,
  type ReproduceBudget,
  type ReproduceBudgetName,
  reproduceCommand,
  type ReproduceConfig,
  reproduceDir,
  type ReproduceOptions,
  resolveReproduce,
  ROW_NAMES,
  selectedRows,
  WARMUP_FRACTION,
} from "./budgets.ts";
export { reproduce, type ReproduceHooks } from "./study.ts";
export {
  fmtGain,
  type Gain,
  GATE_BASELINE,
  GATE_SE,
  gateProbe,
  gateProbeLabels,
  type GateRow,
  gateRows,
  pairedGain,
  QUESTIONS,
  readingLines,
  type Verdict,
  verdict,
} from "./gate.ts";
export type { CurvePoint, EvalTimes, LabelFigures, ReproduceRow, RowResult } from "./types.ts";
export type { AnalysisSummary, ReproduceReport, RowSummary, Stat } from "./report.ts";
