/**
 * `@dbot/dbot/reproduce`: the paper's comparison at small scale on Fashion-MNIST (random init,
 * MAE, dBOT 1/2/3 stages at equal epochs, dBOT from a larger teacher, raw pixels), each row
 * fine-tuned, linearly probed and k-NN-evaluated on the cls token and the mean of the patch
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
  FINETUNE_KEYS,
  finetuneProtocol,
  type FinetuneSettings,
  REFERENCE_BASE_LR,
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
  WARMUP_FRACTION,
} from "./budgets.ts";
export { reproduce, type ReproduceHooks } from "./study.ts";
export type { CurvePoint, ReproduceRow, RowResult } from "./types.ts";
export type { AnalysisSummary, ReproduceReport, RowSummary, Stat } from "./report.ts";
