/**
 * Frozen-encoder features: the encoder on full images, after the final norm,
 * pooled as the cls token or the mean of the patch tokens.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { deriveVit, type VitConfig } from "../models/config.ts";
import { ParamSet, sincosPosEmbed } from "../nn/params.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "../models/vit.ts";
import { CheckpointError, inferVitConfig, readCheckpoint, vitWeights } from "../io/checkpoint.ts";
import { imageBatches } from "../data/batches.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "../data/pipeline.ts";
import { openDataset } from "../data/dataset.ts";
import { evalTransform, normalize, toChannels } from "../data/transforms.ts";

/** How tokens become one feature vector. */
export type Pool = "cls" | "mean";

/** Parses `--pool`. */
export function parsePool(value: string): Pool {
  if (value === "cls" || value === "mean") return value;
  throw new TypeError(`Cannot pool features with "${value}": use cls or mean`);
}

/** Image `i` as `[C, H, W]` at the encoder's size, already normalised. */
export type ImageSource = (i: number) => Float32Array | Promise<Float32Array>;

/**
 * A frozen encoder with its buffers allocated once: load weights, embed, repeat
 * (pre-training evaluates k-NN at every stage with one of these).
 */
export class Embedder {
  /** The encoder shape. */
  readonly cfg: VitConfig;
  /** Images per forward pass. */
  readonly batch: number;
  readonly #be: Backend;
  readonly #ps: ParamSet;
  readonly #enc: VitEncoder;
  readonly #index: Tensor;
  readonly #input: Tensor;

  /** Allocates the encoder for `batch` images. */
  constructor(be: Backend, cfg: VitConfig, batch: number) {
    const L = deriveVit(cfg).numPatches;
    this.#be = be;
    this.cfg = cfg;
    this.batch = batch;
    this.#ps = new ParamSet(be, vitParamSpecs(cfg), { grads: false, label: "embed" });
    this.#enc = new VitEncoder(be, cfg, {
      ps: this.#ps,
      B: batch,
      N: 1 + L,
      trainable: false,
      finalNorm: true,
      label: "embed",
    });
    this.#index = be.tensor([batch * (1 + L)], "i32", "embed.index");
    be.upload(this.#index, fullIndex(batch, L));
    this.#input = be.tensor([batch, cfg.inChans, cfg.imgSize, cfg.imgSize], "f32", "embed.images");
  }

  /** Uploads encoder weights by name (every encoder name must be present). */
  load(weights: ReadonlyMap<string, Float32Array>): void {
    for (const s of this.#ps.specs) {
      if (!weights.has(s.name)) {
        throw new RangeError(`Cannot load the encoder: no weights for "${s.name}"`);
      }
    }
    this.#ps.load(new Map(this.#ps.specs.map((s) => [s.name, weights.get(s.name)!])));
  }

  /** Features `[count, D]` of `count` images (one readback per batch: this is evaluation). */
  async embed(count: number, image: ImageSource, pool: Pool): Promise<Float32Array> {
    const cfg = this.cfg;
    const D = cfg.embedDim;
    const L = deriveVit(cfg).numPatches;
    const B = this.batch;
    const imgSize = cfg.inChans * cfg.imgSize * cfg.imgSize;
    const out = new Float32Array(count * D);
    for await (const { start, n, data } of imageBatches(count, B, imgSize, image)) {
      this.#be.upload(this.#input, data);
      this.#enc.patchify(this.#input);
      this.#enc.forward(this.#index);
      const tokens = (await this.#be.download(this.#enc.out)) as Float32Array; // [B, 1+L, D]
      for (let b = 0; b < n; b++) {
        poolTokens(out.subarray((start + b) * D, (start + b + 1) * D), tokens, b, L, D, pool);
      }
    }
    return out;
  }
}

/**
 * Features `[count, D]` of `count` images (`image(i)`) through the encoder `cfg` with
 * `weights`, pooled by `pool`, `batch` images per forward pass (default 64).
 *
 * @example
 * ```ts ignore
 * const feats = await embedImages(backend, cfg, {
 *   weights,
 *   count: 100,
 *   image: (i) => image(i),
 *   pool: "cls",
 * });
 * ```
 */
export async function embedImages(
  be: Backend,
  cfg: VitConfig,
  { weights, count, image, pool, batch = 64 }: {
    weights: ReadonlyMap<string, Float32Array>;
    count: number;
    image: ImageSource;
    pool: Pool;
    batch?: number;
  },
): Promise<Float32Array> {
  const e = new Embedder(be, cfg, Math.max(1, Math.min(batch, count)));
  e.load(weights);
  return await e.embed(count, image, pool);
}

/** `row [D]` = sample b's cls token, or the mean of its L patch tokens, from `tokens [B, 1+L, D]`. */
function poolTokens(
  row: Float32Array,
  tokens: Float32Array,
  b: number,
  L: number,
  D: number,
  pool: Pool,
): void {
  const base = b * (1 + L) * D;
  if (pool === "cls") {
    row.set(tokens.subarray(base, base + D));
    return;
  }
  for (let l = 1; l <= L; l++) {
    for (let c = 0; c < D; c++) row[c] += tokens[base + l * D + c];
  }
  for (let c = 0; c < D; c++) row[c] /= L;
}

/** What {@link embedDataset} needs. */
export interface EmbedOptions {
  /** Checkpoint path (safetensors, timm names). */
  checkpoint: string;
  /** Dataset spec: `shapes`, `fashion-mnist[:DIR]` or a directory of class folders. */
  data: string;
  /** Which split. */
  split: "train" | "test";
  /** cls token or mean of patch tokens. */
  pool: Pool;
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
  const image = async (i: number): Promise<Float32Array> => {
    const raw = await ds.image(i);
    const { height, width } = ds.size ? ds.size(i) : { height: ds.height, width: ds.width };
    const rgb = toChannels(raw, ds.channels, height, width, C);
    return normalize(evalTransform(rgb, C, height, width, vit.imgSize), C, mean, std);
  };
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
