/**
 * Argument checks shared by the CPU ops: cheap, and the message names the op,
 * the argument, the expected and the current value.
 *
 * @module
 */

/**
 * Throws a `RangeError` unless `arr` has exactly `expected` elements.
 *
 * @example
 * ```ts
 * import { checkLength } from "./check.ts";
 * checkLength("gelu", "out", new Float32Array(3), 3);
 * ```
 */
export function checkLength(
  op: string,
  name: string,
  arr: ArrayLike<number>,
  expected: number,
  what = "",
): void {
  if (arr.length !== expected) {
    throw new RangeError(
      `Cannot run ${op}: ${name} must have ${what}${expected} elements, current value is ${arr.length}`,
    );
  }
}

/**
 * Throws a `RangeError` unless every named dimension is an integer ≥ `min` (default 0).
 *
 * @example
 * ```ts
 * import { checkDims } from "./check.ts";
 * checkDims("softmax", { rows: 2, C: 3 });
 * ```
 */
export function checkDims(op: string, dims: Record<string, number>, min = 0): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < min) {
      throw new RangeError(
        `Cannot run ${op}: ${k} must be an integer >= ${min}, current value is ${v}`,
      );
    }
  }
}
