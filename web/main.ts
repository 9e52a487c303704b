/// <reference lib="dom" />
/**
 * The page: dBOT pre-training of vit-micro on `shapes` (or a folder of the user's images,
 * picked or dropped: `images.ts`) in the browser's WebGPU, two stages, with a live loss
 * curve, steps/s, the stage boundary, k-NN after each stage, a PCA picture of teacher and
 * student token features, and checkpoint download / load. Built by `deno task build-web`
 * into the static site `web/dist/`; served by `deno task web` or any file server. When a
 * run ends, `document.body.dataset.losses` holds its losses (read by the static-site test).
 *
 * URL parameters (the CI test uses them): `seed`, `batch`, `train` (train images),
 * `epochs` (per stage), `stages`, `warmup`, `lr` (base LR), `knnTrain`, `knnTest` set the
 * run; `autorun=1` starts it; `kernels=1` first builds every WGSL kernel variant
 * (`web/kernels.ts`); `report=1` POSTs progress and results to `/report/<kind>` on the
 * serving host; `features=N` adds the student's features of the first N test images to the
 * final report.
 *
 * @module
 */
import {
  GpuUnavailableError,
  type KnnResult,
  openShapes,
  PretrainSession,
  resolvePretrain,
  type SampleView,
  selectBrowserBackend,
  type SessionStep,
  type WebGpuBackend,
} from "../src/browser.ts";
import {
  type DecodedFolder,
  decodeFolder,
  filesOfDrop,
  filesOfInput,
  type FolderFile,
} from "./images.ts";
import { compileAllKernels } from "./kernels.ts";
import { pcaColours } from "./pca.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const reporting = params.get("report") === "1";

/** POSTs `body` to `/report/<kind>` when `report=1` (the CI test listens). */
async function report(kind: string, body: unknown): Promise<void> {
  if (!reporting) return;
  const bin = body instanceof Uint8Array;
  await fetch(`/report/${kind}`, {
    method: "POST",
    headers: { "content-type": bin ? "application/octet-stream" : "application/json" },
    body: bin ? new Blob([body as BlobPart]) : JSON.stringify(body),
  });
}

function fail(e: unknown): void {
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  $("error").textContent = msg;
  $("status").textContent = "Stopped.";
  void report("error", { message: msg });
}

/** The message where WebGPU is missing, with what to do. */
function noWebGpu(why: string): void {
  const box = $("nogpu");
  box.style.display = "block";
  box.innerHTML = `<b>This page needs WebGPU, and ${why}.</b><br>
    Use a browser with WebGPU enabled: Chrome or Edge 113+ (on Linux start it with
    <code>--enable-unsafe-webgpu --enable-features=Vulkan</code>, or enable
    <code>chrome://flags/#enable-unsafe-webgpu</code>), Safari 26+, or Firefox 141+ on Windows.
    Without a GPU, Chromium's software adapter works too (slowly):
    <code>chromium --enable-unsafe-webgpu --enable-unsafe-swiftshader --use-webgpu-adapter=swiftshader</code>.<br>
    Or train the same model from the command line: <code>deno task pretrain</code>.`;
  $("status").textContent = "No WebGPU.";
  $<HTMLFieldSetElement>("controls").disabled = true;
  void report("error", { message: `no WebGPU: ${why}` });
}

function num(id: string, param: string): number {
  const p = params.get(param);
  const input = $<HTMLInputElement>(id);
  if (p !== null) input.value = p;
  return Number(input.value);
}

/** The run configuration from the form (URL parameters fill it first). */
function runConfig() {
  const over: Record<string, unknown> = {
    name: "browser",
    seed: num("seed", "seed"),
    batch: num("batch", "batch"),
    trainLimit: num("train", "train"),
    epochsPerStage: num("epochs", "epochs"),
    knnTrain: num("knnTrain", "knnTrain"),
    knnTest: num("knnTest", "knnTest"),
    stages: Number(params.get("stages") ?? 2),
    logEvery: 1,
  };
  if (params.has("warmup")) over.warmupEpochs = Number(params.get("warmup"));
  if (params.has("lr")) over.baseLr = Number(params.get("lr"));
  return resolvePretrain(over);
}

/** The loss curve: every step's loss, dashed stage boundaries, k-NN notes. */
class LossPlot {
  readonly points: { step: number; loss: number }[] = [];
  readonly boundaries: number[] = [];
  #total = 1;
  readonly #ctx: CanvasRenderingContext2D;
  readonly #w: number;
  readonly #h: number;

  constructor(canvas: HTMLCanvasElement) {
    this.#ctx = canvas.getContext("2d")!;
    this.#w = canvas.width;
    this.#h = canvas.height;
  }

  reset(totalSteps: number, boundaries: number[]): void {
    this.points.length = 0;
    this.boundaries.splice(0, this.boundaries.length, ...boundaries);
    this.#total = totalSteps;
    this.draw();
  }

  add(step: number, loss: number): void {
    this.points.push({ step, loss });
    this.draw();
  }

  draw(): void {
    const c = this.#ctx;
    const [W, H, L, B, T] = [this.#w, this.#h, 48, 24, 8];
    c.clearRect(0, 0, W, H);
    c.font = "11px sans-serif";
    c.strokeStyle = "#999";
    c.strokeRect(L, T, W - L - 8, H - T - B);
    const ys = this.points.map((p) => p.loss);
    const lo = ys.length ? Math.min(...ys) : 0;
    const hi = ys.length ? Math.max(...ys) : 1;
    const pad = (hi - lo) * 0.05 || 0.05;
    const y0 = lo - pad;
    const y1 = hi + pad;
    const x = (s: number) => L + ((W - L - 8) * s) / this.#total;
    const y = (v: number) => T + ((H - T - B) * (y1 - v)) / (y1 - y0);
    c.fillStyle = "#444";
    c.fillText(y1.toFixed(3), 2, T + 8);
    c.fillText(y0.toFixed(3), 2, H - B);
    c.fillText(`step (of ${this.#total})`, x(this.#total / 2) - 30, H - 6);
    c.fillText(String(this.#total), x(this.#total) - 16, H - 6);
    c.fillText("0", L, H - 6);
    c.setLineDash([4, 4]);
    c.strokeStyle = "#c33";
    for (const s of this.boundaries) {
      c.beginPath();
      c.moveTo(x(s), T);
      c.lineTo(x(s), H - B);
      c.stroke();
      c.fillStyle = "#c33";
      c.fillText("stage boundary", x(s) + 3, T + 12);
    }
    c.setLineDash([]);
    c.strokeStyle = "#1f5fbf";
    c.lineWidth = 1.5;
    c.beginPath();
    this.points.forEach((p, i) =>
      i ? c.lineTo(x(p.step), y(p.loss)) : c.moveTo(x(p.step), y(p.loss))
    );
    c.stroke();
    c.lineWidth = 1;
  }
}

/** The input, the masked input and the PCA colours of teacher and student tokens. */
function drawSample(v: SampleView): void {
  const S = Math.round(Math.sqrt(v.image.length / 3));
  const P = S / v.grid;
  const rgba = (masked: boolean) => {
    const img = new ImageData(S, S);
    for (let yy = 0; yy < S; yy++) {
      for (let xx = 0; xx < S; xx++) {
        const o = (yy * S + xx) * 4;
        const gone = masked && v.mask[Math.floor(yy / P) * v.grid + Math.floor(xx / P)] === 1;
        for (let c = 0; c < 3; c++) {
          img.data[o + c] = gone ? 128 : Math.round(255 * v.image[c * S * S + yy * S + xx]);
        }
        img.data[o + 3] = 255;
      }
    }
    return img;
  };
  $<HTMLCanvasElement>("pic-input").getContext("2d")!.putImageData(rgba(false), 0, 0);
  $<HTMLCanvasElement>("pic-masked").getContext("2d")!.putImageData(rgba(true), 0, 0);
  const [teacher, student] = pcaColours([v.target, v.pred], v.dim);
  for (const [id, rgb] of [["pic-teacher", teacher], ["pic-student", student]] as const) {
    const canvas = $<HTMLCanvasElement>(id);
    canvas.width = canvas.height = v.grid;
    const img = new ImageData(v.grid, v.grid);
    for (let i = 0; i < v.grid * v.grid; i++) {
      img.data.set([rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2], 255], i * 4);
    }
    canvas.getContext("2d")!.putImageData(img, 0, 0);
  }
}

function addKnnRow(label: string, r: KnnResult): void {
  const tr = document.createElement("tr");
  for (const t of [label, `${r.top1.toFixed(1)}%`, `${r.top5.toFixed(1)}%`]) {
    const td = document.createElement("td");
    td.textContent = t;
    tr.append(td);
  }
  $("knn").append(tr);
}

/** The page's state: backend, session, plot, run loop. */
class App {
  readonly be: WebGpuBackend;
  readonly plot = new LossPlot($<HTMLCanvasElement>("loss"));
  session: PretrainSession | null = null;
  paused = false;
  running = false;
  readonly knn: { after: string; top1: number; top5: number }[] = [];
  readonly steps: SessionStep[] = [];
  /** The user's decoded folder; null trains on the built-in shapes. */
  folder: DecodedFolder | null = null;

  constructor(be: WebGpuBackend) {
    this.be = be;
  }

  async start(): Promise<void> {
    this.session?.dispose();
    this.knn.length = 0;
    this.steps.length = 0;
    $("knn").querySelectorAll("tr:not(:first-child)").forEach((r) => r.remove());
    $("error").textContent = "";
    const cfg = runConfig();
    $("status").textContent = "Building the model…";
    await new Promise((r) => setTimeout(r, 0));
    const s = PretrainSession.create(this.be, cfg, this.folder ?? undefined);
    this.session = s;
    const perStage = cfg.epochsPerStage * s.itersPerEpoch;
    this.plot.reset(s.totalSteps, s.boundaries.slice(1, -1).map((e) => e * s.itersPerEpoch));
    $<HTMLButtonElement>("download").disabled = false;
    $<HTMLInputElement>("load").disabled = false;
    $<HTMLButtonElement>("pause").disabled = false;
    $("status").textContent = `k-NN of the random init (${cfg.knnTrain} → ${cfg.knnTest} images)…`;
    await this.runKnn("init");
    this.paused = false;
    await this.loop(perStage);
  }

  async runKnn(after: string): Promise<void> {
    const r = await this.session!.knn();
    this.knn.push({ after, top1: r.top1, top5: r.top5 });
    addKnnRow(after, r);
  }

  async loop(perStage: number): Promise<void> {
    const s = this.session!;
    this.running = true;
    try {
      while (!s.done && !this.paused) {
        const r = await s.step();
        this.steps.push(r);
        this.plot.add(r.step, r.loss);
        const rate = this.stepsPerS();
        $("status").textContent =
          `step ${r.step}/${s.totalSteps}  stage ${r.stage}  epoch ${r.epoch}  ` +
          `loss ${r.loss.toFixed(4)}  lr ${r.lr.toExponential(2)}  ${rate.toFixed(2)} steps/s  ` +
          `${(rate * s.cfg.batch).toFixed(1)} images/s  (${perStage} steps per stage)`;
        await report("step", { step: r.step, loss: r.loss, stage: r.stage, seconds: r.seconds });
        if (r.step === 1 || r.step % 5 === 0 || r.stageEnd || s.done) {
          const v = await s.sample(0);
          if (v) drawSample(v);
        }
        if (r.stageEnd) {
          const line = $("status").textContent;
          $("status").textContent = `${line}  — k-NN after stage ${r.stage}…`;
          await this.runKnn(`stage ${r.stage}`);
          $("status").textContent = line;
        }
      }
      if (s.done) await this.finished(this.stepsPerS());
    } finally {
      this.running = false;
    }
  }

  /** Steps per second over the last 10 steps (training only: k-NN and pictures left out). */
  stepsPerS(): number {
    const last = this.steps.slice(-10);
    return last.length / last.reduce((t, r) => t + r.seconds, 0);
  }

  async finished(stepsPerS: number): Promise<void> {
    const s = this.session!;
    $("status").textContent += "  — done.";
    $<HTMLButtonElement>("pause").disabled = true;
    // what a test without the report server reads back (the static site's check)
    document.body.dataset.losses = JSON.stringify(this.steps.map((r) => r.loss));
    if (!reporting) return;
    const n = Number(params.get("features") ?? 0);
    const features = n > 0 ? Array.from(await s.features("test", n)) : [];
    await report("checkpoint", await s.checkpoint());
    await report("done", {
      losses: this.steps.map((r) => r.loss),
      knn: this.knn,
      features,
      featureDim: s.student.embedDim,
      stepsPerS,
      adapter: { ...this.be.ctx.facts, description: $("adapter").textContent },
    });
  }

  /** Decodes a picked or dropped folder of class sub-folders; Start then trains on it. */
  async useFolder(files: FolderFile[]): Promise<void> {
    if (this.running) throw new Error("Cannot load images while training: press Pause first");
    const size = openShapes("shapes", "train").height; // the page's model input
    $("status").textContent = `Decoding ${files.length} files…`;
    const d = await decodeFolder(files, size, (done, total) => {
      $("status").textContent = `Decoding ${done}/${total} files…`;
    });
    this.folder = d;
    const shown = d.skipped.slice(0, 3).join(", ") +
      (d.skipped.length > 3 ? `, … ${d.skipped.length - 3} more` : "");
    const what = `${d.train.count + d.test.count} images of ${d.train.classNames.length} classes ` +
      `(${d.test.count} held out for k-NN), ${size}×${size}` +
      (d.skipped.length ? `; skipped ${d.skipped.length} file(s): ${shown}` : "");
    $("dataset").textContent = what;
    $("status").textContent = `Loaded ${what}. Press Start.`;
    document.body.dataset.folder = JSON.stringify({
      train: d.train.count,
      test: d.test.count,
      classes: d.train.classNames,
      skipped: d.skipped.length,
    });
  }

  async download(): Promise<void> {
    const s = this.session!;
    const bytes = await s.checkpoint();
    const url = URL.createObjectURL(
      new Blob([bytes as BlobPart], { type: "application/octet-stream" }),
    );
    const a = document.createElement("a");
    a.href = url;
    const data = this.folder ? this.folder.train.name.replace(/^folder:/, "") : "shapes";
    a.download = `dbot-vit-micro-${data}-step${s.stepsDone}.safetensors`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  async load(file: File): Promise<void> {
    const s = this.session!;
    s.load(new Uint8Array(await file.arrayBuffer()), file.name);
    $("status").textContent = `loaded ${file.name} into the student; k-NN…`;
    await this.runKnn(`loaded ${file.name}`);
    $("status").textContent =
      `loaded ${file.name} into the student (training continues from step ${s.stepsDone})`;
  }
}

async function main(): Promise<void> {
  let be: WebGpuBackend;
  let adapter: GPUAdapter;
  try {
    ({ backend: be, adapter } = await selectBrowserBackend());
  } catch (e) {
    if (e instanceof GpuUnavailableError) return noWebGpu(e.message);
    throw e;
  }
  const info = adapter.info;
  const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(" ");
  $("adapter").textContent = `${name || "unnamed adapter"}` +
    `${be.ctx.facts.isFallbackAdapter || info.architecture === "swiftshader" ? " (software)" : ""}`;
  if (params.get("kernels") === "1") {
    $("status").textContent = "Building every WGSL kernel variant…";
    let last = 0;
    const r = await compileAllKernels(be.ctx, {
      onProgress: (done, total, label) => {
        $("status").textContent = `Building every WGSL kernel variant: ${done}/${total} (${label})`;
        if (performance.now() - last > 5000 || done === total) {
          last = performance.now();
          void report("kernel-progress", { done, total, label });
        }
      },
    });
    await report("kernels", r);
    if (r.errors.length) throw new Error(`WGSL kernels failed to build:\n${r.errors.join("\n")}`);
  }
  const app = new App(be);
  $("status").textContent = "Ready: press Start.";
  $("start").onclick = () => app.start().catch(fail);
  $("pause").onclick = () => {
    if (app.running) {
      app.paused = true;
      $("pause").textContent = "Resume";
    } else if (app.session && !app.session.done) {
      app.paused = false;
      $("pause").textContent = "Pause";
      const s = app.session;
      app.loop(runConfig().epochsPerStage * s.itersPerEpoch).catch(fail);
    }
  };
  $("download").onclick = () => app.download().catch(fail);
  $<HTMLInputElement>("folder").onchange = (e) => {
    const files = (e.target as HTMLInputElement).files;
    if (files?.length) app.useFolder(filesOfInput(files)).catch(fail);
  };
  document.body.ondragover = (e) => e.preventDefault();
  document.body.ondrop = (e) => {
    e.preventDefault();
    if (!e.dataTransfer) return;
    filesOfDrop(e.dataTransfer.items).then((f) => app.useFolder(f)).catch(fail);
  };
  $<HTMLInputElement>("load").onchange = (e) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (file) app.load(file).catch(fail);
  };
  if (params.get("autorun") === "1") await app.start();
}

main().catch(fail);
