/**
 * What a pre-training run reports: `metrics.jsonl` lines (a window of steps each),
 * progress updates, `summary.json` and `loss.svg`. Only the writer rank writes files.
 *
 * @module
 */
import type { BackendSummary } from "../backend/backend.ts";
import { writeJsonAtomic, writeTextAtomic } from "../util/atomic.ts";
import { lineChartSvg } from "../eval/chart.ts";

/** One line of metrics.jsonl. */
export interface MetricLine {
  /** Stage index. */
  stage: number;
  /** Epoch (global). */
  epoch: number;
  /** Optimiser steps so far. */
  step: number;
  /** LR of the step. */
  lr: number;
  /** Mean loss over the steps read since the last line. */
  loss: number;
  /** Throughput over the steps since the last line. */
  images_per_s: number;
  /** Seconds since the process started the run. */
  elapsed_s: number;
  /** Steps skipped so far for a non-finite loss or gradient norm (`onNan: "skip"`). */
  skipped: number;
  /** Unreadable image files skipped so far (each counted once; the next image stood in). */
  data_skipped?: number;
}

/** summary.json. */
export interface PretrainSummary {
  /** k-NN top-1 (%) of the randomly initialised student. */
  knn_top1_init: number;
  /** k-NN top-1 (%) of the final student. */
  knn_top1_final: number;
  /** k-NN top-1 at the end of each stage. */
  knn_top1_per_stage: number[];
  /** k-NN top-5 of the final student. */
  knn_top5_final: number;
  /** Training throughput (images per second over the run's steps, evaluation excluded). */
  images_per_s: number;
  /** The backend's facts (no paths or loader errors) and how it was chosen. */
  backend: BackendSummary;
  /** Path of the final student checkpoint. */
  final_checkpoint: string;
  /** Wall time of the whole run (this process). */
  wall_s: number;
  /** Optimiser steps taken. */
  steps: number;
  /** Effective peak LR. */
  lr: number;
  /** Steps whose optimiser update was skipped for a non-finite loss or gradient norm. */
  skipped_steps: number;
}

/** What a progress update carries (after each logged step). */
export interface PretrainProgress {
  /** Stage index. */
  stage: number;
  /** Epoch (global). */
  epoch: number;
  /** Optimiser steps so far. */
  step: number;
  /** Steps of the whole run. */
  totalSteps: number;
  /** Mean loss since the last update. */
  loss: number;
  /** Training throughput so far. */
  imagesPerS: number;
  /** Estimated seconds left (training only). */
  etaS: number;
}

/** The metrics of a run: a window of step losses, throughput, and the metrics.jsonl file. */
export class RunMetrics {
  /** Seconds spent in training steps. */
  trainS = 0;
  /** Images trained on by this process. */
  trainImages = 0;
  readonly #file: Deno.FsFile | null;
  readonly #t0: number;
  #loss = 0;
  #n = 0;
  #steps = 0;
  #tWindow = performance.now();

  private constructor(file: Deno.FsFile | null, t0: number) {
    this.#file = file;
    this.#t0 = t0;
  }

  /**
   * Opens `<dir>/metrics.jsonl` for appending (`writer` only): a fresh run empties it; a
   * resumed one first drops the lines after `resumeStep` and any torn last line.
   */
  static async open(
    dir: string,
    o: { writer: boolean; resumeStep: number | null; t0: number },
  ): Promise<RunMetrics> {
    if (!o.writer) return new RunMetrics(null, o.t0);
    const path = `${dir}/metrics.jsonl`;
    if (o.resumeStep === null) await writeTextAtomic(path, "");
    else await trimMetrics(path, o.resumeStep);
    return new RunMetrics(await Deno.open(path, { append: true, create: true }), o.t0);
  }

  /** Adds a step of `images` that took `seconds`, with its loss when it was read. */
  addStep(images: number, seconds: number, loss?: number): void {
    this.trainS += seconds;
    this.trainImages += images;
    this.#steps++;
    if (loss !== undefined) {
      this.#loss += loss;
      this.#n++;
    }
  }

  /** Writes the window as one line and starts a new window; returns the line. */
  async flush(
    at: Pick<MetricLine, "stage" | "epoch" | "step" | "lr" | "skipped" | "data_skipped">,
    stepImages: number,
  ): Promise<MetricLine> {
    const now = performance.now();
    const line: MetricLine = {
      ...at,
      loss: this.#n ? this.#loss / this.#n : NaN,
      images_per_s: (stepImages * this.#steps) / ((now - this.#tWindow) / 1000),
      elapsed_s: (now - this.#t0) / 1000,
    };
    await this.#file?.write(new TextEncoder().encode(JSON.stringify(line) + "\n"));
    this.#loss = this.#n = this.#steps = 0;
    this.#tWindow = now;
    return line;
  }

  /** Training images per second so far. */
  get imagesPerS(): number {
    return this.trainImages / Math.max(this.trainS, 1e-9);
  }

  /** Closes the file. */
  close(): void {
    this.#file?.close();
  }
}

/** Drops metric lines after `step` (written after the saved state) and any torn last line. */
async function trimMetrics(path: string, step: number): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const keep = text.split("\n").filter((l) => {
    try {
      return (JSON.parse(l) as MetricLine).step <= step;
    } catch {
      return false;
    }
  });
  await writeTextAtomic(path, keep.map((l) => l + "\n").join(""));
}

/** Writes `summary.json`. */
export function writeSummary(dir: string, summary: unknown): Promise<void> {
  return writeJsonAtomic(`${dir}/summary.json`, summary);
}

/** loss.svg from metrics.jsonl, stage boundaries marked. */
export async function writeLossPlot(
  dir: string,
  o: { boundaries: number[]; itersPerEpoch: number; lossLabel: string },
): Promise<void> {
  const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").filter(
    Boolean,
  );
  const points = lines.map((l) => JSON.parse(l) as MetricLine)
    .filter((m) => typeof m.loss === "number" && Number.isFinite(m.loss))
    .map((m) => [m.step, m.loss] as [number, number]);
  const svg = lineChartSvg({
    title: `dBOT pre-training loss (${dir})`,
    xLabel: "step",
    yLabel: `${o.lossLabel} loss`,
    series: [{ name: "loss", points }],
    verticalMarkers: o.boundaries.slice(1, -1).map((e, i) => ({
      x: e * o.itersPerEpoch,
      label: `stage ${i + 1}`,
    })),
  });
  await writeTextAtomic(`${dir}/loss.svg`, svg);
}
