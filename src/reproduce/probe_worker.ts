/**
 * A worker of {@link "./probes.ts"}: trains one linear probe per message and answers with
 * its result (or its error's message).
 *
 * @module
 */
/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
import { trainLinearProbe } from "../train/linprobe.ts";
import type { ProbeJob, ProbeReply } from "./probes.ts";

self.onmessage = (e: MessageEvent<ProbeJob>) => {
  const { train, test, dim, config } = e.data;
  let reply: ProbeReply;
  try {
    reply = { result: trainLinearProbe(train, test, dim, config) };
  } catch (err) {
    reply = { error: err instanceof Error ? err.message : String(err) };
  }
  self.postMessage(reply);
};
