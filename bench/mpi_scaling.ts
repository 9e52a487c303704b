/**
 * Data-parallel scaling over MPI, side by side in one run (needs Open MPI):
 *
 *   deno run -A bench/mpi_scaling.ts [--model vit-tiny] [--img-size 32] [--batch 32] [--steps 10]
 *
 * launches, one after the other, 2 ranks × 1 op thread, 1 rank × 1 op thread and 1 rank ×
 * 2 op threads (each rank: `--batch` images per step, OpenBLAS limited to the same threads)
 * and prints images/s over all ranks, the speed-up, and the all-reduce's share of the step
 * (`--bind-to none`: Open MPI would otherwise pin a lone rank to one core);
 * then the all-reduce bandwidth of our binding (2 ranks) for a range of buffer sizes.
 * Under mpirun (`OMPI_COMM_WORLD_SIZE` set) it is one rank of such a measurement.
 * `bench/mpi_allreduce_ref.c` measures the same all-reduces from C (Open MPI's own figure).
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { PRESETS, vitFromPreset } from "../src/models/vit_config.ts";
import { DbotModel } from "../src/models/dbot.ts";
import { AdamW, PRETRAIN_ADAMW } from "../src/train/adamw.ts";
import { limitOpenBlasThreads } from "../src/backend/cpu/blas_threads.ts";
import { MpiCollective, mpiLaunchInfo } from "../src/parallel/mpi.ts";
import { TrainStep } from "../src/train/step.ts";
import { parseFlags } from "../src/util/cli.ts";
import { Rng } from "../src/util/rng.ts";

const flags = parseFlags([...Deno.args], {
  model: { type: "string", default: "vit-tiny", help: "model preset" },
  "img-size": { type: "string", default: "32", help: "image size" },
  batch: { type: "string", default: "32", help: "images per rank per step" },
  steps: { type: "string", default: "10", help: "timed steps" },
  threads: { type: "string", default: "1", help: "(rank mode) op threads" },
  mode: { type: "string", default: "step", help: "(rank mode) step | allreduce" },
});
const model = String(flags.model);
const imgSize = Number(flags["img-size"]);
const batch = Number(flags.batch);
const steps = Number(flags.steps);

if (mpiLaunchInfo().size > 0) await rank();
else await launch();

async function rank(): Promise<void> {
  const comm = MpiCollective.init();
  const threads = Number(flags.threads);
  if (flags.mode === "allreduce") {
    const rows: string[] = [];
    for (const bytes of [4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20]) {
      const buf = new Float32Array(bytes / 4);
      await comm.allReduceSum(buf);
      const reps = bytes >= 4 << 20 ? 10 : 50;
      await comm.barrier();
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) await comm.allReduceSum(buf);
      const s = (performance.now() - t0) / 1000 / reps;
      rows.push(
        `  ${(bytes / 1024).toFixed(0).padStart(6)} KiB: ${(s * 1e6).toFixed(0).padStart(7)} µs, ` +
          `${(bytes / s / 1e9).toFixed(2)} GB/s (algorithm bandwidth)`,
      );
    }
    if (comm.isWriter) {
      console.log(`all-reduce of our binding (${comm.size} ranks):\n${rows.join("\n")}`);
    }
    comm.finalize();
    return;
  }
  limitOpenBlasThreads(threads);
  const be = new CpuBackend({ threads });
  const vit = vitFromPreset(model, { imgSize, patchSize: 4, inChans: 3 });
  const m = new DbotModel(be, {
    student: vit,
    decoder: PRESETS[model].decoder,
    teacher: { kind: "vit", vit },
    maskRatio: 0.75,
    dropPath: 0.1,
  }, batch);
  m.initStudent(0);
  m.copyStudentToTeacher();
  const opt = new AdamW(be, m.student, PRETRAIN_ADAMW);
  const step = new TrainStep(be, { ps: m.student, loss: m.loss, opt }, { collective: comm });
  const rng = new Rng(1 + comm.rank);
  const images = rng.uniformArray(batch * 3 * imgSize * imgSize, -1, 1);
  const L = (imgSize / 4) ** 2;
  const one = () =>
    step.run(1e-4, () => {
      m.setBatch(images, rng.uniformArray(batch * L), rng);
      m.forwardBackward();
    });
  await one();
  await one();
  await comm.barrier();
  comm.allReduceSeconds = 0;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await one();
  await be.download(m.loss);
  const s = (performance.now() - t0) / 1000;
  if (comm.isWriter) {
    console.log(JSON.stringify({
      ranks: comm.size,
      threads,
      images_per_s: (comm.size * batch * steps) / s,
      step_ms: (s / steps) * 1000,
      allreduce_share: comm.size > 1 ? comm.allReduceSeconds / s : 0,
      gradient_mib: (m.student.count * 4) / 2 ** 20,
      backend: be.description,
    }));
  }
  be.dispose();
  comm.finalize();
}

async function launch(): Promise<void> {
  const self = new URL(import.meta.url).pathname;
  const run = async (np: number, extra: string[]) => {
    const out = await new Deno.Command("mpirun", {
      args: [
        "--allow-run-as-root",
        "--oversubscribe",
        "--bind-to", // each configuration uses the threads it asks for, wherever they run
        "none",
        "-np",
        String(np),
        "deno",
        "run",
        "-A",
        self,
        ...Deno.args,
        ...extra,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  };
  const rows = [];
  for (const [np, threads] of [[2, 1], [1, 1], [1, 2]]) {
    const line = (await run(np, ["--threads", String(threads)])).split("\n").pop()!;
    rows.push(JSON.parse(line));
    console.log(line);
  }
  const [two, one1, one2] = rows.map((r) => r.images_per_s as number);
  console.log(
    `${model} ${imgSize}px batch ${batch}/rank: 2 ranks × 1 thread ${two.toFixed(1)} img/s = ` +
      `${(two / one1).toFixed(2)}× 1 rank × 1 thread (${one1.toFixed(1)}), ` +
      `${(two / one2).toFixed(2)}× 1 rank × 2 threads (${one2.toFixed(1)}); all-reduce ` +
      `${(rows[0].allreduce_share * 100).toFixed(1)}% of the 2-rank step`,
  );
  console.log(await run(2, ["--mode", "allreduce"]));
}
