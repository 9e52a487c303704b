/**
 * CpuBackend: the class wiring (views with offsets, dtypes, size checks) against the raw
 * f64 ops.
 */
import { type Tensor, view } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { adamw } from "../src/backend/cpu/ref/adamw.ts";
import { gatherRowsForward } from "../src/backend/cpu/ref/rows.ts";
import { layernormBackward, layernormForward } from "../src/backend/cpu/ref/layernorm.ts";
import { matmulForward } from "../src/backend/cpu/ref/matmul.ts";
import { smoothL1Loss } from "../src/backend/cpu/ref/smooth_l1.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { randArray } from "./fd.ts";
import { assertAllClose } from "./helpers.ts";

const F64 = Float64Array;

/** A view of `data` placed at offset 5 of a larger storage whose other elements are sentinels. */
function placed(be: CpuBackend, data: Float64Array, shape: number[]): Tensor {
  const pad = 5;
  const whole = be.tensor([pad + data.length + 3], "f32", "placed");
  be.upload(whole, new Float32Array(pad + data.length + 3).fill(-777));
  const t = view(whole, pad, shape);
  be.upload(t, Float32Array.from(data));
  return t;
}

/** Asserts the sentinels around a {@link placed} view are untouched. */
async function assertSentinels(be: CpuBackend, t: Tensor): Promise<void> {
  const whole = await be.download({
    ...t,
    offset: 0,
    size: t.storage.length,
    shape: [t.storage.length],
  });
  for (let i = 0; i < whole.length; i++) {
    if (i < t.offset || i >= t.offset + t.size) {
      assert(whole[i] === -777, `element ${i} outside the view was overwritten: ${whole[i]}`);
    }
  }
}

Deno.test("CpuBackend.layernorm() and layernormBackward() match the f64 ops on offset views", async () => {
  const be = new CpuBackend({ gemm: "ts" });
  const rng = new Rng(21);
  const [rows, C, eps] = [3, 7, 1e-5];
  const inp = randArray(rng, rows * C, -2, 2);
  const weight = randArray(rng, C);
  const bias = randArray(rng, C);
  const dout = randArray(rng, rows * C);
  const ref = { out: new F64(rows * C), mean: new F64(rows), rstd: new F64(rows) };
  layernormForward({ ...ref, inp, weight, bias }, { rows, C, eps });
  const refD = { dinp: new F64(rows * C), dweight: new F64(C), dbias: new F64(C) };
  layernormBackward({ ...refD, dout, inp, weight, mean: ref.mean, rstd: ref.rstd }, { rows, C });

  const t = {
    out: placed(be, new F64(rows * C), [rows, C]),
    mean: placed(be, new F64(rows), [rows]),
    rstd: placed(be, new F64(rows), [rows]),
    inp: placed(be, inp, [rows, C]),
    weight: placed(be, weight, [C]),
    bias: placed(be, bias, [C]),
  };
  be.layernorm(t, { rows, C, eps });
  const d = {
    dinp: placed(be, new F64(rows * C), [rows, C]),
    dweight: placed(be, new F64(C), [C]),
    dbias: placed(be, new F64(C), [C]),
  };
  be.layernormBackward(
    {
      ...d,
      dout: placed(be, dout, [rows, C]),
      inp: t.inp,
      weight: t.weight,
      mean: t.mean,
      rstd: t.rstd,
    },
    { rows, C },
  );
  const tol = { atol: 1e-5, rtol: 1e-5 };
  assertAllClose(await be.download(t.out), ref.out, tol, "out");
  assertAllClose(await be.download(t.rstd), ref.rstd, tol, "rstd");
  assertAllClose(await be.download(d.dinp), refD.dinp, tol, "dinp");
  assertAllClose(await be.download(d.dweight), refD.dweight, tol, "dweight");
  for (const x of [t.out, t.mean, t.rstd, d.dinp, d.dweight, d.dbias]) await assertSentinels(be, x);
  be.dispose();
});

Deno.test("CpuBackend.matmul() matches the f64 op on offset views with every GEMM available", async () => {
  for (const gemm of ["ts", "auto"] as const) {
    const be = new CpuBackend({ gemm });
    assert(be.description.startsWith("cpu: "), be.description);
    const rng = new Rng(22);
    const [M, N, K, batch] = [3, 7, 65, 2];
    const a = randArray(rng, batch * K * M);
    const b = randArray(rng, batch * N * K);
    const bias = randArray(rng, N);
    const ref = new F64(batch * M * N);
    const refPre = new F64(batch * M * N);
    const dims = { M, N, K, batch, transA: true, transB: true, gelu: true };
    matmulForward({ out: ref, a, b, bias, pre: refPre }, dims);
    const out = placed(be, new F64(batch * M * N), [batch, M, N]);
    const pre = placed(be, new F64(batch * M * N), [batch, M, N]);
    be.matmul({
      out,
      a: placed(be, a, [batch, K, M]),
      b: placed(be, b, [batch, N, K]),
      bias: placed(be, bias, [N]),
      pre,
    }, dims);
    assertAllClose(
      await be.download(out),
      ref,
      { atol: 1e-5, rtol: 1e-5 },
      `${be.description} out`,
    );
    assertAllClose(
      await be.download(pre),
      refPre,
      { atol: 1e-5, rtol: 1e-5 },
      `${be.description} pre`,
    );
    await assertSentinels(be, out);
    await assertSentinels(be, pre);
    be.dispose();
  }
});

Deno.test("CpuBackend.gatherRows(), smoothL1Loss() and adamw() match the f64 ops", async () => {
  const be = new CpuBackend({ gemm: "ts" });
  const rng = new Rng(23);
  const [C, inpRows] = [3, 7];
  const idx = new Int32Array([4, -1, 0, 6, -1]);
  const rows = idx.length;
  const inp = randArray(rng, inpRows * C);
  const fill = randArray(rng, C);
  const ref = new F64(rows * C);
  gatherRowsForward({ out: ref, inp, index: idx, fill }, { rows, C });
  const ints = be.tensor([2 + rows], "i32");
  be.upload(ints, new Int32Array([9, 9, ...idx]));
  const index = view(ints, 2, [rows]);
  const out = placed(be, new F64(rows * C), [rows, C]);
  be.gatherRows(
    { out, inp: placed(be, inp, [inpRows, C]), index, fill: placed(be, fill, [C]) },
    { rows, C },
  );
  assertAllClose(await be.download(out), ref, { atol: 1e-6, rtol: 1e-6 }, "gatherRows");

  const target = randArray(rng, rows * C, -3, 3);
  const weight = new F64([0, 1, 1, 0, 1]);
  const refLoss = new F64(1);
  const refD = new F64(rows * C);
  smoothL1Loss({ loss: refLoss, dinp: refD, inp: ref, target, weight }, { rows, C, beta: 2 });
  const loss = placed(be, new F64(1), [1]);
  const dinp = placed(be, new F64(rows * C), [rows, C]);
  be.smoothL1Loss(
    {
      loss,
      dinp,
      inp: out,
      target: placed(be, target, [rows, C]),
      weight: placed(be, weight, [rows]),
    },
    { rows, C, beta: 2 },
  );
  assertAllClose(await be.download(loss), refLoss, { atol: 1e-6, rtol: 1e-5 }, "loss");
  assertAllClose(await be.download(dinp), refD, { atol: 1e-6, rtol: 1e-5 }, "dinp");

  const n = 9;
  const p = randArray(rng, n);
  const g = randArray(rng, n);
  const hyper = new F64([1, 0.05, 0.5, 0]);
  const offs = new Int32Array([0, 4, n]);
  const st = { param: p.slice(), m: new F64(n), v: new F64(n) };
  const hp = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 };
  adamw({ ...st, grad: g, offsets: offs, hyper, clipScale: new F64([0.5]) }, hp);
  const offsets = be.tensor([3], "i32");
  be.upload(offsets, offs);
  const param = placed(be, p, [n]);
  be.adamw({
    param,
    grad: placed(be, g, [n]),
    m: placed(be, new F64(n), [n]),
    v: placed(be, new F64(n), [n]),
    offsets,
    hyper: placed(be, hyper, [2, 2]),
    clipScale: placed(be, new F64([0.5]), [1]),
  }, hp);
  assertAllClose(await be.download(param), st.param, { atol: 1e-6, rtol: 1e-5 }, "adamw param");
  await assertSentinels(be, param);
  be.dispose();
});

Deno.test("CpuBackend rejects wrong sizes and dtypes with the op and argument named", () => {
  const be = new CpuBackend({ gemm: "ts" });
  const x = be.tensor([3, 7]);
  const y = be.tensor([3, 6]);
  assertThrows(
    () => be.softmax({ out: y, inp: x }, { rows: 3, C: 7, scale: 1 }),
    RangeError,
    "Cannot run softmax: out must have rows·C = 21 elements, current value is 18",
  );
  const idx = be.tensor([3], "i32");
  assertThrows(
    () => be.gatherRows({ out: x, inp: x, index: x }, { rows: 3, C: 7 }),
    RangeError,
    "index must have rows = 3 elements",
  );
  assertThrows(
    () => be.gatherRows({ out: x, inp: be.tensor([3, 7], "i32"), index: idx }, { rows: 3, C: 7 }),
    TypeError,
    "Cannot run gatherRows: inp must be f32, current dtype is i32",
  );
  assertThrows(() => be.upload(x, new Float32Array(5)), RangeError, "21 elements");
  assertThrows(() => be.upload(idx, new Float32Array(3)), TypeError, "Float32Array");
  be.dispose();
  assertThrows(() => be.tensor([1]), TypeError, "disposed");
});

Deno.test("CpuBackend memory ops: fill, copy, download returns a copy", async () => {
  const be = new CpuBackend({ gemm: "ts" });
  const a = be.tensor([4]);
  const b = be.tensor([4]);
  be.fill(a, 2.5);
  be.copy(b, a);
  const host = await be.download(b);
  host[0] = 99;
  assertEquals([...(await be.download(b))], [2.5, 2.5, 2.5, 2.5]);
  be.submit();
  await be.sync();
  be.dispose();
});
