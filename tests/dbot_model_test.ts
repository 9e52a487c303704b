/**
 * dBOT model behaviour beyond the golden step: teacher kinds (random copy,
 * zero-depth, wider/deeper, pixels), masking, drop path gradients.
 */
import type { Backend } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { type DbotConfig, DbotModel, dropPathRates } from "../src/models/dbot.ts";
import { decoderIndex, encoderIndex, lossWeights, randomMasking } from "../src/models/masking.ts";
import type { VitConfig } from "../src/models/vit_config.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { assertAllClose } from "./helpers.ts";
import { gpuTest } from "./gpu.ts";
import { GOLDEN_VIT, goldenConfig } from "./golden.ts";

const vit: VitConfig = GOLDEN_VIT;
const base: DbotConfig = goldenConfig();

function batch(B: number, seed: number): { images: Float32Array; noise: Float32Array } {
  const rng = new Rng(seed);
  return { images: rng.uniformArray(B * 3 * 16 * 16, -1, 1), noise: rng.uniformArray(B * 16) };
}

/** Per-row standardisation with the unbiased variance, f64 on the host. */
function standardize(x: Float32Array, C: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let m = 0;
    for (let c = 0; c < C; c++) m += x[r * C + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c] - m) ** 2;
    v /= C - 1;
    for (let c = 0; c < C; c++) out[r * C + c] = (x[r * C + c] - m) / Math.sqrt(v + 1e-6);
  }
  return out;
}

Deno.test("randomMasking() keeps the floor(L/4) lowest-noise patches and builds consistent indices", () => {
  const noise = new Float32Array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4]);
  const m = randomMasking(noise, { B: 1, L: 8 }, 0.75);
  assertEquals(m.keep, 2);
  assertEquals([...m.idsShuffle], [1, 5, 3, 7, 2, 4, 6, 0]);
  assertEquals([...m.mask], [1, 0, 1, 1, 1, 0, 1, 1]);
  assertEquals([...encoderIndex(m, 1, 8)], [-1, 1, 5]);
  // decoder: cls row 0, kept patch 1 → token 1, kept patch 5 → token 2, others mask tokens
  assertEquals([...decoderIndex(m, 1, 8)], [0, -1, 1, -1, -1, -1, 2, -1, -1]);
  assertEquals([...lossWeights(m, 1, 8)], [1, 1, 0, 1, 1, 1, 0, 1, 1]);
});

Deno.test("dropPathRates() rises linearly from 0 to the rate", () => {
  assertEquals(dropPathRates(0.2, 3), [0, 0.1, 0.2]);
  assertEquals(dropPathRates(0.2, 1), [0]);
});

async function zeroDepthTeacher(be: Backend): Promise<void> {
  // the stage-0 teacher of ViT-L/H: a random linear projection of pixels (+ pos, cls token)
  const cfg: DbotConfig = { ...base, teacher: { kind: "vit", vit: { ...vit, depth: 0 } } };
  const model = new DbotModel(be, cfg, 2);
  model.initStudent(1);
  model.copyStudentToTeacher();
  const { images, noise } = batch(2, 5);
  model.setBatch(images, noise);
  model.forwardBackward();
  const w = await model.student.toHost();
  const W = w.get("patch_embed.proj.weight")!;
  const bias = w.get("patch_embed.proj.bias")!;
  const pos = w.get("pos_embed")!;
  const cls = w.get("cls_token")!;
  const raw = new Float32Array(2 * 17 * 32);
  for (let b = 0; b < 2; b++) {
    raw.set(cls, b * 17 * 32);
    for (let gh = 0; gh < 4; gh++) {
      for (let gw = 0; gw < 4; gw++) {
        const l = gh * 4 + gw;
        for (let o = 0; o < 32; o++) {
          let acc = bias[o] + pos[(1 + l) * 32 + o];
          for (let c = 0; c < 3; c++) {
            for (let i = 0; i < 4; i++) {
              for (let j = 0; j < 4; j++) {
                acc += W[((o * 3 + c) * 4 + i) * 4 + j] *
                  images[((b * 3 + c) * 16 + gh * 4 + i) * 16 + gw * 4 + j];
              }
            }
          }
          raw[(b * 17 + 1 + l) * 32 + o] = acc;
        }
      }
    }
  }
  assertAllClose(
    await be.download(model.target),
    standardize(raw, 32),
    { atol: 1e-4, rtol: 1e-4 },
    "target",
  );
  const loss = (await be.download(model.loss))[0];
  assert(Number.isFinite(loss) && loss > 0, `loss ${loss}`);
}

Deno.test("a zero-depth teacher's target is the standardised patch embedding + pos, cls token for cls (cpu)", async () => {
  const be = new CpuBackend();
  await zeroDepthTeacher(be);
  be.dispose();
});

gpuTest(
  "a zero-depth teacher's target is the standardised patch embedding + pos, cls token for cls",
  zeroDepthTeacher,
);

Deno.test("a wider and deeper teacher sets decoder_predp's width and trains", async () => {
  const be = new CpuBackend();
  const big: VitConfig = { ...vit, embedDim: 48, depth: 3, numHeads: 3 };
  const model = new DbotModel(be, { ...base, teacher: { kind: "vit", vit: big } }, 2);
  model.initStudent(2);
  model.teacher.params!.init(new Rng(9));
  assertEquals([...model.student.get("decoder_predp.weight").shape], [48, 32]);
  assertEquals([...model.pred.shape], [2, 17, 48]);
  const { images, noise } = batch(2, 6);
  model.setBatch(images, noise);
  be.fill(model.student.grads!, 0);
  model.forwardBackward();
  const loss = (await be.download(model.loss))[0];
  assert(Number.isFinite(loss) && loss > 0.1, `loss ${loss}`);
  be.dispose();
});

Deno.test("the pixel target is per-patch normalised pixels with the cls row weighted 0", async () => {
  const be = new CpuBackend();
  const model = new DbotModel(be, { ...base, teacher: { kind: "pixels" } }, 1);
  model.initStudent(3);
  const { images, noise } = batch(1, 7);
  model.setBatch(images, noise);
  model.forwardBackward();
  const raw = new Float32Array(17 * 48);
  for (let l = 0; l < 16; l++) {
    const gh = Math.floor(l / 4), gw = l % 4;
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 4; j++) {
          raw[(1 + l) * 48 + (c * 4 + i) * 4 + j] = images[(c * 16 + gh * 4 + i) * 16 + gw * 4 + j];
        }
      }
    }
  }
  assertAllClose(
    await be.download(model.target),
    standardize(raw, 48),
    { atol: 1e-4, rtol: 1e-4 },
    "target",
  );
  be.dispose();
});

Deno.test("with drop path the gradient matches finite differences of the loss (f32, cpu)", async () => {
  const be = new CpuBackend();
  const model = new DbotModel(be, { ...base, dropPath: 0.5 }, 3);
  model.initStudent(4);
  model.copyStudentToTeacher();
  model.student.init(new Rng(5)); // teacher ≠ student so the loss is far from 0
  const { images, noise } = batch(3, 8);
  const rng = new Rng(21);
  model.setBatch(images, noise, rng);
  be.fill(model.student.grads!, 0);
  model.forwardBackward();
  const grads = await model.student.gradsToHost();
  const params = await model.student.toHost();
  const lossAt = async (name: string, i: number, delta: number): Promise<number> => {
    const p = params.get(name)!.slice();
    p[i] += delta;
    be.upload(model.student.get(name), p);
    model.forwardBackward(); // same batch, masks and drop-path draws
    const l = (await be.download(model.loss))[0];
    be.upload(model.student.get(name), params.get(name)!);
    return l;
  };
  let checked = 0;
  for (
    const name of [
      "blocks.1.mlp.fc2.weight",
      "blocks.0.attn.qkv.weight",
      "decoder_blocks.0.attn.proj.weight",
    ]
  ) {
    const g = grads.get(name)!;
    // the largest few entries: f32 finite differences are only meaningful there
    const top = [...g.keys()].sort((a, b) => Math.abs(g[b]) - Math.abs(g[a])).slice(0, 3);
    for (const i of top) {
      const h = 1e-2;
      const fd = ((await lossAt(name, i, h)) - (await lossAt(name, i, -h))) / (2 * h);
      assertAllClose([fd], [g[i]], { atol: 2e-4, rtol: 0.05 }, `${name}[${i}]`);
      checked++;
    }
  }
  assertEquals(checked, 9);
  be.dispose();
});
