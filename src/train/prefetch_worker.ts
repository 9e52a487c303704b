/**
 * A data worker of {@link "./prefetch.ts"}: opens the training split, rebuilds the
 * pipeline and renders requested batch parts in order.
 *
 * @module
 */
/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
import { openDataset } from "../data/dataset.ts";
import { ImagePipeline } from "../data/pipeline.ts";
import { type PrefetchReply, type PrefetchRequest, renderBatch } from "./prefetch.ts";

let pipe: Promise<ImagePipeline> | null = null;

self.onmessage = async (e: MessageEvent<PrefetchRequest>) => {
  const msg = e.data;
  if (msg.kind === "init") {
    const { data, strict, size, channels, mean, std, augment } = msg.init;
    // The main thread already said what it had to about the dataset: stay quiet here.
    pipe = openDataset(data, "train", { strict, warn: () => {} })
      .then((ds) => new ImagePipeline(ds, size, channels, mean, std, augment));
    return;
  }
  let reply: PrefetchReply;
  try {
    if (!pipe) throw new Error("the data worker got a job before its init");
    const { images, rngState, rngStates, skipped } = renderBatch(await pipe, msg.indices, msg.seed);
    reply = { kind: "batch", id: msg.id, images, rngState, rngStates, skipped };
    self.postMessage(reply, [images.buffer as ArrayBuffer]);
  } catch (err) {
    reply = { kind: "error", id: msg.id, message: (err as Error)?.message ?? String(err) };
    self.postMessage(reply);
  }
};
