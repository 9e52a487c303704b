/**
 * Checkpoints as bytes (no file access: this module runs in a browser too): safetensors,
 * f32, PyTorch layouts and timm / reference dBOT names; `__metadata__.config` carries the
 * resolved config as JSON. A ViT written by timm or PyTorch loads as a teacher or for
 * evaluation: shapes give D, depth, patch, channels and tokens; the config or flags the rest.
 * Files: `checkpoint_file.ts`.
 *
 * @module
 */
import {
  decodeSafetensors,
  encodeSafetensors,
  type NamedTensor,
  type SafetensorsContents,
  toFloat32,
} from "./safetensors.ts";
import { deriveVit, PRESETS, type VitConfig } from "../models/vit_config.ts";
import { vitParamSpecs } from "../models/vit.ts";
import { interpolatePosEmbed } from "../models/teachers/resize.ts";

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

/** The checkpoint in decoded safetensors `contents` (F32/F16/BF16 → f32); `file` names it in errors. */
export function checkpointFrom(contents: SafetensorsContents, file = "<memory>"): Checkpoint {
  const { tensors, metadata } = contents;
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
        `Cannot read checkpoint "${file}": __metadata__.config is not JSON (${
          (e as Error).message
        })`,
      );
    }
  }
  return { weights, shapes, config };
}

/** Decodes checkpoint bytes (a safetensors file's contents); `file` names them in errors. */
export function decodeCheckpoint(bytes: Uint8Array, file = "<memory>"): Checkpoint {
  return checkpointFrom(decodeSafetensors(bytes, file), file);
}

/** Host weights with their shapes by name, as a checkpoint holds them. */
export interface HostWeights {
  /** Values by name. */
  weights: ReadonlyMap<string, Float32Array>;
  /** Shapes by name. */
  shapes: ReadonlyMap<string, readonly number[]>;
}

/** The safetensors tensors and metadata of a checkpoint of `w` with `config`; `file` names it in errors. */
export function checkpointTensors(
  w: HostWeights,
  config: CheckpointConfig,
  file = "<memory>",
): { tensors: Record<string, NamedTensor>; metadata: Record<string, string> } {
  const tensors: Record<string, NamedTensor> = {};
  for (const [name, data] of w.weights) {
    const s = w.shapes.get(name);
    if (!s) throw new CheckpointError(`Cannot write checkpoint "${file}": no shape for "${name}"`);
    tensors[name] = { dtype: "F32", shape: [...s], data };
  }
  return { tensors, metadata: { config: JSON.stringify(config), format: "pt" } };
}

/** A checkpoint of `w` with `config` as F32 safetensors bytes (what {@link decodeCheckpoint} reads). */
export function encodeCheckpoint(w: HostWeights, config: CheckpointConfig): Uint8Array {
  const { tensors, metadata } = checkpointTensors(w, config);
  return encodeSafetensors(tensors, metadata);
}

/**
 * Names a ViT checkpoint may carry beyond the encoder (dBOT decoder, classifier heads, the
 * symmetric student's `lm_head`).
 */
const KNOWN_EXTRA =
  /^(mask_token|decoder_[a-z_]+(\.|$)|decoder_blocks\.|fc_norm\.|head\.|lm_head\.)/;

/** The shared relative position bias table of a BEiT encoder (the symmetric student). */
const REL_POS_TABLE = "rel_pos_bias.relative_position_bias_table";

/**
 * The encoder config of the ViT stored under `prefix` in `ckpt`. Shapes give D, depth, patch
 * size, channels, token count and MLP ratio; heads come from `heads`, else the stored config,
 * else the preset of that width (see {@link presetHeads}); any other width must be told.
 * With `student`, the ViT runs at the student's token grid (a teacher at another resolution
 * or patch size: `imgSize = student grid × patch`; {@link vitWeights} then interpolates the
 * position embeddings); else at the checkpoint's own.
 *
 * A BEiT-style encoder (the symmetric student: timm Beit names) is recognised by its names:
 * no `pos_embed` → `posEmbed: "none"` with the grid from the relative position table
 * (`(2G−1)² + 3` rows, heads = its columns), `gamma_1` → layer scale, `attn.q_bias` → q/v
 * biases, no `patch_embed.proj.bias` → `patchBias: false`, `norm_pre` → `preNorm`.
 */
export function inferVitConfig(
  ckpt: Checkpoint,
  opts: { heads?: number; prefix?: string; file?: string; student?: VitConfig } = {},
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
  const table = ckpt.shapes.get(p + REL_POS_TABLE);
  const hasPos = ckpt.shapes.has(`${p}pos_embed`);
  let grid: number;
  if (hasPos || !table) {
    const tokens = shape("pos_embed")[1];
    const L = tokens - 1;
    grid = Math.round(Math.sqrt(L));
    if (grid * grid !== L) {
      throw new CheckpointError(
        `Cannot read a ViT from "${file}": pos_embed has ${tokens} tokens, not 1 + a square`,
      );
    }
  } else {
    // (2G − 1)² + 3 rows
    grid = (Math.round(Math.sqrt(table[0] - 3)) + 1) / 2;
    if (!Number.isInteger(grid) || (2 * grid - 1) ** 2 + 3 !== table[0] || table.length !== 2) {
      throw new CheckpointError(
        `Cannot read a ViT from "${file}": ${
          p + REL_POS_TABLE
        } [${table}] is not [(2G−1)²+3, heads]`,
      );
    }
  }
  let depth = 0;
  while (ckpt.shapes.has(`${p}blocks.${depth}.norm1.weight`)) depth++;
  const hidden = depth > 0 ? shape("blocks.0.mlp.fc1.weight")[0] : 4 * D;
  const tableHeads = table?.[1];
  if (opts.heads !== undefined && tableHeads !== undefined && opts.heads !== tableHeads) {
    throw new CheckpointError(
      `Cannot read a ViT from "${file}": --heads ${opts.heads} disagrees with ${
        p + REL_POS_TABLE
      }, which has ${tableHeads} heads`,
    );
  }
  const numHeads = opts.heads ?? storedHeads(ckpt.config, D) ?? tableHeads ?? presetHeads(D);
  if (numHeads === undefined || !Number.isInteger(numHeads) || numHeads < 1) {
    throw new CheckpointError(
      `Cannot read a ViT from "${file}": ${
        numHeads === undefined
          ? `the head count is not stored and width ${D} is no preset's (${
            Object.entries(PRESETS).map(([n, p]) => `${n} ${p.embedDim}/${p.numHeads}`).join(", ")
          })`
          : `the head count must be a positive integer, got ${numHeads}`
      }; pass --heads (--teacher-heads for a teacher), e.g. 16 for a ViT-H/14 of width 1280`,
    );
  }
  const runGrid = opts.student ? studentGrid(opts.student, C, file) : grid;
  if (table && runGrid !== grid) {
    throw new CheckpointError(
      `Cannot run the ViT in "${file}" at a ${runGrid}×${runGrid} grid: its relative position ` +
        `bias is for ${grid}×${grid} (resizing it is not supported); use a student of that grid`,
    );
  }
  const cfg: VitConfig = {
    imgSize: runGrid * P,
    patchSize: P,
    inChans: C,
    embedDim: D,
    depth,
    numHeads,
    mlpRatio: hidden / D,
    ...beitOptions(ckpt, p, depth),
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
    const pos = s.name === "pos_embed" ? posGrids(got, s.shape) : null;
    if (pos) {
      // a teacher at another resolution / patch size: bicubic, as interpolate_pos_encoding
      out.set(s.name, interpolatePosEmbed(w, { ...pos, dim: cfg.embedDim }));
      continue;
    }
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

/**
 * The head count of the preset of width `D` (vit-micro 96 → 3, …, vit-huge 1280 → 16), or
 * undefined when no preset has that width.
 */
export function presetHeads(D: number): number | undefined {
  return Object.values(PRESETS).find((p) => p.embedDim === D)?.numHeads;
}

/** The token grid of `student` (it must have `C` channels). */
function studentGrid(student: VitConfig, C: number, file: string): number {
  if (student.inChans !== C) {
    throw new CheckpointError(
      `Cannot use the ViT in "${file}" as a teacher: it takes ${C} channels, the student ${student.inChans}`,
    );
  }
  return deriveVit(student, "student").grid;
}

/**
 * `{ from, to }` grids when a stored `[1, 1 + from², D]` position table must be interpolated
 * to the expected `[1, 1 + to², D]`; null when the shapes match or are no such tables.
 */
function posGrids(got: number[], want: readonly number[]): { from: number; to: number } | null {
  if (got.length !== 3 || want.length !== 3 || got[0] !== 1 || got[2] !== want[2]) return null;
  const from = Math.round(Math.sqrt(got[1] - 1));
  const to = Math.round(Math.sqrt(want[1] - 1));
  if (from * from !== got[1] - 1 || to * to !== want[1] - 1 || from === to) return null;
  return { from, to };
}

/** The non-default encoder options a checkpoint's names show (BEiT / CLIP-style encoders). */
function beitOptions(ckpt: Checkpoint, p: string, depth: number): Partial<VitConfig> {
  const has = (n: string) => ckpt.shapes.has(p + n);
  const stored = ckpt.config.vit;
  const o: { -readonly [K in keyof VitConfig]?: VitConfig[K] } = {};
  if (!has("pos_embed")) o.posEmbed = "none";
  if (has(REL_POS_TABLE)) o.relPosBias = true;
  // only the presence of gamma_1/gamma_2 matters for loading; the init value is a guess
  if (depth > 0 && has("blocks.0.gamma_1")) o.layerScale = stored?.layerScale ?? 0.1;
  if (depth > 0 && has("blocks.0.attn.q_bias")) o.qvBias = true;
  if (!has("patch_embed.proj.bias")) o.patchBias = false;
  if (has("norm_pre.weight")) o.preNorm = true;
  if (stored?.act === "quickgelu") o.act = "quickgelu";
  if (stored?.lnEps !== undefined) o.lnEps = stored.lnEps;
  return o;
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
