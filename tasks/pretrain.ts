/**
 * `deno task pretrain`: multi-stage dBOT pre-training (defaults: shapes,
 * vit-micro, two stages, auto backend). Outputs go to runs/<name>/.
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { PRETRAIN_CONFIG } from "../src/train/pretrain_config.ts";
import { limitOpenBlasThreads } from "../src/backend/cpu/blas_threads.ts";
import {
  parseDistributed,
  runAsRank,
  sourceDigest,
  threadsPerRank,
} from "../src/parallel/launch.ts";
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
        "--strict from this command)",
    },
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
    cfg = PRETRAIN_CONFIG.resolve({
      ...saved,
      batch: global / (accum * ranks),
      backend: cfg.backend,
      onNan: cfg.onNan,
      strict: cfg.strict,
    });
  }
  // a rank's share of the node's cores (OpenBLAS keeps the thread count it finds at load)
  const threads = comm ? threadsPerRank(comm.localSize) : 0;
  if (comm) limitOpenBlasThreads(threads);
  let { backend, reason } = await backendFromFlags(flags, cfg.backend);
  if (comm && backend instanceof CpuBackend && backend.threads !== threads) {
    backend.dispose();
    const lib = flags["native-lib"] === undefined ? undefined : String(flags["native-lib"]);
    backend = new CpuBackend({ threads, nativeLibrary: lib });
    reason = `${backend.description}: ${comm.localSize} rank(s) share this node's cores`;
  }
  if (comm) {
    console.log(
      `rank ${comm.rank} of ${comm.size} on ${comm.host} (pid ${Deno.pid}, ${comm.version}): ${reason}`,
    );
    await comm.agree("the code (src/, tasks/)", await sourceDigest());
  } else console.log(`backend: ${reason}`);
  if (writer) console.log(`config: ${JSON.stringify(cfg)}`);
  // Ctrl-C: finish the step, save the state, exit 130; a second Ctrl-C exits at once
  // (the files on disk are always complete: every write is atomic).
  const interrupt = new AbortController();
  // Under mpirun, Ctrl-C reaches mpirun, which sends SIGTERM to the ranks (after
  // odls_base_sigkill_timeout seconds, and SIGKILL as long after): every rank stops after
  // the same step (the stop flag travels with the gradient all-reduce), rank 0 saves.
  let asked = false;
  const onSigint = () => {
    if (asked) Deno.exit(130);
    asked = true;
    if (writer) {
      console.error("\ninterrupt: saving the state after this step (Ctrl-C again to quit now)");
    }
    if (comm) comm.requestStop();
    else interrupt.abort();
  };
  const signals: Deno.Signal[] = comm ? ["SIGINT", "SIGTERM"] : ["SIGINT"];
  for (const s of signals) Deno.addSignalListener(s, onSigint);
  const quiet = flags.quiet || !writer;
  let summary;
  try {
    summary = await pretrain(backend, cfg, {
      resume: Boolean(flags.resume),
      backendReason: reason,
      progress: quiet ? undefined : progressPrinter(),
      log: quiet ? () => {} : console.log,
      signal: comm ? comm.signal : interrupt.signal,
      collective: comm ?? undefined,
    });
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSigint);
  }
  backend.dispose();
  if (summary) {
    if (writer) console.log(`summary: ${JSON.stringify(summary)}`);
  } else if (comm ? comm.signal.aborted : interrupt.signal.aborted) {
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
