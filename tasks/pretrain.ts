/**
 * `deno task pretrain`: multi-stage dBOT pre-training (defaults: shapes,
 * vit-micro, two stages, auto backend). Outputs go to runs/<name>/.
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { PRETRAIN_CONFIG, summarizePretrain } from "../src/train/pretrain_config.ts";
import { limitOpenBlasThreads } from "../src/backend/cpu/blas_threads.ts";
import { parseDistributed, runAsRank, startRank } from "../src/parallel/launch.ts";
import type { MpiCollective } from "../src/parallel/mpi.ts";
import { pretrain, resumeCommand } from "../src/train/pretrain.ts";
import { effectiveLr } from "../src/train/schedule.ts";
import { backendFromFlags, NATIVE_LIB_FLAG, parseTaskFlags, PRINT_CONFIG_FLAG } from "./flags.ts";
import { progressPrinter } from "./progress.ts";
import { main } from "./main.ts";

await main(async () => {
  const flags = parseTaskFlags("deno task pretrain [--flags]", {
    ...PRETRAIN_CONFIG.flags(),
    ...NATIVE_LIB_FLAG,
    resume: {
      type: "boolean",
      help: "continue runs/<name> from its saved state (its config; --backend, --on-nan, " +
        "--strict-data, --data-workers from this command)",
    },
    strict: { type: "boolean", help: "the same as --strict-data (its earlier name)" },
    quiet: { type: "boolean", help: "no progress output" },
    ...PRINT_CONFIG_FLAG,
    distributed: {
      type: "string",
      default: "auto",
      help: "auto (MPI when started by mpirun) | none | mpi: data-parallel ranks, see README",
    },
  });
  // under mpirun: one rank of a data-parallel job (batch = per rank; rank 0 writes)
  await runAsRank(
    parseDistributed(flags.distributed),
    (comm) => run(flags, comm),
    Deno.args.includes("--debug"),
  );
});

async function run(
  flags: ReturnType<typeof parseTaskFlags>,
  comm: MpiCollective | null,
): Promise<void> {
  const ranks = comm?.size ?? 1;
  const writer = !comm || comm.isWriter;
  const given = PRETRAIN_CONFIG.fromFlags(flags);
  if (flags.strict) given.strictData = true;
  let cfg = PRETRAIN_CONFIG.resolve(given);
  if (flags["print-config"] || (cfg.recipe && !flags.resume && writer)) {
    console.log(`resolved configuration${cfg.recipe ? ` (recipe ${cfg.recipe})` : ""}:`);
    console.log(PRETRAIN_CONFIG.describe(cfg, given));
    const images = cfg.batch * cfg.accum * (comm?.size ?? 1);
    console.log(
      `effective lr = baseLr × ${images}/256 = ${effectiveLr(cfg.baseLr, images).toExponential(4)}`,
    );
    if (flags["print-config"]) return;
  }
  const saved = flags.resume && await readJson(`${cfg.runsDir}/${cfg.name}/config.json`);
  if (saved) {
    // a resumed run keeps its saved configuration; run controls come from this command
    // the global batch is kept: with another number of ranks the per-rank batch changes
    const r = saved.resolved as { ranks?: number; globalBatch?: number } | undefined;
    const accum = Number(saved.accum ?? 1);
    const global = r?.globalBatch ?? Number(saved.batch) * accum * (r?.ranks ?? 1);
    if (global % (accum * ranks)) {
      throw new RangeError(
        `Cannot resume with ${ranks} rank(s): the run's ${global} images per step do not split ` +
          `into ${ranks} × accum ${accum}`,
      );
    }
    delete saved.resolved;
    if ("strict" in saved) { // config.json of a run started before --strict-data's rename
      saved.strictData = saved.strict;
      delete saved.strict;
    }
    cfg = PRETRAIN_CONFIG.resolve({
      ...saved,
      batch: global / (accum * ranks),
      backend: cfg.backend,
      onNan: cfg.onNan,
      strictData: cfg.strictData,
      dataWorkers: cfg.dataWorkers,
    });
  }
  const nativeLib = flags["native-lib"] === undefined ? undefined : String(flags["native-lib"]);
  const { backend, chosen, signal, close } = await startRank(comm, {
    select: (threads) => {
      // OpenBLAS keeps the thread count it finds at load
      if (threads !== null) limitOpenBlasThreads(threads);
      return backendFromFlags(flags, cfg.backend);
    },
    withThreads: (be, threads) =>
      be instanceof CpuBackend && be.threads !== threads
        ? new CpuBackend({ threads, nativeLibrary: nativeLib })
        : null,
  });
  if (writer) console.log(`config: ${summarizePretrain(cfg, ranks)}`);
  const quiet = flags.quiet || !writer;
  let summary;
  try {
    summary = await pretrain(backend, cfg, {
      resume: Boolean(flags.resume),
      backendChosen: chosen,
      progress: quiet ? undefined : progressPrinter(),
      log: quiet ? () => {} : console.log,
      signal,
      collective: comm ?? undefined,
    });
  } finally {
    close();
  }
  backend.dispose();
  if (summary) {
    if (writer) console.log(`summary: ${JSON.stringify(summary)}`);
  } else if (signal.aborted) {
    // (without --quiet, pretrain() has logged the step and path already)
    if (quiet && writer) {
      console.error(
        `interrupted: state saved in ${cfg.runsDir}/${cfg.name}/state.safetensors; ` +
          `continue with: ${resumeCommand(cfg)}`,
      );
    }
    comm?.finalize();
    Deno.exit(130);
  }
}

/** The JSON object in `path`, or undefined when there is no such file. */
async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}
