/**
 * A data worker of {@link "./prefetch.ts"}: opens the training split, rebuilds the
 * pipeline and renders requested batch parts in order.
 *
 * @module
 */
/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
import { openDataset } from "./dataset.ts";
import { ImagePipeline } from "./pipeline.ts";
import { type PrefetchReply, type PrefetchRequest, renderBatch } from "./prefetch.ts";

let pipe: Promise<ImagePipeline> | null = null;

let dead = false;

// The heartbeat: "alive" at most every `heartbeatMs` (the init message's) — from a timer
// while this worker waits (or reads asynchronously) and after each sample while it renders —
// so that the pool can tell a worker that exited or hangs from a slow one.
let heartbeatMs = Infinity;
let lastBeat = 0;
function beat(): void {
  const now = performance.now();
  if (now - lastBeat < heartbeatMs) return;
  lastBeat = now;
  self.postMessage({ kind: "alive" } satisfies PrefetchReply);
}

self.onmessage = (e: MessageEvent<PrefetchRequest>) => {
  const msg = e.data;
  if (dead) return;
  if (msg.kind === "crash") {
    // as a crashed worker: nothing more is answered, and the error is uncaught
    dead = true;
    throw new Error("a crash asked for by a test");
  }
  if (msg.kind === "exit") {
    // as a worker that some code ends quietly: no error event, no reply, ever
    dead = true;
    self.close();
    return;
  }
  void handle(msg);
};

async function handle(msg: Exclude<PrefetchRequest, { kind: "crash" | "exit" }>): Promise<void> {
  if (msg.kind === "init") {
    heartbeatMs = msg.heartbeatMs;
    setInterval(beat, heartbeatMs);
    beat();
    const { data, strict, size, channels, mean, std, augment } = msg.init;
    // The main thread already said what it had to about the dataset: stay quiet here.
    pipe = openDataset(data, "train", { strict, warn: () => {} })
      .then((ds) => new ImagePipeline(ds, size, channels, mean, std, augment));
    return;
  }
  let reply: PrefetchReply;
  try {
    if (!pipe) throw new Error("the data worker got a job before its init");
    const { images, rngState, rngStates, skipped } = renderBatch(
      await pipe,
      msg.indices,
      msg.seed,
      undefined,
      beat,
    );
    reply = { kind: "batch", id: msg.id, images, rngState, rngStates, skipped };
    self.postMessage(reply, [images.buffer as ArrayBuffer]);
  } catch (err) {
    reply = { kind: "error", id: msg.id, message: (err as Error)?.message ?? String(err) };
    self.postMessage(reply);
  }
}
