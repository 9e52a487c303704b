/**
 * Assertions, behind one module so moving to `@std/assert` is a one-line change.
 *
 * @module
 */
import nodeAssert from "node:assert";

/** Throws an `AssertionError` with `message` unless `cond` is truthy. */
export function assert(cond: unknown, message: string): asserts cond {
  nodeAssert.ok(cond, message);
}

/** Deep strict equality (node:assert `deepStrictEqual`). */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Asserts that `fn` throws an error of class `cls` whose message includes `includes`. */
export function assertThrows(
  fn: () => unknown,
  cls: abstract new (...args: never[]) => Error,
  includes?: string,
): void {
  nodeAssert.throws(fn, (e: unknown) => {
    if (!(e instanceof cls)) return false;
    return includes === undefined || e.message.includes(includes);
  });
}
