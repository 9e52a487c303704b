/**
 * Whole-model test of the CLIP branch against PyTorch (tests/fixtures/make_symmetric_golden.py,
 * written from DBOT_SPEC.md, independent of this code): the symmetric BEiT student
 * (`arch: "symmetric"`, block masking, cosine loss) distilling a CLIP-format teacher
 * (OpenAI names: QuickGELU, ln_pre, proj, no conv bias; loaded by `teachers/clip.ts` from the
 * fixture's `visual.*` tensors, the student's ImageNet normalisation re-done as CLIP's).
 * Checked: targets, predictions, loss, all 39 student gradients, and a 5-step AdamW
 * trajectory (betas 0.9/0.98, eps 1e-6, wd 0.05, clip 3) with its gradient norms, on the
 * CPU (OpenBLAS and TypeScript GEMM) and on WebGPU; a table of max errors is printed last.
 *
 * @module
 */
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { decodeSafetensors, toFloat32 } from "../src/io/safetensors.ts";
import type { VitConfig } from "../src/models/vit_config.ts";
import { type DbotConfig, DbotModel } from "../src/models/dbot.ts";
import {
  CLIP_MEAN,
  CLIP_STD,
  type ClipTeacherConfig,
  clipWeights,
} from "../src/models/teachers/clip.ts";
import { assert } from "../src/util/assert.ts";
import { gpuTest } from "./gpu.ts";
import { assertAllClose, maxAbsDiff } from "./helpers.ts";
import { adamwTrajectory } from "./golden.ts";
import { requires } from "./requires.ts";

const file = new URL("./fixtures/symmetric_golden.safetensors", import.meta.url);
const { tensors } = decodeSafetensors(await Deno.readFile(file), file.pathname);

/** A fixture tensor as f32 (throws when absent). */
function g(name: string): Float32Array {
  const t = tensors.get(name);
  if (!t) throw new Error(`symmetric golden file has no "${name}"`);
  return toFloat32(t);
}

const B = 2;
const L = 64;
const STUDENT: VitConfig = {
  imgSize: 32,
  patchSize: 4,
  inChans: 3,
  embedDim: 32,
  depth: 2,
  numHeads: 2,
  mlpRatio: 4,
};
const TEACHER: ClipTeacherConfig = {
  kind: "clip",
  vit: {
    imgSize: 32,
    patchSize: 4,
    inChans: 3,
    embedDim: 24,
    depth: 2,
    numHeads: 2,
    mlpRatio: 4,
    act: "quickgelu",
    patchBias: false,
    preNorm: true,
    projDim: 16,
    lnEps: 1e-5,
  },
  imgSize: 32,
};
const CONFIG: DbotConfig = {
  student: STUDENT,
  decoder: { embedDim: 32, depth: 1, numHeads: 2 }, // unused by the symmetric student
  teacher: TEACHER,
  maskRatio: 0.4,
  dropPath: 0,
  loss: "cosine",
  arch: "symmetric",
  masking: "block",
};
/** The branch's AdamW (DBOT_SPEC.md "Recipe"). */
const ADAMW = { beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.05, clipGrad: 3 };

/** Max abs errors per backend, for the table printed by the last test. */
const report = new Map<string, Record<string, number>>();

function row(be: Backend, k: string, v: number): void {
  const name = be.description.replace(/ \(.*$/, "").slice(0, 40);
  const r = report.get(name) ?? {};
  r[k] = Math.max(r[k] ?? 0, v);
  report.set(name, r);
}

/** The fixture's model on `be`: student and teacher weights, images and block mask loaded. */
function loadModel(be: Backend): DbotModel {
  const model = new DbotModel(be, CONFIG, B);
  const names = model.student.specs.map((s) => s.name);
  const stored = [...tensors.keys()].filter((k) => k.startsWith("student.")).map((k) => k.slice(8));
  assert(
    names.length === stored.length && names.every((n) => stored.includes(n)),
    `student names differ from PyTorch's: ours [${names.filter((n) => !stored.includes(n))}], ` +
      `theirs [${stored.filter((n) => !names.includes(n))}]`,
  );
  model.student.load(new Map(names.map((n) => [n, g(`student.${n}`)])));
  const visual = new Map(
    [...tensors.keys()].filter((k) => k.startsWith("teacher.")).map((k) => [k.slice(8), g(k)]),
  );
  model.teacher.params!.load(clipWeights(visual, TEACHER));
  model.setBatchMasked(g("images"), g("mask"));
  return model;
}

/** Patch rows of `[B, 1+L, C]` (the teacher has no cls target). */
function patchRows(x: ArrayLike<number>, C: number): Float32Array {
  const out = new Float32Array(B * L * C);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < L * C; i++) out[b * L * C + i] = x[(b * (1 + L) + 1) * C + i];
  }
  return out;
}

async function checkStep(be: Backend): Promise<void> {
  const model = loadModel(be);
  be.fill(model.student.grads!, 0);
  model.forwardBackward();
  const target = patchRows(await be.download(model.target), 16);
  assertAllClose(target, patchRows(g("target"), 16), { atol: 1e-5, rtol: 1e-4 }, "target");
  row(be, "target", maxAbsDiff(target, patchRows(g("target"), 16)));
  const pred = await be.download(model.pred);
  assertAllClose(pred, g("pred"), { atol: 1e-5, rtol: 1e-4 }, "pred");
  row(be, "pred", maxAbsDiff(pred, g("pred")));
  const loss = await be.download(model.loss);
  assertAllClose(loss, g("loss"), { atol: 0, rtol: 1e-5 }, "loss");
  row(be, "loss (rel)", Math.abs(loss[0] - g("loss")[0]) / g("loss")[0]);
  const grads = await model.student.gradsToHost();
  assert(grads.size === 39, `expected 39 trainable tensors, got ${grads.size}`);
  for (const [name, grad] of grads) {
    const want = g(`grad.${name}`);
    assertAllClose(grad, want, { atol: 2e-6, rtol: 1e-3 }, `grad.${name}`);
    row(be, "grad (39 tensors)", maxAbsDiff(grad, want));
    if (name.includes("relative_position") || name.includes("gamma") || name.includes("_bias")) {
      row(be, "grad rel_pos/gamma/q,v bias", maxAbsDiff(grad, want));
    }
    if (name === "mask_token") row(be, "grad mask_token", maxAbsDiff(grad, want));
  }
  model.dispose();
}

async function checkTrajectory(be: Backend): Promise<void> {
  const model = loadModel(be);
  const { losses, norms } = await adamwTrajectory(be, model, ADAMW);
  assertAllClose(losses, g("trajectory"), { atol: 0, rtol: 1e-4 }, "trajectory");
  assertAllClose(norms, g("grad_norm"), { atol: 0, rtol: 1e-4 }, "grad_norm");
  const rel = (a: number[], e: Float32Array) =>
    Math.max(...a.map((x, i) => Math.abs(x - e[i]) / e[i]));
  row(be, "trajectory (6 losses, rel)", rel(losses, g("trajectory")));
  row(be, "grad norms (5, rel)", rel(norms, g("grad_norm")));
  model.dispose();
}

Deno.test("the fixture's teacher input is the student's images re-normalised with CLIP mean/std", () => {
  // documents what the fixture assumes of the CLIP teacher's defaults (ImageNet → CLIP)
  assert(CLIP_MEAN[0] === 0.48145466 && CLIP_STD[2] === 0.27577711, "CLIP statistics");
  assert(g("mask").reduce((a, b) => a + b, 0) === 2 * 25, "25 of 64 patches masked per sample");
});

const openblas = await requires("openblas");
for (const gemm of ["openblas", "ts"] as const) {
  Deno.test({
    name:
      `symmetric DbotModel + CLIP teacher matches PyTorch loss and all 39 gradients on cpu (${gemm} GEMM)`,
    ignore: gemm === "openblas" && openblas.ignore,
    fn: async () => {
      if (gemm === "openblas") openblas.check();
      const be = new CpuBackend({ gemm });
      await checkStep(be);
      be.dispose();
    },
  });
}

Deno.test("symmetric DbotModel + CLIP teacher: 5-step AdamW trajectory matches PyTorch on cpu", async () => {
  const be = new CpuBackend();
  await checkTrajectory(be);
  be.dispose();
});

gpuTest(
  "symmetric DbotModel + CLIP teacher matches PyTorch loss and all 39 gradients",
  async (be) => {
    await checkStep(be);
  },
);

gpuTest(
  "symmetric DbotModel + CLIP teacher: 5-step AdamW trajectory matches PyTorch",
  async (be) => {
    await checkTrajectory(be);
  },
);

Deno.test("symmetric golden: table of max errors per backend", () => {
  const keys = [...new Set([...report.values()].flatMap((r) => Object.keys(r)))];
  const names = [...report.keys()];
  const lines = [
    `| quantity | ${names.join(" | ")} |`,
    `| --- | ${names.map(() => "---").join(" | ")} |`,
    ...keys.map((k) =>
      `| ${k} | ${names.map((n) => report.get(n)![k]?.toExponential(2) ?? "–").join(" | ")} |`
    ),
  ];
  console.log(`symmetric golden, max abs errors (rel where marked):\n${lines.join("\n")}`);
  assert(report.size >= 1, "no backend ran");
});
