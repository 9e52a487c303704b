/** The fast f32 GELU path agrees with the precise f64 one. */
import { erf, erfF32, geluBackward, geluForward } from "../src/backend/cpu/ops/gelu.ts";
import { assertAllClose } from "./helpers.ts";

const xs = Array.from({ length: 20001 }, (_, i) => -10 + i * 0.001);

Deno.test("erfF32() is within 2e-7 of erf() on [-10, 10]", () => {
  assertAllClose(xs.map(erfF32), xs.map(erf), { atol: 2e-7, rtol: 0 }, "erf");
});

Deno.test("geluForward()/geluBackward() on Float32Array match the f64 path to f32 precision", () => {
  const x32 = new Float32Array(xs);
  const x64 = Float64Array.from(x32);
  const o32 = new Float32Array(xs.length);
  const o64 = new Float64Array(xs.length);
  geluForward({ out: o32, inp: x32 });
  geluForward({ out: o64, inp: x64 });
  assertAllClose(o32, o64, { atol: 5e-7, rtol: 1e-6 }, "gelu");
  const ones32 = new Float32Array(xs.length).fill(1);
  geluBackward({ dinp: o32, dout: ones32, inp: x32 });
  geluBackward({ dinp: o64, dout: Float64Array.from(ones32), inp: x64 });
  assertAllClose(o32, o64, { atol: 5e-7, rtol: 1e-6 }, "gelu'");
});
