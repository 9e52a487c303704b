/**
 * ViT classifier for fine-tuning (DBOT_SPEC.md "Downstream recipes", timm `global_pool="avg"`):
 *
 *   x      = encoder blocks(images)             [B, N, D]   (no final `norm`)
 *   pooled = P · x                              [B, D]      mean of the L patch tokens
 *   f      = fc_norm(pooled)                    [B, D]
 *   logits = f · headᵀ + head.bias              [B, K]
 *
 * The mean pool is a matmul with a constant pooling matrix `P [B, B·N]` (1/L on sample b's
 * patch rows, 0 on cls rows and on other samples), so its backward is `dx = Pᵀ · dpooled`
 * through the same op: no dedicated Backend op.
 *
 * The parameter table is the encoder's minus `norm.*`, with `pos_embed` trainable (layer 0,
 * no decay) and `cls_token` not decayed, plus `fc_norm.*` and `head.*` at layer depth+1.
 *
 * @module
 */
import { type Backend, freeTensors, type Tensor, view } from "../backend/backend.ts";
import { type DropScales, LN_EPS } from "../nn/block.ts";
import { linearBackward, linearForward } from "../nn/linear.ts";
import type { Rng } from "../util/rng.ts";
import { deriveVit, type VitConfig, type VitDerived } from "./vit_config.ts";
import { layernormParams, param, ParamSet, type ParamSpec } from "../nn/params.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "./vit.ts";

/**
 * Parameter table of a classifier: encoder names (no `norm.*`), `fc_norm.*`, `head.*`.
 * The head weight is normal with std 0.01 (timm's `trunc_normal_` cuts at ±2 absolute,
 * i.e. 200 std: never active at this std).
 */
export function classifierSpecs(cfg: VitConfig, numClasses: number): ParamSpec[] {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new RangeError(
      `Cannot build a classifier as numClasses must be a positive integer: current value is ${numClasses}`,
    );
  }
  const D = cfg.embedDim;
  const specs: ParamSpec[] = vitParamSpecs(cfg)
    .filter((s) => !s.name.startsWith("norm."))
    .map((s) => {
      if (s.name === "pos_embed") return { ...s, trainable: true, decay: false, layerId: 0 };
      if (s.name === "cls_token") return { ...s, decay: false };
      return s;
    });
  specs.push(
    ...layernormParams("fc_norm", D, cfg.depth + 1),
    param("head.weight", [numClasses, D], { kind: "normal", std: 0.01 }, cfg.depth + 1),
    param("head.bias", [numClasses], { kind: "zeros" }, cfg.depth + 1),
  );
  return specs;
}

/** Layer-wise LR decay: `decay^(depth + 1 − layerId)` (1 for fc_norm/head). */
export function layerDecayScale(depth: number, decay: number): (s: ParamSpec) => number {
  return (s) => Math.pow(decay, depth + 1 - s.layerId);
}

/** The pooling matrix `P [B, B·N]`: row b has 1/L on sample b's patch rows, 0 elsewhere. */
export function poolMatrix(B: number, N: number): Float32Array {
  const L = N - 1;
  const p = new Float32Array(B * B * N);
  for (let b = 0; b < B; b++) {
    for (let l = 1; l <= L; l++) p[b * B * N + b * N + l] = 1 / L;
  }
  return p;
}

/** `pooled [B, D] = P [B, B·N] · x [B·N, D]`: mean of each sample's patch tokens. */
export function meanPoolForward(
  be: Backend,
  { pooled, x, pool }: { pooled: Tensor; x: Tensor; pool: Tensor },
  { B, N, D }: { B: number; N: number; D: number },
): void {
  be.matmul({ out: pooled, a: pool, b: x }, { M: B, N: D, K: B * N });
}

/** `dx [B·N, D] = Pᵀ · dpooled [B, D]` (assign; cls rows get 0). */
export function meanPoolBackward(
  be: Backend,
  { dx, dpooled, pool }: { dx: Tensor; dpooled: Tensor; pool: Tensor },
  { B, N, D }: { B: number; N: number; D: number },
): void {
  be.matmul({ out: dx, a: pool, b: dpooled }, { M: B * N, N: D, K: B, transA: true });
}

/** Options of a {@link VitClassifier}. */
export interface ClassifierOptions {
  /** Classes K (the head's outputs). */
  numClasses: number;
  /** Images per batch B. */
  B: number;
  /** Stochastic depth rate (linear over blocks, 0 at block 0). */
  dropPath: number;
  /** Debug label. */
  label?: string;
}

/** A ViT encoder + mean pool + fc_norm + head, bound to a backend and a fixed batch. */
export class VitClassifier {
  /** Encoder shape. */
  readonly cfg: VitConfig;
  /** Derived sizes. */
  readonly d: VitDerived;
  /** Classes K. */
  readonly numClasses: number;
  /** Batch B. */
  readonly B: number;
  /** Parameters (with gradients). */
  readonly ps: ParamSet;
  /** The encoder (no final norm). */
  readonly encoder: VitEncoder;
  /** Input images `[B, C, H, W]`. */
  readonly images: Tensor;
  /** Soft targets `[B, K]`. */
  readonly target: Tensor;
  /** Logits `[B, K]` of the last forward. */
  readonly logits: Tensor;
  /** Mean cross-entropy `[1]` of the last {@link VitClassifier.forwardBackward}. */
  readonly loss: Tensor;
  readonly #be: Backend;
  readonly #index: Tensor; // i32 [B·N]
  readonly #pool: Tensor; // [B, B·N]
  readonly #pooled: Tensor; // [B, D]
  readonly #fc: Tensor; // [B, D] fc_norm output
  readonly #fcMean: Tensor;
  readonly #fcRstd: Tensor;
  readonly #dlogits: Tensor;
  readonly #dfc: Tensor;
  readonly #dpooled: Tensor;
  readonly #dx: Tensor; // [B, N, D]
  readonly #dropRates: number[];
  readonly #dropTable: Tensor | null; // [depth·2·B]

  /** Allocates parameters and buffers (zeros until {@link VitClassifier.init}). */
  constructor(be: Backend, cfg: VitConfig, opts: ClassifierOptions) {
    const { numClasses } = opts;
    this.#be = be;
    this.cfg = cfg;
    this.d = deriveVit(cfg);
    this.numClasses = numClasses;
    const B = opts.B;
    this.B = B;
    const label = opts.label ?? "cls";
    const D = cfg.embedDim;
    const L = this.d.numPatches;
    const N = 1 + L;
    const K = numClasses;
    const t = (shape: number[], name: string, dtype: "f32" | "i32" = "f32") =>
      be.tensor(shape, dtype, `${label}.${name}`);
    this.ps = new ParamSet(be, classifierSpecs(cfg, numClasses), { grads: true, label });
    this.encoder = new VitEncoder(be, cfg, {
      ps: this.ps,
      B,
      N,
      trainable: true,
      finalNorm: false,
      label: `${label}.enc`,
    });
    this.images = t([B, cfg.inChans, cfg.imgSize, cfg.imgSize], "images");
    this.target = t([B, K], "target");
    this.logits = t([B, K], "logits");
    this.loss = t([1], "loss");
    this.#index = t([B * N], "index", "i32");
    be.upload(this.#index, fullIndex(B, L));
    this.#pool = t([B, B * N], "pool");
    be.upload(this.#pool, poolMatrix(B, N));
    this.#pooled = t([B, D], "pooled");
    this.#fc = t([B, D], "fc");
    this.#fcMean = t([B], "fcMean");
    this.#fcRstd = t([B], "fcRstd");
    this.#dlogits = t([B, K], "dlogits");
    this.#dfc = t([B, D], "dfc");
    this.#dpooled = t([B, D], "dpooled");
    this.#dx = t([B, N, D], "dx");
    this.#dropRates = Array.from(
      { length: cfg.depth },
      (_, i) => cfg.depth > 1 ? (opts.dropPath * i) / (cfg.depth - 1) : 0,
    );
    this.#dropTable = opts.dropPath > 0 && cfg.depth > 1
      ? t([cfg.depth * 2 * B], "dropScales")
      : null;
    if (this.#dropTable) be.fill(this.#dropTable, 1); // no drop until setBatch draws scales
  }

  /** Frees the parameters, the encoder's buffers and the classifier's own. */
  dispose(): void {
    this.encoder.dispose();
    this.ps.dispose();
    freeTensors(this.#be, [
      this.images,
      this.target,
      this.logits,
      this.loss,
      this.#index,
      this.#pool,
      this.#pooled,
      this.#fc,
      this.#fcMean,
      this.#fcRstd,
      this.#dlogits,
      this.#dfc,
      this.#dpooled,
      this.#dx,
      this.#dropTable,
    ]);
  }

  /** Initialises every parameter from its spec (head included), drawing from `rng`. */
  init(rng: Rng): void {
    this.ps.init(rng);
  }

  /**
   * Loads encoder weights by name (a pre-trained checkpoint: every classifier name except
   * `fc_norm.*` / `head.*` must be present; others such as `norm.*` or a decoder are ignored).
   */
  loadEncoder(weights: ReadonlyMap<string, Float32Array>): void {
    const want = this.ps.specs.filter((s) => !/^(fc_norm|head)\./.test(s.name));
    const missing = want.filter((s) => !weights.has(s.name)).map((s) => s.name);
    if (missing.length) {
      throw new RangeError(`Cannot load the encoder: no weights for ${missing.join(", ")}`);
    }
    this.ps.load(new Map(want.map((s) => [s.name, weights.get(s.name)!])));
  }

  /**
   * Uploads `images [B, C, H, W]` and soft `targets [B, K]`; with drop path and an `rng`,
   * draws the per-sample drop-path scales for the next training forward.
   */
  setBatch(images: Float32Array, targets: Float32Array | null, rng?: Rng): void {
    this.#be.upload(this.images, images);
    if (targets) this.#be.upload(this.target, targets);
    if (this.#dropTable && rng) {
      const B = this.B;
      const scales = new Float32Array(this.#dropTable.size);
      this.#dropRates.forEach((p, i) => {
        for (let j = 0; j < 2 * B; j++) {
          scales[i * 2 * B + j] = p === 0 ? 1 : rng.uniform() < 1 - p ? 1 / (1 - p) : 0;
        }
      });
      this.#be.upload(this.#dropTable, scales);
    }
  }

  /** Records the forward into {@link VitClassifier.logits}; `train` applies drop path. */
  forward(train: boolean): void {
    const be = this.#be;
    const { B } = this;
    const D = this.cfg.embedDim;
    const N = 1 + this.d.numPatches;
    const K = this.numClasses;
    const drop = train ? this.#drops() : null;
    this.encoder.patchify(this.images);
    this.encoder.forward(this.#index, drop);
    meanPoolForward(be, { pooled: this.#pooled, x: this.encoder.out, pool: this.#pool }, {
      B,
      N,
      D,
    });
    be.layernorm(
      {
        out: this.#fc,
        mean: this.#fcMean,
        rstd: this.#fcRstd,
        inp: this.#pooled,
        weight: this.ps.get("fc_norm.weight"),
        bias: this.ps.get("fc_norm.bias"),
      },
      { rows: B, C: D, eps: LN_EPS },
    );
    linearForward(
      be,
      {
        out: this.logits,
        inp: this.#fc,
        weight: this.ps.get("head.weight"),
        bias: this.ps.get("head.bias"),
      },
      { rows: B, inF: D, outF: K },
    );
  }

  /**
   * Records a training forward, the soft-target cross-entropy into {@link VitClassifier.loss}
   * and the backward; parameter gradients ACCUMULATE (zero them between steps).
   */
  forwardBackward(): void {
    const be = this.#be;
    const { B } = this;
    const D = this.cfg.embedDim;
    const N = 1 + this.d.numPatches;
    const K = this.numClasses;
    const ps = this.ps;
    this.forward(true);
    be.crossEntropyLoss(
      { loss: this.loss, dlogits: this.#dlogits, logits: this.logits, target: this.target },
      { rows: B, C: K },
    );
    linearBackward(
      be,
      {
        dinp: this.#dfc,
        dweight: ps.grad("head.weight"),
        dbias: ps.grad("head.bias"),
        dout: this.#dlogits,
        inp: this.#fc,
        weight: ps.get("head.weight"),
      },
      { rows: B, inF: D, outF: K },
    );
    be.layernormBackward(
      {
        dinp: this.#dpooled,
        dweight: ps.grad("fc_norm.weight"),
        dbias: ps.grad("fc_norm.bias"),
        dout: this.#dfc,
        inp: this.#pooled,
        weight: ps.get("fc_norm.weight"),
        mean: this.#fcMean,
        rstd: this.#fcRstd,
      },
      { rows: B, C: D },
    );
    meanPoolBackward(be, { dx: this.#dx, dpooled: this.#dpooled, pool: this.#pool }, { B, N, D });
    this.encoder.backward(this.#dx, this.#index, this.#drops());
  }

  #drops(): (DropScales | null)[] | null {
    const table = this.#dropTable;
    if (!table) return null;
    const B = this.B;
    return this.#dropRates.map((p, i) =>
      p === 0 ? null : {
        attn: view(table, i * 2 * B, [B]),
        mlp: view(table, i * 2 * B + B, [B]),
      }
    );
  }
}
