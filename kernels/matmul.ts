/**
 * matmul: `out[M,N] (=|+=) epilogue(op(a)[M,K] · op(b)[K,N] + bias[N])`, `batch` times.
 *
 * Three kernels share one binding layout and one params struct:
 * - {@link matmulTiled}: the fast one. A `BM×BN` output tile per 256-invocation
 *   workgroup, `TM×TN` outputs per invocation in registers, `BK`-deep slabs of A
 *   and B staged in double-buffered workgroup memory (one barrier per slab; the
 *   next slab is fetched into registers while the current one is multiplied).
 * - {@link MATMUL_SIMPLE}: a 64×64 tile per workgroup, 4×4 outputs per invocation, no
 *   workgroup memory. For tiny and awkward shapes, as the benchmark baseline, and for
 *   every shape on Mesa's software OpenGL (see `chooseMatmul`).
 * - {@link MATMUL_SPLITK_REDUCE}: with split-K the tiled kernel writes raw partial
 *   products `[batch, S, M, N]` into scratch and this kernel sums the `S` splits
 *   and applies the epilogue.
 *
 * Bindings: 0 params {off_out, off_a, off_b, off_bias, off_pre, M, N, K, k_split, splits, batch};
 * 1 out, 2 a, 3 b, 4 bias (read-only), 5 pre; an unused slot is bound to a small dummy.
 * Storage: a `[M,K]` (`[K,M]` with TRANS_A), b `[K,N]` (`[N,K]` with TRANS_B),
 * out/pre `[M,N]`, all contiguous per batch (strides M·K, K·N, M·N); bias `[N]` shared.
 * Overrides: TRANS_A, TRANS_B, HAS_BIAS, GELU, HAS_PRE (pre gets z before GELU), ACCUMULATE.
 * Dispatch (tiled, simple): `[ceil(N/BN), ceil(M/BM), batch·splits]`; workgroup z = b·S + s
 * multiplies K range `[s·k_split, min(K, (s+1)·k_split))` (S = 1: the whole K).
 * Dispatch (reduce): linear grid over `batch·M·N`, 256-wide.
 *
 * @module
 */
import { ERF_WGSL } from "./erf.ts";

const HEADER = /* wgsl */ `
struct Params {
  off_out: u32, off_a: u32, off_b: u32, off_bias: u32, off_pre: u32,
  M: u32, N: u32, K: u32,
  k_split: u32,  // K range of one split (a multiple of the tile depth); = K without split-K
  splits: u32,   // S; workgroup z = batch·S + split
  batch: u32,    // matrices (the split-K reduction's range; the others take it from the grid)
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> pre: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override GELU: bool = false;
override HAS_PRE: bool = false;
override ACCUMULATE: bool = false;

${ERF_WGSL}

// op(a)[m, k] of the matrix starting at element base, zero outside [0,M)×[0,kEnd).
fn loadA(base: u32, m: u32, k: u32, kEnd: u32) -> f32 {
  if (m >= P.M || k >= kEnd) { return 0.0; }
  if (TRANS_A) { return a[base + k * P.M + m]; }
  return a[base + m * P.K + k];
}

// op(b)[k, n], zero outside [0,kEnd)×[0,N).
fn loadB(base: u32, k: u32, n: u32, kEnd: u32) -> f32 {
  if (n >= P.N || k >= kEnd) { return 0.0; }
  if (TRANS_B) { return b[base + n * P.K + k]; }
  return b[base + k * P.N + n];
}

// Writes one result: out[ob + m·N + n] (=|+=) gelu?(acc + bias[n]); pre gets z.
fn storeOut(ob: u32, m: u32, n: u32, acc: f32) {
  if (m >= P.M || n >= P.N) { return; }
  let i = ob + m * P.N + n;
  var z = acc;
  if (HAS_BIAS) { z += bias[P.off_bias + n]; }
  if (GELU) {
    if (HAS_PRE) { pre[P.off_pre + i - P.off_out] = z; }
    z = gelu_f32(z);
  }
  if (ACCUMULATE) { z += out[i]; }
  out[i] = z;
}
`;

/** Tile shape of {@link matmulTiled}. */
export interface TileConfig {
  /** Output rows per workgroup (a multiple of 4·16/… so that BM/TM = 16). */
  BM: number;
  /** Output columns per workgroup (BN/TN = 16). */
  BN: number;
  /** K depth of one workgroup-memory slab. */
  BK: number;
  /** Rows per invocation (multiple of 4). */
  TM: number;
  /** Columns per invocation (multiple of 4). */
  TN: number;
}

/**
 * WGSL of the register-tiled kernel for one tile shape (16×16 = 256 invocations;
 * BM = 16·TM, BN = 16·TN; workgroup memory 2·BK·(BM+BN)·4 bytes ≤ 16 KiB).
 */
export function matmulTiled(cfg: TileConfig): string {
  const { BM, BN, BK, TM, TN } = cfg;
  if (BM !== 16 * TM || BN !== 16 * TN || TM % 4 || TN % 4) {
    throw new RangeError(`Cannot build a tiled matmul for ${JSON.stringify(cfg)}`);
  }
  const BM4 = BM / 4, BN4 = BN / 4, TM4 = TM / 4, TN4 = TN / 4;
  if ((BK * BM4) % 256 || (BK * BN4) % 256 || 2 * BK * (BM + BN) * 4 > 16384) {
    throw new RangeError(`Cannot build a tiled matmul for ${JSON.stringify(cfg)}: bad slab size`);
  }
  const LA = (BK * BM4) / 256; // vec4 groups of A each invocation stages per slab
  const LB = (BK * BN4) / 256;
  const xyzw = "xyzw";
  const acc: string[] = [];
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN4; j++) acc.push(`c${i}_${j}`);

  // The BK-deep inner product, fully unrolled: per k one vec4 read of A per 4 rows and
  // of B per 4 columns from workgroup memory, then TM·TN/4 vec4 FMAs. No bounds checks.
  // Invocation (tx, ty) owns rows ty·4 + 64·i4 + {0..3} and columns tx·4 + 64·j4 + {0..3}:
  // the 16 invocations of a row read 16 consecutive vec4s (no bank conflicts with TN = 8,
  // where contiguous 8-column blocks would make a stride-2 pattern).
  const inner: string[] = [];
  for (let kk = 0; kk < BK; kk++) {
    for (let i = 0; i < TM4; i++) inner.push(`let a${kk}_${i} = As[sa + ${kk * BM4 + 16 * i}u];`);
    for (let j = 0; j < TN4; j++) inner.push(`let b${kk}_${j} = Bs[sb + ${kk * BN4 + 16 * j}u];`);
    for (let i = 0; i < TM; i++) {
      for (let j = 0; j < TN4; j++) {
        inner.push(
          `c${i}_${j} = fma(vec4f(a${kk}_${i >> 2}.${xyzw[i & 3]}), b${kk}_${j}, c${i}_${j});`,
        );
      }
    }
  }

  const stores: string[] = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN4; j++) {
      for (let c = 0; c < 4; c++) {
        const m = 64 * (i >> 2) + (i & 3);
        stores.push(`storeOut(ob, m0 + ${m}u, n0 + ${64 * j + c}u, c${i}_${j}.${xyzw[c]});`);
      }
    }
  }

  return /* wgsl */ `
${HEADER}
const BM = ${BM}u;
const BN = ${BN}u;
const BK = ${BK}u;

// Slabs stored k-major as vec4 along m (A) and n (B): As[buf][kk][m/4], Bs[buf][kk][n/4].
// Two buffers: slab t+1 is written while slab t is read, so one barrier per slab suffices.
var<workgroup> As: array<vec4f, ${2 * BK * BM4}>;
var<workgroup> Bs: array<vec4f, ${2 * BK * BN4}>;

// Staging: each invocation fetches ${LA} (A) and ${LB} (B) vec4 groups of 4 consecutive
// m (n) at one k. Group g maps so that neighbouring invocations read neighbouring
// addresses: along k when k is the contiguous dimension in memory, along m (n) otherwise.
fn fetchA(base: u32, g: u32, m0: u32, k0: u32, kEnd: u32) -> vec4f {
  var i4: u32; var kk: u32;
  if (TRANS_A) { i4 = g % ${BM4}u; kk = g / ${BM4}u; } else { kk = g % BK; i4 = g / BK; }
  let m = m0 + 4u * i4;
  let k = k0 + kk;
  return vec4f(loadA(base, m, k, kEnd), loadA(base, m + 1u, k, kEnd),
               loadA(base, m + 2u, k, kEnd), loadA(base, m + 3u, k, kEnd));
}
fn slotA(g: u32) -> u32 {
  if (TRANS_A) { return g; }  // kk·BM/4 + i4 with i4 = g % (BM/4)
  return (g % BK) * ${BM4}u + g / BK;
}
fn fetchB(base: u32, g: u32, n0: u32, k0: u32, kEnd: u32) -> vec4f {
  var j4: u32; var kk: u32;
  if (TRANS_B) { kk = g % BK; j4 = g / BK; } else { j4 = g % ${BN4}u; kk = g / ${BN4}u; }
  let n = n0 + 4u * j4;
  let k = k0 + kk;
  return vec4f(loadB(base, k, n, kEnd), loadB(base, k, n + 1u, kEnd),
               loadB(base, k, n + 2u, kEnd), loadB(base, k, n + 3u, kEnd));
}
fn slotB(g: u32) -> u32 {
  if (TRANS_B) { return (g % BK) * ${BN4}u + g / BK; }
  return g;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let z = wid.z;                 // batch·S + split
  let batch = z / P.splits;
  let split = z % P.splits;
  let tileM = wid.y * BM;
  let tileN = wid.x * BN;
  let baseA = P.off_a + batch * P.M * P.K;
  let baseB = P.off_b + batch * P.K * P.N;
  let kBegin = split * P.k_split;
  let kEnd = min(P.K, kBegin + P.k_split);
  let nt = (kEnd - kBegin + BK - 1u) / BK;

  ${acc.map((c) => `var ${c} = vec4f(0.0);`).join("\n  ")}
  ${Array.from({ length: LA }, (_, r) => `var ra${r}: vec4f;`).join(" ")}
  ${Array.from({ length: LB }, (_, r) => `var rb${r}: vec4f;`).join(" ")}

  // Prologue: slab 0 into buffer 0.
  ${
    Array.from(
      { length: LA },
      (_, r) =>
        `As[slotA(li + ${256 * r}u)] = fetchA(baseA, li + ${256 * r}u, tileM, kBegin, kEnd);`,
    ).join("\n  ")
  }
  ${
    Array.from(
      { length: LB },
      (_, r) =>
        `Bs[slotB(li + ${256 * r}u)] = fetchB(baseB, li + ${256 * r}u, tileN, kBegin, kEnd);`,
    ).join("\n  ")
  }
  workgroupBarrier();

  for (var t = 0u; t < nt; t++) {
    let cur = t & 1u;
    let more = t + 1u < nt;
    if (more) {
      let k0 = kBegin + (t + 1u) * BK;
      ${
    Array.from(
      { length: LA },
      (_, r) => `ra${r} = fetchA(baseA, li + ${256 * r}u, tileM, k0, kEnd);`,
    )
      .join("\n      ")
  }
      ${
    Array.from(
      { length: LB },
      (_, r) => `rb${r} = fetchB(baseB, li + ${256 * r}u, tileN, k0, kEnd);`,
    )
      .join("\n      ")
  }
    }
    let sa = cur * ${BK * BM4}u + lid.y;
    let sb = cur * ${BK * BN4}u + lid.x;
    ${inner.join("\n    ")}
    if (more) {
      let nxt = (1u - cur);
      ${
    Array.from(
      { length: LA },
      (_, r) => `As[nxt * ${BK * BM4}u + slotA(li + ${256 * r}u)] = ra${r};`,
    )
      .join("\n      ")
  }
      ${
    Array.from(
      { length: LB },
      (_, r) => `Bs[nxt * ${BK * BN4}u + slotB(li + ${256 * r}u)] = rb${r};`,
    )
      .join("\n      ")
  }
    }
    workgroupBarrier();
  }

  let ob = P.off_out + z * P.M * P.N;
  let m0 = tileM + lid.y * 4u;
  let n0 = tileN + lid.x * 4u;
  ${stores.join("\n  ")}
}
`;
}

/** 64×64 output tile, 4×4 per invocation, BK 16 (16 KiB of workgroup memory). */
export const TILE_64: TileConfig = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
/** 128×128 output tile, 8×8 per invocation, BK 8 (16 KiB of workgroup memory). */
export const TILE_128: TileConfig = { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 };

/** Tiled kernel with {@link TILE_64}. */
export const MATMUL_TILED_64: string = matmulTiled(TILE_64);
/** Tiled kernel with {@link TILE_128}. */
export const MATMUL_TILED_128: string = matmulTiled(TILE_128);

/**
 * A 64×64 output tile per 16×16 workgroup, 4×4 outputs per invocation in registers, A and B
 * read straight from storage (4 + 4 loads per k for 16 FMAs): the kernel for outputs under
 * one 64×64 tile or with a side under 16, where staging tiles in workgroup memory buys
 * little, and for every shape on Mesa's software OpenGL. Without workgroup memory it needs
 * no barrier, which keeps it cheap to compile everywhere: on llvmpipe a kernel with a
 * barrier is compiled as an LLVM coroutine in time quadratic in its size (the earlier
 * simple kernel, one output per invocation over 2 × 256 f32 of workgroup tiles, took ~50×
 * longer to compile on the GL path). On llvmpipe it also runs faster than the tiled kernels
 * (`bench/webgpu_compile.ts` has both figures). It sums k in order with `fma`, as the tiled
 * kernels do: the same bits per output.
 */
export const MATMUL_SIMPLE: string = /* wgsl */ `
${HEADER}
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let z = wid.z;
  let batch = z / P.splits;
  let split = z % P.splits;
  let baseA = P.off_a + batch * P.M * P.K;
  let baseB = P.off_b + batch * P.K * P.N;
  let kBegin = split * P.k_split;
  let kEnd = min(P.K, kBegin + P.k_split);
  // This invocation's outputs: rows m0 + 16·i, columns n0 + 16·j (i, j < 4); c<i>[j].
  let m0 = wid.y * 64u + lid.y;
  let n0 = wid.x * 64u + lid.x;
  if (m0 >= P.M || n0 >= P.N) { return; }
  var c0 = vec4f(0.0); var c1 = vec4f(0.0); var c2 = vec4f(0.0); var c3 = vec4f(0.0);
  for (var k = kBegin; k < kEnd; k++) {
    let av = vec4f(loadA(baseA, m0, k, kEnd), loadA(baseA, m0 + 16u, k, kEnd),
                   loadA(baseA, m0 + 32u, k, kEnd), loadA(baseA, m0 + 48u, k, kEnd));
    let bv = vec4f(loadB(baseB, k, n0, kEnd), loadB(baseB, k, n0 + 16u, kEnd),
                   loadB(baseB, k, n0 + 32u, kEnd), loadB(baseB, k, n0 + 48u, kEnd));
    c0 = fma(vec4f(av.x), bv, c0);
    c1 = fma(vec4f(av.y), bv, c1);
    c2 = fma(vec4f(av.z), bv, c2);
    c3 = fma(vec4f(av.w), bv, c3);
  }
  let ob = P.off_out + z * P.M * P.N;
  for (var j = 0u; j < 4u; j++) {
    storeOut(ob, m0, n0 + 16u * j, c0[j]);
    storeOut(ob, m0 + 16u, n0 + 16u * j, c1[j]);
    storeOut(ob, m0 + 32u, n0 + 16u * j, c2[j]);
    storeOut(ob, m0 + 48u, n0 + 16u * j, c3[j]);
  }
}
`;

/**
 * Split-K reduction: `out[b,m,n] (=|+=) epilogue(Σ_s part[b,s,m,n] + bias[n])`.
 * Binds like the others with `a` = the partials (offset `off_a`, `splits` of them);
 * `b` is unused. Sums in split order (deterministic).
 */
export const MATMUL_SPLITK_REDUCE: string = /* wgsl */ `
${HEADER}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let mn = P.M * P.N;
  if (i >= P.batch * mn) { return; }
  let bt = i / mn;
  let r = i % mn;
  var acc = 0.0;
  for (var s = 0u; s < P.splits; s++) {
    acc += a[P.off_a + (bt * P.splits + s) * mn + r];
  }
  storeOut(P.off_out + bt * mn, r / P.N, r % P.N, acc);
}
`;
