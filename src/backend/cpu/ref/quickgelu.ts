/**
 * QuickGELU (OpenAI CLIP): `x·σ(1.702·x)` and its derivative.
 *
 * `σ` is evaluated as `1/(1 + exp(−ax))`, which saturates to 0 or 1 without overflow
 * trouble: `exp` of a large argument is `Infinity` and `1/Infinity` is 0.
 *
 * @module
 */
import type { GeluBackwardBufs, OutInpBufs } from "../../backend.ts";
import { checkQuickGelu, checkQuickGeluBackward } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/** The slope of QuickGELU's sigmoid. */
export const QUICK_GELU_ALPHA = 1.702;

/**
 * `out[i] = inp[i]·σ(1.702·inp[i])`; `out` may alias `inp`.
 *
 * @example
 * ```ts
 * import { quickGeluForward } from "./quickgelu.ts";
 * const out = new Float32Array(2);
 * quickGeluForward({ out, inp: new Float32Array([0, 1]) });
 * ```
 */
export function quickGeluForward(bufs: OutInpBufs<FloatArray>): void {
  // out, inp: (n)
  checkQuickGelu(bufs);
  const { out, inp } = bufs;
  for (let i = 0; i < inp.length; i++) {
    const x = inp[i];
    out[i] = x / (1 + Math.exp(-QUICK_GELU_ALPHA * x));
  }
}

/**
 * `dinp[i] = dout[i]·(σ(ax) + a·x·σ(ax)·(1 − σ(ax)))`, `a = 1.702` (assign).
 *
 * @example
 * ```ts
 * import { quickGeluBackward } from "./quickgelu.ts";
 * const dinp = new Float32Array(2);
 * quickGeluBackward({ dinp, dout: new Float32Array([1, 1]), inp: new Float32Array([0, 1]) });
 * ```
 */
export function quickGeluBackward(bufs: GeluBackwardBufs<FloatArray>): void {
  // dinp, dout, inp: (n)
  checkQuickGeluBackward(bufs);
  const { dinp, dout, inp } = bufs;
  const a = QUICK_GELU_ALPHA;
  for (let i = 0; i < inp.length; i++) {
    const x = inp[i];
    const s = 1 / (1 + Math.exp(-a * x));
    dinp[i] = dout[i] * (s + a * x * s * (1 - s));
  }
}
