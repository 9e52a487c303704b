/**
 * Model configuration: a small typed object with presets by name; unknown
 * overrides are rejected and every derived value is computed here.
 *
 * @module
 */

/** Shape of a ViT encoder (student or teacher). */
export interface VitConfig {
  /** Square input size in pixels. */
  readonly imgSize: number;
  /** Patch size P (kernel = stride of the patch-embedding conv). */
  readonly patchSize: number;
  /** Input channels C. */
  readonly inChans: number;
  /** Width D. 0 depth means a zero-depth (patch-embedding only) encoder. */
  readonly embedDim: number;
  /** Number of blocks. */
  readonly depth: number;
  /** Attention heads NH (D must be divisible by NH). */
  readonly numHeads: number;
  /** MLP hidden width = mlpRatio · D. */
  readonly mlpRatio: number;
  /** MLP activation: exact erf GELU (default) or QuickGELU `x·σ(1.702x)` (OpenAI CLIP). */
  readonly act?: "gelu" | "quickgelu";
  /** The patch-embedding conv has a bias `patch_embed.proj.bias` (default true; CLIP: false). */
  readonly patchBias?: boolean;
  /** LayerNorm `norm_pre` after adding cls (+ position embedding), CLIP's `ln_pre`. Default false. */
  readonly preNorm?: boolean;
  /**
   * After the final `norm`, every token `· head.weightᵀ` (`head.weight [projDim, D]`, no bias;
   * CLIP's `visual.proj [D, projDim]` is its transpose). Default: no projection.
   */
  readonly projDim?: number;
  /** Absolute position embedding `pos_embed` (default `"abs"`, fixed sin-cos) or none (BEiT student). */
  readonly posEmbed?: "abs" | "none";
  /**
   * One BEiT relative position bias shared by all blocks,
   * `rel_pos_bias.relative_position_bias_table [(2G−1)² + 3, NH]`. Default false.
   */
  readonly relPosBias?: boolean;
  /** Layer-scale init value (BEiT: 0.1): params `blocks.i.gamma_1`, `blocks.i.gamma_2` `[D]`. Default none. */
  readonly layerScale?: number;
  /** BEiT qkv: `attn.q_bias`, `attn.v_bias` `[D]`, no k bias and no `attn.qkv.bias`. Default false. */
  readonly qvBias?: boolean;
  /** LayerNorm eps of every norm in the encoder (default 1e-6; OpenAI CLIP / OpenCLIP: 1e-5). */
  readonly lnEps?: number;
}

/** The dBOT student decoder. */
export interface DecoderConfig {
  /** Decoder width Dd. */
  readonly embedDim: number;
  /** Decoder blocks. */
  readonly depth: number;
  /** Decoder heads. */
  readonly numHeads: number;
}

/** A named preset: encoder shape (image size, patch and channels are set separately) and decoder. */
export interface Preset {
  /** Encoder width D. */
  readonly embedDim: number;
  /** Encoder blocks. */
  readonly depth: number;
  /** Encoder heads. */
  readonly numHeads: number;
  /** The dBOT decoder paired with it. */
  readonly decoder: DecoderConfig;
}

const BIG_DECODER: DecoderConfig = { embedDim: 512, depth: 8, numHeads: 16 };

/** Presets by name (widths, depths, heads per DBOT_SPEC.md; small ones for CPUs). */
export const PRESETS: Readonly<Record<string, Preset>> = Object.freeze({
  "vit-micro": {
    embedDim: 96,
    depth: 4,
    numHeads: 3,
    decoder: { embedDim: 64, depth: 2, numHeads: 4 },
  },
  // vit-micro's depth at twice its width (4× its parameters): a larger teacher CPUs can afford
  "vit-mini": {
    embedDim: 192,
    depth: 4,
    numHeads: 3,
    decoder: { embedDim: 128, depth: 2, numHeads: 4 },
  },
  "vit-tiny": {
    embedDim: 192,
    depth: 12,
    numHeads: 3,
    decoder: { embedDim: 128, depth: 4, numHeads: 4 },
  },
  "vit-small": {
    embedDim: 384,
    depth: 12,
    numHeads: 6,
    decoder: { embedDim: 256, depth: 4, numHeads: 8 },
  },
  "vit-base": { embedDim: 768, depth: 12, numHeads: 12, decoder: BIG_DECODER },
  "vit-large": { embedDim: 1024, depth: 24, numHeads: 16, decoder: BIG_DECODER },
  "vit-huge": { embedDim: 1280, depth: 32, numHeads: 16, decoder: BIG_DECODER },
});

/** Patches per side G, patches L = G², head size HS, hidden width. */
export interface VitDerived {
  /** Patches per side. */
  readonly grid: number;
  /** Patch count L. */
  readonly numPatches: number;
  /** Head size HS = D / NH. */
  readonly headSize: number;
  /** MLP hidden width. */
  readonly hidden: number;
  /** Values per patch C·P·P. */
  readonly patchDim: number;
}

/** Checks `cfg` and returns its derived sizes; throws a RangeError naming the bad values. */
export function deriveVit(cfg: VitConfig, what = "ViT"): VitDerived {
  for (const k of ["imgSize", "patchSize", "inChans", "embedDim", "numHeads"] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) {
      throw new RangeError(
        `Cannot build ${what} as ${k} must be a positive integer: current value is ${cfg[k]}`,
      );
    }
  }
  if (!Number.isInteger(cfg.depth) || cfg.depth < 0) {
    throw new RangeError(
      `Cannot build ${what} as depth must be an integer >= 0: current value is ${cfg.depth}`,
    );
  }
  if (cfg.imgSize % cfg.patchSize !== 0) {
    throw new RangeError(
      `Cannot build ${what} as imgSize must be divisible by patchSize: current values are ${cfg.imgSize} and ${cfg.patchSize}`,
    );
  }
  if (cfg.embedDim % cfg.numHeads !== 0) {
    throw new RangeError(
      `Cannot build ${what} as embedDim must be divisible by numHeads: current values are ${cfg.embedDim} and ${cfg.numHeads}`,
    );
  }
  checkVitOptions(cfg, what);
  if (cfg.posEmbed !== "none" && cfg.embedDim % 4 !== 0) {
    throw new RangeError(
      `Cannot build ${what} as embedDim must be divisible by 4 (2-D sin-cos position embedding): current value is ${cfg.embedDim}`,
    );
  }
  const grid = cfg.imgSize / cfg.patchSize;
  return {
    grid,
    numPatches: grid * grid,
    headSize: cfg.embedDim / cfg.numHeads,
    hidden: Math.round(cfg.embedDim * cfg.mlpRatio),
    patchDim: cfg.inChans * cfg.patchSize * cfg.patchSize,
  };
}

/** Checks the optional {@link VitConfig} fields (act, projDim, posEmbed, layerScale). */
function checkVitOptions(cfg: VitConfig, what: string): void {
  if (cfg.act !== undefined && cfg.act !== "gelu" && cfg.act !== "quickgelu") {
    throw new RangeError(
      `Cannot build ${what} as act must be "gelu" or "quickgelu": current value is ${cfg.act}`,
    );
  }
  if (cfg.posEmbed !== undefined && cfg.posEmbed !== "abs" && cfg.posEmbed !== "none") {
    throw new RangeError(
      `Cannot build ${what} as posEmbed must be "abs" or "none": current value is ${cfg.posEmbed}`,
    );
  }
  if (cfg.projDim !== undefined && (!Number.isInteger(cfg.projDim) || cfg.projDim < 1)) {
    throw new RangeError(
      `Cannot build ${what} as projDim must be a positive integer: current value is ${cfg.projDim}`,
    );
  }
  if (cfg.lnEps !== undefined && !(Number.isFinite(cfg.lnEps) && cfg.lnEps > 0)) {
    throw new RangeError(
      `Cannot build ${what} as lnEps must be a number > 0: current value is ${cfg.lnEps}`,
    );
  }
  if (cfg.layerScale !== undefined && !(Number.isFinite(cfg.layerScale) && cfg.layerScale > 0)) {
    throw new RangeError(
      `Cannot build ${what} as layerScale must be a number > 0: current value is ${cfg.layerScale}`,
    );
  }
}

/** Resolves a preset name plus image settings into an encoder config. */
export function vitFromPreset(
  name: string,
  image: { imgSize: number; patchSize: number; inChans: number },
): VitConfig {
  const p = PRESETS[name];
  if (!p) {
    throw new TypeError(
      `Cannot find model preset "${name}": use one of ${Object.keys(PRESETS).join(", ")}`,
    );
  }
  return { ...image, embedDim: p.embedDim, depth: p.depth, numHeads: p.numHeads, mlpRatio: 4 };
}
