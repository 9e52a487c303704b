/**
 * Frozen-encoder features: the encoder on full images, after the final norm,
 * pooled as the cls token or the mean of the patch tokens.
 *
 * The encoder itself (browser-safe) is `embed.ts`; this module adds checkpoint files
 * and datasets.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { deriveVit, type VitConfig } from "../models/vit_config.ts";
import { sincosPosEmbed } from "../nn/params.ts";
import {
  CheckpointError,
  inferVitConfig,
  readCheckpoint,
  vitWeights,
} from "../io/checkpoint_file.ts";
import { IMAGENET_MEAN, IMAGENET_STD, ImagePipeline } from "../data/pipeline.ts";
import { openDataset } from "../data/dataset.ts";
import { embedImages, type TokenPooling } from "./embed.ts";

export {
  Embedder,
  embedImages,
  type ImageSource,
  parseTokenPooling,
  type TokenPooling,
} from "./embed.ts";

/** What {@link embedDataset} needs. */
export interface EmbedOptions {
  /** Checkpoint path (safetensors, timm names). */
  checkpoint: string;
  /** Dataset spec: `shapes`, `fashion-mnist[:DIR]` or a directory of class folders. */
  data: string;
  /** Which split. */
  split: "train" | "test";
  /** cls token or mean of patch tokens. */
  pool: TokenPooling;
  /** Resize images to this size (default: the checkpoint's). */
  imgSize?: number;
  /** Heads, when the checkpoint does not store them. */
  heads?: number;
  /** Normalisation mean per channel (default: stored in the checkpoint, else ImageNet). */
  mean?: number[];
  /** Normalisation std per channel. */
  std?: number[];
  /** Images per forward pass. */
  batch?: number;
  /** Embed only the first `limit` images. */
  limit?: number;
}

/** Features, labels and the resolved settings of {@link embedDataset}. */
export interface EmbedResult {
  /** `[count, dim]`. */
  features: Float32Array;
  /** `[count]`. */
  labels: Int32Array;
  /** Feature width D. */
  dim: number;
  /** Images embedded. */
  count: number;
  /** The encoder used. */
  vit: VitConfig;
  /** Normalisation used. */
  mean: number[];
  /** Normalisation used. */
  std: number[];
}

/** Embeds a dataset split with a checkpoint's encoder (eval transform: resize + centre crop). */
export async function embedDataset(be: Backend, opts: EmbedOptions): Promise<EmbedResult> {
  const ckpt = await readCheckpoint(opts.checkpoint);
  let vit = inferVitConfig(ckpt, { heads: opts.heads, file: opts.checkpoint });
  const weights = vitWeights(ckpt, vit, { file: opts.checkpoint });
  if (opts.imgSize !== undefined && opts.imgSize !== vit.imgSize) {
    vit = resizePosEmbed(vit, weights, opts.imgSize, opts.checkpoint);
  }
  const C = vit.inChans;
  const mean = opts.mean ?? (ckpt.config.mean as number[] | undefined) ??
    [...IMAGENET_MEAN].slice(0, C);
  const std = opts.std ?? (ckpt.config.std as number[] | undefined) ??
    [...IMAGENET_STD].slice(0, C);
  if (mean.length !== C || std.length !== C) {
    throw new RangeError(
      `Cannot normalise ${C}-channel images with ${mean.length} means and ${std.length} stds: give ${C} values each`,
    );
  }
  const ds = await openDataset(opts.data, opts.split);
  const count = Math.min(ds.count, opts.limit ?? Infinity);
  // the evaluation view (resize + centre crop + normalise); an unreadable file is skipped
  // as in training (the next image stands in)
  const pipe = new ImagePipeline(ds, vit.imgSize, C, mean, std);
  const image = (i: number): Float32Array => pipe.eval(i);
  const features = await embedImages(be, vit, {
    weights,
    count,
    image,
    pool: opts.pool,
    batch: opts.batch,
  });
  return { features, labels: ds.labels.slice(0, count), dim: vit.embedDim, count, vit, mean, std };
}

/**
 * A fixed sin-cos `pos_embed` is regenerated for another image size; a learned one would
 * need interpolation, which is refused with a clear error.
 */
function resizePosEmbed(
  vit: VitConfig,
  weights: Map<string, Float32Array>,
  imgSize: number,
  file: string,
): VitConfig {
  const d = deriveVit(vit);
  const stored = weights.get("pos_embed")!;
  const fixed = sincosPosEmbed(d.grid, vit.embedDim);
  if (!stored.every((v, i) => Math.abs(v - fixed[i]) < 1e-4)) {
    throw new CheckpointError(
      `Cannot run the ViT in "${file}" at --img-size ${imgSize}: its pos_embed is learned (not sin-cos) and ` +
        `interpolating it is not supported; use --img-size ${vit.imgSize}`,
    );
  }
  const resized = { ...vit, imgSize };
  weights.set("pos_embed", sincosPosEmbed(deriveVit(resized).grid, vit.embedDim));
  return resized;
}
