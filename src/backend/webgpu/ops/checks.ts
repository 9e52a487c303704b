/**
 * Argument checks shared by the WebGPU ops. Each throws before anything is recorded, with
 * a message of the form `Cannot run <op>: <what is wrong>, current value is <value>`:
 * `RangeError` for sizes and dims, `TypeError` for dtypes.
 *
 * @module
 */
import type { DType, Tensor } from "../../backend.ts";

/** Throws a `RangeError` with `msg()` unless `ok` (the message is built only on failure). */
export function check(ok: boolean, msg: () => string): void {
  if (!ok) throw new RangeError(msg());
}

/**
 * Checks every entry of `dims` is an integer `>= min`.
 *
 * @example
 * ```ts ignore
 * checkDims("patchify", { P: 0 }, 1);
 * // RangeError: Cannot run patchify: P must be an integer >= 1, current value is 0
 * ```
 */
export function checkDims(op: string, dims: Record<string, number>, min = 0): void {
  for (const [k, v] of Object.entries(dims)) {
    check(
      Number.isInteger(v) && v >= min,
      () => `Cannot run ${op}: ${k} must be an integer >= ${min}, current value is ${v}`,
    );
  }
}

/**
 * Checks `t` has `size` elements; `what` names the size in the message.
 *
 * @example
 * ```ts ignore
 * checkSize("layernorm", "mean", mean, rows, "rows = ");
 * // RangeError: Cannot run layernorm: mean must have rows = 7 elements, current size is 6
 * ```
 */
export function checkSize(op: string, name: string, t: Tensor, size: number, what = ""): void {
  check(
    t.size === size,
    () =>
      `Cannot run ${op}: ${name} must have ${what}${size} element${
        size === 1 ? "" : "s"
      }, current size is ${t.size}`,
  );
}

/**
 * Checks `t` holds whole rows of `C` elements; returns the row count (0 when `C` is 0).
 *
 * @example
 * ```ts ignore
 * const inpRows = checkRows("gatherRows", "inp", inp, C);
 * ```
 */
export function checkRows(op: string, name: string, t: Tensor, C: number): number {
  const n = C === 0 ? 0 : t.size / C;
  check(
    Number.isInteger(n),
    () => `Cannot run ${op}: ${name} must hold whole rows of C = ${C}, current size is ${t.size}`,
  );
  return n;
}

/** Throws a `TypeError` unless `t` has dtype `dtype`. */
export function checkDtype(op: string, name: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype) {
    throw new TypeError(`Cannot run ${op}: ${name} must be ${dtype}, current dtype is ${t.dtype}`);
  }
}

/** Throws a `TypeError` unless every tensor of `ts` (keyed by name) is f32. */
export function checkF32(op: string, ts: Record<string, Tensor>): void {
  for (const [name, t] of Object.entries(ts)) checkDtype(op, name, t, "f32");
}
