/**
 * A transformer block forward + backward, recorded into one command encoder
 * with no readback, matches the CPU backend (drop path on, ViT-like shapes).
 */
import type { Backend, Tensor } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import {
  allocBlockActs,
  allocBlockScratch,
  blockBackward,
  type BlockDims,
  blockForward,
  blockWeights,
} from "../src/nn/block.ts";
import { blockParams, ParamSet } from "../src/nn/params.ts";
import { Rng } from "../src/util/rng.ts";
import { assert } from "../src/util/assert.ts";
import { assertAllClose } from "./helpers.ts";
import { gpuTest } from "./gpu.ts";

interface BlockRun {
  out: Float32Array;
  dinp: Float32Array;
  grads: Map<string, Float32Array>;
}

function recordBlock(
  be: Backend,
  d: BlockDims,
  seed: number,
): { ps: ParamSet; out: Tensor; dres: Tensor } {
  const rng = new Rng(seed);
  const ps = new ParamSet(be, blockParams("blk", d.D, d.hidden, 1), { grads: true, label: "blk" });
  // random weights, including LN scales/biases, so every gradient is non-trivial
  for (const s of ps.specs) {
    const t = ps.get(s.name);
    const v = rng.uniformArray(t.size, -0.3, 0.3);
    if (s.name.endsWith("norm1.weight") || s.name.endsWith("norm2.weight")) {
      v.forEach((x, i) => (v[i] = 1 + x));
    }
    be.upload(t, v);
  }
  const rows = d.B * d.N * d.D;
  const inp = be.tensor([d.B, d.N, d.D]);
  const out = be.tensor([d.B, d.N, d.D]);
  const dres = be.tensor([d.B, d.N, d.D]);
  const attn = be.tensor([d.B]);
  const mlp = be.tensor([d.B]);
  be.upload(inp, rng.uniformArray(rows, -1, 1));
  be.upload(dres, rng.uniformArray(rows, -1, 1));
  be.upload(attn, new Float32Array([0, 1.25, 1.25].slice(0, d.B)));
  be.upload(mlp, new Float32Array([1.25, 0, 1.25].slice(0, d.B)));
  const acts = allocBlockActs(be, d, "acts");
  const s = allocBlockScratch(be, d, true, "scratch");
  const drop = { attn, mlp };
  be.fill(ps.grads!, 0);
  blockForward(be, { out, inp, w: blockWeights(ps, "blk"), acts, s, drop }, d);
  blockBackward(be, {
    d: dres,
    inp,
    w: blockWeights(ps, "blk"),
    g: blockWeights(ps, "blk", true),
    acts,
    s,
    drop,
  }, d);
  return { ps, out, dres };
}

async function runBlock(be: Backend, d: BlockDims): Promise<BlockRun> {
  const { ps, out, dres } = recordBlock(be, d, 11);
  return {
    out: (await be.download(out)) as Float32Array,
    dinp: (await be.download(dres)) as Float32Array,
    grads: await ps.gradsToHost(),
  };
}

const dims: BlockDims = { B: 3, N: 65, D: 96, NH: 3, hidden: 384 };

gpuTest(
  "blockForward()+blockBackward() match the CPU reference (B 3, N 65, D 96, NH 3, drop path)",
  async (be) => {
    const cpu = CpuBackend.reference();
    const want = await runBlock(cpu, dims);
    const got = await runBlock(be, dims);
    assertAllClose(got.out, want.out, { atol: 1e-5, rtol: 1e-4 }, "out");
    assertAllClose(got.dinp, want.dinp, { atol: 1e-4, rtol: 1e-3 }, "dinp");
    for (const [name, g] of want.grads) {
      assertAllClose(got.grads.get(name)!, g, { atol: 1e-3, rtol: 1e-3 }, name);
    }
    cpu.dispose();
  },
);

gpuTest("a block forward + backward is one command buffer with no readback", async (be) => {
  await be.sync();
  const before = be.submitCount;
  const dispatches = be.dispatchCount;
  const { out } = recordBlock(be, dims, 3);
  // uploads flush nothing recorded; the whole pass is still unsubmitted
  assert(
    be.submitCount === before,
    `expected no submit while recording, got ${be.submitCount - before}`,
  );
  assert(be.dispatchCount - dispatches > 30, "the block should record its dispatches");
  await be.download(out);
  assert(
    be.submitCount === before + 1,
    `expected exactly one submit, got ${be.submitCount - before}`,
  );
});
