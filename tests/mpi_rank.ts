/**
 * One rank of the MPI tests (`tests/mpi_test.ts` starts it under `mpirun`): runs
 * `pretrain()` on a 1-thread CPU backend with the MPI collective, from a JSON argument:
 * `{ cfg, resume?, stopAfterEpochs?, killRank?, raiseRank?, atStep?, seedByRank? }` —
 * `killRank` SIGKILLs itself (noting the time in `<runsDir>/killed_at`) and `raiseRank` throws
 * when step `atStep` starts;
 * `seedByRank` gives each rank another seed (a config mismatch).
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { resolvePretrain } from "../src/train/pretrain_config.ts";
import { MpiCollective } from "../src/parallel/mpi.ts";
import { pretrain } from "../src/train/pretrain.ts";

const o = JSON.parse(Deno.args[0]) as {
  cfg: Record<string, unknown>;
  resume?: boolean;
  stopAfterEpochs?: number;
  killRank?: number;
  raiseRank?: number;
  atStep?: number;
  seedByRank?: boolean;
};
const comm = MpiCollective.init();
try {
  const cfg = resolvePretrain({ ...o.cfg, ...(o.seedByRank ? { seed: comm.rank } : {}) });
  const be = new CpuBackend({ threads: 1 });
  const s = await pretrain(be, cfg, {
    log: comm.isWriter ? console.log : () => {},
    resume: o.resume,
    stopAfterEpochs: o.stopAfterEpochs,
    collective: comm,
    alterBatch: (step) => {
      if (step !== o.atStep) return;
      if (comm.rank === o.killRank) {
        Deno.writeTextFileSync(`${cfg.runsDir}/killed_at`, String(Date.now()));
        Deno.kill(Deno.pid, "SIGKILL");
      }
      if (comm.rank === o.raiseRank) throw new Error(`a test fault at step ${step}`);
    },
  });
  if (s && comm.isWriter) console.log(`summary: ${JSON.stringify(s)}`);
  be.dispose();
} catch (e) {
  comm.abort(`error: ${(e as Error).message}`);
}
comm.finalize();
