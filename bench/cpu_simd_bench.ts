/**
 * `deno bench` of the CPU backend's elementwise kernels, one thread, at vit-tiny shapes
 * (32 px, patch 4, batch 64): the scalar JS loops (the baseline), WebAssembly SIMD, and the
 * native library when it is built (`deno task build-native`).
 *
 *   deno bench --allow-read --allow-env --allow-ffi bench/cpu_simd_bench.ts
 *
 * @module
 */
import { type KernelOps, kernelOps, REF_OPS } from "../src/backend/cpu/kernels.ts";
import { wasmKernels } from "../src/backend/cpu/simd/simd.ts";
import { loadNativeKernels } from "../src/backend/cpu/native.ts";
import { Rng } from "../src/util/rng.ts";

const B = 64, N = 65, D = 192, NH = 3;
const rng = new Rng(1);
const filled = (n: number, lo = -3, hi = 3) => rng.uniformArray(n, lo, hi);

const native = loadNativeKernels();
const variants: [string, KernelOps][] = [
  ["scalar JS", REF_OPS],
  ["WebAssembly SIMD", kernelOps(wasmKernels())],
];
if (!("reason" in native)) variants.push(["native", kernelOps(native)]);

/** One group: the scalar JS loop (baseline), WebAssembly SIMD and native, same call. */
function pair(group: string, run: (ops: KernelOps) => void): void {
  for (const [name, ops] of variants) {
    Deno.bench({ name, group, baseline: ops === REF_OPS }, () => run(ops));
  }
}

// MLP hidden (B·N, 4·D)
const nH = B * N * 4 * D;
const [h, dh, out] = [filled(nH), filled(nH), new Float32Array(nH)];
const bias = filled(4 * D);
pair(`gelu [${B * N}, ${4 * D}]`, (k) => k.geluForward({ out, inp: h }));
pair(`geluBackward [${B * N}, ${4 * D}]`, (k) => k.geluBackward({ dinp: out, dout: dh, inp: h }));
const c = filled(nH);
const pre = new Float32Array(nH);
pair(`matmul bias+gelu epilogue [${B * N}, ${4 * D}]`, (k) => {
  c.set(h);
  k.matmulEpilogue({ c, bias, pre }, { M: B * N, N: 4 * D, gelu: true });
});

// attention probabilities (B·NH·N, N)
const rowsA = B * NH * N;
const [att, prob, dprob] = [filled(rowsA * N), new Float32Array(rowsA * N), filled(rowsA * N)];
pair(
  `softmax [${rowsA}, ${N}]`,
  (k) => k.softmaxForward({ out: prob, inp: att }, { rows: rowsA, C: N, scale: 0.125 }),
);
const datt = new Float32Array(rowsA * N);
pair(
  `softmaxBackward [${rowsA}, ${N}]`,
  (k) =>
    k.softmaxBackward({ dinp: datt, dout: dprob, out: prob }, { rows: rowsA, C: N, scale: 0.125 }),
);

// residual stream (B·N, D)
const rows = B * N;
const [x, y, dy, dx] = [
  filled(rows * D),
  new Float32Array(rows * D),
  filled(rows * D),
  new Float32Array(rows * D),
];
const [w, b] = [filled(D, 0.5, 1.5), filled(D)];
const [mean, rstd] = [new Float32Array(rows), new Float32Array(rows)];
const [dw, db] = [new Float32Array(D), new Float32Array(D)];
pair(
  `layernorm [${rows}, ${D}]`,
  (k) =>
    k.layernormForward({ out: y, mean, rstd, inp: x, weight: w, bias: b }, {
      rows,
      C: D,
      eps: 1e-6,
    }),
);
pair(`layernormBackward [${rows}, ${D}]`, (k) =>
  k.layernormBackward(
    { dinp: dx, dweight: dw, dbias: db, dout: dy, inp: x, weight: w, mean, rstd },
    { rows, C: D },
  ));

// AdamW over vit-tiny's 5.5M parameters in two segments
const nP = 5_500_000;
const [p, g, m, v] = [
  filled(nP, -1, 1),
  filled(nP, -1, 1),
  new Float32Array(nP),
  new Float32Array(nP),
];
const offsets = new Int32Array([0, nP >> 1, nP]);
const hyper = new Float32Array([1, 0.05, 1, 0]);
let step = 1;
pair(
  `adamw [${nP}]`,
  (k) =>
    k.adamw({ param: p, grad: g, m, v, offsets, hyper }, {
      lr: 1e-4,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      step: step++,
    }),
);
