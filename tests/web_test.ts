/**
 * The browser page, end to end: `deno task build-web` output served by `web/serve.ts`,
 * driven in headless Chromium with WebGPU on its software adapter (SwiftShader). The page
 * builds every WGSL kernel variant under Chromium's compiler (Dawn/Tint), trains a few
 * steps over a stage boundary and reports back; its losses must fall within each stage and
 * equal the Deno backends' for the same seed, and its checkpoint, run through
 * `deno task embed`, must give the page's features. The static site `web/dist/`, served by a
 * plain file server, trains on a folder of PNGs given to the page's folder input. A
 * screenshot is written to `runs/web_test/page.png` (and to `DBOT_WEB_SCREENSHOT` when set).
 *
 * Needs Chromium (`DBOT_REQUIRE_CHROMIUM=1` fails instead of skipping where it is
 * missing); the Deno-side kernel checks need a WebGPU adapter (`DBOT_REQUIRE_WEBGPU`).
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { WebGpuBackend } from "../src/backend/webgpu/backend.ts";
import { GpuContext } from "../src/backend/webgpu/context.ts";
import { decodeCheckpoint } from "../src/io/checkpoint.ts";
import { readSafetensors } from "../src/io/safetensors_file.ts";
import { resolvePretrain } from "../src/train/pretrain_config.ts";
import { PretrainSession } from "../src/train/session.ts";
import { assert, assertEquals } from "../src/util/assert.ts";
import { compileAllKernels, kernelVariants } from "../web/kernels.ts";
import { buildWeb, serveWeb, SITE } from "../web/serve.ts";
import { Chromium } from "./chromium.ts";
import { assertAllClose } from "./helpers.ts";
import { png } from "./png.ts";
import { requires } from "./requires.ts";

const chromium = await requires("chromium");
const gpu = await requires("webgpu");

/** The page's run: 2 stages × 2 epochs of one step of 4 images (4 steps), as URL parameters. */
const RUN = {
  seed: 7,
  batch: 4,
  train: 4,
  epochs: 2,
  stages: 2,
  warmup: 0,
  lr: 1e-2,
  knnTrain: 16,
  knnTest: 8,
};
const FEATURES = 4; // test images whose features the page reports

/** The same run as a PretrainConfig (what the page's form resolves to). */
function runConfig() {
  return resolvePretrain({
    name: "browser",
    seed: RUN.seed,
    batch: RUN.batch,
    trainLimit: RUN.train,
    epochsPerStage: RUN.epochs,
    stages: RUN.stages,
    warmupEpochs: RUN.warmup,
    baseLr: RUN.lr,
    knnTrain: RUN.knnTrain,
    knnTest: RUN.knnTest,
    logEvery: 1,
  });
}

/** The losses of `RUN` on a Deno backend. */
async function denoLosses(be: CpuBackend | WebGpuBackend): Promise<number[]> {
  const s = PretrainSession.create(be, runConfig());
  const losses: number[] = [];
  while (!s.done) losses.push((await s.step()).loss);
  s.dispose();
  return losses;
}

gpu.test("every WGSL kernel in every override variant builds a pipeline under Deno's WebGPU", async () => {
  const ctx = await GpuContext.create();
  try {
    const r = await compileAllKernels(ctx);
    assertEquals(r.errors, []);
    assertEquals(r.pipelines, kernelVariants().length);
    assert(r.kernels >= 40, `only ${r.kernels} kernels found in kernels/`);
  } finally {
    ctx.destroy();
  }
});

gpu.test("a training step and k-NN features ask for no kernel variant outside web/kernels.ts's list", async () => {
  const asked: { code: string; label: string; constants: Record<string, number> }[] = [];
  const original = GpuContext.prototype.pipeline;
  GpuContext.prototype.pipeline = function (kernel, constants = {}) {
    asked.push({ code: kernel.code, label: kernel.label, constants });
    return original.call(this, kernel, constants);
  };
  try {
    const be = await WebGpuBackend.create();
    const s = PretrainSession.create(be, resolvePretrain({ batch: 4, trainLimit: 4, knnTest: 4 }));
    await s.step();
    await s.features("test", 2);
    s.dispose();
    be.dispose();
  } finally {
    GpuContext.prototype.pipeline = original;
  }
  const known = new Set(
    kernelVariants().map((v) => `${v.spec.code}|${JSON.stringify(sorted(v.constants))}`),
  );
  const outside = asked.filter((a) =>
    !known.has(`${a.code}|${JSON.stringify(sorted(a.constants))}`)
  )
    .map((a) => `${a.label} ${JSON.stringify(a.constants)}`);
  assert(asked.length > 20, `only ${asked.length} pipelines were asked for`);
  assertEquals([...new Set(outside)], [], "add these variants to web/kernels.ts");
});

function sorted(o: Record<string, number>): [string, number][] {
  return Object.entries(o).sort(([a], [b]) => a.localeCompare(b));
}

chromium.test("the page says what to do where the browser has no WebGPU", async () => {
  await buildWeb({ check: false });
  let error = "";
  const server = serveWeb({
    port: 0,
    onReport: (kind, body) => {
      if (kind === "error") error = JSON.parse(new TextDecoder().decode(body)).message;
    },
  });
  const browser = await Chromium.open(`http://127.0.0.1:${server.addr.port}/?report=1`, {
    webgpu: false,
  });
  try {
    const deadline = Date.now() + 60_000;
    while (!error && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert(error.startsWith("no WebGPU: "), `the page reported: ${error || "nothing"}`);
    const r = await browser.send("Runtime.evaluate", {
      expression: "document.getElementById('nogpu').innerText",
    });
    const text = (r.result as { value: string }).value;
    for (const want of ["This page needs WebGPU", "--enable-unsafe-webgpu", "deno task pretrain"]) {
      assert(text.includes(want), `the message lacks "${want}": ${text}`);
    }
  } finally {
    await browser.close();
    await server.shutdown();
  }
});

interface DoneReport {
  losses: number[];
  knn: { after: string; top1: number; top5: number }[];
  features: number[];
  featureDim: number;
  stepsPerS: number;
  adapter: { description: string; isFallbackAdapter: boolean };
}

chromium.test({
  name: "the page trains in headless Chromium: kernels build, losses fall and match Deno's, " +
    "the checkpoint embeds to the page's features",
  fn: async () => {
    const log = (s: string) => console.log(`  web_test: ${s}`);
    const t0 = performance.now();
    const bytes = await buildWeb({ check: true });
    log(`built web/dist/main.js (${(bytes / 1024).toFixed(0)} KiB, browser type check passed)`);
    const reports = new Map<string, Uint8Array>();
    let progress = "";
    const server = serveWeb({
      port: 0,
      onReport: (kind, body) => {
        reports.set(kind, body);
        if (kind === "step" || kind === "kernel-progress") {
          progress = new TextDecoder().decode(body);
        }
      },
    });
    const query = new URLSearchParams({
      ...Object.fromEntries(Object.entries(RUN).map(([k, v]) => [k, String(v)])),
      autorun: "1",
      report: "1",
      kernels: "1",
      features: String(FEATURES),
    });
    const browser = await Chromium.open(`http://127.0.0.1:${server.addr.port}/?${query}`);
    const dir = new URL("../runs/web_test", import.meta.url).pathname;
    await Deno.mkdir(dir, { recursive: true });
    try {
      // the page reports "done" or "error"; the software adapter is slow, so wait long
      const deadline = Date.now() + 40 * 60_000;
      let said = "";
      while (!reports.has("done") && !reports.has("error")) {
        if (Date.now() > deadline) throw new Error(`the page did not finish; last: ${progress}`);
        if (progress !== said) {
          said = progress;
          log(`${((performance.now() - t0) / 1000).toFixed(0)} s: ${progress}`);
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
      const png = await browser.screenshot();
      await Deno.writeFile(`${dir}/page.png`, png);
      const extra = Deno.env.get("DBOT_WEB_SCREENSHOT");
      if (extra) await Deno.writeFile(extra, png);
      assertEquals([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], "a PNG");
      const text = (k: string) => JSON.parse(new TextDecoder().decode(reports.get(k)));
      if (reports.has("error")) throw new Error(`the page failed: ${text("error").message}`);

      const kernels = text("kernels");
      log(
        `Chromium built ${kernels.pipelines} pipelines of ${kernels.kernels} kernels in ${
          kernels.seconds.toFixed(0)
        } s`,
      );
      assertEquals(kernels.errors, []);
      assertEquals(kernels.pipelines, kernelVariants().length);

      const done = text("done") as DoneReport;
      log(
        `adapter ${done.adapter.description}; losses ${done.losses.map((l) => l.toFixed(5))}; ${
          done.stepsPerS.toFixed(3)
        } steps/s`,
      );
      assertEquals(done.losses.length, 4);
      assert(done.losses[1] < done.losses[0], `stage 0 loss falls: ${done.losses}`);
      assert(done.losses[3] < done.losses[2], `stage 1 loss falls: ${done.losses}`);
      assertEquals(done.knn.map((k) => k.after), ["init", "stage 0", "stage 1"]);
      for (const k of done.knn) assert(k.top1 >= 0 && k.top1 <= 100, `k-NN ${JSON.stringify(k)}`);

      // same seed, same numbers: the CPU backend, and Deno's WebGPU where there is an adapter
      const cpu = await denoLosses(new CpuBackend());
      assertAllClose(done.losses, cpu, { atol: 1e-5, rtol: 2e-4 }, "page vs Deno CPU losses");
      if (gpu.available) {
        const be = await WebGpuBackend.create();
        const g = await denoLosses(be);
        be.dispose();
        assertAllClose(done.losses, g, { atol: 1e-5, rtol: 2e-4 }, "page vs Deno WebGPU losses");
        log(`Deno WebGPU losses ${g.map((l) => l.toFixed(5))}`);
      }

      // the downloaded checkpoint, through deno task embed, gives the page's features
      const ckptBytes = reports.get("checkpoint")!;
      const ckpt = decodeCheckpoint(ckptBytes, "page checkpoint");
      assertEquals(ckpt.config.step, 4);
      const ckptPath = `${dir}/page.safetensors`;
      const outPath = `${dir}/features.safetensors`;
      await Deno.writeFile(ckptPath, ckptBytes);
      const r = await new Deno.Command("deno", {
        args: [
          "task",
          "embed",
          "--checkpoint",
          ckptPath,
          "--split",
          "test",
          "--limit",
          String(FEATURES),
          "--backend",
          "cpu",
          "--out",
          outPath,
        ],
        cwd: new URL("../", import.meta.url),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
      assert(r.success, `deno task embed failed:\n${out}`);
      const embedded = (await readSafetensors(outPath)).tensors.get("features")!;
      assertEquals(embedded.shape, [FEATURES, done.featureDim]);
      assertAllClose(
        done.features,
        embedded.data as Float32Array,
        { atol: 1e-4, rtol: 1e-3 },
        "page features vs deno task embed",
      );
      log(`deno task embed on the page's checkpoint matches the page's ${FEATURES} test features`);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nChromium log tail:\n${browser.log}`, { cause: e });
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});

/**
 * A plain static file server over `dir` (GET only, no report endpoint): what any host of
 * `web/dist/` offers. `/` is `index.html`.
 */
function plainFileServer(dir: URL): Deno.HttpServer<Deno.NetAddr> {
  const types: Record<string, string> = { html: "text/html", js: "text/javascript" };
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    const file = path === "/" ? "index.html" : path.slice(1);
    if (req.method !== "GET" || file.includes("..")) return new Response(null, { status: 405 });
    try {
      const body = await Deno.readFile(new URL(file, dir));
      const type = types[file.slice(file.lastIndexOf(".") + 1)] ?? "application/octet-stream";
      return new Response(body, { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

chromium.test({
  name:
    "the static site on a plain file server trains 2 steps on a folder of PNGs from the folder input",
  fn: async () => {
    const log = (s: string) => console.log(`  web_test: ${s}`);
    await buildWeb({ check: false });
    // pics/<class>/<n>.png, 6 per class, plus a broken PNG and a file outside any class folder
    const root = await Deno.makeTempDir({ prefix: "dbot-pics-" });
    for (const [k, cls] of ["circles", "squares"].entries()) {
      await Deno.mkdir(`${root}/pics/${cls}`, { recursive: true });
      for (let i = 0; i < 6; i++) {
        await Deno.writeFile(`${root}/pics/${cls}/${i}.png`, await png(12 + i, 10, 2, 3, 10, k));
      }
    }
    await Deno.writeFile(`${root}/pics/squares/broken.png`, new TextEncoder().encode("no png"));
    await Deno.writeTextFile(`${root}/pics/README.txt`, "not an image");
    const server = plainFileServer(SITE);
    const query = new URLSearchParams({
      seed: "1",
      batch: "2",
      train: "4",
      epochs: "1",
      stages: "1",
      warmup: "0",
      knnTrain: "8",
      knnTest: "4",
    });
    const browser = await Chromium.open(`http://127.0.0.1:${server.addr.port}/?${query}`);
    const read = async (expression: string) =>
      ((await browser.send("Runtime.evaluate", { expression })).result as { value?: string })
        .value;
    const until = async (what: string, expression: string) => {
      const deadline = Date.now() + 20 * 60_000;
      for (;;) {
        const v = await read(expression);
        if (v) return v;
        const error = await read("document.getElementById('error').textContent");
        if (error) throw new Error(`the page failed while waiting for ${what}: ${error}`);
        if (Date.now() > deadline) throw new Error(`the page did not get to ${what}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    try {
      await until(
        "ready",
        "document.getElementById('status').textContent.startsWith('Ready') ? 'y' : ''",
      );
      await browser.setInputFiles("#folder", [`${root}/pics`]);
      const folder = JSON.parse(await until("decoded images", "document.body.dataset.folder"));
      log(`the page decoded ${JSON.stringify(folder)}`);
      assertEquals(folder, { train: 8, test: 4, classes: ["circles", "squares"], skipped: 2 });
      await read("document.getElementById('start').click(), 'clicked'");
      const losses = JSON.parse(await until("the end of training", "document.body.dataset.losses"));
      log(`losses on the folder: ${losses}`);
      assertEquals(losses.length, 2);
      assert(losses.every(Number.isFinite), `losses ${losses}`);
      const rows = await read(
        "[...document.querySelectorAll('#knn tr')].slice(1).map((r) => r.cells[0].textContent).join()",
      );
      assertEquals(rows, "init,stage 0");
    } catch (e) {
      throw new Error(`${(e as Error).message}\nChromium log tail:\n${browser.log}`, { cause: e });
    } finally {
      await browser.close();
      await server.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});
