/**
 * Block-wise masking: BEiT's MaskingGenerator draw for draw (golden masks from
 * tests/fixtures/make_clip_block_mask.py, which runs BEiT's own code on our Rng stream), and
 * its properties: never more than the count, 78 of 196 on a 14 × 14 grid in practice,
 * blocks of at least 16 patches while the remainder allows, deterministic per seed.
 */
import { blockMaskCount, blockMasking } from "../src/models/masking.ts";
import { Rng } from "../src/util/rng.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";

const golden: { seed: number; gh: number; gw: number; count: number; mask: number[] }[] = JSON
  .parse(
    await Deno.readTextFile(new URL("./fixtures/clip_block_masks.json", import.meta.url)),
  );

Deno.test("blockMasking() matches BEiT's MaskingGenerator on the same random stream", () => {
  assertEquals(golden.length, 20);
  for (const g of golden) {
    const got = blockMasking(new Rng(g.seed), g);
    assertEquals([...got], g.mask, `seed ${g.seed}, ${g.gh}×${g.gw}, count ${g.count}`);
  }
});

Deno.test("blockMaskCount() is 78 of 196 and the same fraction elsewhere", () => {
  assertEquals(blockMaskCount(196), 78);
  assertEquals(blockMaskCount(256), 102);
  assertEquals(blockMaskCount(16), 6);
  assertThrows(() => blockMaskCount(0), RangeError, "positive integer");
});

/** The 4-connected components of a mask, as cell counts. */
function components(mask: Float32Array, gh: number, gw: number): number[] {
  const seen = new Uint8Array(mask.length);
  const sizes: number[] = [];
  for (let s = 0; s < mask.length; s++) {
    if (!mask[s] || seen[s]) continue;
    let n = 0;
    const stack = [s];
    seen[s] = 1;
    while (stack.length) {
      const c = stack.pop()!;
      n++;
      const [i, j] = [Math.floor(c / gw), c % gw];
      for (const [di, dj] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
        const [a, b] = [i + di, j + dj];
        const o = a * gw + b;
        if (a >= 0 && a < gh && b >= 0 && b < gw && mask[o] && !seen[o]) {
          seen[o] = 1;
          stack.push(o);
        }
      }
    }
    sizes.push(n);
  }
  return sizes;
}

Deno.test("blockMasking() on 14×14: never above 78, 78 in practice, in blocks", () => {
  const rng = new Rng(2024);
  let exact = 0;
  let small = 0;
  const runs = 500;
  for (let r = 0; r < runs; r++) {
    const m = blockMasking(rng, { gh: 14, gw: 14, count: 78 });
    const n = m.reduce((a, b) => a + b, 0);
    assert(n <= 78, `run ${r}: ${n} masked > 78`);
    assert(n >= 70, `run ${r}: only ${n} masked`);
    if (n === 78) exact++;
    // a block is ≥ 16 cells up to rounding of its sides (BEiT: h, w = round(√(area·aspect))),
    // so a connected region under 9 cells can only be a late block filling a small remainder
    small += components(m, 14, 14).filter((s) => s < 9).length;
  }
  assert(exact >= 0.6 * runs, `only ${exact}/${runs} masks reached 78`);
  assert(small <= 0.5 * runs, `${small} tiny regions in ${runs} masks: not block-wise`);
});

Deno.test("blockMasking() is deterministic per seed and different across seeds", () => {
  const a = blockMasking(new Rng(9), { gh: 14, gw: 14, count: 78 });
  const b = blockMasking(new Rng(9), { gh: 14, gw: 14, count: 78 });
  const c = blockMasking(new Rng(10), { gh: 14, gw: 14, count: 78 });
  assertEquals([...a], [...b]);
  assert(a.some((v, i) => v !== c[i]), "seeds 9 and 10 gave the same mask");
});

Deno.test("blockMasking() rejects bad grids and counts", () => {
  const rng = new Rng(1);
  assertThrows(() => blockMasking(rng, { gh: 0, gw: 4, count: 1 }), RangeError, "gh");
  assertThrows(() => blockMasking(rng, { gh: 4, gw: 4, count: 17 }), RangeError, "[0, 16]");
  assertEquals(blockMasking(rng, { gh: 4, gw: 4, count: 0 }).reduce((a, b) => a + b, 0), 0);
});
