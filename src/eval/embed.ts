/**
 * Frozen-encoder features: the encoder on full images, after the final norm,
 * pooled as the cls token or the mean of the patch tokens.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { deriveVit, type VitConfig } from "../models/config.ts";
import { ParamSet } from "../models/params.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "../models/vit.ts";

/** How tokens become one feature vector. */
export type Pool = "cls" | "mean";

/** Parses `--pool`. */
export function parsePool(value: string): Pool {
  if (value === "cls" || value === "mean") return value;
  throw new TypeError(`Cannot pool features with "${value}": use cls or mean`);
}

/**
 * Features `[N, D]` of `images [N, C, H, W]` (already normalised) through the encoder
 * `cfg` with `weights`, `batch` images per forward pass.
 *
 * @example
 * ```ts ignore
 * const feats = await embedImages(backend, cfg, weights, images, 64, { pool: "cls" });
 * ```
 */
export async function embedImages(
  be: Backend,
  cfg: VitConfig,
  weights: ReadonlyMap<string, Float32Array>,
  images: Float32Array,
  count: number,
  { pool, batch = 64 }: { pool: Pool; batch?: number },
): Promise<Float32Array> {
  const d = deriveVit(cfg);
  const D = cfg.embedDim;
  const L = d.numPatches;
  const imgSize = cfg.inChans * cfg.imgSize * cfg.imgSize;
  if (images.length !== count * imgSize) {
    throw new RangeError(
      `Cannot embed ${count} images of ${cfg.inChans}×${cfg.imgSize}×${cfg.imgSize}: got ${images.length} values`,
    );
  }
  const B = Math.max(1, Math.min(batch, count));
  const ps = new ParamSet(be, vitParamSpecs(cfg), { grads: false, label: "embed" });
  ps.load(weights);
  const enc = new VitEncoder(be, cfg, ps, { B, N: 1 + L, trainable: false, finalNorm: true, label: "embed" });
  const index = be.tensor([B * (1 + L)], "i32", "embed.index");
  be.upload(index, fullIndex(B, L));
  const input = be.tensor([B, cfg.inChans, cfg.imgSize, cfg.imgSize], "f32", "embed.images");
  const out = new Float32Array(count * D);
  const chunk = new Float32Array(B * imgSize);
  for (let start = 0; start < count; start += B) {
    const n = Math.min(B, count - start);
    chunk.fill(0);
    chunk.set(images.subarray(start * imgSize, (start + n) * imgSize));
    be.upload(input, chunk);
    enc.patchify(input);
    enc.forward(index);
    const tokens = (await be.download(enc.out)) as Float32Array; // [B, 1+L, D]
    for (let b = 0; b < n; b++) {
      const row = out.subarray((start + b) * D, (start + b + 1) * D);
      const base = b * (1 + L) * D;
      if (pool === "cls") {
        row.set(tokens.subarray(base, base + D));
        continue;
      }
      for (let l = 1; l <= L; l++) {
        for (let c = 0; c < D; c++) row[c] += tokens[base + l * D + c];
      }
      for (let c = 0; c < D; c++) row[c] /= L;
    }
  }
  return out;
}
