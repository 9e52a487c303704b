/**
 * A CLIP image tower as the teacher (DBOT_SPEC.md "Variant"): an OpenAI-CLIP / OpenCLIP
 * checkpoint with its own names, run on our ViT encoder under timm names:
 *
 *   visual.conv1.weight [D, C, P, P] (no bias)      → patch_embed.proj.weight
 *   visual.class_embedding [D]                      → cls_token [1, 1, D]
 *   visual.positional_embedding [1 + G², D]         → pos_embed [1, 1 + g², D] (bicubic to the run grid g)
 *   visual.ln_pre.{weight,bias}                     → norm_pre.*
 *   visual.transformer.resblocks.i.ln_1.*           → blocks.i.norm1.*
 *     attn.in_proj_weight [3D, D], in_proj_bias     → blocks.i.attn.qkv.{weight,bias}
 *     attn.out_proj.{weight,bias}                   → blocks.i.attn.proj.*
 *     ln_2.*, mlp.c_fc.*, mlp.c_proj.*              → blocks.i.norm2.*, mlp.fc1.*, mlp.fc2.*
 *   visual.ln_post.{weight,bias}                    → norm.*
 *   visual.proj [D, E]                              → head.weight [E, D] (transposed)
 *
 * Encoder options: QuickGELU (OpenAI's; OpenCLIP's own GELU models say `quick_gelu: false`
 * in `__metadata__.config`), no patch-embed bias, `ln_pre`, LayerNorm eps 1e-5, the
 * projection; heads = width/64 unless told (widths of CLIP H/g/bigG use 16 heads).
 *
 * Targets: `ln_post` on all tokens `@ proj`, cls dropped (`hasClsTarget` false, its row is
 * zeros). The teacher sees the student's crop resized to its own input size (student grid ×
 * its patch, e.g. 196 px for L/14 under a 224/16 student) and normalised with CLIP's mean/std
 * (the student's normalisation undone per channel), see `resize.ts`.
 *
 * Browser-safe: files are read by `io/clip_checkpoint.ts`; this module works on a header
 * (names, dtypes, shapes) and f32 values.
 *
 * @module
 */
import { type Backend, freeTensors, type Tensor } from "../../backend/backend.ts";
import { deriveVit, type VitConfig } from "../vit_config.ts";
import { ParamSet } from "../../nn/params.ts";
import type { Teacher, TeacherKind } from "../teacher.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "../vit.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "../../data/pipeline.ts";
import { interpolatePosEmbed, renormalization, TeacherInput } from "./resize.ts";
import { checkTeacherGrid } from "./vit.ts";

/** CLIP's image mean (OpenAI `_transform`). */
export const CLIP_MEAN: readonly number[] = [0.48145466, 0.4578275, 0.40821073];
/** CLIP's image std. */
export const CLIP_STD: readonly number[] = [0.26862954, 0.26130258, 0.27577711];
/** LayerNorm eps of OpenAI CLIP / OpenCLIP (torch's nn.LayerNorm default). */
export const CLIP_LN_EPS = 1e-5;

/** Heads of CLIP towers whose head width is not 64 (OpenCLIP H/14, g/14, bigG/14), by width. */
const CLIP_HEADS: Readonly<Record<number, number>> = { 1280: 16, 1408: 16, 1664: 16 };

/** A CLIP teacher's description (JSON-able; saved with the run state). */
export interface ClipTeacherConfig {
  /** Its kind. */
  readonly kind: "clip";
  /** The tower as it runs: `imgSize` = its input size in this run (student grid × patch). */
  readonly vit: VitConfig;
  /** The checkpoint's own input size (its positional_embedding grid × patch). */
  readonly imgSize: number;
  /** The file it came from (for logs). */
  readonly path?: string;
  /** Mean the student's images are normalised with (default ImageNet's). */
  readonly inputMean?: readonly number[];
  /** Std the student's images are normalised with (default ImageNet's). */
  readonly inputStd?: readonly number[];
}

/** A CLIP checkpoint's problems (every one found, with what to do). */
export class ClipCheckpointError extends Error {
  /** `message` names the file, every problem and the fix. */
  constructor(message: string) {
    super(message);
    this.name = "ClipCheckpointError";
  }
}

/** What {@link clipConfigFromHeader} needs of one stored tensor. */
export interface StoredTensorInfo {
  /** safetensors dtype (`F16`, `F32`, …). */
  readonly dtype: string;
  /** Shape. */
  readonly shape: readonly number[];
}

/** Options of {@link clipConfigFromHeader}. */
export interface ClipConfigOptions {
  /** Attention heads (default: width/64, or 16 for the widths of CLIP H/g/bigG). */
  heads?: number;
  /** The student: the teacher runs at its token grid (default: the checkpoint's own grid). */
  student?: VitConfig;
  /** MLP activation (default: `__metadata__.config` `quick_gelu`, else QuickGELU). */
  act?: "gelu" | "quickgelu";
  /** Mean/std the student's images are normalised with (default ImageNet's). */
  inputMean?: readonly number[];
  /** See `inputMean`. */
  inputStd?: readonly number[];
  /** The file, for messages and `path`. */
  file?: string;
}

const DTYPES = new Set(["F16", "F32", "BF16"]);

/** The image-tower prefix of `names` (`visual.`, `module.visual.`, `` …), or null. */
export function clipPrefix(names: Iterable<string>): string | null {
  let found: string | null = null;
  for (const n of names) {
    if (!n.endsWith("conv1.weight")) continue;
    const p = n.slice(0, -"conv1.weight".length);
    if (p === "" || p.endsWith(".")) {
      if (found === null || p === "visual.") found = p;
    }
  }
  return found;
}

/**
 * The {@link ClipTeacherConfig} of a CLIP checkpoint from its header (`entries`: name →
 * dtype and shape; `metadata`: its `__metadata__`). Every wrong or missing name, shape or
 * dtype, a grid that is not square, and a head count that does not divide the width are
 * collected and thrown as ONE {@link ClipCheckpointError} that lists them and what to do.
 */
export function clipConfigFromHeader(
  entries: ReadonlyMap<string, StoredTensorInfo>,
  metadata: Readonly<Record<string, string>>,
  opts: ClipConfigOptions = {},
): ClipTeacherConfig {
  const file = opts.file ?? "<memory>";
  const fail = (problems: string[]): never => {
    throw new ClipCheckpointError(
      `Cannot use "${file}" as a CLIP teacher: ${problems.join("; ")}. ` +
        `It must hold an OpenAI-CLIP / OpenCLIP image tower in F16, BF16 or F32 with its own names ` +
        `(visual.conv1.weight, visual.class_embedding, visual.positional_embedding, visual.ln_pre.*, ` +
        `visual.transformer.resblocks.N.{ln_1,attn.in_proj_*,attn.out_proj,ln_2,mlp.c_fc,mlp.c_proj}.*, ` +
        `visual.ln_post.*, visual.proj); export it with the image tower's state_dict() unchanged`,
    );
  };
  const p = clipPrefix(entries.keys());
  if (p === null) {
    const sample = [...entries.keys()].slice(0, 5).join(", ");
    return fail([`it has no visual.conv1.weight (its first names: ${sample || "none"})`]);
  }
  const problems: string[] = [];
  const shapeOf = (n: string): readonly number[] | null => {
    const e = entries.get(p + n);
    if (!e) {
      problems.push(`missing ${p + n}`);
      return null;
    }
    if (!DTYPES.has(e.dtype)) problems.push(`${p + n} is ${e.dtype}, not F16/BF16/F32`);
    return e.shape;
  };
  const conv = shapeOf("conv1.weight") ?? [];
  const [D, C, P, P2] = conv;
  if (conv.length !== 4 || P !== P2) {
    return fail([...problems, `${p}conv1.weight has shape [${conv}], not [width, C, P, P]`]);
  }
  const expect = (n: string, want: number[]) => {
    const s = shapeOf(n);
    if (s && s.join(",") !== want.join(",")) {
      problems.push(`${p + n} has shape [${s}], expected [${want}]`);
    }
  };
  if (entries.has(`${p}conv1.bias`)) {
    problems.push(`${p}conv1.bias is present: CLIP's patch embedding has no bias`);
  }
  expect("class_embedding", [D]);
  const pos = shapeOf("positional_embedding");
  let grid = 0;
  if (pos) {
    const g = Math.round(Math.sqrt(pos[0] - 1));
    if (pos.length !== 2 || pos[1] !== D || g * g !== pos[0] - 1 || g < 1) {
      problems.push(
        `${p}positional_embedding has shape [${pos}], expected [1 + G², ${D}] for a square G × G grid of patches`,
      );
    } else grid = g;
  }
  for (const n of ["ln_pre", "ln_post"]) {
    expect(`${n}.weight`, [D]);
    expect(`${n}.bias`, [D]);
  }
  const proj = shapeOf("proj");
  if (proj && (proj.length !== 2 || proj[0] !== D)) {
    problems.push(`${p}proj has shape [${proj}], expected [${D}, output width]`);
  }
  let depth = 0;
  const block = (i: number) => `${p}transformer.resblocks.${i}.`;
  while (entries.has(`${block(depth)}ln_1.weight`)) depth++;
  const stray = [...entries.keys()].find((n) => {
    const m = n.startsWith(`${p}transformer.resblocks.`) &&
      /^(\d+)\./.exec(n.slice(`${p}transformer.resblocks.`.length));
    return m && Number(m[1]) >= depth;
  });
  if (stray) problems.push(`${stray} is beyond the ${depth} consecutive blocks from 0`);
  const hidden = entries.get(`${block(0)}mlp.c_fc.weight`)?.shape[0] ?? 4 * D;
  for (let i = 0; i < depth; i++) {
    const b = `transformer.resblocks.${i}.`;
    for (const n of ["ln_1", "ln_2"]) {
      expect(`${b}${n}.weight`, [D]);
      expect(`${b}${n}.bias`, [D]);
    }
    expect(`${b}attn.in_proj_weight`, [3 * D, D]);
    expect(`${b}attn.in_proj_bias`, [3 * D]);
    expect(`${b}attn.out_proj.weight`, [D, D]);
    expect(`${b}attn.out_proj.bias`, [D]);
    expect(`${b}mlp.c_fc.weight`, [hidden, D]);
    expect(`${b}mlp.c_fc.bias`, [hidden]);
    expect(`${b}mlp.c_proj.weight`, [D, hidden]);
    expect(`${b}mlp.c_proj.bias`, [D]);
  }
  const unexpected = [...entries.keys()].filter((n) =>
    n.startsWith(p) && !known(n.slice(p.length), depth) && (p !== "" || !TEXT_TOWER.test(n))
  );
  if (unexpected.length) {
    problems.push(
      `unexpected ${unexpected.slice(0, 8).join(", ")}${
        unexpected.length > 8 ? ` and ${unexpected.length - 8} more` : ""
      } (layer scale, attention pooling and other tower variants are not supported)`,
    );
  }
  const heads = opts.heads ?? CLIP_HEADS[D] ?? D / 64;
  if (!Number.isInteger(heads) || heads < 1 || D % heads !== 0) {
    problems.push(
      `the head count ${heads} does not divide the width ${D}${
        opts.heads ? "" : " (width/64)"
      }: pass heads (--teacher-heads)`,
    );
  }
  let runGrid = grid;
  if (opts.student) {
    runGrid = deriveVit(opts.student, "student").grid;
    if (opts.student.inChans !== C) {
      problems.push(`it takes ${C} channels, the student ${opts.student.inChans}`);
    }
  }
  if (problems.length) return fail(problems);
  const act = opts.act ?? metadataAct(metadata) ?? "quickgelu";
  const vit: VitConfig = {
    imgSize: runGrid * P,
    patchSize: P,
    inChans: C,
    embedDim: D,
    depth,
    numHeads: heads,
    mlpRatio: hidden / D,
    act,
    patchBias: false,
    preNorm: true,
    projDim: proj![1],
    lnEps: CLIP_LN_EPS,
  };
  deriveVit(vit, `the CLIP tower in "${file}"`);
  const cfg: ClipTeacherConfig = { kind: "clip", vit, imgSize: grid * P, path: opts.file };
  const norm = opts.inputMean || opts.inputStd
    ? {
      inputMean: [...(opts.inputMean ?? IMAGENET_MEAN)],
      inputStd: [...(opts.inputStd ?? IMAGENET_STD)],
    }
    : {};
  return { ...cfg, ...norm };
}

/** Text-tower names of a full CLIP checkpoint (ignored when the image tower has no prefix). */
const TEXT_TOWER =
  /^(token_embedding|positional_embedding|ln_final|text_projection|logit_scale|logit_bias)(\.|$)/;

/**
 * Whether `n` (without the prefix) is a name of the image tower with `depth` blocks (names of
 * blocks from `depth` on are reported on their own).
 */
function known(n: string, depth: number): boolean {
  const top =
    /^(conv1\.weight|class_embedding|positional_embedding|ln_pre\.(weight|bias)|ln_post\.(weight|bias)|proj)$/;
  if (top.test(n)) return true;
  const m = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(n);
  if (!m) return false;
  if (Number(m[1]) >= depth) return true; // reported as beyond the consecutive blocks
  return /^(ln_1|ln_2|attn\.out_proj|mlp\.c_fc|mlp\.c_proj)\.(weight|bias)$|^attn\.in_proj_(weight|bias)$/
    .test(m[2]);
}

/** `quick_gelu` (OpenCLIP model config) or `act` in `__metadata__.config`, if stated. */
function metadataAct(metadata: Readonly<Record<string, string>>): "gelu" | "quickgelu" | null {
  if (!metadata.config) return null;
  try {
    const c = JSON.parse(metadata.config);
    if (typeof c.quick_gelu === "boolean") return c.quick_gelu ? "quickgelu" : "gelu";
    if (c.act === "gelu" || c.act === "quickgelu") return c.act;
  } catch {
    // not JSON: nothing stated
  }
  return null;
}

/**
 * The timm-named weights of `cfg.vit` from a CLIP checkpoint's f32 `values` (names as
 * stored): renamed, `proj` transposed, `class_embedding` reshaped, positional embeddings
 * interpolated (bicubic, `interpolate_pos_encoding`) from the checkpoint's grid to the run
 * grid. Call after {@link clipConfigFromHeader} accepted the header.
 */
export function clipWeights(
  values: ReadonlyMap<string, Float32Array>,
  cfg: ClipTeacherConfig,
): Map<string, Float32Array> {
  const p = clipPrefix(values.keys()) ?? "visual.";
  const v = cfg.vit;
  const D = v.embedDim;
  const get = (n: string): Float32Array => {
    const w = values.get(p + n);
    if (!w) throw new ClipCheckpointError(`Cannot load the CLIP teacher: missing ${p + n}`);
    return w;
  };
  const out = new Map<string, Float32Array>();
  out.set("patch_embed.proj.weight", get("conv1.weight"));
  out.set("cls_token", get("class_embedding"));
  const from = cfg.imgSize / v.patchSize;
  const to = deriveVit(v).grid;
  out.set("pos_embed", interpolatePosEmbed(get("positional_embedding"), { from, to, dim: D }));
  out.set("norm_pre.weight", get("ln_pre.weight"));
  out.set("norm_pre.bias", get("ln_pre.bias"));
  const names: [string, string][] = [
    ["ln_1", "norm1"],
    ["attn.in_proj_weight", "attn.qkv.weight"],
    ["attn.in_proj_bias", "attn.qkv.bias"],
    ["attn.out_proj", "attn.proj"],
    ["ln_2", "norm2"],
    ["mlp.c_fc", "mlp.fc1"],
    ["mlp.c_proj", "mlp.fc2"],
  ];
  for (let i = 0; i < v.depth; i++) {
    for (const [a, b] of names) {
      const src = `transformer.resblocks.${i}.${a}`;
      if (a.startsWith("attn.in_proj")) out.set(`blocks.${i}.${b}`, get(src));
      else {
        out.set(`blocks.${i}.${b}.weight`, get(`${src}.weight`));
        out.set(`blocks.${i}.${b}.bias`, get(`${src}.bias`));
      }
    }
  }
  out.set("norm.weight", get("ln_post.weight"));
  out.set("norm.bias", get("ln_post.bias"));
  // proj [D, E] → head.weight [E, D]
  const proj = get("proj");
  const E = v.projDim!;
  const head = new Float32Array(E * D);
  for (let d = 0; d < D; d++) for (let e = 0; e < E; e++) head[e * D + d] = proj[d * E + e];
  out.set("head.weight", head);
  return out;
}

/** The CLIP teacher kind. */
export const clipTeacher: TeacherKind<ClipTeacherConfig> = {
  width: (cfg) => cfg.vit.projDim ?? cfg.vit.embedDim,
  build: (be, cfg, student, B) => new ClipTeacher(be, cfg, student, B),
};

class ClipTeacher implements Teacher {
  readonly cfg: ClipTeacherConfig;
  readonly width: number;
  readonly hasClsTarget = false;
  readonly params: ParamSet;
  readonly #be: Backend;
  readonly #input: TeacherInput;
  readonly #enc: VitEncoder;
  readonly #idx: Tensor; // [B·(1+L)] every token, cls first
  readonly #outIdx: Tensor; // [B·(1+L)] −1 (zeros) at cls rows, else the row itself
  readonly #rows: number;

  constructor(be: Backend, cfg: ClipTeacherConfig, student: VitConfig, B: number) {
    checkTeacherGrid(cfg.vit, student, "CLIP");
    this.#be = be;
    this.cfg = cfg;
    const v = cfg.vit;
    this.width = clipTeacher.width(cfg, student);
    const L = deriveVit(v, "the CLIP teacher").numPatches;
    this.#rows = B * (1 + L);
    const { scale, shift } = renormalization(
      { mean: cfg.inputMean ?? IMAGENET_MEAN, std: cfg.inputStd ?? IMAGENET_STD },
      { mean: CLIP_MEAN, std: CLIP_STD },
    );
    this.#input = new TeacherInput(be, {
      B,
      C: v.inChans,
      from: student.imgSize,
      to: v.imgSize,
      scale,
      shift,
      label: "teacher.input",
    });
    this.params = new ParamSet(be, vitParamSpecs(v), { grads: false, label: "teacher" });
    this.#enc = new VitEncoder(be, v, {
      ps: this.params,
      B,
      N: 1 + L,
      trainable: false,
      finalNorm: true,
      label: "teacher",
    });
    this.#idx = be.tensor([this.#rows], "i32", "teacher.idx");
    be.upload(this.#idx, fullIndex(B, L));
    const outIdx = new Int32Array(this.#rows);
    for (let r = 0; r < this.#rows; r++) outIdx[r] = r % (1 + L) === 0 ? -1 : r;
    this.#outIdx = be.tensor([this.#rows], "i32", "teacher.outIdx");
    be.upload(this.#outIdx, outIdx);
  }

  targets(images: Tensor, out: Tensor): void {
    this.#enc.patchify(this.#input.run(images));
    this.#enc.forward(this.#idx);
    // ln_post(all tokens) @ proj, the cls rows zeroed (no target)
    this.#be.gatherRows({ out, inp: this.#enc.out, index: this.#outIdx }, {
      rows: this.#rows,
      C: this.width,
    });
  }

  dispose(): void {
    this.#enc.dispose();
    this.#input.dispose();
    this.params.dispose();
    freeTensors(this.#be, [this.#idx, this.#outIdx]);
  }
}
