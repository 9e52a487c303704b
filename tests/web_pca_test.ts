/** The page's PCA colouring (web/pca.ts). */
import { assert, assertEquals } from "../src/util/assert.ts";
import { pcaColours, principalAxes } from "../web/pca.ts";
import { assertAllClose } from "./helpers.ts";

Deno.test("principalAxes() finds the direction of largest spread first, orthogonal ones next", () => {
  // points along (3, 4)/5 with a small spread along (-4, 3)/5, D = 2
  const x = new Float32Array(
    [-1.5, -0.5, 0.5, 1.5].flatMap((t, i) => {
      const s = [0.1, -0.1, -0.1, 0.1][i]; // uncorrelated with t
      return [3 * t / 5 - 4 * s / 5 + 1, 4 * t / 5 + 3 * s / 5 - 2];
    }),
  );
  const { mean, axes } = principalAxes(x, { n: 4, D: 2, k: 2 });
  assertAllClose(mean, [1, -2], { atol: 1e-6 });
  const sign = Math.sign(axes[0]);
  assertAllClose([sign * axes[0], sign * axes[1]], [0.6, 0.8], { atol: 1e-3 });
  assert(Math.abs(axes[0] * axes[2] + axes[1] * axes[3]) < 1e-6, "orthogonal");
});

Deno.test("pcaColours() paints equal features alike and spans 0..255 on the first set", () => {
  const D = 5;
  const teacher = Float32Array.from({ length: 8 * D }, (_, i) => Math.sin(i * 1.7) + (i % D));
  const [a, b, c] = pcaColours([teacher, teacher.slice(), teacher.map((v) => v + 0.5)], D);
  assertEquals(a, b);
  assert(a.some((v, i) => v !== c[i]), "other features, other colours");
  for (let ch = 0; ch < 3; ch++) {
    const vals = [...a].filter((_, i) => i % 3 === ch);
    assertEquals([Math.min(...vals), Math.max(...vals)], [0, 255]);
  }
});
