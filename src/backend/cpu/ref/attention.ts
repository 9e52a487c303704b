/**
 * Multi-head self-attention over the qkv projection, plain loops (the reference of
 * `Backend.attention`): per sample `b` and head `h`, with `q, k, v` read in place from
 * `qkv [B, N, 3, NH, HS]`,
 *
 *   logits[i, j] = q_i·k_j + table[index[i·N + j], h] / scale
 *   att[i, :]    = softmax(scale · logits[i, :])
 *   out[b, i, h·HS : (h+1)·HS] = Σ_j att[i, j]·v_j
 *
 * and its backward. Generic over f32/f64 (the finite-difference tests run it in f64).
 *
 * @module
 */
import type { AttentionBackwardBufs, AttentionBufs, AttentionDims } from "../../backend.ts";
import { checkAttention, checkAttentionBackward } from "../../checks.ts";
import type { FloatArray } from "./types.ts";

/**
 * `out [B, N, NH·HS]` and `att [B, NH, N, N]` from `qkv [B, N, 3·NH·HS]` (see the module).
 *
 * @example
 * ```ts
 * import { attentionForward } from "./attention.ts";
 * // one sample, two tokens, one head of size 1: q = [1, 0], k = [0, 1], v = [2, 4]
 * const qkv = new Float32Array([1, 0, 2, 0, 1, 4]);
 * const [out, att] = [new Float32Array(2), new Float32Array(4)];
 * attentionForward({ out, att, qkv }, { B: 1, N: 2, NH: 1, HS: 1, scale: 1 });
 * ```
 */
export function attentionForward(
  bufs: AttentionBufs<FloatArray, Int32Array>,
  dims: AttentionDims,
): void {
  checkAttention(bufs, dims);
  const { out, att, qkv, relTable, relIndex } = bufs;
  const { B, N, NH, HS, scale } = dims;
  const D = NH * HS;
  const row = new Float64Array(N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const a0 = (b * NH + h) * N * N; // att[b, h]
      for (let i = 0; i < N; i++) {
        const qi = (b * N + i) * 3 * D + h * HS; // q[b, i, h]
        let max = -Infinity;
        for (let j = 0; j < N; j++) {
          const kj = (b * N + j) * 3 * D + D + h * HS; // k[b, j, h]
          let dot = 0;
          for (let c = 0; c < HS; c++) dot += qkv[qi + c] * qkv[kj + c];
          if (relTable && relIndex) dot += relTable[relIndex[i * N + j] * NH + h] / scale;
          row[j] = scale * dot;
          if (row[j] > max) max = row[j];
        }
        let sum = 0;
        for (let j = 0; j < N; j++) {
          row[j] = Math.exp(row[j] - max);
          sum += row[j];
        }
        for (let j = 0; j < N; j++) att[a0 + i * N + j] = row[j] / sum;
      }
      for (let i = 0; i < N; i++) {
        const o = (b * N + i) * D + h * HS; // out[b, i, h]
        for (let c = 0; c < HS; c++) {
          let acc = 0;
          for (let j = 0; j < N; j++) {
            acc += att[a0 + i * N + j] * qkv[(b * N + j) * 3 * D + 2 * D + h * HS + c];
          }
          out[o + c] = acc;
        }
      }
    }
  }
}

/**
 * Backward of {@link attentionForward}: `dqkv` (assigned) and `dlogits`, the gradient of
 * the unscaled logits `q·kᵀ + bias/scale` (so a bias's gradient is `dlogits / scale`).
 */
export function attentionBackward(
  bufs: AttentionBackwardBufs<FloatArray>,
  dims: AttentionDims,
): void {
  checkAttentionBackward(bufs, dims);
  const { dqkv, dlogits, dout, qkv, att } = bufs;
  const { B, N, NH, HS, scale } = dims;
  const D = NH * HS;
  const datt = new Float64Array(N);
  const at = (b: number, n: number, part: number, h: number) =>
    (b * N + n) * 3 * D + part * D + h * HS;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const a0 = (b * NH + h) * N * N;
      // dv_j = Σ_i att[i, j]·dout_i
      for (let j = 0; j < N; j++) {
        for (let c = 0; c < HS; c++) {
          let acc = 0;
          for (let i = 0; i < N; i++) {
            acc += att[a0 + i * N + j] * dout[(b * N + i) * D + h * HS + c];
          }
          dqkv[at(b, j, 2, h) + c] = acc;
        }
      }
      // datt[i, j] = dout_i·v_j ; dlogits[i, j] = scale·att[i, j]·(datt[i, j] − Σ_j' datt·att)
      for (let i = 0; i < N; i++) {
        let dot = 0;
        for (let j = 0; j < N; j++) {
          let acc = 0;
          for (let c = 0; c < HS; c++) {
            acc += dout[(b * N + i) * D + h * HS + c] * qkv[at(b, j, 2, h) + c];
          }
          datt[j] = acc;
          dot += acc * att[a0 + i * N + j];
        }
        for (let j = 0; j < N; j++) {
          dlogits[a0 + i * N + j] = scale * att[a0 + i * N + j] * (datt[j] - dot);
        }
      }
      // dq_i = Σ_j dlogits[i, j]·k_j ; dk_j = Σ_i dlogits[i, j]·q_i
      for (let i = 0; i < N; i++) {
        for (let c = 0; c < HS; c++) {
          let dq = 0;
          let dk = 0;
          for (let j = 0; j < N; j++) {
            dq += dlogits[a0 + i * N + j] * qkv[at(b, j, 1, h) + c];
            dk += dlogits[a0 + j * N + i] * qkv[at(b, j, 0, h) + c];
          }
          dqkv[at(b, i, 0, h) + c] = dq;
          dqkv[at(b, i, 1, h) + c] = dk;
        }
      }
    }
  }
}
