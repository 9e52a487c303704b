/**
 * LayerNorm forward/backward and per-row standardisation.
 *
 * Dispatch contract as in `src/backend/webgpu/backend.ts` (binding 0 = uniform params whose
 * first fields are the bound tensors' element offsets; bindings 1..n storage, inputs `read`).
 * Every kernel has an override `WG` (64, 128 or 256, a power of two): the workgroup size and
 * twice the length of the workgroup reduction array, chosen by the host from `C`.
 *
 * | kernel               | bindings                                    | params (after offsets)           | dispatch                         |
 * | -------------------- | ------------------------------------------- | -------------------------------- | -------------------------------- |
 * | `LAYERNORM`          | out, mean, rstd, inp, weight, bias          | rows, C, eps                     | one workgroup per row (2-D grid) |
 * | `STANDARDIZE_ROWS`   | out, inp                                    | rows, C, eps                     | one workgroup per row (2-D grid) |
 * | `LAYERNORM_BACKWARD` | dinp, part, dout, inp, weight, mean, rstd   | rows, C, rowsPer, accumulate     | `[G, ceil(C / (WG·8)), 1]`       |
 *
 * `LAYERNORM_BACKWARD` writes `dinp` and per-row-group partial sums `part [G, 2C]`
 * (`Σ norm·dout` then `Σ dout` over the group's rows); `COLSUM_FINAL` from `elementwise.ts`
 * then adds them into `dweight` / `dbias` (no float atomics in Deno's WebGPU).
 *
 * @module
 */
import { foldedTree } from "./common.ts";

/** Workgroup tree reduction of a `vec2f` (two sums per barrier round; see `foldedTree`). */
const BLOCK_SUM2 = /* wgsl */ `
override WG: u32 = 256u;
var<workgroup> red: array<vec2f, WG / 2u>;

// Called from uniform control flow by every invocation of the workgroup. The tree order
// (pairs WG/2 apart) sums ~C/WG values per lane first, so f32 error grows ~log2(WG), not C.
fn block_sum2(v: vec2f, tid: u32) -> vec2f {
  ${
  foldedTree({
    red: "red",
    lane: "tid",
    value: "v",
    half: "(WG / 2u)",
    combine: (a, b) => `${a} + ${b}`,
  })
}
  let total = red[0];
  workgroupBarrier(); // red is reused by the next call
  return total;
}
`;

/**
 * LayerNorm forward, one workgroup per row. Two-pass statistics: the mean first, then
 * `Σ (x − mean)²` — the one-pass `E[x²] − E[x]²` cancels catastrophically in f32 when
 * |mean| ≫ std (the residual stream). Biased variance; `rstd = 1/sqrt(var + eps)`.
 * `out` may alias `inp`: every invocation only reads and writes its own columns.
 */
export const LAYERNORM: string = /* wgsl */ `
struct Params {
  off_out: u32, off_mean: u32, off_rstd: u32, off_inp: u32, off_w: u32, off_b: u32,
  rows: u32, C: u32, eps: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> inp: array<f32>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
${BLOCK_SUM2}
@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= P.rows) { return; } // uniform: the whole workgroup leaves together
  let C = P.C;
  let x0 = P.off_inp + row * C;
  let o0 = P.off_out + row * C;
  var s = 0.0;
  for (var c = tid; c < C; c += WG) { s += inp[x0 + c]; }
  let m = block_sum2(vec2f(s, 0.0), tid).x / f32(C);
  var v = 0.0;
  for (var c = tid; c < C; c += WG) {
    let d = inp[x0 + c] - m;
    v += d * d;
  }
  let variance = block_sum2(vec2f(v, 0.0), tid).x / f32(C);
  let r = 1.0 / sqrt(variance + P.eps);
  for (var c = tid; c < C; c += WG) {
    out[o0 + c] = (inp[x0 + c] - m) * r * weight[P.off_w + c] + bias[P.off_b + c];
  }
  if (tid == 0u) {
    mean[P.off_mean + row] = m;
    rstd[P.off_rstd + row] = r;
  }
}
`;

/**
 * Per-row standardisation (teacher targets): `(x − mean)/sqrt(var + eps)` with the UNBIASED
 * variance ÷(C−1) (eps inside the sqrt), two-pass like {@link LAYERNORM}. `C = 1` has no
 * unbiased variance; the host rejects it and the divisor is clamped to 1 here regardless.
 */
export const STANDARDIZE_ROWS: string = /* wgsl */ `
struct Params { off_out: u32, off_inp: u32, rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
${BLOCK_SUM2}
@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) tid: u32,
) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= P.rows) { return; }
  let C = P.C;
  let x0 = P.off_inp + row * C;
  let o0 = P.off_out + row * C;
  var s = 0.0;
  for (var c = tid; c < C; c += WG) { s += inp[x0 + c]; }
  let m = block_sum2(vec2f(s, 0.0), tid).x / f32(C);
  var v = 0.0;
  for (var c = tid; c < C; c += WG) {
    let d = inp[x0 + c] - m;
    v += d * d;
  }
  let variance = block_sum2(vec2f(v, 0.0), tid).x / f32(max(C, 2u) - 1u);
  let r = 1.0 / sqrt(variance + P.eps);
  for (var c = tid; c < C; c += WG) { out[o0 + c] = (inp[x0 + c] - m) * r; }
}
`;

/**
 * LayerNorm backward over a group of `rowsPer` rows (grid x = group g) and a block of
 * `WG·8` columns (grid y; one block unless C > 8·WG). Per row, with `norm = (x − mean)·rstd`
 * and `dnorm = weight·dout`:
 *   dinp = rstd·(dnorm − mean_C(dnorm) − norm·mean_C(dnorm·norm))   (= or += with accumulate)
 * The two row means need the whole row, so a block recomputes them over all C. Each
 * invocation owns at most 8 columns of the block and keeps their `Σ norm·dout` and `Σ dout`
 * in registers across the group's rows, then writes them to `part[g, c]` / `part[g, C + c]`.
 * `dinp` must not alias `dout` or `inp` (other column blocks still read the row).
 */
export const LAYERNORM_BACKWARD: string = /* wgsl */ `
struct Params {
  off_dinp: u32, off_part: u32, off_dout: u32, off_inp: u32, off_w: u32, off_mean: u32,
  off_rstd: u32, rows: u32, C: u32, rowsPer: u32, accumulate: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> inp: array<f32>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;
@group(0) @binding(6) var<storage, read> mean: array<f32>;
@group(0) @binding(7) var<storage, read> rstd: array<f32>;
${BLOCK_SUM2}
const CPT: u32 = 8u; // columns per invocation inside one column block

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let C = P.C;
  let g = wid.x;
  let c0 = wid.y * WG * CPT + tid; // this invocation's columns: c0 + k·WG, k < CPT
  let r0 = g * P.rowsPer;
  let r1 = min(r0 + P.rowsPer, P.rows);
  var dw: array<f32, CPT>;
  var db: array<f32, CPT>;
  for (var r = r0; r < r1; r++) {
    let m = mean[P.off_mean + r];
    let s = rstd[P.off_rstd + r];
    let x0 = P.off_inp + r * C;
    let d0 = P.off_dout + r * C;
    var acc = vec2f(0.0);
    for (var c = tid; c < C; c += WG) {
      let dn = weight[P.off_w + c] * dout[d0 + c];
      acc += vec2f(dn, dn * (inp[x0 + c] - m) * s);
    }
    let means = block_sum2(acc, tid) / f32(C);
    let o0 = P.off_dinp + r * C;
    for (var k = 0u; k < CPT; k++) {
      let c = c0 + k * WG;
      if (c < C) {
        let dy = dout[d0 + c];
        let norm = (inp[x0 + c] - m) * s;
        let gi = (weight[P.off_w + c] * dy - means.x - norm * means.y) * s;
        if (P.accumulate != 0u) { dinp[o0 + c] += gi; } else { dinp[o0 + c] = gi; }
        dw[k] += norm * dy;
        db[k] += dy;
      }
    }
  }
  let p0 = P.off_part + g * 2u * C;
  for (var k = 0u; k < CPT; k++) {
    let c = c0 + k * WG;
    if (c < C) {
      part[p0 + c] = dw[k];
      part[p0 + C + c] = db[k];
    }
  }
}
`;
