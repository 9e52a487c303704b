/**
 * Whole-model test: a tiny dBOT step against golden values from PyTorch
 * (tests/fixtures/gen_golden.py): loss, every parameter gradient, and a
 * 5-step AdamW loss trajectory, on the CPU and the WebGPU backend.
 */
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { adamwTrajectory, golden, loadGolden } from "./golden.ts";
import { assertAllClose, maxAbsDiff } from "./helpers.ts";
import { gpuTest } from "./gpu.ts";
import { requires } from "./requires.ts";
import { assert } from "../src/util/assert.ts";
import { PRETRAIN_ADAMW } from "../src/train/adamw.ts";

const g = golden;

/** One forward/backward: target, pred, loss and every gradient vs PyTorch. */
async function checkStep(be: Backend, tol: { grad: number }): Promise<void> {
  const model = loadGolden(be);
  be.fill(model.student.grads!, 0);
  model.forwardBackward();
  assertAllClose(
    await be.download(model.target),
    g("target"),
    { atol: 1e-4, rtol: 1e-4 },
    "target",
  );
  assertAllClose(await be.download(model.pred), g("pred"), { atol: 1e-5, rtol: 1e-4 }, "pred");
  assertAllClose(await be.download(model.loss), g("loss"), { atol: 0, rtol: 1e-5 }, "loss");
  const grads = await model.student.gradsToHost();
  let n = 0;
  let worst = 0;
  for (const [name, grad] of grads) {
    assertAllClose(grad, g(`grad.${name}`), { atol: tol.grad, rtol: 1e-3 }, `grad.${name}`);
    worst = Math.max(worst, maxAbsDiff(grad, g(`grad.${name}`)));
    n++;
  }
  assert(n === 48, `expected 48 trainable tensors, got ${n}`);
  const loss = (await be.download(model.loss))[0];
  console.log(
    `golden ${be.description}: loss rel err ${
      (Math.abs(loss - g("loss")[0]) / g("loss")[0]).toExponential(2)
    }, ` +
      `pred max abs err ${
        maxAbsDiff(await be.download(model.pred), g("pred")).toExponential(2)
      }, ` +
      `max grad abs err ${worst.toExponential(2)} over 48 tensors`,
  );
}

/** Five AdamW steps (lr 1e-3, betas 0.9/0.95, wd 0.05 by the decay rule, clip 3.0) vs PyTorch. */
async function checkTrajectory(be: Backend): Promise<void> {
  const model = loadGolden(be);
  const { losses, norms } = await adamwTrajectory(be, model, PRETRAIN_ADAMW);
  assertAllClose(losses, g("trajectory"), { atol: 0, rtol: 1e-4 }, "trajectory");
  const rel = losses.map((l, i) => Math.abs(l - g("trajectory")[i]) / g("trajectory")[i]);
  console.log(
    `golden trajectory ${be.description}: max rel err ${
      Math.max(...rel).toExponential(2)
    } over 6 losses`,
  );
  assertAllClose(norms, g("grad_norm"), { atol: 0, rtol: 1e-4 }, "grad_norm");
}

const openblas = await requires("openblas");
for (const gemm of ["openblas", "ts"] as const) {
  // The OpenBLAS case is skipped (reason printed) where OpenBLAS is missing, unless
  // DBOT_REQUIRE_OPENBLAS=1.
  Deno.test({
    name:
      `DbotModel.forwardBackward() matches PyTorch loss and all 48 gradients on cpu (${gemm} GEMM)`,
    ignore: gemm === "openblas" && openblas.ignore,
    fn: async () => {
      if (gemm === "openblas") openblas.check();
      const be = new CpuBackend({ gemm });
      await checkStep(be, { grad: 1e-6 });
      be.dispose();
    },
  });
}

Deno.test("DbotModel 5-step AdamW trajectory matches PyTorch on cpu", async () => {
  const be = new CpuBackend();
  await checkTrajectory(be);
  be.dispose();
});

gpuTest("DbotModel.forwardBackward() matches PyTorch loss and all 48 gradients", async (be) => {
  await checkStep(be, { grad: 1e-6 });
});

gpuTest("DbotModel 5-step AdamW trajectory matches PyTorch", async (be) => {
  await checkTrajectory(be);
});
