/**
 * The f32 GELU paths — the reference's `erfF32` loop, WebAssembly SIMD and native (when
 * built), all in f32 arithmetic — agree with the precise f64 reference.
 */
import { erf, erfF32, geluBackward, geluForward } from "../src/backend/cpu/ref/gelu.ts";
import { type KernelOps, kernelOps, REF_OPS } from "../src/backend/cpu/kernels.ts";
import { wasmKernels } from "../src/backend/cpu/simd/simd.ts";
import { loadNativeKernels } from "../src/backend/cpu/native.ts";
import { assertAllClose } from "./helpers.ts";

const xs = Array.from({ length: 20001 }, (_, i) => -10 + i * 0.001);

Deno.test("erfF32() is within 2e-7 of erf() on [-10, 10]", () => {
  assertAllClose(xs.map(erfF32), xs.map(erf), { atol: 2e-7, rtol: 0 }, "erf");
});

const native = loadNativeKernels();
const paths: [string, KernelOps][] = [
  ["reference", REF_OPS],
  ["wasm", kernelOps(wasmKernels())],
];
if (!("reason" in native)) paths.push(["native", kernelOps(native)]);

// f32 arithmetic: 1 + erf(x/√2) cancels for x ≪ 0, so the error is absolute, ~1e-6 at
// x ≈ −5.6 where erf's f32 rounding (a few ulps of 1) is scaled by x/2. PyTorch's f32
// GELU has the same form and the same kind of error.
for (const [name, ops] of paths) {
  Deno.test(`[${name}] geluForward()/geluBackward() on Float32Array are within 1e-6 of the f64 reference`, () => {
    const x32 = new Float32Array(xs);
    const x64 = Float64Array.from(x32);
    const o32 = new Float32Array(xs.length);
    const o64 = new Float64Array(xs.length);
    ops.geluForward({ out: o32, inp: x32 });
    geluForward({ out: o64, inp: x64 });
    assertAllClose(o32, o64, { atol: 1e-6, rtol: 1e-6 }, "gelu");
    const ones32 = new Float32Array(xs.length).fill(1);
    ops.geluBackward({ dinp: o32, dout: ones32, inp: x32 });
    geluBackward({ dinp: o64, dout: Float64Array.from(ones32), inp: x64 });
    assertAllClose(o32, o64, { atol: 1e-6, rtol: 1e-6 }, "gelu'");
  });
}
