/**
 * Flag value parsers shared by the tasks: each throws a TypeError that names
 * the flag, the value and what is accepted.
 *
 * @module
 */

/** A positive integer flag, or undefined when absent. */
export function positiveInt(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new TypeError(`Cannot use --${flag} ${value}: give a positive integer`);
  }
  return n;
}

/** A comma-separated list of numbers, or undefined when absent. */
export function parseList(value: unknown, flag: string): number[] | undefined {
  if (value === undefined) return undefined;
  const list = String(value).split(",").map(Number);
  if (list.some((x) => !Number.isFinite(x))) {
    throw new TypeError(
      `Cannot use --${flag} ${value}: give comma-separated numbers such as 0.5,0.5,0.5`,
    );
  }
  return list;
}

/** `train` or `test`. */
export function parseSplit(value: string): "train" | "test" {
  if (value === "train" || value === "test") return value;
  throw new TypeError(`Cannot use --split ${value}: give train or test`);
}
