/**
 * The ViT encoder options of the CLIP teacher (QuickGELU, no patch-embedding bias,
 * `norm_pre`, a projection head) and of the symmetric BEiT student (no position
 * embedding, a shared relative position bias, layer scale, q/v biases, mask tokens):
 * every parameter gradient of a tiny encoder against central finite differences on the
 * CPU reference backend, and the WebGPU backend against the CPU one (output and every
 * gradient), plus the bad-config errors.
 *
 * @module
 */
import type { Backend, Tensor } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import type { VitConfig } from "../src/models/vit_config.ts";
import { deriveVit } from "../src/models/vit_config.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "../src/models/vit.ts";
import { param, ParamSet, type ParamSpec } from "../src/nn/params.ts";
import {
  type BlockActs,
  blockForward,
  type BlockScratch,
  type BlockWeights,
} from "../src/nn/block.ts";
import { assert, assertThrows } from "../src/util/assert.ts";
import { Rng } from "../src/util/rng.ts";
import { gpuTest } from "./gpu.ts";
import { assertAllClose, maxAbsDiff } from "./helpers.ts";

const BASE = {
  imgSize: 12,
  patchSize: 4,
  inChans: 2,
  embedDim: 8,
  depth: 2,
  numHeads: 2,
  mlpRatio: 2,
};

/** CLIP image tower options. */
const CLIP: VitConfig = {
  ...BASE,
  act: "quickgelu",
  patchBias: false,
  preNorm: true,
  projDim: 5,
  lnEps: 1e-5,
};
/** Symmetric (BEiT) student options. */
const BEIT: VitConfig = {
  ...BASE,
  posEmbed: "none",
  relPosBias: true,
  layerScale: 0.1,
  qvBias: true,
};

interface Built {
  be: Backend;
  ps: ParamSet;
  enc: VitEncoder;
  index: Tensor;
  mask: Tensor | null;
  images: Tensor;
  dout: Tensor;
}

/** A trainable encoder with random weights (every row, gammas and table included), images, dout. */
function build(be: Backend, cfg: VitConfig, maskToken: boolean, B = 2): Built {
  const d = deriveVit(cfg);
  const L = d.numPatches;
  const specs: ParamSpec[] = vitParamSpecs(cfg);
  if (maskToken) specs.push(param("mask_token", [1, 1, cfg.embedDim], { kind: "zeros" }, 0));
  const ps = new ParamSet(be, specs, { grads: true, label: "p" });
  const rng = new Rng(11);
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const isNormW = s.name.endsWith("norm1.weight") || s.name.endsWith("norm2.weight") ||
      s.name.endsWith("norm.weight") || s.name.endsWith("norm_pre.weight");
    be.upload(ps.get(s.name), rng.uniformArray(n, isNormW ? 0.5 : -0.5, isNormW ? 1.5 : 0.5));
  }
  const N = 1 + L;
  const enc = new VitEncoder(be, cfg, {
    ps,
    B,
    N,
    trainable: true,
    finalNorm: true,
    maskToken,
    label: "enc",
  });
  const index = be.tensor([B * N], "i32");
  be.upload(index, fullIndex(B, L));
  let mask: Tensor | null = null;
  if (maskToken) {
    mask = be.tensor([B * L], "i32");
    const m = new Int32Array(B * L);
    for (let r = 0; r < B * L; r++) m[r] = r % 3 === 1 ? -1 : r; // every third patch masked
    be.upload(mask, m);
  }
  const images = be.tensor([B, cfg.inChans, cfg.imgSize, cfg.imgSize]);
  be.upload(images, rng.uniformArray(images.size, -1, 1));
  const dout = be.tensor(enc.out.shape);
  be.upload(dout, rng.uniformArray(dout.size, -1, 1));
  return { be, ps, enc, index, mask, images, dout };
}

async function lossOf(m: Built): Promise<number> {
  m.enc.patchify(m.images);
  m.enc.forward(m.index, null, m.mask);
  const out = await m.be.download(m.enc.out);
  const dout = await m.be.download(m.dout);
  let s = 0;
  for (let i = 0; i < out.length; i++) s += out[i] * dout[i];
  return s;
}

async function gradsOf(m: Built): Promise<Map<string, Float32Array>> {
  m.be.fill(m.ps.grads!, 0);
  m.enc.patchify(m.images);
  m.enc.forward(m.index, null, m.mask);
  m.enc.backward(m.dout, m.index, null, m.mask);
  return await m.ps.gradsToHost();
}

for (const [name, cfg, maskToken] of [["CLIP", CLIP, false], ["BEiT", BEIT, true]] as const) {
  Deno.test(`VitEncoder.backward() with the ${name} options matches finite differences (f32)`, async () => {
    const be = CpuBackend.reference();
    const m = build(be, cfg, maskToken);
    const grads = await gradsOf(m);
    const values = await m.ps.toHost();
    const rng = new Rng(5);
    const h = 1e-2;
    let worst = 0;
    for (const s of m.ps.specs) {
      if (!s.trainable) continue;
      const v = values.get(s.name)!;
      const g = grads.get(s.name)!;
      // up to 6 entries per parameter, always the first
      const picks = new Set([0]);
      while (picks.size < Math.min(6, v.length)) picks.add(Math.floor(rng.uniform() * v.length));
      for (const i of picks) {
        const x0 = v[i];
        const t = m.ps.get(s.name);
        v[i] = x0 + h;
        be.upload(t, v);
        const fp = await lossOf(m);
        v[i] = x0 - h;
        be.upload(t, v);
        const fm = await lossOf(m);
        v[i] = x0;
        be.upload(t, v);
        const fd = (fp - fm) / (2 * h);
        const err = Math.abs(fd - g[i]);
        worst = Math.max(worst, err / (1e-3 + Math.abs(fd)));
        assert(
          err <= 2e-3 + 2e-2 * Math.abs(fd),
          `${name} ${s.name}[${i}]: analytic ${g[i]} vs finite differences ${fd}`,
        );
      }
    }
    console.log(
      `${name}: worst relative gradient error vs finite differences ${worst.toExponential(2)}`,
    );
  });

  gpuTest(
    `VitEncoder with the ${name} options matches the CPU backend (output and every gradient)`,
    async (gpu) => {
      const cpu = m0(cfg, maskToken);
      const g = build(gpu, cfg, maskToken);
      const cg = await gradsOf(cpu);
      const gg = await gradsOf(g);
      assertAllClose(await gpu.download(g.enc.out), await cpu.be.download(cpu.enc.out), {
        atol: 1e-5,
        rtol: 1e-4,
      }, `${name} out`);
      const report: Record<string, number> = {};
      for (const [k, want] of cg) {
        const got = gg.get(k)!;
        assertAllClose(got, want, { atol: 1e-4, rtol: 1e-3 }, `${name} grad ${k}`);
        report[k] = maxAbsDiff(got, want);
      }
      console.log(`${name} WebGPU vs CPU max abs error per gradient: ${JSON.stringify(report)}`);
    },
  );
}

/** The output of a frozen encoder (one residual buffer, updated in place) on `m`'s weights and images. */
async function frozenOut(m: Built, cfg: VitConfig, B = 2): Promise<ArrayLike<number>> {
  const N = 1 + deriveVit(cfg).numPatches;
  const enc = new VitEncoder(m.be, cfg, {
    ps: m.ps,
    B,
    N,
    trainable: false,
    finalNorm: true,
    label: "frozen",
  });
  enc.patchify(m.images);
  enc.forward(m.index, null, null);
  const out = await m.be.download(enc.out);
  enc.dispose();
  return out;
}

// Every block of a frozen encoder adds its branches into the one residual buffer (the
// projection and fc2 products with `accumulate`; with layer scale, an add in place): the
// same output as the trainable encoder's separate buffers, up to the order of one rounding.
for (
  const [name, cfg] of [
    ["plain", { ...BASE, depth: 3 }],
    ["CLIP", { ...CLIP, depth: 3 }],
    ["BEiT", { ...BEIT, depth: 3 }],
  ] as const
) {
  Deno.test(`a frozen VitEncoder (${name}, residual in place) gives the trainable one's output`, async () => {
    for (const be of [CpuBackend.reference(), new CpuBackend({ threads: 2, minParallelWork: 1 })]) {
      const m = build(be, cfg, false);
      await lossOf(m); // the trainable forward
      const want = await be.download(m.enc.out);
      const got = await frozenOut(m, cfg);
      assertAllClose(got, want, { atol: 1e-6, rtol: 1e-5 }, `${name} frozen out`);
      assert(
        maxAbsDiff(got, want) < 1e-5 && Array.from(got).some((v) => v !== 0),
        `${name}: output`,
      );
    }
  });

  gpuTest(
    `a frozen VitEncoder (${name}, residual in place) on WebGPU matches the CPU one`,
    async (gpu) => {
      const cpu = m0(cfg, false);
      const want = await frozenOut(cpu, cfg);
      const got = await frozenOut(build(gpu, cfg, false), cfg);
      assertAllClose(got, want, { atol: 1e-5, rtol: 1e-4 }, `${name} frozen out (WebGPU)`);
    },
  );
}

function m0(cfg: VitConfig, maskToken: boolean): Built {
  return build(new CpuBackend({ threads: 1 }), cfg, maskToken);
}

Deno.test("vitParamSpecs() names the CLIP and BEiT options' parameters like timm", () => {
  const clip = new Set(vitParamSpecs(CLIP).map((s) => s.name));
  for (const n of ["norm_pre.weight", "norm_pre.bias", "head.weight", "pos_embed"]) {
    assert(clip.has(n), n);
  }
  assert(
    !clip.has("patch_embed.proj.bias") && !clip.has("head.bias"),
    "CLIP: no conv bias, no head bias",
  );
  const beit = vitParamSpecs(BEIT);
  const names = new Set(beit.map((s) => s.name));
  for (
    const n of [
      "rel_pos_bias.relative_position_bias_table",
      "blocks.1.attn.q_bias",
      "blocks.1.attn.v_bias",
      "blocks.0.gamma_1",
      "blocks.0.gamma_2",
      "patch_embed.proj.bias",
    ]
  ) assert(names.has(n), n);
  assert(
    !names.has("pos_embed") && !names.has("blocks.0.attn.qkv.bias"),
    "BEiT: no pos_embed, no qkv.bias",
  );
  const table = beit.find((s) => s.name === "rel_pos_bias.relative_position_bias_table")!;
  assert(table.shape[0] === 5 * 5 + 3 && table.shape[1] === 2, `table [${table.shape}]`);
  const gamma = beit.find((s) => s.name === "blocks.0.gamma_1")!;
  assert(gamma.init.kind === "constant" && gamma.init.value === 0.1, "gamma init 0.1");
});

Deno.test("VitEncoder rejects bad option combinations with clear errors", () => {
  const be = new CpuBackend({ threads: 1 });
  const ps = new ParamSet(be, vitParamSpecs(BEIT), { grads: false, label: "p" });
  assertThrows(
    () =>
      new VitEncoder(be, BEIT, { ps, B: 1, N: 4, trainable: false, finalNorm: true, label: "e" }),
    RangeError,
    "needs every token",
  );
  assertThrows(
    () =>
      new VitEncoder(be, BEIT, {
        ps,
        B: 1,
        N: 10,
        trainable: false,
        finalNorm: true,
        maskToken: true,
        label: "e",
      }),
    RangeError,
    `no "mask_token"`,
  );
  const cps = new ParamSet(be, vitParamSpecs(CLIP), { grads: false, label: "c" });
  assertThrows(
    () =>
      new VitEncoder(be, CLIP, {
        ps: cps,
        B: 1,
        N: 10,
        trainable: false,
        finalNorm: false,
        label: "e",
      }),
    RangeError,
    "needs the final norm",
  );
  assertThrows(() => deriveVit({ ...BASE, act: "relu" as "gelu" }), RangeError, "act must be");
  assertThrows(() => deriveVit({ ...BASE, projDim: 0 }), RangeError, "projDim must be");
});

Deno.test("blockForward refuses to run in place (out = inp) when the backward needs inp", () => {
  const be = new CpuBackend({ threads: 1 });
  const x = be.tensor([1, 2, 4]);
  assertThrows(
    () =>
      blockForward(be, {
        out: x,
        inp: x,
        w: {} as BlockWeights,
        acts: {} as BlockActs,
        s: {} as BlockScratch,
        drop: null,
      }, { B: 1, N: 2, D: 4, NH: 1, hidden: 8 }),
    RangeError,
    "pass noGrad or another out",
  );
});
