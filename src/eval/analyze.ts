/**
 * The paper's "similarly behaved models" analysis (DBOT_SPEC.md "Analysis"), per checkpoint:
 *
 * - **Mean attention distance** per layer and head: the softmax maps `[NH, N, N]` averaged
 *   over images, the cls row and column dropped (no renormalising), then
 *   `MAD = mean_i Σ_j A_ij · P·‖grid_i − grid_j‖₂` in pixels.
 * - **Top-k singular-value share** per layer, k = 1..5: each image's block output before the
 *   final norm, patch tokens only `[L, D]`, rows L2-normalised, `Σ_{i≤k}σ_i / Σσ_i`, averaged
 *   over images. σ from the eigenvalues of the smaller Gram matrix (cyclic Jacobi, f64).
 * - **Linear CKA** between the layers of two checkpoints on the same images. A layer's
 *   representation of an image is the MEAN of its patch tokens (block output before the final
 *   norm), so each layer gives `[images, D]`; CKA = ‖YᵀX‖²_F / (‖XᵀX‖_F·‖YᵀY‖_F) on
 *   column-centred X, Y (Kornblith et al. 2019).
 *
 * The encoder runs on the backend; the small reductions run on the host in f64.
 *
 * @module
 */
import { type Backend, freeTensors, type Tensor } from "../backend/backend.ts";
import { imageBatches } from "../data/batches.ts";
import { openDataset } from "../data/dataset.ts";
import { inferVitConfig, readCheckpoint, vitWeights } from "../io/checkpoint_file.ts";
import { barChartSvg, lineChartSvg } from "./chart.ts";
import { deriveVit, type VitConfig } from "../models/vit_config.ts";
import { ParamSet } from "../nn/params.ts";
import { fullIndex, VitEncoder, vitParamSpecs } from "../models/vit.ts";
import { channelStats, ImagePipeline } from "../data/pipeline.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "../data/pipeline.ts";

/** Largest k of the singular-value shares. */
export const SV_TOP_K = 5;

/**
 * Mean attention distance (pixels) per head of image-averaged attention `att [NH, N, N]`
 * (N = 1 + G², token 0 = cls), on a G×G grid of P-pixel patches (the dims `{ NH, G, P }`).
 *
 * @example
 * ```ts
 * import { meanAttentionDistance } from "./analyze.ts";
 * const N = 5; // G = 2
 * const uniform = new Float64Array(N * N).fill(1 / N);
 * console.log(meanAttentionDistance(uniform, { NH: 1, G: 2, P: 4 })); // [4·(2+√2)/5] ≈ [2.731]
 * ```
 */
export function meanAttentionDistance(
  att: ArrayLike<number>,
  { NH, G, P }: { NH: number; G: number; P: number },
): number[] {
  const L = G * G;
  const N = L + 1;
  if (att.length !== NH * N * N) {
    throw new RangeError(
      `Cannot compute attention distance: expected [${NH}, ${N}, ${N}] values, got ${att.length}`,
    );
  }
  const out: number[] = [];
  for (let h = 0; h < NH; h++) {
    let total = 0;
    for (let i = 0; i < L; i++) {
      const yi = Math.floor(i / G), xi = i % G;
      let s = 0;
      for (let j = 0; j < L; j++) {
        const dy = yi - Math.floor(j / G), dx = xi - (j % G);
        s += att[h * N * N + (1 + i) * N + 1 + j] * Math.sqrt(dx * dx + dy * dy);
      }
      total += s;
    }
    out.push((P * total) / L);
  }
  return out;
}

/** Eigenvalues of the symmetric `a [n, n]` (f64, destroyed), by cyclic Jacobi rotations. */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++) {
      diag += a[i * n + i] ** 2;
      for (let j = i + 1; j < n; j++) off += a[i * n + j] ** 2;
    }
    if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  const ev = new Float64Array(n);
  for (let i = 0; i < n; i++) ev[i] = a[i * n + i];
  return ev;
}

/** Singular values of `x [rows, cols]`, descending (from the smaller Gram matrix, f64). */
export function singularValues(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const byRows = rows <= cols;
  const n = byRows ? rows : cols;
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      if (byRows) { for (let c = 0; c < cols; c++) s += x[i * cols + c] * x[j * cols + c]; }
      else for (let r = 0; r < rows; r++) s += x[r * cols + i] * x[r * cols + j];
      g[i * n + j] = s;
      g[j * n + i] = s;
    }
  }
  const ev = symmetricEigenvalues(g, n);
  return Float64Array.from(ev, (v) => Math.sqrt(Math.max(v, 0))).sort().reverse();
}

/**
 * `Σ_{i≤k}σ_i / Σσ_i` for k = 1..kMax of `x [rows, cols]` with every row L2-normalised first.
 *
 * @example
 * ```ts
 * import { singularValueShare } from "./analyze.ts";
 * const rank1 = new Float64Array([1, 2, 2, 4, -3, -6]); // [3, 2], every row ∥ (1, 2)
 * console.log(singularValueShare(rank1, { rows: 3, cols: 2 }, 2)); // [1, 1]
 * ```
 */
export function singularValueShare(
  x: ArrayLike<number>,
  { rows, cols }: { rows: number; cols: number },
  kMax: number = SV_TOP_K,
): number[] {
  const xn = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[r * cols + c] ** 2;
    const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
    for (let c = 0; c < cols; c++) xn[r * cols + c] = x[r * cols + c] * inv;
  }
  const sv = singularValues(xn, rows, cols);
  const total = sv.reduce((a, b) => a + b, 0);
  const out: number[] = [];
  let run = 0;
  for (let k = 0; k < kMax; k++) {
    run += sv[k] ?? 0;
    out.push(total > 0 ? run / total : NaN);
  }
  return out;
}

/**
 * Linear CKA of `x [n, p]` and `y [n, q]` (rows = the same examples), columns centred, f64.
 *
 * @example
 * ```ts
 * import { linearCka } from "./analyze.ts";
 * const x = new Float32Array([1, 2, 3, 5, 0, 1, 4, 4]); // [4, 2]
 * console.log(linearCka(x, x, 4).toFixed(6)); // "1.000000"
 * ```
 */
export function linearCka(x: ArrayLike<number>, y: ArrayLike<number>, n: number): number {
  const p = x.length / n, q = y.length / n;
  if (!Number.isInteger(p) || !Number.isInteger(q) || n < 2) {
    throw new RangeError(
      `Cannot compute CKA of ${x.length} and ${y.length} values over ${n} rows: ` +
        `give [n, p] and [n, q] with n >= 2`,
    );
  }
  const center = (a: ArrayLike<number>, d: number): Float64Array => {
    const out = Float64Array.from(a);
    for (let c = 0; c < d; c++) {
      let m = 0;
      for (let r = 0; r < n; r++) m += out[r * d + c];
      m /= n;
      for (let r = 0; r < n; r++) out[r * d + c] -= m;
    }
    return out;
  };
  const xc = center(x, p), yc = center(y, q);
  // ‖AᵀB‖²_F with A [n, a], B [n, b]
  const cross = (a: Float64Array, da: number, b: Float64Array, db: number): number => {
    let s = 0;
    for (let i = 0; i < da; i++) {
      for (let j = 0; j < db; j++) {
        let d = 0;
        for (let r = 0; r < n; r++) d += a[r * da + i] * b[r * db + j];
        s += d * d;
      }
    }
    return s;
  };
  const xy = cross(xc, p, yc, q);
  const den = Math.sqrt(cross(xc, p, xc, p) * cross(yc, q, yc, q));
  return den > 0 ? xy / den : NaN;
}

/** Per-checkpoint results of {@link analyzeEncoder}. */
export interface EncoderAnalysis {
  /** Mean attention distance (pixels) `[layer][head]`. */
  mad: number[][];
  /** Top-k singular-value share `[layer][k−1]`, k = 1..5. */
  svShare: number[][];
  /** Per layer, the mean patch token of each image `[images, D]` (for CKA). */
  layerFeatures: Float32Array[];
  /** Images analysed. */
  images: number;
}

/**
 * Runs a frozen encoder `cfg` with `weights` over `count` eval images (`image(i)` →
 * `[C, H, W]`, normalised) in batches of `batch` (default 32), and gathers the three analyses.
 */
export async function analyzeEncoder(
  be: Backend,
  cfg: VitConfig,
  { weights, count, image, batch = 32 }: {
    weights: ReadonlyMap<string, Float32Array>;
    count: number;
    image: (i: number) => Float32Array;
    batch?: number;
  },
): Promise<EncoderAnalysis> {
  const d = deriveVit(cfg);
  const { grid: G, numPatches: L } = d;
  const D = cfg.embedDim;
  const NH = cfg.numHeads;
  const N = 1 + L;
  const B = Math.max(1, Math.min(batch, count));
  const ps = new ParamSet(be, vitParamSpecs(cfg), { grads: false, label: "analyze" });
  ps.load(
    new Map(ps.specs.map((s) => {
      const w = weights.get(s.name);
      if (!w) throw new RangeError(`Cannot analyse the encoder: no weights for "${s.name}"`);
      return [s.name, w];
    })),
  );
  const enc = new VitEncoder(be, cfg, {
    ps,
    B,
    N,
    trainable: false,
    finalNorm: false,
    keepActivations: true,
    label: "analyze",
  });
  const index = be.tensor([B * N], "i32", "analyze.index");
  be.upload(index, fullIndex(B, N - 1));
  const input: Tensor = be.tensor([B, cfg.inChans, cfg.imgSize, cfg.imgSize], "f32", "analyze.in");
  const imgLen = cfg.inChans * cfg.imgSize * cfg.imgSize;
  const attSum = Array.from({ length: cfg.depth }, () => new Float64Array(NH * N * N));
  const svSum = Array.from({ length: cfg.depth }, () => new Float64Array(SV_TOP_K));
  const layerFeatures = Array.from({ length: cfg.depth }, () => new Float32Array(count * D));
  try {
    for await (const { start, n, data } of imageBatches(count, B, imgLen, image)) {
      be.upload(input, data);
      enc.patchify(input);
      enc.forward(index);
      for (let layer = 0; layer < cfg.depth; layer++) {
        const att = (await be.download(enc.attention(layer))) as Float32Array; // [B, NH, N, N]
        const acc = attSum[layer];
        for (let i = 0; i < n * NH * N * N; i++) acc[i % (NH * N * N)] += att[i];
        const x = (await be.download(enc.blockOutput(layer))) as Float32Array; // [B, N, D]
        const feats = layerFeatures[layer];
        for (let b = 0; b < n; b++) {
          const patches = x.subarray((b * N + 1) * D, (b + 1) * N * D); // [L, D]
          const share = singularValueShare(patches, { rows: L, cols: D }, SV_TOP_K);
          for (let k = 0; k < SV_TOP_K; k++) svSum[layer][k] += share[k];
          const row = feats.subarray((start + b) * D, (start + b + 1) * D);
          for (let l = 0; l < L; l++) {
            for (let c = 0; c < D; c++) row[c] += patches[l * D + c] / L;
          }
        }
      }
    }
  } finally {
    // the encoder, its weights and buffers: a reproduction analyses many checkpoints on one backend
    enc.dispose();
    ps.dispose();
    freeTensors(be, [index, input]);
  }
  return {
    mad: attSum.map((a) =>
      meanAttentionDistance(a.map((v) => v / count), { NH, G, P: cfg.patchSize })
    ),
    svShare: svSum.map((s) => [...s].map((v) => v / count)),
    layerFeatures,
    images: count,
  };
}

/** `cka[i][j]` = linear CKA between layer i of `a` and layer j of `b` (same images). */
export function ckaMatrix(a: EncoderAnalysis, b: EncoderAnalysis): number[][] {
  if (a.images !== b.images) {
    throw new RangeError(
      `Cannot compare representations of ${a.images} and ${b.images} images: use the same images`,
    );
  }
  return a.layerFeatures.map((x) => b.layerFeatures.map((y) => linearCka(x, y, a.images)));
}

/** What {@link analyzeCheckpoints} needs. */
export interface AnalyzeOptions {
  /** Checkpoints (timm names), at least one. */
  checkpoints: string[];
  /** Short names for them (default: the file's parent folder and name). */
  labels?: string[];
  /** Dataset spec; images come from its test split. */
  data: string;
  /** Images analysed (first N of the test split). Default 256. */
  limit?: number;
  /** Output folder (JSON + SVGs); none when absent. */
  outDir?: string;
  /** Heads when a checkpoint does not store them. */
  heads?: number;
  /** Images per forward pass. Default 32. */
  batch?: number;
}

/** analysis.json. */
export interface AnalysisReport {
  /** Images analysed. */
  images: number;
  /** Dataset. */
  data: string;
  /** Per checkpoint. */
  models: {
    label: string;
    checkpoint: string;
    vit: VitConfig;
    /** `[layer][head]` in pixels. */
    mad: number[][];
    /** `[layer]`: mean over heads. */
    madMean: number[];
    /** `[layer][k−1]`. */
    svShare: number[][];
  }[];
  /** Linear CKA for each pair (i < j): the full layer × layer matrix and its diagonal. */
  cka: { a: string; b: string; matrix: number[][]; diagonal: number[]; mean: number }[];
  /** How a layer's representation for CKA is formed. */
  ckaRepresentation: string;
}

/** Analyses each checkpoint on the same images; writes analysis.json and SVGs to `outDir`. */
export async function analyzeCheckpoints(
  be: Backend,
  opts: AnalyzeOptions,
): Promise<AnalysisReport> {
  if (opts.checkpoints.length < 1) throw new RangeError("Cannot analyse: give a checkpoint");
  const ds = await openDataset(opts.data, "test");
  const count = Math.min(ds.count, opts.limit ?? 256);
  const labels = opts.labels ?? opts.checkpoints.map((p) => p.split("/").slice(-2).join("/"));
  const models: AnalysisReport["models"] = [];
  const results: EncoderAnalysis[] = [];
  for (const [i, path] of opts.checkpoints.entries()) {
    const ckpt = await readCheckpoint(path);
    const vit = inferVitConfig(ckpt, { heads: opts.heads, file: path });
    const weights = vitWeights(ckpt, vit, { file: path });
    const C = vit.inChans;
    const mean = (ckpt.config.mean as number[] | undefined) ??
      (ds.channels === C ? channelStats(ds, C, 1000).mean : IMAGENET_MEAN.slice(0, C));
    const std = (ckpt.config.std as number[] | undefined) ??
      (ds.channels === C ? channelStats(ds, C, 1000).std : IMAGENET_STD.slice(0, C));
    const pipe = new ImagePipeline(ds, vit.imgSize, C, mean, std);
    const r = await analyzeEncoder(be, vit, {
      weights,
      count,
      image: (j) => pipe.eval(j),
      batch: opts.batch,
    });
    results.push(r);
    models.push({
      label: labels[i],
      checkpoint: path,
      vit,
      mad: r.mad,
      madMean: r.mad.map((h) => h.reduce((a, b) => a + b, 0) / h.length),
      svShare: r.svShare,
    });
  }
  const cka: AnalysisReport["cka"] = [];
  for (let i = 0; i < results.length; i++) {
    for (let j = i + 1; j < results.length; j++) {
      const matrix = ckaMatrix(results[i], results[j]);
      const diagonal = matrix.slice(0, Math.min(matrix.length, matrix[0]?.length ?? 0))
        .map((row, k) => row[k]);
      const mean = diagonal.reduce((a, b) => a + b, 0) / Math.max(diagonal.length, 1);
      cka.push({ a: labels[i], b: labels[j], matrix, diagonal, mean });
    }
  }
  const report: AnalysisReport = {
    images: count,
    data: opts.data,
    models,
    cka,
    ckaRepresentation: "per layer: mean of the patch tokens of each image (block output, " +
      "before the final norm), [images, D]; linear CKA with centred columns",
  };
  if (opts.outDir) await writeReport(opts.outDir, report);
  return report;
}

/** analysis.json, mad.svg, mad_heads_<label>.svg, svshare.svg and (with two or more) cka.svg. */
async function writeReport(dir: string, r: AnalysisReport): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/analysis.json`, JSON.stringify(r, null, 1));
  await Deno.writeTextFile(
    `${dir}/mad.svg`,
    lineChartSvg({
      title: `mean attention distance (mean over heads, ${r.images} images)`,
      xLabel: "layer",
      yLabel: "pixels",
      series: r.models.map((m) => ({
        name: m.label,
        points: m.madMean.map((v, l) => [l + 1, v] as [number, number]),
      })),
    }),
  );
  for (const [i, m] of r.models.entries()) {
    const NH = m.mad[0]?.length ?? 0;
    await Deno.writeTextFile(
      `${dir}/mad_heads_${i}.svg`,
      barChartSvg({
        title: `attention distance per head: ${m.label}`,
        yLabel: "pixels",
        groups: m.mad.map((_, l) => `layer ${l + 1}`),
        series: Array.from({ length: NH }, (_, h) => ({
          name: `head ${h}`,
          values: m.mad.map((row) => row[h]),
        })),
      }),
    );
  }
  await Deno.writeTextFile(
    `${dir}/svshare.svg`,
    lineChartSvg({
      title: "top-k singular-value share of patch tokens, k = 1 and k = 5",
      xLabel: "layer",
      yLabel: "share",
      series: r.models.flatMap((m) =>
        [0, SV_TOP_K - 1].map((k) => ({
          name: `${m.label} k=${k + 1}`,
          points: m.svShare.map((s, l) => [l + 1, s[k]] as [number, number]),
        }))
      ),
    }),
  );
  if (r.cka.length) {
    const depth = Math.max(...r.cka.map((c) => c.diagonal.length));
    await Deno.writeTextFile(
      `${dir}/cka.svg`,
      barChartSvg({
        title: "linear CKA between the same layer of two models",
        yLabel: "CKA",
        groups: Array.from({ length: depth }, (_, l) => `layer ${l + 1}`),
        series: r.cka.map((c) => ({ name: `${c.a} vs ${c.b}`, values: c.diagonal })),
      }),
    );
  }
}
