/**
 * Gradient checks of the CPU ops: each case runs an op's backward in f64 on a tiny shape
 * and returns the analytic gradients next to central finite differences of a scalar loss
 * (`Σ dout ⊙ out` for ops, the loss itself for losses). Used by `cpu_ops_test.ts`, which
 * asserts each case and prints the max error per op.
 *
 * @module
 */
import { attentionBackward, attentionForward } from "../src/backend/cpu/ref/attention.ts";
import { biasGrad } from "../src/backend/cpu/ref/bias_grad.ts";
import { cosineLoss } from "../src/backend/cpu/ref/cosine_loss.ts";
import { crossEntropyLoss } from "../src/backend/cpu/ref/cross_entropy.ts";
import { geluBackward, geluForward } from "../src/backend/cpu/ref/gelu.ts";
import {
  mergeHeadsBackward,
  mergeHeadsForward,
  splitHeadsBackward,
  splitHeadsForward,
} from "../src/backend/cpu/ref/heads.ts";
import { layernormBackward, layernormForward } from "../src/backend/cpu/ref/layernorm.ts";
import { matmulForward } from "../src/backend/cpu/ref/matmul.ts";
import { gatherRowsBackward, gatherRowsForward, scaleRows } from "../src/backend/cpu/ref/rows.ts";
import { smoothL1Loss } from "../src/backend/cpu/ref/smooth_l1.ts";
import { softmaxBackward, softmaxForward } from "../src/backend/cpu/ref/softmax.ts";
import { Rng } from "../src/util/rng.ts";
import { dot, fdGrad, type GradPair, randArray } from "./fd.ts";

/** One gradient check of `op` on the shape `shape`. */
export interface GradCase {
  /** Report row: the backward or composition checked. */
  op: string;
  /** Function under test, for the test name. */
  symbol: string;
  shape: string;
  run(): GradPair[];
}

const F64 = Float64Array;

function layernormCase(rows: number, C: number, accumulate: boolean): GradCase {
  return {
    op: "layernormBackward",
    symbol: "layernormBackward",
    shape: `rows=${rows}, C=${C}${accumulate ? ", accumulate" : ""}`,
    run() {
      const rng = new Rng(rows * 100 + C);
      const inp = randArray(rng, rows * C, -2, 2);
      const weight = randArray(rng, C, 0.5, 1.5);
      const bias = randArray(rng, C);
      const dout = randArray(rng, rows * C);
      const eps = 1e-5;
      const out = new F64(rows * C);
      const mean = new F64(rows);
      const rstd = new F64(rows);
      const loss = (): number => {
        layernormForward({ out, mean, rstd, inp, weight, bias }, { rows, C, eps });
        return dot(out, dout);
      };
      loss();
      // Start from nonzero buffers: parameter grads must accumulate, dinp only with `accumulate`.
      const dinp0 = randArray(rng, rows * C);
      const dweight0 = randArray(rng, C);
      const dbias0 = randArray(rng, C);
      const dinp = dinp0.slice();
      const dweight = dweight0.slice();
      const dbias = dbias0.slice();
      layernormBackward(
        { dinp, dweight, dbias, dout, inp, weight, mean, rstd },
        { rows, C, accumulate },
      );
      for (let i = 0; i < C; i++) {
        dweight[i] -= dweight0[i];
        dbias[i] -= dbias0[i];
      }
      if (accumulate) { for (let i = 0; i < dinp.length; i++) dinp[i] -= dinp0[i]; }
      return [
        { what: "dinp", analytic: dinp, numeric: fdGrad(loss, inp) },
        { what: "dweight", analytic: dweight, numeric: fdGrad(loss, weight) },
        { what: "dbias", analytic: dbias, numeric: fdGrad(loss, bias) },
      ];
    },
  };
}

function geluCase(n: number): GradCase {
  return {
    op: "geluBackward",
    symbol: "geluBackward",
    shape: `n=${n}`,
    run() {
      const rng = new Rng(7 + n);
      const inp = randArray(rng, n, -4, 4);
      const dout = randArray(rng, n);
      const out = new F64(n);
      const loss = (): number => {
        geluForward({ out, inp });
        return dot(out, dout);
      };
      const dinp = new F64(n);
      geluBackward({ dinp, dout, inp });
      return [{ what: "dinp", analytic: dinp, numeric: fdGrad(loss, inp) }];
    },
  };
}

function softmaxCase(rows: number, C: number, scale: number): GradCase {
  return {
    op: "softmaxBackward",
    symbol: "softmaxBackward",
    shape: `rows=${rows}, C=${C}, scale=${scale}`,
    run() {
      const rng = new Rng(rows * 31 + C);
      const inp = randArray(rng, rows * C, -3, 3);
      const dout = randArray(rng, rows * C);
      const out = new F64(rows * C);
      const loss = (): number => {
        softmaxForward({ out, inp }, { rows, C, scale });
        return dot(out, dout);
      };
      loss();
      const dinp = new F64(rows * C);
      softmaxBackward({ dinp, dout, out }, { rows, C, scale });
      return [{ what: "dinp", analytic: dinp, numeric: fdGrad(loss, inp) }];
    },
  };
}

function splitHeadsCase(B: number, N: number, NH: number, HS: number): GradCase {
  return {
    op: "splitHeadsBackward",
    symbol: "splitHeadsBackward",
    shape: `B=${B}, N=${N}, NH=${NH}, HS=${HS}`,
    run() {
      const rng = new Rng(B + N * 10 + NH * 100 + HS * 1000);
      const n = B * N * NH * HS;
      const qkv = randArray(rng, 3 * n);
      const [dq, dk, dv] = [randArray(rng, n), randArray(rng, n), randArray(rng, n)];
      const [q, k, v] = [new F64(n), new F64(n), new F64(n)];
      const loss = (): number => {
        splitHeadsForward({ q, k, v, qkv }, { B, N, NH, HS });
        return dot(q, dq) + dot(k, dk) + dot(v, dv);
      };
      const dqkv = new F64(3 * n).fill(NaN); // assign: every element must be written
      splitHeadsBackward({ dqkv, dq, dk, dv }, { B, N, NH, HS });
      return [{ what: "dqkv", analytic: dqkv, numeric: fdGrad(loss, qkv) }];
    },
  };
}

function mergeHeadsCase(B: number, N: number, NH: number, HS: number): GradCase {
  return {
    op: "mergeHeadsBackward",
    symbol: "mergeHeadsBackward",
    shape: `B=${B}, N=${N}, NH=${NH}, HS=${HS}`,
    run() {
      const rng = new Rng(5 + B + N * 10 + NH * 100 + HS * 1000);
      const n = B * N * NH * HS;
      const inp = randArray(rng, n);
      const dout = randArray(rng, n);
      const out = new F64(n);
      const loss = (): number => {
        mergeHeadsForward({ out, inp }, { B, N, NH, HS });
        return dot(out, dout);
      };
      const dinp = new F64(n).fill(NaN);
      mergeHeadsBackward({ dinp, dout }, { B, N, NH, HS });
      return [{ what: "dinp", analytic: dinp, numeric: fdGrad(loss, inp) }];
    },
  };
}

function gatherRowsCase(withFill: boolean): GradCase {
  // 7 input rows of C = 3; 5 output rows, two of them mask tokens (index −1)
  const C = 3;
  const inpRows = 7;
  const index = new Int32Array([4, -1, 0, 6, -1]);
  const rows = index.length;
  return {
    op: "gatherRowsBackward",
    symbol: "gatherRowsBackward",
    shape: `rows=${rows} of ${inpRows}, C=${C}${withFill ? ", fill" : ""}`,
    run() {
      const rng = new Rng(withFill ? 11 : 12);
      const inp = randArray(rng, inpRows * C);
      const fill = withFill ? randArray(rng, C) : undefined;
      const dout = randArray(rng, rows * C);
      const out = new F64(rows * C);
      const loss = (): number => {
        gatherRowsForward({ out, inp, index, fill }, { rows, C });
        return dot(out, dout);
      };
      const dinp = new F64(inpRows * C).fill(NaN); // rows no index names must become 0
      const dfill0 = randArray(rng, C);
      const dfill = withFill ? dfill0.slice() : undefined;
      gatherRowsBackward({ dinp, dfill, dout, index }, { rows, C });
      const pairs: GradPair[] = [{ what: "dinp", analytic: dinp, numeric: fdGrad(loss, inp) }];
      if (dfill && fill) {
        for (let c = 0; c < C; c++) dfill[c] -= dfill0[c];
        pairs.push({ what: "dfill", analytic: dfill, numeric: fdGrad(loss, fill) });
      }
      return pairs;
    },
  };
}

function scaleRowsCase(rows: number, C: number): GradCase {
  return {
    op: "scaleRows",
    symbol: "scaleRows",
    shape: `rows=${rows}, C=${C}`,
    run() {
      const rng = new Rng(rows + C);
      const inp = randArray(rng, rows * C);
      const scale = new F64(rows).map((_, r) => (r % 2 === 1 ? 0 : 1 / 0.9));
      const dout = randArray(rng, rows * C);
      const out = new F64(rows * C);
      const loss = (): number => {
        scaleRows({ out, inp, scale }, { rows, C });
        return dot(out, dout);
      };
      const dinp = new F64(rows * C);
      scaleRows({ out: dinp, inp: dout, scale }, { rows, C }); // its own backward
      return [{ what: "dinp", analytic: dinp, numeric: fdGrad(loss, inp) }];
    },
  };
}

/**
 * A Linear layer `y = epilogue(x·Wᵀ + b)` differentiated with matmul itself, as the model
 * does: `dz = dy ⊙ gelu'(pre)`, `dx = dz·W`, `dW += dzᵀ·x`, `db += Σ_r dz` (biasGrad).
 */
function linearCase(M: number, K: number, N: number, gelu: boolean): GradCase {
  return {
    op: gelu ? "matmul+gelu (Linear backward)" : "matmul+biasGrad (Linear backward)",
    symbol: "matmulForward",
    shape: `a Linear${gelu ? " with GELU" : ""}, M=${M}, K=${K}, N=${N}`,
    run() {
      const rng = new Rng(M * 7 + K * 11 + N * 13 + (gelu ? 1 : 0));
      const x = randArray(rng, M * K);
      const w = randArray(rng, N * K); // [out, in]
      const b = randArray(rng, N);
      const dy = randArray(rng, M * N);
      const y = new F64(M * N);
      const pre = new F64(M * N);
      const loss = (): number => {
        matmulForward(
          { out: y, a: x, b: w, bias: b, pre: gelu ? pre : undefined },
          { M, N, K, transB: true, gelu },
        );
        return dot(y, dy);
      };
      loss();
      const dz = dy.slice();
      if (gelu) geluBackward({ dinp: dz, dout: dy, inp: pre });
      const dx = new F64(M * K);
      matmulForward({ out: dx, a: dz, b: w }, { M, N: K, K: N }); // dx[M,K] = dz[M,N]·W[N,K]
      const dw0 = randArray(rng, N * K);
      const dw = dw0.slice();
      // dW[N,K] += dzᵀ[N,M]·x[M,K]
      matmulForward({ out: dw, a: dz, b: x }, { M: N, N: K, K: M, transA: true, accumulate: true });
      for (let i = 0; i < dw.length; i++) dw[i] -= dw0[i];
      const db = new F64(N);
      biasGrad({ dbias: db, dout: dz }, { rows: M, C: N });
      return [
        { what: "dx", analytic: dx, numeric: fdGrad(loss, x) },
        { what: "dW", analytic: dw, numeric: fdGrad(loss, w) },
        { what: "db", analytic: db, numeric: fdGrad(loss, b) },
      ];
    },
  };
}

/** Batched attention scores `S = q·kᵀ` per head, differentiated with batched matmuls. */
function attentionScoresCase(batch: number, N: number, HS: number): GradCase {
  return {
    op: "matmul batched (q·kᵀ backward)",
    symbol: "matmulForward",
    shape: `batched q·kᵀ, batch=${batch}, N=${N}, HS=${HS}`,
    run() {
      const rng = new Rng(batch * 3 + N * 5 + HS);
      const q = randArray(rng, batch * N * HS);
      const k = randArray(rng, batch * N * HS);
      const ds = randArray(rng, batch * N * N);
      const s = new F64(batch * N * N);
      const loss = (): number => {
        matmulForward({ out: s, a: q, b: k }, { M: N, N, K: HS, transB: true, batch });
        return dot(s, ds);
      };
      const dq = new F64(batch * N * HS);
      matmulForward({ out: dq, a: ds, b: k }, { M: N, N: HS, K: N, batch }); // dS·k
      const dk = new F64(batch * N * HS);
      matmulForward({ out: dk, a: ds, b: q }, { M: N, N: HS, K: N, transA: true, batch }); // dSᵀ·q
      return [
        { what: "dq", analytic: dq, numeric: fdGrad(loss, q) },
        { what: "dk", analytic: dk, numeric: fdGrad(loss, k) },
      ];
    },
  };
}

type LossFn = (
  b: {
    loss: Float64Array;
    dinp: Float64Array;
    inp: Float64Array;
    target: Float64Array;
    weight: Float64Array;
  },
  d: { rows: number; C: number },
) => void;

function weightedLossCase(op: string, fn: LossFn, rows: number, C: number, seed: number): GradCase {
  return {
    op,
    symbol: op.split(" ")[0],
    shape: `rows=${rows}, C=${C}, weights with zeros`,
    run() {
      const rng = new Rng(seed);
      const inp = randArray(rng, rows * C, -3, 3);
      const target = randArray(rng, rows * C, -3, 3);
      // weights: zeros (visible patches), ones, and a fractional weight
      const weight = new F64(rows).map((_, r) => [0, 1, 0.5, 1, 0][r % 5]);
      const loss = new F64(1);
      const dinp = new F64(rows * C);
      const f = (): number => {
        fn({ loss, dinp, inp, target, weight }, { rows, C });
        return loss[0];
      };
      f();
      const analytic = dinp.slice();
      return [{ what: "dinp", analytic, numeric: fdGrad(f, inp) }];
    },
  };
}

function crossEntropyCase(rows: number, C: number): GradCase {
  return {
    op: "crossEntropyLoss",
    symbol: "crossEntropyLoss",
    shape: `rows=${rows}, C=${C}, soft targets`,
    run() {
      const rng = new Rng(rows * 17 + C);
      const logits = randArray(rng, rows * C, -3, 3);
      const target = randArray(rng, rows * C, 0, 1);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let c = 0; c < C; c++) s += target[r * C + c];
        for (let c = 0; c < C; c++) target[r * C + c] /= s;
      }
      const loss = new F64(1);
      const dlogits = new F64(rows * C);
      const f = (): number => {
        crossEntropyLoss({ loss, dlogits, logits, target }, { rows, C });
        return loss[0];
      };
      f();
      const analytic = dlogits.slice();
      return [{ what: "dlogits", analytic, numeric: fdGrad(f, logits) }];
    },
  };
}

/**
 * Attention over the qkv projection (`ref/attention.ts`), with a relative position bias
 * when `rel`: `dqkv` and `dlogits` (through the bias: `∂L/∂bias = dlogits / scale`).
 */
function attentionCase(B: number, N: number, NH: number, HS: number, rel: boolean): GradCase {
  return {
    op: "attentionBackward",
    symbol: "attentionBackward",
    shape: `B=${B}, N=${N}, NH=${NH}, HS=${HS}${rel ? ", relative position bias" : ""}`,
    run() {
      const rng = new Rng(7 + B + N * 10 + NH * 100 + HS * 1000);
      const D = NH * HS;
      const scale = 1 / Math.sqrt(HS);
      const qkv = randArray(rng, 3 * B * N * D);
      const dout = randArray(rng, B * N * D);
      const R = 2 * N - 1;
      const relTable = rel ? randArray(rng, R * NH) : undefined;
      const relIndex = rel
        ? Int32Array.from({ length: N * N }, (_, p) => (p % N) - Math.floor(p / N) + N - 1)
        : undefined;
      const out = new F64(B * N * D);
      const att = new F64(B * NH * N * N);
      const dims = { B, N, NH, HS, scale };
      const loss = (): number => {
        attentionForward({ out, att, qkv, relTable, relIndex }, dims);
        return dot(out, dout);
      };
      loss();
      const dqkv = new F64(3 * B * N * D).fill(NaN); // assign: every element must be written
      const dlogits = new F64(B * NH * N * N);
      attentionBackward({ dqkv, dlogits, dout, qkv, att }, dims);
      const pairs = [{ what: "dqkv", analytic: dqkv, numeric: fdGrad(loss, qkv) }];
      if (relTable && relIndex) {
        // dtable[r, h] = Σ_{b, (i, j) with index r} dlogits[b, h, i, j] / scale
        const dtable = new F64(R * NH);
        for (let b = 0; b < B; b++) {
          for (let h = 0; h < NH; h++) {
            for (let p = 0; p < N * N; p++) {
              dtable[relIndex[p] * NH + h] += dlogits[(b * NH + h) * N * N + p] / scale;
            }
          }
        }
        pairs.push({ what: "dtable", analytic: dtable, numeric: fdGrad(loss, relTable) });
      }
      return pairs;
    },
  };
}

/** Every gradient check, with shapes including sizes 1, 3 and 7. */
export const GRAD_CASES: readonly GradCase[] = [
  layernormCase(3, 7, false),
  layernormCase(1, 3, false),
  layernormCase(3, 7, true),
  geluCase(7),
  softmaxCase(3, 7, 0.35),
  softmaxCase(1, 1, 1),
  splitHeadsCase(2, 3, 2, 3),
  splitHeadsCase(1, 1, 1, 1),
  mergeHeadsCase(2, 3, 2, 3),
  mergeHeadsCase(1, 7, 3, 1),
  gatherRowsCase(true),
  gatherRowsCase(false),
  scaleRowsCase(3, 7),
  linearCase(3, 7, 5, false),
  linearCase(3, 7, 5, true),
  linearCase(1, 1, 1, true),
  attentionScoresCase(2, 3, 7),
  attentionCase(2, 3, 2, 3, false),
  attentionCase(1, 7, 3, 1, false),
  attentionCase(2, 3, 2, 3, true),
  weightedLossCase("smoothL1Loss (beta 2)", (b, d) => smoothL1Loss(b, { ...d, beta: 2 }), 5, 7, 1),
  weightedLossCase("smoothL1Loss (beta 2)", (b, d) => smoothL1Loss(b, { ...d, beta: 2 }), 3, 1, 2),
  weightedLossCase("cosineLoss", cosineLoss, 5, 7, 3),
  weightedLossCase("cosineLoss", cosineLoss, 3, 3, 4),
  crossEntropyCase(3, 7),
  crossEntropyCase(1, 3),
];
