/**
 * Checkpoints: safetensors, f32, PyTorch layouts and timm / reference dBOT
 * names; `__metadata__.config` carries the resolved config as JSON. A ViT
 * written by timm or PyTorch loads as a teacher or for evaluation: shapes
 * give D, depth, patch, channels and tokens; the config or flags the rest.
 *
 * @module
 */
import { type NamedTensor, readSafetensors, toFloat32, writeSafetensors } from "./safetensors.ts";
import { deriveVit, type VitConfig } from "../models/config.ts";
import { vitParamSpecs } from "../models/vit.ts";
import type { ParamSet } from "../nn/params.ts";

/** A checkpoint's problem: missing or unexpected names, wrong shapes, an unreadable config. */
export class CheckpointError extends Error {
  /** `message` names the file, the problem and the fix. */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/** Resolved settings stored with every checkpoint (`__metadata__.config`). */
export interface CheckpointConfig {
  /** The encoder's shape. */
  vit?: VitConfig;
  /** Input normalisation. */
  mean?: number[];
  /** Input normalisation. */
  std?: number[];
  /** Anything else the writer wants to record (run config, stage, …). */
  [key: string]: unknown;
}

/** Host weights by name with their shapes, and the stored config. */
export interface Checkpoint {
  /** Values by name. */
  weights: Map<string, Float32Array>;
  /** Shapes by name. */
  shapes: Map<string, number[]>;
  /** Parsed `__metadata__.config` (empty object when absent). */
  config: CheckpointConfig;
}

/** Reads a checkpoint (F32/F16/BF16 → f32). */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  const { tensors, metadata } = await readSafetensors(path);
  const weights = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (const [name, t] of tensors) {
    weights.set(name, toFloat32(t));
    shapes.set(name, t.shape);
  }
  let config: CheckpointConfig = {};
  if (metadata.config) {
    try {
      config = JSON.parse(metadata.config);
    } catch (e) {
      throw new CheckpointError(
        `Cannot read checkpoint "${path}": __metadata__.config is not JSON (${
          (e as Error).message
        })`,
      );
    }
  }
  return { weights, shapes, config };
}

/**
 * Writes `params` (every row, frozen ones too) and `config` atomically as F32 safetensors.
 * `params` is a parameter set, or host `weights` with their `shapes` by name (as
 * {@link readCheckpoint} returns them).
 */
export async function writeCheckpoint(
  path: string,
  params: ParamSet | {
    weights: ReadonlyMap<string, Float32Array>;
    shapes: ReadonlyMap<string, readonly number[]>;
  },
  config: CheckpointConfig,
): Promise<void> {
  const onHost = "weights" in params;
  const host = onHost ? params.weights : await params.toHost();
  const shapeOf = (name: string): readonly number[] => {
    if (!onHost) return params.get(name).shape;
    const s = params.shapes.get(name);
    if (!s) throw new CheckpointError(`Cannot write checkpoint "${path}": no shape for "${name}"`);
    return s;
  };
  const tensors: Record<string, NamedTensor> = {};
  for (const [name, data] of host) {
    tensors[name] = { dtype: "F32", shape: [...shapeOf(name)], data };
  }
  await writeSafetensors(path, tensors, { config: JSON.stringify(config), format: "pt" });
}

/** Names a ViT checkpoint may carry beyond the encoder (dBOT decoder, classifier heads). */
const KNOWN_EXTRA = /^(mask_token|decoder_[a-z_]+(\.|$)|decoder_blocks\.|fc_norm\.|head\.)/;

/**
 * The encoder config of the ViT stored under `prefix` in `ckpt`. Shapes give D, depth, patch
 * size, channels, token count and MLP ratio; heads come from `heads`, else the stored config,
 * else D/64.
 */
export function inferVitConfig(
  ckpt: Checkpoint,
  opts: { heads?: number; prefix?: string; file?: string } = {},
): VitConfig {
  const p = opts.prefix ?? "";
  const file = opts.file ?? "checkpoint";
  const shape = (n: string): number[] => {
    const s = ckpt.shapes.get(p + n);
    if (!s) {
      throw new CheckpointError(
        `Cannot read a ViT from "${file}": it has no "${
          p + n
        }" (is it a ViT checkpoint with timm names?)`,
      );
    }
    return s;
  };
  const [D, C, P, P2] = shape("patch_embed.proj.weight");
  if (P !== P2) {
    throw new CheckpointError(`Cannot read a ViT from "${file}": non-square patches ${P}×${P2}`);
  }
  const tokens = shape("pos_embed")[1];
  const L = tokens - 1;
  const grid = Math.round(Math.sqrt(L));
  if (grid * grid !== L) {
    throw new CheckpointError(
      `Cannot read a ViT from "${file}": pos_embed has ${tokens} tokens, not 1 + a square`,
    );
  }
  let depth = 0;
  while (ckpt.shapes.has(`${p}blocks.${depth}.norm1.weight`)) depth++;
  const hidden = depth > 0 ? shape("blocks.0.mlp.fc1.weight")[0] : 4 * D;
  const numHeads = opts.heads ?? storedHeads(ckpt.config, D) ?? D / 64;
  if (!Number.isInteger(numHeads) || numHeads < 1) {
    throw new CheckpointError(
      `Cannot read a ViT from "${file}": the head count is not stored and D/64 = ${
        D / 64
      } is not a whole number; pass --heads`,
    );
  }
  const cfg: VitConfig = {
    imgSize: grid * P,
    patchSize: P,
    inChans: C,
    embedDim: D,
    depth,
    numHeads,
    mlpRatio: hidden / D,
  };
  deriveVit(cfg, `the ViT in "${file}"`);
  return cfg;
}

/**
 * The encoder weights of `cfg` from `ckpt` (names under `prefix`, returned without it).
 * Missing names, wrong shapes and unexpected names (other than a dBOT decoder or a head)
 * are a {@link CheckpointError} that lists them.
 */
export function vitWeights(
  ckpt: Checkpoint,
  cfg: VitConfig,
  opts: { prefix?: string; file?: string } = {},
): Map<string, Float32Array> {
  const p = opts.prefix ?? "";
  const file = opts.file ?? "checkpoint";
  const specs = vitParamSpecs(cfg);
  const out = new Map<string, Float32Array>();
  const missing: string[] = [];
  const badShape: string[] = [];
  for (const s of specs) {
    const w = ckpt.weights.get(p + s.name);
    if (!w) {
      missing.push(p + s.name);
      continue;
    }
    const got = ckpt.shapes.get(p + s.name)!;
    if (got.join(",") !== s.shape.join(",")) {
      badShape.push(`${p + s.name} [${got}] (expected [${s.shape}])`);
      continue;
    }
    out.set(s.name, w);
  }
  const known = new Set(specs.map((s) => p + s.name));
  const unexpected = [...ckpt.weights.keys()].filter((n) =>
    n.startsWith(p) && !known.has(n) && !KNOWN_EXTRA.test(n.slice(p.length))
  );
  const problems: string[] = [];
  if (missing.length) problems.push(`missing: ${missing.join(", ")}`);
  if (badShape.length) problems.push(`wrong shape: ${badShape.join(", ")}`);
  if (unexpected.length) problems.push(`unexpected: ${unexpected.join(", ")}`);
  if (problems.length) {
    throw new CheckpointError(
      `Cannot load the ViT in "${file}" (${p ? `prefix "${p}", ` : ""}${describe(cfg)}): ${
        problems.join("; ")
      }`,
    );
  }
  return out;
}

/** Heads from a stored config: ours (`vit.numHeads`) or timm-style (`num_heads` beside `embed_dim`). */
function storedHeads(config: CheckpointConfig, D: number): number | undefined {
  if (config.vit?.embedDim === D) return config.vit.numHeads;
  if (config.embed_dim === D && typeof config.num_heads === "number") return config.num_heads;
  return undefined;
}

function describe(c: VitConfig): string {
  return `D ${c.embedDim}, depth ${c.depth}, heads ${c.numHeads}, patch ${c.patchSize}, img ${c.imgSize}`;
}
