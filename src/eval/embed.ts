/**
 * Frozen-encoder features on any backend, with no file access (this module runs in a
 * browser too): the encoder on full images, after the final norm, pooled as the cls token
 * or the mean of the patch tokens.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { deriveVit, type VitConfig } from "../models/vit_config.ts";
import { ParamSet } from "../nn/params.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "../models/vit.ts";
import { imageBatches } from "../data/batches.ts";

/**
 * How the encoder's tokens become one feature vector (timm's `global_pool`): the cls token or
 * the mean of the patch tokens. (Not the CPU backend's worker pool.)
 */
export type TokenPooling = "cls" | "mean";

/** Parses `--pool`. */
export function parseTokenPooling(value: string): TokenPooling {
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
  async embed(count: number, image: ImageSource, pool: TokenPooling): Promise<Float32Array> {
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

  /**
   * Features `[count, D]` for each pooling in `pools` from one forward pass per batch (the cls
   * token and the mean of the patch tokens for the price of one).
   */
  async embedPooled(
    count: number,
    image: ImageSource,
    pools: readonly TokenPooling[],
  ): Promise<Record<TokenPooling, Float32Array>> {
    const cfg = this.cfg;
    const D = cfg.embedDim;
    const L = deriveVit(cfg).numPatches;
    const imgSize = cfg.inChans * cfg.imgSize * cfg.imgSize;
    const out = { cls: new Float32Array(0), mean: new Float32Array(0) };
    for (const p of pools) out[p] = new Float32Array(count * D);
    for await (const { start, n, data } of imageBatches(count, this.batch, imgSize, image)) {
      this.#be.upload(this.#input, data);
      this.#enc.patchify(this.#input);
      this.#enc.forward(this.#index);
      const tokens = (await this.#be.download(this.#enc.out)) as Float32Array; // [B, 1+L, D]
      for (const p of pools) {
        for (let b = 0; b < n; b++) {
          poolTokens(out[p].subarray((start + b) * D, (start + b + 1) * D), tokens, b, L, D, p);
        }
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
    pool: TokenPooling;
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
  pool: TokenPooling,
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
