import { assertEquals, assertThrows } from "../src/util/assert.ts";
import { assertAllClose } from "./helpers.ts";
import { tsGemm } from "../src/backend/cpu/gemm_ts.ts";
import {
  featuresFrom,
  knnClassify,
  type KnnClassifyOptions,
  knnClassScores,
} from "../src/eval/knn.ts";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.ts";

/** Deterministic uniform values in [-0.5, 0.5). */
function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  });
}

/** `n` points per class near `C` orthogonal axes in `D >= C` dims (class c along axis c). */
function clusters(C: number, n: number, D: number, seed: number) {
  const x = rand(C * n * D, seed).map((v) => 0.2 * v);
  const y = new Int32Array(C * n);
  for (let i = 0; i < C * n; i++) {
    y[i] = i % C;
    x[i * D + y[i]] += 1;
  }
  return { x, y };
}

Deno.test("knnClassify() is 100% top-1 on separable clusters, with BLAS and pure-TS GEMM", () => {
  const D = 8;
  const train = clusters(5, 40, D, 1);
  const test = clusters(5, 13, D, 2);
  for (const gemm of [undefined, tsGemm]) {
    const r = knnClassify(
      { features: train.x, labels: train.y },
      { features: test.x, labels: test.y },
      { dim: D, gemm },
    );
    assertEquals(r, { top1: 100, top5: 100, count: 65, k: 20 });
  }
});

Deno.test("knnClassScores() matches hand-computed exp(sim/T) sums for 3 classes, k=3", () => {
  // Unit train vectors with cosines 1, 0.8, 0.6, 0, -1 to the test vector (2, 0).
  const train = new Float32Array([1, 0, 0.8, 0.6, 0.6, 0.8, 0, 1, -1, 0]);
  const labels = new Int32Array([0, 1, 1, 2, 0]);
  const test = new Float32Array([2, 0]);
  for (const T of [0.5, 0.07]) {
    const { scores, k } = knnClassScores(train, labels, test, 2, { k: 3, temperature: T });
    assertEquals(k, 3);
    // Neighbours 0 (class 0), 1 and 2 (class 1); class 2 (cos 0) is 4th and left out.
    const expected = [Math.exp(1 / T), Math.exp(0.8 / T) + Math.exp(0.6 / T), 0];
    assertAllClose(scores, expected, { rtol: 1e-5, atol: 0 }, `scores at T=${T}`);
  }
  // T=0.5: class 1 wins (e^1.6 + e^1.2 = 8.27 > e^2 = 7.39); T=0.07: class 0 wins.
  const y1 = new Int32Array([1]);
  const tr = { features: train, labels };
  const te = { features: test, labels: y1 };
  assertEquals(knnClassify(tr, te, { dim: 2, k: 3, temperature: 0.5 }).top1, 100);
  assertEquals(knnClassify(tr, te, { dim: 2, k: 3, temperature: 0.07 }).top1, 0);
});

Deno.test("knnClassify() top-5 counts the label among the 5 highest class scores", () => {
  // Seven train vectors, one per class, at decreasing cosine to the test vector (1, 0).
  const cos = [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
  const train = new Float32Array(cos.flatMap((c) => [c, Math.sqrt(1 - c * c)]));
  const labels = new Int32Array([0, 1, 2, 3, 4, 5, 6]);
  const test = new Float32Array([1, 0, 1, 0, 1, 0]);
  // Labels ranked 1st, 5th and 6th.
  const r = knnClassify(
    { features: train, labels },
    { features: test, labels: new Int32Array([0, 4, 5]) },
    { dim: 2, k: 7 },
  );
  assertAllClose([r.top1, r.top5], [100 / 3, 200 / 3], { atol: 1e-9 });
  // Fewer than 5 classes: top-5 is always a hit.
  const r3 = knnClassify(
    { features: train.slice(0, 6), labels: new Int32Array([0, 1, 2]) },
    { features: test, labels: new Int32Array([2, 1, 2]) },
    { dim: 2 },
  );
  assertEquals(r3.top5, 100);
  // Equal class scores rank the lower class first: class 1 (no neighbours) beats class 3.
  const tie = knnClassify(
    { features: new Float32Array([1, 0]), labels: new Int32Array([0]) },
    { features: new Float32Array([1, 0, 1, 0]), labels: new Int32Array([1, 3]) },
    { dim: 2, numClasses: 6 },
  );
  assertEquals(tie.top5, 100); // ranks 1 and 3, both < 5
  const tie6 = knnClassify(
    { features: new Float32Array([1, 0]), labels: new Int32Array([0]) },
    { features: new Float32Array([1, 0]), labels: new Int32Array([5]) },
    { dim: 2, numClasses: 6 },
  );
  assertEquals(tie6.top5, 0); // rank 5
});

Deno.test("knnClassify() breaks similarity ties by the lower train index", () => {
  // Three identical train vectors; k=1 keeps index 0 (class 2), never 1 or 2.
  const train = new Float32Array([1, 0, 1, 0, 1, 0]);
  const r = knnClassify(
    { features: train, labels: new Int32Array([2, 0, 1]) },
    { features: new Float32Array([1, 0]), labels: new Int32Array([2]) },
    { dim: 2, k: 1 },
  );
  assertEquals(r.top1, 100);
});

Deno.test("knnClassify() clamps k to the train set size", () => {
  const train = clusters(2, 3, 4, 3);
  const test = clusters(2, 2, 4, 4);
  const r = knnClassify(
    { features: train.x, labels: train.y },
    { features: test.x, labels: test.y },
    { dim: 4, k: 50 },
  );
  assertEquals(r.k, 6);
  assertEquals(r.count, 4);
});

Deno.test("knnClassify() matches a brute-force reference on random data", () => {
  const D = 5;
  const [Ntr, Nte, C, k, T] = [37, 23, 4, 6, 0.1];
  const train = rand(Ntr * D, 5);
  const test = rand(Nte * D, 6);
  const ytr = Int32Array.from({ length: Ntr }, (_, i) => (i * 7) % C);
  const { scores } = knnClassScores(train, ytr, test, D, { k, temperature: T });
  const norm = (x: Float32Array, i: number) => {
    const v = Array.from(x.subarray(i * D, (i + 1) * D));
    const n = Math.hypot(...v);
    return v.map((a) => a / n);
  };
  const expected: number[] = [];
  for (let i = 0; i < Nte; i++) {
    const q = norm(test, i);
    const sims = Array.from({ length: Ntr }, (_, j) => {
      const t = norm(train, j);
      return { j, s: q.reduce((acc, a, d) => acc + a * t[d], 0) };
    }).sort((a, b) => b.s - a.s || a.j - b.j);
    const row = new Array(C).fill(0);
    for (const { j, s } of sims.slice(0, k)) row[ytr[j]] += Math.exp(s / T);
    expected.push(...row);
  }
  assertAllClose(scores, expected, { rtol: 1e-4, atol: 0 });
});

Deno.test("knnClassScores() gives the same scores when Ntest spans several blocks", () => {
  // Blocks hold 2^22 similarities: Ntrain 300001 gives 13 test rows per block, 3 blocks here.
  const D = 3;
  const [Ntr, Nte] = [300_001, 30];
  const train = rand(Ntr * D, 7);
  const test = rand(Nte * D, 8);
  const ytr = Int32Array.from({ length: Ntr }, (_, i) => i % 10);
  const opts = { k: 5, gemm: tsGemm };
  const all = knnClassScores(train, ytr, test, D, opts).scores;
  for (const i of [0, 12, 13, 25, 26, 29]) {
    const one = knnClassScores(train, ytr, test.subarray(i * D, (i + 1) * D), D, opts).scores;
    assertAllClose(all.subarray(i * 10, (i + 1) * 10), one, { atol: 0, rtol: 0 }, `row ${i}`);
  }
});

Deno.test("knnClassify() throws a RangeError naming the arrays on bad sizes", () => {
  const x = new Float32Array(6);
  const y = new Int32Array(3);
  const knn = (
    xTr: Float32Array,
    yTr: Int32Array,
    xTe: Float32Array,
    yTe: Int32Array,
    opts: KnnClassifyOptions,
  ) => knnClassify({ features: xTr, labels: yTr }, { features: xTe, labels: yTe }, opts);
  assertThrows(() => knn(new Float32Array(7), y, x, y, { dim: 2 }), RangeError, "train");
  assertThrows(() => knn(x, new Int32Array(2), x, y, { dim: 2 }), RangeError, "trainLabels");
  assertThrows(() => knn(x, y, x, new Int32Array(4), { dim: 2 }), RangeError, "testLabels");
  assertThrows(() => knn(x, y, new Float32Array(5), y, { dim: 2 }), RangeError, "test is not");
  assertThrows(() => knn(x, y, x, y, { dim: 0 }), RangeError, "dim");
  assertThrows(() => knn(x, y, x, y, { dim: 2, k: 0 }), RangeError, "k must");
  assertThrows(() => knn(x, y, x, y, { dim: 2, temperature: 0 }), RangeError, "temperature");
  assertThrows(
    () => knn(x, new Int32Array([0, 3, 1]), x, y, { dim: 2, numClasses: 3 }),
    RangeError,
    "trainLabels[1]",
  );
  assertThrows(
    () => knn(new Float32Array(0), new Int32Array(0), x, y, { dim: 2 }),
    RangeError,
    "empty",
  );
  assertThrows(
    () => knn(new Float32Array([1, NaN, 0, 1, 1, 1]), y, x, y, { dim: 2 }),
    RangeError,
    "non-finite",
  );
});

Deno.test("featuresFrom() reads what embed writes and rejects missing tensors", () => {
  const features = new Float32Array([1, 2, 3, 4, 5, 6]);
  const labels = new Int32Array([0, 1, 0]);
  const both = encodeSafetensors({
    features: { dtype: "F32", shape: [3, 2], data: features },
    labels: { dtype: "I32", shape: [3], data: labels },
  });
  const f = featuresFrom(decodeSafetensors(both).tensors, "a.safetensors");
  assertEquals([f.count, f.dim], [3, 2]);
  assertEquals(Array.from(f.features), Array.from(features));
  assertEquals(Array.from(f.labels), Array.from(labels));
  const only = encodeSafetensors({ features: { dtype: "F32", shape: [3, 2], data: features } });
  assertThrows(
    () => featuresFrom(decodeSafetensors(only).tensors, "b.safetensors"),
    RangeError,
    '"b.safetensors"',
  );
  const short = encodeSafetensors({
    features: { dtype: "F32", shape: [3, 2], data: features },
    labels: { dtype: "I32", shape: [2], data: labels.subarray(0, 2) },
  });
  assertThrows(
    () => featuresFrom(decodeSafetensors(short).tensors, "c"),
    RangeError,
    "[3,2] and [2]",
  );
});
