/**
 * The user's own images in the page: a folder of class sub-folders, picked in the folder
 * input or dropped on the page, decoded by the browser (`createImageBitmap`, which decodes
 * off the main thread and resizes to the model's input), split into training images and a
 * held-out part for k-NN. Files that do not decode are skipped and counted, as in Deno's
 * folder dataset.
 *
 * @module
 */
import { type LabelledImage, type MemoryDataset, splitHeldOut } from "../src/browser.ts";

/** A file of the picked folder and its path inside it (`root/class/name.png`). */
export interface FolderFile {
  /** Path relative to the picked folder's parent. */
  path: string;
  /** The file. */
  file: File;
}

/** What {@link decodeFolder} made of a folder. */
export interface DecodedFolder {
  /** Training images. */
  train: MemoryDataset;
  /** Held-out images (k-NN queries). */
  test: MemoryDataset;
  /** Files that did not decode, as `path (why)`. */
  skipped: string[];
}

/** The files of a folder input (`<input webkitdirectory>`). */
export function filesOfInput(files: FileList): FolderFile[] {
  return [...files].map((file) => ({ path: file.webkitRelativePath || file.name, file }));
}

/** The files under the folders (or files) of a drop, walked recursively. */
export async function filesOfDrop(items: DataTransferItemList): Promise<FolderFile[]> {
  const out: FolderFile[] = [];
  const walk = async (entry: FileSystemEntry, path: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) =>
        (entry as FileSystemFileEntry).file(resolve, reject)
      );
      out.push({ path: `${path}${entry.name}`, file });
      return;
    }
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    for (;;) {
      // readEntries returns the folder in chunks until an empty one
      const chunk = await new Promise<FileSystemEntry[]>((resolve, reject) =>
        reader.readEntries(resolve, reject)
      );
      if (chunk.length === 0) break;
      for (const e of chunk) await walk(e, `${path}${entry.name}/`);
    }
  };
  const entries = [...items].map((it) => it.webkitGetAsEntry()).filter((e) => e !== null);
  for (const e of entries) await walk(e, "");
  return out;
}

/**
 * Decodes `files` (`root/<class>/<image>`; files not inside a class folder are skipped)
 * into RGB images of `size × size`, 8 at a time, and splits every 5th image of each class
 * off for k-NN (`splitHeldOut`). Throws when no image decodes.
 */
export async function decodeFolder(
  files: FolderFile[],
  size: number,
  onProgress: (done: number, total: number) => void = () => {},
): Promise<DecodedFolder> {
  const sorted = [...files].sort((a, b) => a.path.localeCompare(b.path));
  const images: (LabelledImage | null)[] = new Array(sorted.length).fill(null);
  const skipped: string[] = [];
  const canvas = new OffscreenCanvas(size, size);
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  let done = 0;
  const one = async (i: number) => {
    const { path, file } = sorted[i];
    const parts = path.split("/");
    if (parts.length < 3) {
      skipped.push(`${path} (not inside a class folder)`);
      return;
    }
    let bitmap: ImageBitmap;
    try {
      bitmap = await createImageBitmap(file, {
        resizeWidth: size,
        resizeHeight: size,
        resizeQuality: "high",
      });
    } catch (e) {
      skipped.push(`${path} (${(e as Error).name})`);
      return;
    }
    ctx.clearRect(0, 0, size, size);
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    const rgba = ctx.getImageData(0, 0, size, size).data;
    const HW = size * size;
    const data = new Float32Array(3 * HW); // [C, H, W]
    for (let j = 0; j < HW; j++) {
      for (let c = 0; c < 3; c++) data[c * HW + j] = rgba[4 * j + c] / 255;
    }
    images[i] = { className: parts[parts.length - 2], data };
  };
  for (let i = 0; i < sorted.length; i += 8) {
    const batch = [];
    for (let j = i; j < Math.min(i + 8, sorted.length); j++) batch.push(one(j));
    await Promise.all(batch);
    done = Math.min(i + 8, sorted.length);
    onProgress(done, sorted.length);
  }
  const root = sorted[0]?.path.split("/")[0] ?? "folder";
  const kept = images.filter((im): im is LabelledImage => im !== null);
  if (kept.length === 0) {
    throw new RangeError(
      `Cannot use the folder "${root}": none of its ${files.length} files decoded as an image ` +
        "inside a class folder (pick a folder of class sub-folders of PNG/JPEG images)",
    );
  }
  const { train, test } = splitHeldOut(`folder:${root}`, kept, {
    channels: 3,
    height: size,
    width: size,
  });
  return { train, test, skipped: skipped.sort() };
}
