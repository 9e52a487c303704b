/**
 * Linear probes side by side: each probe is single-threaded JavaScript (`trainLinearProbe`),
 * so a reproduction trains its probes (features × label counts) on one worker per core. The
 * figures are those of the same probes one after the other, bit for bit: each probe is one
 * deterministic call, whatever thread runs it.
 *
 * @module
 */
import type { LabeledFeatures } from "../eval/knn.ts";
import { type LinprobeConfig, type LinprobeResult, trainLinearProbe } from "../train/linprobe.ts";

/** One probe to train. */
export interface ProbeJob {
  /** Training features `[N, dim]` and labels. */
  train: LabeledFeatures;
  /** Test features and labels. */
  test: LabeledFeatures;
  /** Feature width. */
  dim: number;
  /** Probe settings. */
  config: Partial<LinprobeConfig>;
}

/** A worker's answer: the result, or the error's message. */
export type ProbeReply = { result: LinprobeResult } | { error: string };

/**
 * Trains every job and returns the results in the jobs' order, on up to `workers` workers
 * (≤ 1: here, one after the other). A probe's error is thrown here with its message, and
 * no worker starts another probe after it.
 */
export async function trainProbes(
  jobs: ProbeJob[],
  workers: number,
): Promise<LinprobeResult[]> {
  const n = Math.min(Math.floor(workers), jobs.length);
  if (n <= 1) return jobs.map((j) => trainLinearProbe(j.train, j.test, j.dim, j.config));
  const out: LinprobeResult[] = new Array(jobs.length);
  let next = 0;
  let failed = false;
  const url = new URL("./probe_worker.ts", import.meta.url);
  const run = async () => {
    const w = new Worker(url, { type: "module", name: "dbot-probe" });
    try {
      while (next < jobs.length && !failed) {
        const id = next++;
        out[id] = await new Promise<LinprobeResult>((resolve, reject) => {
          w.onmessage = (e: MessageEvent<ProbeReply>) => {
            const r = e.data;
            if ("error" in r) reject(new Error(`Linear probe failed: ${r.error}`));
            else resolve(r.result);
          };
          w.onerror = (e) => {
            e.preventDefault();
            reject(new Error(`Linear probe worker failed: ${e.message}`));
          };
          w.postMessage(jobs[id] satisfies ProbeJob);
        });
      }
    } catch (e) {
      failed = true;
      throw e;
    } finally {
      w.terminate();
    }
  };
  await Promise.all(Array.from({ length: n }, run));
  return out;
}
