/**
 * The WebGPU backend binds by the specification's usage-scope rules (`bindings.ts`): the
 * check refuses a dispatch that binds one buffer read-only and writable, or writable at two
 * overlapping ranges, and passes on every kernel variant a training step, the k-NN
 * features and the symmetric student use; an in-place op runs its one-binding variant and
 * gives the same numbers; views of one buffer are bound as their own ranges.
 *
 * @module
 */
import { CpuBackend } from "../src/backend/cpu/backend.ts";
import { view } from "../src/backend/backend.ts";
import {
  bindingConflicts,
  type BoundRange,
  inPlaceSpec,
  planBindings,
  storageAccess,
} from "../src/backend/webgpu/bindings.ts";
import { GpuContext, GpuError, type KernelSpec } from "../src/backend/webgpu/context.ts";
import { Params } from "../src/backend/webgpu/backend.ts";
import { ADD, SCALE_ROWS } from "../kernels/elementwise.ts";
import { SPLIT_HEADS } from "../kernels/heads.ts";
import { resolvePretrain } from "../src/train/pretrain_config.ts";
import { PretrainSession } from "../src/train/session.ts";
import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import { gpuTest } from "./gpu.ts";

const range = (
  binding: number,
  buffer: string,
  start: number,
  size: number,
  writable: boolean,
): BoundRange<string> => ({ binding, buffer, label: buffer, start, size, writable });

Deno.test("bindingConflicts() follows the spec: read-only with writable or overlapping writables is refused", () => {
  // one buffer read-only twice, overlapping: allowed (all storage-read)
  assertEquals(bindingConflicts([range(1, "p", 0, 64, false), range(2, "p", 0, 64, false)]), null);
  // read-only and writable, even at disjoint ranges: not a compatible usage list
  const mixed = bindingConflicts([range(1, "p", 0, 256, true), range(2, "p", 512, 64, false)]);
  assert(mixed?.includes("compatible usage list"), `${mixed}`);
  // two writable ranges: allowed apart, refused overlapping
  assertEquals(bindingConflicts([range(1, "g", 0, 256, true), range(2, "g", 256, 64, true)]), null);
  const overlap = bindingConflicts([range(1, "g", 0, 260, true), range(2, "g", 256, 64, true)]);
  assert(overlap?.includes("writable storage buffer binding aliasing"), `${overlap}`);
  // different buffers never conflict
  assertEquals(bindingConflicts([range(1, "a", 0, 64, true), range(2, "b", 0, 64, false)]), null);
});

Deno.test("planBindings() binds each view as its aligned range and merges in-place pairs", () => {
  const access = new Map([
    [1, { access: "read_write" as const }],
    [2, { access: "read" as const }],
    [3, { access: "read" as const }],
  ]);
  const buf = { buffer: "p", label: "p", bufferBytes: 4096 };
  // out at element 100 (byte 400 → aligned to 256), b at element 300 of the same buffer
  const views = [{ ...buf, offset: 100, size: 10 }, { ...buf, offset: 5, size: 3 }, {
    ...buf,
    offset: 300,
    size: 64,
  }];
  const plain = planBindings(views, [0, 1, 2], access, 256);
  assertEquals(plain.ranges.map((r) => [r.binding, r.start, r.size, r.writable]), [
    [1, 256, 184, true],
    [2, 0, 32, false],
    [3, 1024, 432, false],
  ]);
  assertEquals(plain.offsets, [36, 5, 44]);
  assert(bindingConflicts(plain.ranges) !== null, "out and inputs share buffer p");
  // tensor 1 read through binding 1: one range covering both views
  const merged = planBindings(views, [0, 0, 2], access, 256);
  assertEquals(merged.ranges.map((r) => [r.binding, r.start, r.size]), [[1, 0, 440], [
    3,
    1024,
    432,
  ]]);
  assertEquals(merged.offsets, [100, 5, 44]);
});

Deno.test("every kernel declares an access for each storage binding, and inputs read-only", () => {
  for (const code of [ADD, SCALE_ROWS, SPLIT_HEADS]) {
    const a = storageAccess(code);
    assertEquals([...a.keys()].sort(), [...Array(a.size).keys()].map((i) => i + 1));
  }
  assertEquals([...storageAccess(ADD).values()].map((d) => d.access), [
    "read_write",
    "read",
    "read",
  ]);
  const v = inPlaceSpec({ label: "add", code: ADD, storageBindings: 3, inPlace: [[0, 1]] });
  assertEquals([...storageAccess(v.code).entries()].map(([b, d]) => [b, d.name, d.access]), [
    [1, "out", "read_write"],
    [3, "b", "read"],
  ]);
  assert(v.code.includes("out[P.off_a + i]"), "the in-place variant reads a through out");
  assertThrows(
    () => storageAccess("@group(0) @binding(1) var<storage> x: array<f32>;"),
    RangeError,
    "without an access mode",
  );
});

/** The symmetric (BEiT) student with block masking, cosine loss and drop path: its own ops. */
const SYMMETRIC = {
  student: "symmetric",
  teacher: "pixels",
  stages: 1,
  mask: "block",
  loss: "cosine",
  dropPath: 0.1,
} as const;

const ADD_PLAIN: KernelSpec = { label: "add_no_in_place", code: ADD, storageBindings: 3 };
const SPLIT: KernelSpec = { label: "split_heads", code: SPLIT_HEADS, storageBindings: 4 };

gpuTest(
  "a deliberately aliased dispatch is refused (read-only + writable, overlapping writables)",
  async (be) => {
    const x = be.tensor([1024], "f32", "aliased");
    const y = be.tensor([1024], "f32", "other");
    try {
      // out and a in one buffer, and the kernel has no in-place variant
      assertThrows(
        () =>
          be.dispatch(ADD_PLAIN, [x, x, y], {
            params: new Params().u32(1024, 1024),
            groups: [4, 1, 1],
          }),
        GpuError,
        "read-only and writable in one dispatch",
      );
      // a disjoint view is refused as well: the usage scope is the whole buffer
      assertThrows(
        () =>
          be.dispatch(ADD_PLAIN, [view(x, 0, [256]), view(x, 512, [256]), y], {
            params: new Params().u32(256, 256),
            groups: [1, 1, 1],
          }),
        GpuError,
        "not a compatible usage list",
      );
      // two writable outputs over one range
      const qkv = be.tensor([3 * 8], "f32", "qkv");
      assertThrows(
        () =>
          be.dispatch(SPLIT, [view(x, 0, [8]), view(x, 4, [8]), y, qkv], {
            params: new Params().u32(8, 2, 1, 4),
            groups: [1, 1, 1],
          }),
        GpuError,
        "writable storage buffer binding aliasing",
      );
      // two writable outputs at aligned, disjoint ranges of one buffer are allowed
      be.dispatch(SPLIT, [view(x, 0, [8]), view(x, 64, [8]), y, qkv], {
        params: new Params().u32(8, 2, 1, 4),
        groups: [1, 1, 1],
      });
      await be.sync();
    } finally {
      be.free(x);
      be.free(y);
    }
  },
);

gpuTest(
  "in-place ops run a one-binding variant and match the separate-buffer result",
  async (be) => {
    const n = 197 * 64;
    const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.7));
    const asked: string[] = [];
    const original = GpuContext.prototype.pipeline;
    GpuContext.prototype.pipeline = function (kernel, constants = {}) {
      asked.push(kernel.label);
      return original.call(this, kernel, constants);
    };
    try {
      // two views of one buffer at an unaligned offset: out = a (in place), b in another buffer
      const buf = be.tensor([n + 37], "f32", "in-place");
      const x = view(buf, 37, [n]);
      const bt = be.tensor([n]);
      be.upload(bt, b);
      const host = new Float32Array(n + 37);
      host.set(a, 37);
      be.upload(buf, host);
      be.add({ out: x, a: x, b: bt });
      const got = await be.download(x);
      const cpu = new CpuBackend();
      const [ca, cb] = [cpu.tensor([n]), cpu.tensor([n])];
      cpu.upload(ca, a);
      cpu.upload(cb, b);
      cpu.add({ out: ca, a: ca, b: cb });
      assertEquals(got, await cpu.download(ca));
      be.free(buf);
      be.free(bt);
    } finally {
      GpuContext.prototype.pipeline = original;
    }
    assert(asked.includes("add[a=out]"), `pipelines asked for: ${asked}`);
  },
);

gpuTest(
  "every kernel variant of training steps (both students) and k-NN features passes the check",
  async (be) => {
    const asked = new Set<string>();
    const original = GpuContext.prototype.pipeline;
    GpuContext.prototype.pipeline = function (kernel, constants = {}) {
      asked.add(kernel.label);
      return original.call(this, kernel, constants);
    };
    try {
      for (const model of ["dbot", "symmetric"] as const) {
        const cfg = model === "dbot"
          ? resolvePretrain({ batch: 4, trainLimit: 4, knnTest: 4, seed: 3 })
          : resolvePretrain({ batch: 4, trainLimit: 4, knnTest: 4, seed: 3, ...SYMMETRIC });
        const s = PretrainSession.create(be, cfg);
        const losses = [(await s.step()).loss, (await s.step()).loss];
        // (the embedder reads a plain ViT encoder; the symmetric one has no pos_embed)
        if (model === "dbot") await s.features("test", 2);
        s.dispose();
        assert(losses.every(Number.isFinite), `${model} losses ${losses}`);
      }
    } finally {
      GpuContext.prototype.pipeline = original;
    }
    const inPlace = [...asked].filter((l) => l.includes("["));
    console.log(`  ${asked.size} kernels asked for, in place: ${inPlace.join(", ")}`);
    assert(asked.size > 20, `only ${asked.size} kernels`);
    assert(inPlace.length > 0, "a training step runs some op in place");
  },
);
