/**
 * The harness the WebGPU op tests share: run an op on the CPU reference backend
 * ({@link CpuBackend.reference}: plain loops, no SIMD, no native code, no threads) and on
 * WebGPU over the same inputs and compare. Every tensor is a view at offset {@link PAD}
 * inside a padded buffer filled with {@link SENTINEL}, so offsets are exercised and a
 * kernel that writes outside its view is caught.
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { type Backend, type HostArray, type Tensor, view } from "../src/backend/backend.ts";
import type { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import type { Rng } from "../src/util/rng.ts";
import { assertAllClose, maxAbsDiff, type Tolerance } from "./helpers.ts";

/** The plain reference: `ref/` loops and GEMM, no SIMD, no native code, one thread. */
export const cpu: CpuBackend = CpuBackend.reference();
/** Elements of padding before and after every view. */
export const PAD = 5;
/** The value the padding is filled with; it must come back untouched. */
export const SENTINEL = 12345;
/** Bit-exact agreement: for padding and for ops that only move values. */
export const EXACT: Tolerance = { atol: 0, rtol: 0 };

/** A view at offset {@link PAD} (`t`) and the padded tensor holding it (`base`). */
export interface Placed {
  t: Tensor;
  base: Tensor;
}

/** Host data and the shape of the view to place it in. */
export interface Arg {
  data: HostArray;
  shape: number[];
}

/**
 * Places `data` in a view at offset {@link PAD} of a padded tensor on `be`; the dtype
 * follows the array (`Int32Array` → i32, else f32).
 *
 * @example
 * ```ts ignore
 * const { t, base } = place(cpu, new Int32Array([3, 1, 2]), [3]);
 * ```
 */
export function place(be: Backend, data: HostArray, shape: number[]): Placed {
  const dtype = data instanceof Int32Array ? "i32" : "f32";
  const base = be.tensor([data.length + 2 * PAD], dtype);
  const full = dtype === "i32" ? new Int32Array(base.size) : new Float32Array(base.size);
  full.fill(SENTINEL);
  full.set(data, PAD);
  be.upload(base, full);
  return { t: view(base, PAD, shape), base };
}

/**
 * Asserts the GPU tensor `got` (named `name` in messages) matches the CPU tensor `want`
 * within `tol` and that its padding is untouched; returns the max abs error.
 */
export async function assertPlacedClose(
  gpu: WebGpuBackend,
  got: Placed,
  want: Placed,
  tol: Tolerance,
  what: string,
  name: string,
): Promise<number> {
  const expected = await cpu.download(want.t);
  const full = await gpu.download(got.base);
  const actual = full.subarray(PAD, PAD + expected.length);
  const pad = [...full.subarray(0, PAD), ...full.subarray(PAD + expected.length)];
  assertAllClose(pad, pad.map(() => SENTINEL), EXACT, `${what}: padding of ${name}`);
  assertAllClose(actual, expected, tol, `${what}: ${name}`);
  return maxAbsDiff(actual, expected);
}

/**
 * Runs `run` on both backends over the same inputs (views at offset {@link PAD} of padded
 * buffers, outputs pre-filled with their `args` data) and compares the tensors named in
 * `check` within their tolerances; the padding must come back untouched. Logs and
 * returns the max abs error of each.
 *
 * @example
 * ```ts ignore
 * const shape = [65, 197];
 * const errs = await compare(
 *   gpu,
 *   { out: { data: normal(rng, 65 * 197), shape }, a: { data: normal(rng, 65 * 197), shape } },
 *   (be, t) => be.add({ out: t.out, a: t.a, b: t.a }),
 *   { out: { atol: 1e-6, rtol: 1e-5 } },
 *   "add [65,197]",
 * );
 * ```
 */
export async function compare(
  gpu: WebGpuBackend,
  args: Record<string, Arg>,
  run: (be: Backend, t: Record<string, Tensor>) => void,
  check: Record<string, Tolerance>,
  what: string,
): Promise<Record<string, number>> {
  const placed = new Map<Backend, Record<string, Placed>>();
  for (const be of [cpu, gpu] as Backend[]) {
    const p: Record<string, Placed> = {};
    for (const [k, a] of Object.entries(args)) p[k] = place(be, a.data, a.shape);
    placed.set(be, p);
    run(be, Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.t])));
  }
  const errs: Record<string, number> = {};
  for (const [k, tol] of Object.entries(check)) {
    errs[k] = await assertPlacedClose(
      gpu,
      placed.get(gpu)![k],
      placed.get(cpu)![k],
      tol,
      what,
      k,
    );
  }
  console.log(`${what}: max abs error ${JSON.stringify(errs)}`);
  return errs;
}

/** `n` samples of `shift + scale·N(0, 1)` from `rng`. */
export function normal(rng: Rng, n: number, scale = 1, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = shift + scale * rng.normal();
  return a;
}
