/**
 * `deno task shard --data DIR --out DIR [--shard-size N] [--resize-short S]`: writes the
 * class-folder dataset DIR as WebDataset shards (train/ and val/ tars with their indexes,
 * and classes.json), atomically and resumably; train from them with `--data shards:OUT`.
 *
 * @module
 */
import { writeShards } from "../src/data/shard_writer.ts";
import { parseTaskFlags, positiveInt } from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const flags = parseTaskFlags(
    "deno task shard --data DIR --out DIR [--shard-size 1000] [--resize-short 0]",
    {
      data: {
        type: "string",
        help: "class-folder dataset (DIR/<class>/*.jpg|png, or train/ + val/)",
      },
      out: { type: "string", help: "output directory (train/, val/, classes.json)" },
      "shard-size": { type: "string", default: "1000", help: "samples per shard" },
      "resize-short": {
        type: "string",
        default: "0",
        help: "re-encode images with a longer short side at this short side (JPEG q90; 0: copy)",
      },
    },
    { required: ["data", "out"] },
  );
  const t0 = performance.now();
  const r = await writeShards({
    data: String(flags.data),
    out: String(flags.out),
    shardSize: positiveInt(flags["shard-size"], "shard-size"),
    resizeShort: Number(flags["resize-short"]) || 0,
    log: (l) => console.error(l),
  });
  console.log(
    `shards in ${flags.out}: train ${r.samples.train} samples (${r.written.train} shards written, ` +
      `${r.kept.train} kept), val ${r.samples.test} samples (${r.written.test} written, ` +
      `${r.kept.test} kept) in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
      `train with --data shards:${flags.out}`,
  );
});
