/**
 * Test helpers shared by every test file.
 *
 * @module
 */
import { AssertionError } from "node:assert";

/** Tolerances for {@link assertAllClose}: passes where `|a − e| ≤ atol + rtol·|e|`. */
export interface Tolerance {
  atol?: number;
  rtol?: number;
}

/**
 * Asserts `actual` and `expected` agree elementwise within `atol + rtol·|expected|`.
 * On failure reports the count, the first mismatches and the max abs error.
 */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-5 }: Tolerance = {},
  what = "values",
): void {
  if (actual.length !== expected.length) {
    throw new AssertionError({
      message: `${what}: length ${actual.length} differs from expected ${expected.length}`,
    });
  }
  let bad = 0;
  let maxErr = 0;
  const first: string[] = [];
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const err = Math.abs(a - e);
    if (!(err <= atol + rtol * Math.abs(e))) {
      bad++;
      if (first.length < 5) first.push(`[${i}] ${a} vs ${e}`);
    }
    if (err > maxErr || Number.isNaN(err)) maxErr = Number.isNaN(err) ? NaN : err;
  }
  if (bad > 0) {
    throw new AssertionError({
      message: `${what}: ${bad}/${actual.length} mismatches (atol ${atol}, rtol ${rtol}), ` +
        `max abs error ${maxErr}; first: ${first.join(", ")}`,
    });
  }
}

/** Max absolute difference between two arrays (for reports). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * The words of the `deno …` command of a deno.json task. A task may first run
 * `bash native/build.sh --if-needed;` (the native kernels, built when missing or stale),
 * or be a chain joined by `&&`; this is the first `deno` command of the chain, or [] when
 * there is none.
 */
export function denoWords(task: string): string[] {
  const cmd = task.split(/;|&&/).map((c) => c.trim()).find((c) => c.startsWith("deno "));
  return cmd ? cmd.split(/\s+/) : [];
}
