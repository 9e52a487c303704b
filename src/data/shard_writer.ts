/**
 * Writes WebDataset shards from a class-folder dataset (`deno task shard`): for each split,
 * `OUT/train|val/shard-NNNNNN.tar` of `KEY.jpg|png` + `KEY.cls` members, each with its index
 * `shard-NNNNNN.tar.idx.json`, and `OUT/classes.json`. Samples keep the folder's order, so
 * `shards:OUT` gives the same samples, labels and batches as the folder.
 *
 * Atomic and resumable: each file is written under a temporary name and renamed; a shard
 * whose tar and index are both there is kept, so a stopped run picks up where it was.
 * With `resizeShort`, images with a longer short side are decoded (with DCT scaling to the
 * nearest size at or above the target), resized to that short side and re-encoded as
 * JPEG (quality 90), as fast pre-training recipes store ImageNet.
 *
 * @module
 */
import { listFolder } from "./folder.ts";
import { decodeImageFile, loadPngDecoder, readHeader } from "./image_file.ts";
import { indexShard } from "./shards.ts";
import { writeTar } from "./tar.ts";
import type { Split } from "./types.ts";
import { writeFileAtomic, writeTextAtomic } from "../util/atomic.ts";

/** Options for {@link writeShards}. */
export interface ShardOptions {
  /** The class-folder dataset. */
  data: string;
  /** Output directory. */
  out: string;
  /** Samples per shard (default 1000). */
  shardSize?: number;
  /** Re-encode images whose short side is larger to this short side (0: copy the files). */
  resizeShort?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** What {@link writeShards} did. */
export interface ShardReport {
  /** Shards written now, per split. */
  written: Record<Split, number>;
  /** Shards already complete and kept. */
  kept: Record<Split, number>;
  /** Samples per split. */
  samples: Record<Split, number>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Re-encodes `bytes` at short side `s` when its short side is larger (else returns them). */
async function resized(bytes: Uint8Array, s: number): Promise<{ data: Uint8Array; ext?: string }> {
  const hdr = readHeader(bytes);
  if (!hdr || Math.min(hdr.width, hdr.height) <= s) return { data: bytes };
  const k = s / Math.min(hdr.width, hdr.height);
  const w = Math.max(1, Math.round(hdr.width * k)), h = Math.max(1, Math.round(hdr.height * k));
  const im = decodeImageFile(bytes, { width: w, height: h }); // DCT-scaled when it can
  const { Image, encodeJpeg } = await import("image-js");
  const HW = im.height * im.width, C = im.channels, st = im.stride;
  const inter = new Uint8Array(HW * C);
  const shift = im.maxValue > 255 ? 8 : 0;
  for (let j = 0; j < HW; j++) {
    for (let c = 0; c < C; c++) inter[j * C + c] = im.data[j * st + c] >> shift;
  }
  const img = new Image(im.width, im.height, { data: inter, colorModel: C === 1 ? "GREY" : "RGB" });
  const small = img.width === w && img.height === h ? img : img.resize({ width: w, height: h });
  return { data: encodeJpeg(small, { quality: 90 }), ext: "jpg" };
}

/** Writes the shards of `o.data` to `o.out` (see the module notes). */
export async function writeShards(o: ShardOptions): Promise<ShardReport> {
  const n = o.shardSize ?? 1000;
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Cannot write shards of ${n} samples: give a positive integer`);
  }
  await loadPngDecoder();
  const report: ShardReport = {
    written: { train: 0, test: 0 },
    kept: { train: 0, test: 0 },
    samples: { train: 0, test: 0 },
  };
  await Deno.mkdir(o.out, { recursive: true });
  let classNames: string[] | null = null;
  for (const split of ["train", "test"] as const) {
    const list = await listFolder(o.data, split);
    classNames ??= list.classNames;
    const dir = `${o.out}/${split === "train" ? "train" : "val"}`;
    await Deno.mkdir(dir, { recursive: true });
    report.samples[split] = list.paths.length;
    for (let k = 0; k * n < list.paths.length; k++) {
      const name = `${dir}/shard-${String(k).padStart(6, "0")}.tar`;
      if (await exists(name) && await exists(`${name}.idx.json`)) {
        report.kept[split]++;
        continue;
      }
      const members: { name: string; data: Uint8Array }[] = [];
      for (let i = k * n; i < Math.min((k + 1) * n, list.paths.length); i++) {
        const path = list.paths[i];
        const key = String(i).padStart(9, "0");
        let data: Uint8Array = await Deno.readFile(path);
        let ext = path.slice(path.lastIndexOf(".") + 1).toLowerCase();
        if (o.resizeShort) {
          try {
            const r = await resized(data, o.resizeShort);
            data = r.data;
            ext = r.ext ?? ext;
          } catch (e) {
            o.log?.(`warning: ${path} kept as it is: ${(e as Error).message}`);
          }
        }
        members.push({ name: `${key}.${ext}`, data });
        members.push({
          name: `${key}.cls`,
          data: new TextEncoder().encode(String(list.labels[i])),
        });
      }
      await writeFileAtomic(name, writeTar(members));
      await writeTextAtomic(`${name}.idx.json`, JSON.stringify(indexShard(name)));
      report.written[split]++;
      o.log?.(`wrote ${name} (${members.length / 2} samples)`);
    }
  }
  await writeTextAtomic(`${o.out}/classes.json`, JSON.stringify(classNames));
  return report;
}
