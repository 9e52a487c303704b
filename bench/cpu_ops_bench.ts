/**
 * `deno bench` of the CPU backend's non-GEMM ops at ViT shapes (vit-tiny, 32 px, patch 4,
 * batch 64): one op thread (the baseline) against the worker pool with two threads.
 * Names carry the bytes each call reads and writes, so GB/s = bytes / time.
 *
 *   deno bench --allow-read --allow-env --allow-ffi bench/cpu_ops_bench.ts
 *
 * @module
 */
import type { Tensor } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { Rng } from "../src/util/rng.ts";

const B = 64;
const N = 65; // 64 patches + cls
const D = 192;
const NH = 3;
const THREADS = [1, 2];

const backends = THREADS.map((threads) => new CpuBackend({ threads }));
globalThis.addEventListener("unload", () => backends.forEach((be) => be.dispose()));

function filled(be: CpuBackend, shape: number[], seed: number): Tensor {
  const t = be.tensor(shape);
  be.upload(t, new Rng(seed).uniformArray(shape.reduce((a, b) => a * b, 1), -3, 3));
  return t;
}

const mb = (floats: number): string => `${(4 * floats / 1e6).toFixed(1)} MB`;

for (const [i, be] of backends.entries()) {
  const threads = THREADS[i];
  const baseline = threads === 1;
  const name = (what: string) => `${threads} thread${threads > 1 ? "s" : ""} (${what})`;

  // attention probabilities: (B·NH·N, N)
  const rowsA = B * NH * N;
  const att = filled(be, [rowsA, N], 1);
  const prob = be.tensor([rowsA, N]);
  Deno.bench({ name: name(mb(2 * rowsA * N)), group: `softmax [${rowsA}, ${N}]`, baseline }, () => {
    be.softmax({ out: prob, inp: att }, { rows: rowsA, C: N, scale: 0.125 });
  });

  // MLP hidden: (B·N, 4·D)
  const nH = B * N * 4 * D;
  const h = filled(be, [nH], 2);
  const dh = filled(be, [nH], 3);
  const dpre = be.tensor([nH]);
  Deno.bench(
    { name: name(mb(3 * nH)), group: `geluBackward [${B * N}, ${4 * D}]`, baseline },
    () => {
      be.geluBackward({ dinp: dpre, dout: dh, inp: h });
    },
  );

  // residual stream: (B·N, D)
  const rows = B * N;
  const x = filled(be, [rows, D], 4);
  const y = be.tensor([rows, D]);
  const [w, b] = [filled(be, [D], 5), filled(be, [D], 6)];
  const [mean, rstd] = [be.tensor([rows]), be.tensor([rows])];
  Deno.bench({ name: name(mb(2 * rows * D)), group: `layernorm [${rows}, ${D}]`, baseline }, () => {
    be.layernorm({ out: y, mean, rstd, inp: x, weight: w, bias: b }, { rows, C: D, eps: 1e-6 });
  });

  const dy = filled(be, [rows, D], 7);
  const dx = be.tensor([rows, D]);
  const [dw, db] = [be.tensor([D]), be.tensor([D])];
  Deno.bench({
    name: name(mb(3 * rows * D)),
    group: `layernormBackward [${rows}, ${D}]`,
    baseline,
  }, () => {
    be.layernormBackward(
      { dinp: dx, dweight: dw, dbias: db, dout: dy, inp: x, weight: w, mean, rstd },
      { rows, C: D },
    );
  });
}
