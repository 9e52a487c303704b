/**
 * The module as a JSR user gets it: the files `deno publish --dry-run` lists (so no
 * `native/build/`, no tests) copied into a temporary directory, and a script that
 * imports that copy's `mod.ts` and trains a few dBOT steps of vit-micro on `shapes`,
 * run with `--allow-read` only (no FFI, so the WebAssembly GEMM; no env, no write;
 * `--no-prompt` so that a denied permission fails instead of waiting) and `--cached-only`
 * (no network: the npm packages come from the same Deno cache as this test's).
 *
 * @module
 */
import { assert, assertEquals } from "../src/util/assert.ts";

const root = new URL("../", import.meta.url);

/** The script a user would write: a few steps with a fixed batch; prints one JSON line. */
const SCRIPT = `
import { openDataset } from "@dbot/dbot";
import { CpuBackend } from "@dbot/dbot/backend";
import { DbotModel, PRESETS, Rng, vitFromPreset } from "@dbot/dbot/model";
import { AdamW, PRETRAIN_ADAMW, TrainStep } from "@dbot/dbot/train";

const be = new CpuBackend();
const batch = 4;
const ds = await openDataset("shapes:" + batch, "train");
const vit = vitFromPreset("vit-micro", { imgSize: 32, patchSize: 8, inChans: 3 });
const model = new DbotModel(be, {
  student: vit,
  decoder: PRESETS["vit-micro"].decoder,
  teacher: { kind: "vit", vit },
  maskRatio: 0.75,
  dropPath: 0,
}, batch);
model.initStudent(0);
model.copyStudentToTeacher();
const opt = new AdamW(be, model.student, PRETRAIN_ADAMW);
const step = new TrainStep(be, { ps: model.student, loss: model.loss, opt });
const images = new Float32Array(batch * 3 * 32 * 32);
for (let i = 0; i < batch; i++) images.set(ds.image(i).map((x) => 2 * x - 1), i * 3 * 32 * 32);
const noise = new Rng(1).uniformArray(batch * (32 / 8) ** 2);
const losses = [];
model.setBatch(images, noise);
for (let i = 0; i < 6; i++) {
  const r = await step.run(1e-3, () => model.forwardBackward(), { read: true });
  losses.push(r.loss);
}
console.log(JSON.stringify({ description: be.description, losses }));
be.dispose();
`;

/** Files `deno publish --dry-run` would publish, as paths relative to the repository. */
async function publishedFiles(): Promise<string[]> {
  const out = await new Deno.Command("deno", {
    // --no-check and --allow-slow-types: the file list without the type checks (CI runs
    // the full dry run in `deno task check`).
    args: ["publish", "--dry-run", "--allow-dirty", "--no-check", "--allow-slow-types"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.success, `deno publish --dry-run failed:\n${text}`);
  const prefix = root.href;
  const files = [...text.matchAll(/^\s+(file:\/\/\S+) \(/gm)].map((m) => m[1]);
  assert(files.length > 0, `no files in the output of deno publish --dry-run:\n${text}`);
  return files.map((f) => {
    assert(f.startsWith(prefix), `${f} is outside ${prefix}`);
    return decodeURIComponent(f.slice(prefix.length));
  });
}

Deno.test({
  name:
    "a JSR user's copy of the module (published files, --allow-read only) trains vit-micro on shapes with the WebAssembly GEMM",
  // Needs --allow-run=deno and --allow-write (`deno task test` grants both).
  ignore: Deno.permissions.querySync({ name: "run", command: "deno" }).state !== "granted",
}, async () => {
  const files = await publishedFiles();
  assert(files.includes("mod.ts"), "mod.ts is published");
  assert(files.includes("deno.json"), "deno.json is published");
  for (const f of files) {
    assert(!f.startsWith("native/build/"), `${f}: native/build is not published`);
    assert(!f.startsWith("tests/"), `${f}: tests are not published`);
  }
  const dir = await Deno.makeTempDir({ prefix: "dbot-jsr-" });
  try {
    for (const f of files) {
      const to = `${dir}/${f}`;
      await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
      await Deno.copyFile(new URL(f, root), to);
    }
    await Deno.writeTextFile(`${dir}/user_script.ts`, SCRIPT);
    const out = await new Deno.Command("deno", {
      args: ["run", "--no-prompt", "--cached-only", "--allow-read", "user_script.ts"],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert(out.success, `the user script failed (exit ${out.code}):\n${stdout}\n${stderr}`);
    const line = stdout.trim().split("\n").at(-1) ?? "";
    const { description, losses } = JSON.parse(line) as {
      description: string;
      losses: number[];
    };
    console.log(`${description}; losses ${losses.map((l) => l.toFixed(4)).join(" ")}`);
    assertEquals(losses.length, 6);
    assert(losses.every(Number.isFinite), `losses are finite: ${losses}`);
    assert(
      losses[5] < 0.95 * losses[0],
      `the loss falls on a fixed batch: ${losses.join(", ")}`,
    );
    // No FFI, so no OpenBLAS: the WebAssembly SIMD GEMM shipped in the module runs, and
    // the description says so (and what OpenBLAS would bring).
    assert(
      description.startsWith("cpu: WebAssembly SIMD GEMM"),
      `the description names the WebAssembly GEMM: ${description}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
