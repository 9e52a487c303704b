/**
 * Matmul on WebGPU: `out[M,N] (=|+=) epilogue(op(a)·op(b) + bias[N])`, `batch` times,
 * with the kernels of `kernels/matmul.ts` and a chooser between them.
 *
 * Variants: `simple` (4×4 outputs per invocation, no workgroup memory), `tiled64` (64×64 tile, 4×4 per
 * invocation), `tiled128` (128×128 tile, 8×8 per invocation), each optionally with
 * split-K (partial products into scratch, then a reduction that applies the
 * epilogue) for products with few output tiles and a long K (weight gradients).
 * Transposes, bias, GELU (+pre) and accumulate are override constants, so every
 * combination is its own cached pipeline with no runtime branches.
 *
 * @module
 */
import type { MatmulBufs, MatmulDims, Tensor } from "../../backend.ts";
import { type Dispatcher, linearGroups, Params } from "../dispatch.ts";
import type { KernelSpec } from "../context.ts";
import { checkDims, checkDtype, checkSize } from "../../checks.ts";
import {
  MATMUL_SIMPLE,
  MATMUL_SPLITK_REDUCE,
  MATMUL_TILED_128,
  MATMUL_TILED_64,
  TILE_128,
  TILE_64,
} from "../../../../kernels/matmul.ts";

/** Which kernel computes the product. */
export type MatmulKernel = "simple" | "tiled64" | "tiled128";

/** A kernel choice: the kernel and the number of K splits (1 = no split-K). */
export interface MatmulPlan {
  /** The kernel. */
  kernel: MatmulKernel;
  /** K splits; above 1 the epilogue runs in a second, reduction dispatch. */
  splits: number;
}

const SPECS: Record<MatmulKernel, { spec: KernelSpec; BM: number; BN: number; BK: number }> = {
  simple: {
    spec: { label: "matmul_simple", code: MATMUL_SIMPLE, storageBindings: 5 },
    BM: 64,
    BN: 64,
    BK: 16,
  },
  tiled64: {
    spec: { label: "matmul_tiled64", code: MATMUL_TILED_64, storageBindings: 5 },
    ...TILE_64,
  },
  tiled128: {
    spec: { label: "matmul_tiled128", code: MATMUL_TILED_128, storageBindings: 5 },
    ...TILE_128,
  },
};
const REDUCE: KernelSpec = {
  label: "matmul_splitk_reduce",
  code: MATMUL_SPLITK_REDUCE,
  storageBindings: 5,
};

const MAX_GROUPS = 65535;

/**
 * The kernel the backend uses for `dims` (a heuristic; `bench/h100_matmul.sh` times
 * every variant so it can be revised on real hardware):
 * - `simple` when a side is under 16 or the whole output is under one 64×64 tile, and for
 *   every shape with `tiled: false` (the backend passes it on Mesa's software OpenGL, where
 *   one tiled pipeline takes up to a minute to compile; see `Dispatcher.preferSimpleKernels`);
 * - `tiled128` when that still gives ≥ 256 workgroups (enough to fill a large GPU);
 * - otherwise `tiled64`, with split-K when there are under 512 workgroups (≈ 4 per SM of
 *   an H100) and K ≥ 2048 (e.g. a 768×768 weight gradient over 12608 rows): enough
 *   splits for ~1024 workgroups, at most 16, each ≥ 512 deep.
 */
export function chooseMatmul(dims: MatmulDims, { tiled = true } = {}): MatmulPlan {
  const { M, N, K } = dims;
  const batch = dims.batch ?? 1;
  if (!tiled || M < 16 || N < 16 || M * N < 64 * 64) return { kernel: "simple", splits: 1 };
  const tiles = (bm: number, bn: number) => Math.ceil(M / bm) * Math.ceil(N / bn) * batch;
  if (tiles(128, 128) >= 256) return { kernel: "tiled128", splits: 1 };
  const t64 = tiles(64, 64);
  let splits = 1;
  if (t64 < 512 && K >= 2048) {
    splits = Math.max(1, Math.min(16, Math.ceil(1024 / t64), Math.floor(K / 512)));
  }
  return { kernel: "tiled64", splits };
}

/** Options of {@link matmul} beyond the Backend contract (tests and benchmarks). */
export interface MatmulOptions {
  /** Force a kernel instead of {@link chooseMatmul}'s choice. */
  kernel?: MatmulKernel;
  /** Force the number of K splits (1 = none). */
  splits?: number;
}

/** Checks an optional operand is f32 with `size` elements. */
function checkOperand(name: string, t: Tensor | undefined, size: number): void {
  if (t === undefined) return;
  checkDtype("matmul", name, t, "f32");
  checkSize("matmul", name, t, size);
}

/** `t` advanced by `elems` elements (a view into the same storage). */
function shifted(t: Tensor, elems: number): Tensor {
  return elems === 0 ? t : { ...t, offset: t.offset + elems };
}

/** See `Backend.matmul`. */
export function matmul(
  be: Dispatcher,
  bufs: MatmulBufs,
  dims: MatmulDims,
  opts: MatmulOptions = {},
): void {
  const { M, N, K } = dims;
  const batch = dims.batch ?? 1;
  checkDims("matmul", { M, N, K, batch });
  const { out, a, b, bias, pre } = bufs;
  checkOperand("out", out, batch * M * N);
  checkOperand("a", a, batch * M * K);
  checkOperand("b", b, batch * K * N);
  checkOperand("bias", bias, N);
  checkOperand("pre", pre, batch * M * N);
  if (dims.gelu && dims.accumulate) {
    throw new RangeError(
      "Cannot run matmul with both gelu and accumulate: the contract excludes it",
    );
  }
  if (pre && !dims.gelu) {
    throw new RangeError("Cannot run matmul: pre is only written with gelu, which is off");
  }
  if (batch * M * N === 0) return;

  const plan = chooseMatmul(dims, { tiled: !be.preferSimpleKernels });
  const kernel = opts.kernel ?? plan.kernel;
  const { spec, BM, BN, BK } = SPECS[kernel];
  // A split covers a whole number of slabs; recount so that no split is empty.
  let splits = Math.max(1, Math.min(opts.splits ?? (opts.kernel ? 1 : plan.splits), K || 1));
  const kSplit = Math.ceil(Math.ceil(K / splits) / BK) * BK || BK;
  splits = Math.max(1, Math.ceil(K / kSplit));

  const gx = Math.ceil(N / BN);
  const gy = Math.ceil(M / BM);
  if (gx > MAX_GROUPS || gy > MAX_GROUPS || splits > MAX_GROUPS) {
    throw new RangeError(
      `Cannot run matmul for M=${M}, N=${N}: the grid [${gx}, ${gy}] exceeds ${MAX_GROUPS} workgroups`,
    );
  }
  const flags = {
    TRANS_A: dims.transA ? 1 : 0,
    TRANS_B: dims.transB ? 1 : 0,
  };
  const epilogue = {
    HAS_BIAS: bias ? 1 : 0,
    GELU: dims.gelu ? 1 : 0,
    HAS_PRE: pre ? 1 : 0,
    ACCUMULATE: dims.accumulate ? 1 : 0,
  };
  const none = { HAS_BIAS: 0, GELU: 0, HAS_PRE: 0, ACCUMULATE: 0 };
  const chunk = Math.floor(MAX_GROUPS / splits);
  const part = splits > 1
    ? be.scratch("matmul-splitk", Math.min(batch, chunk) * splits * M * N)
    : null;

  for (let b0 = 0; b0 < batch; b0 += chunk) {
    const nb = Math.min(chunk, batch - b0);
    const o = shifted(out, b0 * M * N);
    const pa = shifted(a, b0 * M * K);
    const pb = shifted(b, b0 * K * N);
    // unused slots get their own small buffers, never a live tensor (a read-only and a
    // writable binding of one buffer is not allowed in one dispatch)
    const unused = (slot: number) => be.scratch(`matmul.unused${slot}`, 1);
    const pp = pre ? shifted(pre, b0 * M * N) : unused(4);
    const params = () => new Params().u32(M, N, K, kSplit, splits, nb);
    if (!part) {
      be.dispatch(spec, [o, pa, pb, bias ?? unused(3), pp], {
        params: params(),
        groups: [gx, gy, nb],
        constants: { ...flags, ...epilogue },
      });
      continue;
    }
    // Raw partial products [nb, S, M, N], then Σ_s + epilogue into out.
    be.dispatch(spec, [part, pa, pb, unused(3), unused(4)], {
      params: params(),
      groups: [gx, gy, nb * splits],
      constants: { ...flags, ...none },
    });
    be.dispatch(REDUCE, [o, part, unused(2), bias ?? unused(3), pp], {
      params: params(),
      groups: linearGroups(nb * M * N, 256),
      constants: { TRANS_A: 0, TRANS_B: 0, ...epilogue },
    });
  }
}
