/**
 * The loss seam: each `DbotConfig.loss` gives the loss its definition says over the
 * model's own predictions and targets, and a gradient that matches finite differences.
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { type DbotConfig, DbotModel } from "../src/models/dbot.ts";
import { COSINE_EPS, cosineDims, createLoss, LOSSES, type LossName } from "../src/models/losses.ts";
import { cosineLoss } from "../src/backend/cpu/ref/cosine_loss.ts";
import { dot, fdGrad, randArray } from "./fd.ts";
import { randomMasking } from "../src/models/masking.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { goldenConfig } from "./golden.ts";

const B = 2;
const L = 16;

function build(be: CpuBackend, loss: LossName, teacher: DbotConfig["teacher"]): DbotModel {
  const model = new DbotModel(be, { ...goldenConfig(), teacher, loss }, B);
  model.initStudent(3);
  if (model.teacher.params) model.teacher.params.init(new Rng(4));
  const rng = new Rng(5);
  model.setBatch(rng.uniformArray(B * 3 * 16 * 16, -1, 1), noise());
  return model;
}

function noise(): Float32Array {
  return new Rng(6).uniformArray(B * L);
}

/** The loss each name defines, in f64 on the host, from `pred` and `target` `[B·(1+L), C]`. */
function hostLoss(name: LossName, pred: Float32Array, target: Float32Array, C: number): number {
  const m = randomMasking(noise(), { B, L }, 0.75);
  let num = 0;
  let den = 0;
  for (let b = 0; b < B; b++) {
    for (let n = 0; n <= L; n++) {
      const w = n === 0 ? (name === "smoothl1" ? 1 : 0) : m.mask[b * L + n - 1];
      if (!w) continue;
      const o = (b * (1 + L) + n) * C;
      let row = 0;
      if (name === "cosine") {
        let dot = 0, pp = 0, tt = 0;
        for (let c = 0; c < C; c++) {
          dot += pred[o + c] * target[o + c];
          pp += pred[o + c] ** 2;
          tt += target[o + c] ** 2;
        }
        // torch 1.13 F.cosine_similarity: each norm clamped to eps
        row = 1 - dot / (Math.max(Math.sqrt(pp), COSINE_EPS) * Math.max(Math.sqrt(tt), COSINE_EPS));
      } else {
        for (let c = 0; c < C; c++) {
          const d = pred[o + c] - target[o + c];
          row += name === "mse" ? d * d : Math.abs(d) < 2 ? 0.25 * d * d : Math.abs(d) - 1;
        }
        row /= C;
      }
      num += w * row;
      den += w;
    }
  }
  return num / den;
}

for (const name of Object.keys(LOSSES) as LossName[]) {
  Deno.test(`DbotModel with loss "${name}" computes its definition over the masked tokens`, async () => {
    const be = new CpuBackend({ threads: 1 });
    const model = build(be, name, goldenConfig().teacher);
    model.forwardBackward();
    const pred = (await be.download(model.pred)) as Float32Array;
    const target = (await be.download(model.target)) as Float32Array;
    const loss = (await be.download(model.loss))[0];
    const want = hostLoss(name, pred, target, model.sizes.Dt);
    assert(Math.abs(loss - want) <= 1e-5 * Math.abs(want), `${name}: loss ${loss} vs ${want}`);
    be.dispose();
  });

  Deno.test(`DbotModel with loss "${name}": decoder_predp.bias gradient matches finite differences`, async () => {
    const be = new CpuBackend({ threads: 1 });
    const model = build(be, name, { kind: "pixels" });
    be.fill(model.student.grads!, 0);
    model.forwardBackward();
    const grad = (await be.download(model.student.grad("decoder_predp.bias"))) as Float32Array;
    const bias = model.student.get("decoder_predp.bias");
    const value = async (i: number, h: number): Promise<number> => {
      const b = (await be.download(bias)) as Float32Array;
      b[i] += h;
      be.upload(bias, b);
      model.forwardBackward();
      b[i] -= h;
      be.upload(bias, b);
      return (await be.download(model.loss))[0];
    };
    for (const i of [0, 5, 47]) {
      const h = 1e-2;
      const fd = ((await value(i, h)) - (await value(i, -h))) / (2 * h);
      const tol = 2e-3 + 2e-2 * Math.abs(fd);
      assert(Math.abs(grad[i] - fd) <= tol, `${name} bias[${i}]: ${grad[i]} vs FD ${fd}`);
    }
    be.dispose();
  });
}

Deno.test("The pixel teacher gives the cls row no weight, whatever the loss", async () => {
  const be = new CpuBackend({ threads: 1 });
  const model = build(be, "smoothl1", { kind: "pixels" });
  model.forwardBackward();
  const pred = (await be.download(model.pred)) as Float32Array;
  const target = (await be.download(model.target)) as Float32Array;
  const loss = (await be.download(model.loss))[0];
  const want = hostLoss("smoothl1", pred, target, model.sizes.Dt);
  const noCls = (() => {
    // the same sum without the cls rows
    const C = model.sizes.Dt;
    const m = randomMasking(noise(), { B, L }, 0.75);
    let num = 0;
    let den = 0;
    for (let b = 0; b < B; b++) {
      for (let n = 1; n <= L; n++) {
        if (!m.mask[b * L + n - 1]) continue;
        const o = (b * (1 + L) + n) * C;
        let row = 0;
        for (let c = 0; c < C; c++) {
          const d = Math.abs(pred[o + c] - target[o + c]);
          row += d < 2 ? 0.25 * d * d : d - 1;
        }
        num += row / C;
        den++;
      }
    }
    return num / den;
  })();
  assert(Math.abs(loss - noCls) <= 1e-5 * noCls, `loss ${loss} vs ${noCls}`);
  assert(Math.abs(loss - want) > 1e-6, "the cls row must not count for pixel targets");
  be.dispose();
});

Deno.test("createLoss() names the choices for an unknown loss", () => {
  const be = new CpuBackend({ threads: 1 });
  assertThrows(() => createLoss(be, "l2"), TypeError, "use one of smoothl1, cosine, mse");
  assertEquals(createLoss(be, "mse").name, "mse");
  be.dispose();
});

/** The `cosine` loss's own op and dims (CPU reference, f64) on `x` with fixed targets. */
function cosineRef(x: Float64Array, y: Float64Array, w: Float64Array, C: number) {
  const loss = new Float64Array(1);
  const dinp = new Float64Array(x.length);
  cosineLoss({ loss, dinp, inp: x, target: y, weight: w }, cosineDims(w.length, C));
  return { loss: loss[0], dinp };
}

Deno.test("cosine loss: ∂loss/∂pred matches finite differences (f64 reference, masked rows only)", () => {
  const rng = new Rng(11);
  const [rows, C] = [5, 7];
  const x = randArray(rng, rows * C);
  const y = randArray(rng, rows * C);
  const w = new Float64Array([0, 1, 1, 0, 1]); // cls-like row 0 and a visible row 3 count nothing
  const { dinp } = cosineRef(x, y, w, C);
  const fd = fdGrad(() => cosineRef(x, y, w, C).loss, x, 1e-6);
  for (let i = 0; i < x.length; i++) {
    assert(
      Math.abs(dinp[i] - fd[i]) <= 1e-7 + 1e-6 * Math.abs(fd[i]),
      `dinp[${i}] ${dinp[i]} vs FD ${fd[i]}`,
    );
  }
  for (const r of [0, 3]) {
    for (let c = 0; c < C; c++) assert(dinp[r * C + c] === 0, `row ${r} has weight 0`);
  }
  // the value: mean over the weighted rows of 1 − cos
  let want = 0;
  for (const r of [1, 2, 4]) {
    const a = x.subarray(r * C, (r + 1) * C);
    const b = y.subarray(r * C, (r + 1) * C);
    want += 1 - dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
  }
  const got = cosineRef(x, y, w, C).loss;
  assert(Math.abs(got - want / 3) <= 1e-12, `loss ${got} vs ${want / 3}`);
});

Deno.test("cosine loss: eps 1e-6 clamps each norm like torch 1.13 F.cosine_similarity", () => {
  // torch 1.13 (f64): F.cosine_similarity(x, y, dim=-1, eps=1e-6) and x.grad of its sum for
  //   x=[1e-7, 0], y=[1, 0]    → cos 0.1,  ∂cos/∂x = [990000, 0]   (‖x‖ < eps: clamped)
  //   x=[1e-7, 0], y=[1e-7, 0] → cos 0.01, ∂cos/∂x = [99000, 0]    (both clamped)
  //   x=[3, 1],    y=[1, 2]    → cos 0.7071067811865475, ∂cos/∂x = [-0.0707107, 0.2121320]
  const x = new Float64Array([1e-7, 0, 1e-7, 0, 3, 1]);
  const y = new Float64Array([1, 0, 1e-7, 0, 1, 2]);
  const w = new Float64Array([1, 1, 1]);
  const { loss, dinp } = cosineRef(x, y, w, 2);
  const want = (0.9 + 0.99 + (1 - 0.7071067811865475)) / 3;
  assert(Math.abs(loss - want) <= 1e-12, `loss ${loss} vs torch ${want}`);
  const torchGrad = [990000, 0, 99000, 0, -0.07071067811865472, 0.21213203435596428];
  for (let i = 0; i < 6; i++) {
    const g = -torchGrad[i] / 3; // loss = mean(1 − cos)
    assert(
      Math.abs(dinp[i] - g) <= 1e-9 * Math.max(1, Math.abs(g)),
      `dinp[${i}] ${dinp[i]} vs torch ${g}`,
    );
  }
});
