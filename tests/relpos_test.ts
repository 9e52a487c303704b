/**
 * Relative position bias (BEiT): the index against timm's construction written out
 * directly, the CPU reference backward against finite differences (f64), and the WebGPU
 * kernels against the CPU backend on awkward grids (1×1, non-square 2×3 and 3×5, 14×14)
 * with views at nonzero offsets inside padded buffers.
 *
 * @module
 */
import { relPosBiasBackward, relPosBiasForward } from "../src/backend/cpu/ref/relpos.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { relPosIndex } from "../src/models/symmetric.ts";
import { assert, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { compare, normal } from "./compare.ts";
import { dot, fdGrad, randArray } from "./fd.ts";
import { gpuTest } from "./gpu.ts";
import { assertAllClose } from "./helpers.ts";

Deno.test("relPosIndex() matches timm's relative_position_index for a 2×3 grid", () => {
  const gh = 2, gw = 3;
  const { N, R, index, starts, positions } = relPosIndex(gh, gw);
  assert(N === 7 && R === 3 * 5 + 3, `N ${N}, R ${R}`);
  // timm: coords (2, L) = meshgrid(h, w); rel = c[:, :, None] − c[:, None, :];
  // rel[..., 0] += gh − 1; rel[..., 1] += gw − 1; rel[..., 0] *= 2gw − 1; sum
  for (let i = 0; i < gh * gw; i++) {
    for (let j = 0; j < gh * gw; j++) {
      const dy = Math.floor(i / gw) - Math.floor(j / gw) + gh - 1;
      const dx = (i % gw) - (j % gw) + gw - 1;
      assert(index[(i + 1) * N + j + 1] === dy * (2 * gw - 1) + dx, `pair ${i}, ${j}`);
    }
  }
  assert(index[0] === R - 1, "cls→cls");
  for (let j = 1; j < N; j++) assert(index[j] === R - 3, "cls→token");
  for (let i = 1; i < N; i++) assert(index[i * N] === R - 2, "token→cls");
  // the inverse lists every pair once, under its own row
  const seen = new Set<number>();
  for (let r = 0; r < R; r++) {
    for (let s = starts[r]; s < starts[r + 1]; s++) {
      assert(index[positions[s]] === r, `position ${positions[s]} listed under row ${r}`);
      seen.add(positions[s]);
    }
  }
  assert(seen.size === N * N, `inverse covers ${seen.size} of ${N * N} pairs`);
});

Deno.test("relPosIndex() rejects a bad grid with a clear error", () => {
  assertThrows(() => relPosIndex(0, 3), RangeError, "grid must be positive integers");
});

Deno.test("relPosBiasBackward() matches finite differences for B=2, NH=3, grid 2×3, scale 1.7", () => {
  const rng = new Rng(5);
  const B = 2, NH = 3, scale = 1.7;
  const { N, R, index, starts, positions } = relPosIndex(2, 3);
  const dims = { B, NH, N, R, scale };
  const inp = randArray(rng, B * NH * N * N);
  const table = randArray(rng, R * NH);
  const dout = randArray(rng, B * NH * N * N);
  const out = new Float64Array(B * NH * N * N);
  const loss = (): number => {
    relPosBiasForward({ out, inp, table, index }, dims);
    return dot(out, dout);
  };
  const dtable0 = randArray(rng, R * NH);
  const dtable = dtable0.slice();
  relPosBiasBackward({ dtable, dout, index, starts, positions }, dims);
  for (let k = 0; k < dtable.length; k++) dtable[k] -= dtable0[k]; // it accumulates
  assertAllClose(dtable, fdGrad(loss, table), { atol: 1e-7, rtol: 1e-6 }, "dtable");
  // d/dinp is the identity: out − inp does not depend on inp
  assertAllClose(fdGrad(loss, inp), dout, { atol: 1e-7, rtol: 1e-6 }, "dinp");
});

Deno.test("relPosBias() rejects an index outside the table", () => {
  const { N, R, index } = relPosIndex(1, 2);
  const bad = index.slice();
  bad[3] = R;
  const x = new Float32Array(N * N);
  assertThrows(
    () =>
      relPosBiasForward({ out: x, inp: x, table: new Float32Array(R), index: bad }, {
        B: 1,
        NH: 1,
        N,
        R,
        scale: 1,
      }),
    RangeError,
    "index[3] must be in [0, 6)",
  );
});

for (const [B, NH, gh, gw] of [[1, 1, 1, 1], [3, 2, 2, 3], [2, 5, 3, 5], [2, 3, 14, 14]]) {
  gpuTest(
    `relPosBias() and relPosBiasBackward() match the CPU backend for B=${B}, NH=${NH}, grid ${gh}×${gw}`,
    async (be) => {
      const rng = new Rng(B * 100 + gh * 10 + gw);
      const { N, R, index, starts, positions } = relPosIndex(gh, gw);
      const n = B * NH * N * N;
      const dims = { B, NH, N, R, scale: 2.5 };
      const tol = { atol: 1e-5, rtol: 1e-5 };
      await compare(
        be,
        {
          out: { data: normal(rng, n), shape: [n] },
          inp: { data: normal(rng, n), shape: [n] },
          table: { data: normal(rng, R * NH), shape: [R, NH] },
          index: { data: index, shape: [N * N] },
        },
        (b, t) => b.relPosBias({ out: t.out, inp: t.inp, table: t.table, index: t.index }, dims),
        { out: tol },
        `relPosBias B=${B} NH=${NH} grid ${gh}x${gw}`,
      );
      // in place, as the model runs it
      await compare(
        be,
        {
          x: { data: normal(rng, n), shape: [n] },
          table: { data: normal(rng, R * NH), shape: [R, NH] },
          index: { data: index, shape: [N * N] },
        },
        (b, t) => b.relPosBias({ out: t.x, inp: t.x, table: t.table, index: t.index }, dims),
        { x: tol },
        `relPosBias in place B=${B} NH=${NH} grid ${gh}x${gw}`,
      );
      await compare(
        be,
        {
          dtable: { data: normal(rng, R * NH), shape: [R, NH] },
          dout: { data: normal(rng, n), shape: [n] },
          index: { data: index, shape: [N * N] },
          starts: { data: starts, shape: [R + 1] },
          positions: { data: positions, shape: [N * N] },
        },
        (b, t) =>
          b.relPosBiasBackward({
            dtable: t.dtable,
            dout: t.dout,
            index: t.index,
            starts: t.starts,
            positions: t.positions,
          }, dims),
        { dtable: { atol: 1e-4, rtol: 1e-4 } },
        `relPosBiasBackward B=${B} NH=${NH} grid ${gh}x${gw}`,
      );
    },
  );
}

for (const [B, NH, gh, gw] of [[1, 1, 1, 1], [3, 2, 2, 3], [2, 3, 14, 14]]) {
  Deno.test(`CpuBackend's fast relPosBias() and backward match the reference for B=${B}, NH=${NH}, grid ${gh}×${gw}`, async () => {
    const rng = new Rng(B + gh * gw);
    const { N, R, index, starts, positions } = relPosIndex(gh, gw);
    const n = B * NH * N * N;
    const dims = { B, NH, N, R, scale: 0.7 };
    const x = normal(rng, n);
    const table = normal(rng, R * NH);
    const dtable0 = normal(rng, R * NH);
    const results = [];
    for (const be of [CpuBackend.reference(), new CpuBackend({ threads: 1 })]) {
      const t = (d: Float32Array | Int32Array, shape: number[]) => {
        const v = be.tensor(shape, d instanceof Int32Array ? "i32" : "f32");
        be.upload(v, d);
        return v;
      };
      const xt = t(x, [n]);
      const out = be.tensor([n]);
      const idx = t(index, [N * N]);
      be.relPosBias({ out, inp: xt, table: t(table, [R, NH]), index: idx }, dims);
      const dtable = t(dtable0, [R, NH]);
      be.relPosBiasBackward({
        dtable,
        dout: xt,
        index: idx,
        starts: t(starts, [R + 1]),
        positions: t(positions, [N * N]),
      }, dims);
      results.push({
        kernels: be.kernels,
        out: await be.download(out),
        dtable: await be.download(dtable),
      });
    }
    assert(results[0].kernels === "js" && results[1].kernels !== "js", "fast path not taken");
    assertAllClose(results[1].out, results[0].out, { atol: 1e-6, rtol: 1e-6 }, "out");
    assertAllClose(results[1].dtable, results[0].dtable, { atol: 1e-4, rtol: 1e-5 }, "dtable");
  });
}
