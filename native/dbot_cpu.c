// dbot's CPU elementwise kernels, native: the same functions as
// src/backend/cpu/simd/kernels.c (WebAssembly SIMD), written as plain loops that the C
// compiler vectorises (AVX2 + FMA on x86-64 through target_clones, with a baseline clone
// for older CPUs). The CPU backend calls them through Deno.dlopen on its own tensors, so
// unlike the WebAssembly kernels nothing is copied. Build: native/build.sh.
//
// Semantics follow the JS ops in src/backend/cpu/ref/: NaN propagates (the clamps are
// written so that a comparison with NaN keeps NaN), any length and any aliasing of an
// output with its input is allowed (no `restrict`). Beyond the WebAssembly set: add,
// scaleRows, the bias gradient's column sums, the SmoothL1 loss, the target standardisation
// and patchify (the f64 ones bit-identical to their JS loops). The attention's helpers are
// always_inline: GCC does not clone a static callee of a target_clones function, and a call
// left out of line ran the baseline SSE code.
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KERNEL __attribute__((visibility("default"), target_clones("arch=x86-64-v3", "default")))
#else
#define KERNEL __attribute__((visibility("default")))
#endif

// erf(x), Eigen's generic_fast_erf_float on x clamped to [-4, 4]: x·P(x²)/Q(x²).
static inline float erf_f(float v) {
  float x = v > 4.0f ? 4.0f : v;
  x = x < -4.0f ? -4.0f : x;
  float x2 = x * x;
  float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  float q = x2 * -1.45660718464996e-05f - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return x * p / q;
}

// exp(x), Cephes expf on x clamped to [-87.3, 88.7]; n rounded with the 1.5·2^23 trick.
static inline float exp_f(float v) {
  float x = v < -87.3f ? -87.3f : v;
  x = x > 88.7f ? 88.7f : x;
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int32_t e = ((int32_t)n + 127) << 23;
  float s;
  memcpy(&s, &e, 4);
  return p * s;
}

// Reductions in 8 interleaved partial sums (a fixed order, so results do not depend on
// how rows are split over threads) that the compiler turns into one vector accumulator.
static inline float hsum8(const float* a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

static inline float sum_f(const float* x, int32_t n) {
  float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int32_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) a[k] += x[j + k];
  float s = hsum8(a);
  for (; j < n; j++) s += x[j];
  return s;
}

static inline float sumsqdev_f(const float* x, float m, int32_t n) {
  float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int32_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) a[k] += (x[j + k] - m) * (x[j + k] - m);
  float s = hsum8(a);
  for (; j < n; j++) s += (x[j] - m) * (x[j] - m);
  return s;
}

static inline float dot_f(const float* x, const float* y, int32_t n) {
  float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int32_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) a[k] += x[j + k] * y[j + k];
  float s = hsum8(a);
  for (; j < n; j++) s += x[j] * y[j];
  return s;
}

static inline float max_scaled_f(const float* x, float scale, int32_t n) {
  float a[8];
  for (int k = 0; k < 8; k++) a[k] = -__builtin_inff();
  int32_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) a[k] = scale * x[j + k] > a[k] ? scale * x[j + k] : a[k];
  float m = -__builtin_inff();
  for (int k = 0; k < 8; k++) m = a[k] > m ? a[k] : m;
  for (; j < n; j++) m = scale * x[j] > m ? scale * x[j] : m;
  return m;
}

static inline float gelu_f(float x) { return x * (0.5f * (1.0f + erf_f(x * 0.70710678118654752f))); }

static inline float gelu_grad_f(float x) {
  float cdf = 0.5f * (1.0f + erf_f(x * 0.70710678118654752f));
  return cdf + x * (0.39894228040143268f * exp_f(-0.5f * (x * x)));
}

KERNEL void dbot_gelu(float* out, const float* inp, int32_t n) {
  for (int32_t i = 0; i < n; i++) out[i] = gelu_f(inp[i]);
}

KERNEL void dbot_gelu_backward(float* dinp, const float* dout, const float* inp, int32_t n) {
  for (int32_t i = 0; i < n; i++) dinp[i] = dout[i] * gelu_grad_f(inp[i]);
}

// out[i] = a[i] + b[i mod m] for n elements (m divides n); out may alias a or b.
KERNEL void dbot_add(float* out, const float* a, const float* b, int32_t n, int32_t m) {
  for (int32_t o = 0; o < n; o += m)
    for (int32_t i = 0; i < m; i++) out[o + i] = a[o + i] + b[i];
}

// acc[c] += Σ_r dout[r, c] for rows × C, in f64 and in row order (the bias gradient's
// column sums, bit-identical to the JS reference's f64 loop on an f64 accumulator).
KERNEL void dbot_bias_grad_f64(double* acc, const float* dout, int32_t rows, int32_t C) {
  for (int32_t r = 0; r < rows; r++) {
    const float* d = dout + (int64_t)r * C;
    for (int32_t c = 0; c < C; c++) acc[c] += (double)d[c];
  }
}

// The weighted SmoothL1 loss of src/backend/cpu/ref/smooth_l1.ts on f32 arrays: the same f64
// operations in the same order, with no FMA contraction, so loss[0] and dinp (assigned) are
// bit-identical to the JS loop's. NaN propagates (the sign of NaN is NaN, as Math.sign).
__attribute__((optimize("fp-contract=off"))) KERNEL void dbot_smooth_l1(
    double* loss, float* dinp, const float* inp, const float* target, const float* weight,
    int32_t rows, int32_t C, double beta) {
  double wsum = 0.0;
  for (int32_t r = 0; r < rows; r++) wsum += (double)weight[r];
  double total = 0.0;
  for (int32_t r = 0; r < rows; r++) {
    const int64_t o = (int64_t)r * C;
    const double w = (double)weight[r];
    const double g = w / (wsum * (double)C); // ∂loss/∂e for each element of row r
    double row = 0.0;
    for (int32_t c = 0; c < C; c++) {
      const double d = (double)inp[o + c] - (double)target[o + c];
      const double ad = __builtin_fabs(d);
      if (ad < beta) {
        row += 0.5 * d * d / beta;
        dinp[o + c] = (float)(g * d / beta);
      } else {
        row += ad - 0.5 * beta;
        dinp[o + c] = (float)(g * (d > 0.0 ? 1.0 : d < 0.0 ? -1.0 : d));
      }
    }
    total += w * row;
  }
  loss[0] = total / (wsum * (double)C);
}

// out[r, :] = (inp[r, :] − mean) / sqrt(var + eps) per row, var unbiased (÷ (C − 1)): the
// target normalisation of src/backend/cpu/ref/standardize.ts, the same f64 operations in the
// same order with no FMA contraction (bit-identical to it); out may alias inp.
__attribute__((optimize("fp-contract=off"))) KERNEL void dbot_standardize_rows(
    float* out, const float* inp, int32_t rows, int32_t C, double eps) {
  for (int32_t r = 0; r < rows; r++) {
    const float* x = inp + (int64_t)r * C;
    float* y = out + (int64_t)r * C;
    double m = 0.0;
    for (int32_t c = 0; c < C; c++) m += (double)x[c];
    m /= (double)C;
    double v = 0.0;
    for (int32_t c = 0; c < C; c++) {
      const double d = (double)x[c] - m;
      v += d * d;
    }
    const double s = 1.0 / __builtin_sqrt(v / (double)(C - 1) + eps);
    for (int32_t c = 0; c < C; c++) y[c] = (float)(((double)x[c] - m) * s);
  }
}

// out [B, L, C·P·P] = the P × P patches of inp [B, C, H, W] (channel-major within a patch,
// row-major over the grid), as src/backend/cpu/ref/patchify.ts: a copy of P-float runs.
KERNEL void dbot_patchify(float* out, const float* inp, int32_t B, int32_t C, int32_t H,
                          int32_t W, int32_t P) {
  const int32_t GH = H / P, GW = W / P, D = C * P * P;
  for (int32_t b = 0; b < B; b++)
    for (int32_t gh = 0; gh < GH; gh++)
      for (int32_t gw = 0; gw < GW; gw++) {
        float* o = out + ((int64_t)b * GH * GW + (int64_t)gh * GW + gw) * D;
        for (int32_t c = 0; c < C; c++)
          for (int32_t i = 0; i < P; i++)
            memcpy(o + (c * P + i) * P,
                   inp + (((int64_t)b * C + c) * H + gh * P + i) * W + (int64_t)gw * P,
                   sizeof(float) * (size_t)P);
      }
}

// out[r, :] = scale[r] · inp[r, :] for rows × C; out may alias inp.
KERNEL void dbot_scale_rows(float* out, const float* inp, const float* scale, int32_t rows,
                            int32_t C) {
  for (int32_t r = 0; r < rows; r++) {
    const float s = scale[r];
    for (int32_t c = 0; c < C; c++) out[(int64_t)r * C + c] = inp[(int64_t)r * C + c] * s;
  }
}

// Matmul epilogue of rows × N: c += bias (bias may be 0); with gelu: pre = c (pre may be
// 0), c = gelu(c).
KERNEL void dbot_bias_gelu(float* c, const float* bias, float* pre, int32_t rows, int32_t N,
                           int32_t gelu) {
  for (int32_t r = 0; r < rows; r++) {
    float* row = c + (int64_t)r * N;
    if (bias) for (int32_t j = 0; j < N; j++) row[j] += bias[j];
    if (!gelu) continue;
    if (pre) memcpy(pre + (int64_t)r * N, row, sizeof(float) * (size_t)N);
    for (int32_t j = 0; j < N; j++) row[j] = gelu_f(row[j]);
  }
}

// out[r, :] = softmax(scale·inp[r, :]); out may alias inp.
KERNEL void dbot_softmax(float* out, const float* inp, int32_t rows, int32_t C, float scale) {
  for (int32_t r = 0; r < rows; r++) {
    const float* x = inp + (int64_t)r * C;
    float* y = out + (int64_t)r * C;
    float m = max_scaled_f(x, scale, C); // a NaN in the row makes its exp, and the row, NaN
    for (int32_t j = 0; j < C; j++) y[j] = exp_f(scale * x[j] - m);
    float inv = 1.0f / sum_f(y, C);
    for (int32_t j = 0; j < C; j++) y[j] *= inv;
  }
}

// dinp = scale·out ⊙ (dout − Σ dout⊙out) per row; dinp may alias dout.
KERNEL void dbot_softmax_backward(float* dinp, const float* dout, const float* out, int32_t rows,
                                  int32_t C, float scale) {
  for (int32_t r = 0; r < rows; r++) {
    const float* g = dout + (int64_t)r * C;
    const float* y = out + (int64_t)r * C;
    float* d = dinp + (int64_t)r * C;
    float dot = dot_f(g, y, C);
    for (int32_t j = 0; j < C; j++) d[j] = scale * (y[j] * (g[j] - dot));
  }
}

// LayerNorm of rows × C (biased variance, two passes); mean and rstd per row.
KERNEL void dbot_layernorm(float* out, float* mean, float* rstd, const float* inp,
                           const float* weight, const float* bias, int32_t rows, int32_t C,
                           float eps) {
  for (int32_t r = 0; r < rows; r++) {
    const float* x = inp + (int64_t)r * C;
    float* y = out + (int64_t)r * C;
    float m = sum_f(x, C) / (float)C;
    float v = sumsqdev_f(x, m, C) / (float)C;
    float rs = 1.0f / __builtin_sqrtf(v + eps);
    for (int32_t j = 0; j < C; j++) y[j] = (x[j] - m) * rs * weight[j] + bias[j];
    mean[r] = m;
    rstd[r] = rs;
  }
}

// LayerNorm backward: dinp assigned (or added with accumulate); dweight += Σ norm⊙dout and
// dbias += Σ dout over the rows (f32 accumulators the caller zeroes and then adds up).
KERNEL void dbot_layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                                    const float* inp, const float* weight, const float* mean,
                                    const float* rstd, int32_t rows, int32_t C,
                                    int32_t accumulate) {
  for (int32_t r = 0; r < rows; r++) {
    const float* g = dout + (int64_t)r * C;
    const float* x = inp + (int64_t)r * C;
    float* d = dinp + (int64_t)r * C;
    float m = mean[r], rs = rstd[r];
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int32_t j = 0;
    for (; j + 8 <= C; j += 8) {
      for (int k = 0; k < 8; k++) {
        float dn = weight[j + k] * g[j + k];
        a[k] += dn;
        b[k] += dn * ((x[j + k] - m) * rs);
      }
    }
    float sa = hsum8(a), sb = hsum8(b);
    for (; j < C; j++) {
      float dn = weight[j] * g[j];
      sa += dn;
      sb += dn * ((x[j] - m) * rs);
    }
    float ma = sa / (float)C, mb = sb / (float)C;
    // Separate simple loops vectorise; one loop writing d, dbias and dweight would not.
    if (accumulate) {
      for (int32_t j = 0; j < C; j++) d[j] += (weight[j] * g[j] - ma - ((x[j] - m) * rs) * mb) * rs;
    } else {
      for (int32_t j = 0; j < C; j++) d[j] = (weight[j] * g[j] - ma - ((x[j] - m) * rs) * mb) * rs;
    }
    for (int32_t j = 0; j < C; j++) dbias[j] += g[j];
    for (int32_t j = 0; j < C; j++) dweight[j] += ((x[j] - m) * rs) * g[j];
  }
}

// AdamW on n elements of one segment (see the WebAssembly kernel for the terms).
KERNEL void dbot_adamw(float* param, const float* grad, float* m, float* v, int32_t n, float clip,
                       float beta1, float beta2, float step, float inv_bc2, float eps,
                       float decay) {
  for (int32_t i = 0; i < n; i++) {
    float g = grad[i] * clip;
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * (g * g);
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - (step * mi) / (__builtin_sqrtf(vi * inv_bc2) + eps);
  }
}

// ---- attention ------------------------------------------------------------------------
// Small products for one (sample, head) unit, whose operands are at most a few tens of KB:
// C [M, n] = A [M, K] · B [K, n] (row strides lda, ldb, ldc), assigned. Tiles of 4 rows ×
// 16 columns (then 8, then single columns) held in vector registers (GCC vector types: 8
// AVX2 accumulators in the x86-64-v3 clone); rows past M are computed from row M − 1 and
// dropped, so nothing outside A, B, C is read.
typedef float v8 __attribute__((vector_size(32), aligned(4)));

__attribute__((always_inline)) static inline void mm_nn(float* c, int32_t ldc, const float* a,
                                                        int32_t lda, const float* b, int32_t ldb,
                                                        int32_t M, int32_t n, int32_t K) {
  for (int32_t i0 = 0; i0 < M; i0 += 4) {
    const float* a0 = a + (int64_t)i0 * lda;
    const float* a1 = a + (int64_t)(i0 + 1 < M ? i0 + 1 : M - 1) * lda;
    const float* a2 = a + (int64_t)(i0 + 2 < M ? i0 + 2 : M - 1) * lda;
    const float* a3 = a + (int64_t)(i0 + 3 < M ? i0 + 3 : M - 1) * lda;
    int32_t rows = M - i0 < 4 ? M - i0 : 4;
    float* c0 = c + (int64_t)i0 * ldc;
    int32_t j0 = 0;
    for (; j0 + 16 <= n; j0 += 16) {
      v8 x0 = {0}, x1 = {0}, y0 = {0}, y1 = {0}, z0 = {0}, z1 = {0}, w0 = {0}, w1 = {0};
      for (int32_t k = 0; k < K; k++) {
        const float* br = b + (int64_t)k * ldb + j0;
        v8 b0 = *(const v8*)br, b1 = *(const v8*)(br + 8);
        x0 += a0[k] * b0, x1 += a0[k] * b1;
        y0 += a1[k] * b0, y1 += a1[k] * b1;
        z0 += a2[k] * b0, z1 += a2[k] * b1;
        w0 += a3[k] * b0, w1 += a3[k] * b1;
      }
      v8 t[8] = {x0, x1, y0, y1, z0, z1, w0, w1};
      for (int r = 0; r < rows; r++) memcpy(c0 + (int64_t)r * ldc + j0, &t[2 * r], 64);
    }
    for (; j0 + 8 <= n; j0 += 8) {
      v8 x0 = {0}, y0 = {0}, z0 = {0}, w0 = {0};
      for (int32_t k = 0; k < K; k++) {
        v8 b0 = *(const v8*)(b + (int64_t)k * ldb + j0);
        x0 += a0[k] * b0, y0 += a1[k] * b0, z0 += a2[k] * b0, w0 += a3[k] * b0;
      }
      v8 t[4] = {x0, y0, z0, w0};
      for (int r = 0; r < rows; r++) memcpy(c0 + (int64_t)r * ldc + j0, &t[r], 32);
    }
    for (; j0 < n; j0++) {
      for (int r = 0; r < rows; r++) {
        const float* ar = a + (int64_t)(i0 + r) * lda;
        float s = 0.0f;
        for (int32_t k = 0; k < K; k++) s += ar[k] * b[(int64_t)k * ldb + j0];
        c0[(int64_t)r * ldc + j0] = s;
      }
    }
  }
}

// t [n, ldt] = sᵀ for s [m, n] with row stride lds (t's columns m … ldt − 1 are zeroed).
__attribute__((always_inline)) static inline void transpose(float* t, int32_t ldt, const float* s, int32_t lds, int32_t m,
                             int32_t n) {
  for (int32_t j = 0; j < n; j++) {
    float* tr = t + (int64_t)j * ldt;
    for (int32_t i = 0; i < m; i++) tr[i] = s[(int64_t)i * lds + j];
    for (int32_t i = m; i < ldt; i++) tr[i] = 0.0f;
  }
}

// Columns of the per-unit scratch rows: N rounded up to 16, so scores use full tiles.
static inline int32_t padded(int32_t N) { return (N + 15) & ~15; }

// Floats of scratch that dbot_attention and dbot_attention_backward need.
KERNEL int32_t dbot_attention_scratch(int32_t N, int32_t HS) {
  return (HS + 3 * N) * padded(N);
}

// Attention of units [lo, hi) (unit u: sample u / NH, head u mod NH) on
// qkv [B, N, 3, NH, HS]: att[u] [N, N] = softmax(scale · q·kᵀ) and
// out[b, :, h] [N, HS] (row stride D) = att[u] · v. The scores of a unit stay in `work`
// (dbot_attention_scratch floats) between the product, the softmax and the next product.
KERNEL void dbot_attention(float* out, float* att, const float* qkv, float* work, int32_t lo,
                           int32_t hi, int32_t N, int32_t NH, int32_t HS, float scale) {
  const int32_t D = NH * HS, ld = 3 * D, Np = padded(N);
  float* kt = work;            // [HS, Np] kᵀ, zero past N
  float* s = kt + HS * Np;     // [N, Np] scores, then probabilities (zero past N)
  for (int32_t u = lo; u < hi; u++) {
    const int32_t b = u / NH, h = u - b * NH;
    const float* q = qkv + (int64_t)b * N * ld + h * HS; // k at + D, v at + 2D
    float* a = att + (int64_t)u * N * N;
    transpose(kt, Np, q + D, ld, N, HS);
    mm_nn(s, Np, q, ld, kt, Np, N, Np, HS);
    for (int32_t i = 0; i < N; i++) {
      float* x = s + (int64_t)i * Np;
      float m = max_scaled_f(x, scale, N); // a NaN in the row makes its exp, and the row, NaN
      for (int32_t j = 0; j < N; j++) x[j] = exp_f(scale * x[j] - m);
      float inv = 1.0f / sum_f(x, N);
      for (int32_t j = 0; j < N; j++) x[j] *= inv;
      memcpy(a + (int64_t)i * N, x, sizeof(float) * (size_t)N);
    }
    mm_nn(out + (int64_t)b * N * D + h * HS, D, s, Np, q + 2 * D, ld, N, HS, N);
  }
}

// Backward of dbot_attention for units [lo, hi): dqkv (q, k, v parts of the units' heads,
// assigned) and dlogits[u] [N, N] = scale · att ⊙ (datt − Σ datt⊙att), the gradient of
// the unscaled logits, with datt = dout · vᵀ.
KERNEL void dbot_attention_backward(float* dqkv, float* dlogits, const float* dout,
                                    const float* qkv, const float* att, float* work, int32_t lo,
                                    int32_t hi, int32_t N, int32_t NH, int32_t HS, float scale) {
  const int32_t D = NH * HS, ld = 3 * D, Np = padded(N);
  float* vt = work;            // [HS, Np] vᵀ, then (reused) nothing
  float* g = vt + HS * Np;     // [N, Np] datt, then the logits' gradient
  float* at = g + N * Np;      // [N, Np] attᵀ
  float* gt = at + N * Np;     // [N, Np] the logits' gradient, transposed
  for (int32_t u = lo; u < hi; u++) {
    const int32_t b = u / NH, h = u - b * NH;
    const float* q = qkv + (int64_t)b * N * ld + h * HS;
    float* dq = dqkv + (int64_t)b * N * ld + h * HS;
    const float* go = dout + (int64_t)b * N * D + h * HS; // [N, HS], row stride D
    const float* a = att + (int64_t)u * N * N;
    float* dl = dlogits + (int64_t)u * N * N;
    // datt [N, N] = dout · vᵀ ; dv [N, HS] = attᵀ · dout
    transpose(vt, Np, q + 2 * D, ld, N, HS);
    mm_nn(g, Np, go, D, vt, Np, N, Np, HS);
    transpose(at, Np, a, N, N, N);
    mm_nn(dq + 2 * D, ld, at, Np, go, D, N, HS, N);
    for (int32_t i = 0; i < N; i++) {
      float* x = g + (int64_t)i * Np;
      const float* y = a + (int64_t)i * N;
      float dot = dot_f(x, y, N);
      for (int32_t j = 0; j < N; j++) x[j] = scale * (y[j] * (x[j] - dot));
      memcpy(dl + (int64_t)i * N, x, sizeof(float) * (size_t)N);
    }
    // dq = dlogits · k ; dk = dlogitsᵀ · q
    mm_nn(dq, ld, g, Np, q + D, ld, N, HS, N);
    transpose(gt, Np, g, Np, N, N);
    mm_nn(dq + D, ld, gt, Np, q, ld, N, HS, N);
  }
}

// ---- GEMM -----------------------------------------------------------------------------
// C [M, N] = alpha·op(A)·op(B) + beta·C (row-major BLAS semantics, beta 0 ignores C), then
// the matmul epilogue (c += bias; with gelu: pre = c, c = gelu(c)) on each finished tile.
// For the ViT's products, whose inner dimension is small (K = 64 … 768 forward) or whose
// outputs are small: op(B) is packed a block at a time (kc rows × nc columns, at most 192 KB,
// so it stays in L2) into panels of 16 columns, and each 6 × 16 tile of C is summed in 12
// vector registers over the block, reading A in place (6 rows, or with transA 6 adjacent
// columns, a few KB that stay in L1 across the panels). The whole K is one block up to
// GEMM_KC_MAX (then C is finished tile by tile); wider products take several column blocks.
// Each element of C is summed in k order whatever the caller's split of rows or columns, so
// results do not depend on threads.
enum { GEMM_MR = 6, GEMM_NR = 16, GEMM_PACK_FLOATS = 49152, GEMM_KC_MAX = 1024 };

static inline int32_t gemm_npad(int32_t N) { return (N + GEMM_NR - 1) / GEMM_NR * GEMM_NR; }

// Rows of op(B) per packed block: all of K up to GEMM_KC_MAX, else equal blocks of at most
// GEMM_KC_MAX / 2.
static inline int32_t gemm_kc(int32_t K) {
  if (K <= GEMM_KC_MAX) return K > 0 ? K : 1;
  int32_t blocks = (K + GEMM_KC_MAX / 2 - 1) / (GEMM_KC_MAX / 2);
  return (K + blocks - 1) / blocks;
}

// Columns of op(B) per packed block (a multiple of 16): as many as fit GEMM_PACK_FLOATS.
static inline int32_t gemm_nc(int32_t N, int32_t kc) {
  int32_t nc = GEMM_PACK_FLOATS / kc / GEMM_NR * GEMM_NR;
  nc = nc < GEMM_NR ? GEMM_NR : nc;
  return nc < gemm_npad(N) ? nc : gemm_npad(N);
}

// Floats of the packing scratch that dbot_sgemm needs: a block of op(B), and with transA
// the block of op(A) (M rounded up to 6 rows × kc).
KERNEL int32_t dbot_sgemm_scratch(int32_t transA, int32_t M, int32_t N, int32_t K) {
  int32_t kc = gemm_kc(K);
  int32_t mp = (M + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
  return kc * gemm_nc(N, kc) + (transA ? mp * kc : 0);
}

// 1 when this CPU runs the x86-64-v3 (AVX2 + FMA) clone of the kernels, else 0.
__attribute__((visibility("default"))) int32_t dbot_gemm_vector_bits(void) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 256 : 128;
#else
  return 128;
#endif
}

// bp [panel][k][16] = op(B)[k0 + k, jc + j] for k < kc, columns jc … jc + n − 1 (zeros
// past them, up to the panel's 16).
__attribute__((always_inline)) static inline void gemm_pack(float* bp, const float* b, int32_t ldb,
                                                            int32_t transB, int32_t jc, int32_t n,
                                                            int32_t k0, int32_t kc) {
  for (int32_t p0 = 0; p0 < n; p0 += GEMM_NR) {
    float* d = bp + (int64_t)p0 * kc;
    const int32_t j0 = jc + p0, w = n - p0 < GEMM_NR ? n - p0 : GEMM_NR;
    if (transB) {
      for (int32_t j = 0; j < w; j++) {
        const float* s = b + (int64_t)(j0 + j) * ldb + k0;
        for (int32_t k = 0; k < kc; k++) d[(int64_t)k * GEMM_NR + j] = s[k];
      }
    } else {
      for (int32_t k = 0; k < kc; k++) {
        const float* s = b + (int64_t)(k0 + k) * ldb + j0;
        for (int32_t j = 0; j < w; j++) d[(int64_t)k * GEMM_NR + j] = s[j];
      }
    }
    for (int32_t k = 0; k < kc && w < GEMM_NR; k++)
      for (int32_t j = w; j < GEMM_NR; j++) d[(int64_t)k * GEMM_NR + j] = 0.0f;
  }
}

// One tile: rows × cols (≤ 6 × 16) of C at c from the kc-block of A at a (op(A)[i, k] at
// a[i·si + k·sk]) and a packed panel bp. first: the block k0 = 0 (beta applies); last: the
// final block (the epilogue applies). Rows past `rows` are computed from row 0 and dropped.
__attribute__((always_inline)) static inline void gemm_tile(
    float* c, int32_t ldc, const float* a, int64_t si, int64_t sk, const float* bp, int32_t kc,
    int32_t rows, int32_t cols, float alpha, float beta, int32_t first, int32_t last,
    const float* bias, float* pre, int32_t gelu) {
  const float* a0 = a;
  const float* a1 = a + (rows > 1 ? si : 0);
  const float* a2 = a + (rows > 2 ? 2 * si : 0);
  const float* a3 = a + (rows > 3 ? 3 * si : 0);
  const float* a4 = a + (rows > 4 ? 4 * si : 0);
  const float* a5 = a + (rows > 5 ? 5 * si : 0);
  v8 x0 = {0}, x1 = {0}, y0 = {0}, y1 = {0}, z0 = {0}, z1 = {0};
  v8 u0 = {0}, u1 = {0}, v0 = {0}, v1 = {0}, w0 = {0}, w1 = {0};
  for (int32_t k = 0; k < kc; k++) {
    const v8 b0 = *(const v8*)(bp + (int64_t)k * GEMM_NR);
    const v8 b1 = *(const v8*)(bp + (int64_t)k * GEMM_NR + 8);
    const int64_t o = k * sk;
    x0 += a0[o] * b0, x1 += a0[o] * b1;
    y0 += a1[o] * b0, y1 += a1[o] * b1;
    z0 += a2[o] * b0, z1 += a2[o] * b1;
    u0 += a3[o] * b0, u1 += a3[o] * b1;
    v0 += a4[o] * b0, v1 += a4[o] * b1;
    w0 += a5[o] * b0, w1 += a5[o] * b1;
  }
  if (cols == GEMM_NR) {
    // a full tile: combine, add the bias, GELU on 16 values at a time, store
    v8 acc[2 * GEMM_MR] = {x0, x1, y0, y1, z0, z1, u0, u1, v0, v1, w0, w1};
    v8 bias0 = {0}, bias1 = {0};
    if (last && bias) bias0 = *(const v8*)bias, bias1 = *(const v8*)(bias + 8);
    for (int32_t r = 0; r < rows; r++) {
      v8* cr = (v8*)(c + (int64_t)r * ldc);
      v8 s0 = acc[2 * r], s1 = acc[2 * r + 1];
      if (alpha != 1.0f) s0 *= alpha, s1 *= alpha;
      if (!first) s0 += cr[0], s1 += (cr + 1)[0];
      else if (beta != 0.0f) s0 += beta * cr[0], s1 += beta * (cr + 1)[0];
      if (last && bias) s0 += bias0, s1 += bias1;
      if (last && gelu) {
        float g[GEMM_NR] __attribute__((aligned(32)));
        memcpy(g, &s0, 32), memcpy(g + 8, &s1, 32);
        if (pre) memcpy(pre + (int64_t)r * ldc, g, sizeof g);
        for (int32_t j = 0; j < GEMM_NR; j++) g[j] = gelu_f(g[j]);
        memcpy(&s0, g, 32), memcpy(&s1, g + 8, 32);
      }
      cr[0] = s0, (cr + 1)[0] = s1;
    }
    return;
  }
  float t[GEMM_MR][GEMM_NR] __attribute__((aligned(32)));
  memcpy(t[0], &x0, 32), memcpy(t[0] + 8, &x1, 32), memcpy(t[1], &y0, 32);
  memcpy(t[1] + 8, &y1, 32), memcpy(t[2], &z0, 32), memcpy(t[2] + 8, &z1, 32);
  memcpy(t[3], &u0, 32), memcpy(t[3] + 8, &u1, 32), memcpy(t[4], &v0, 32);
  memcpy(t[4] + 8, &v1, 32), memcpy(t[5], &w0, 32), memcpy(t[5] + 8, &w1, 32);
  for (int32_t r = 0; r < rows; r++) {
    float* cr = c + (int64_t)r * ldc;
    float* tr = t[r];
    if (!first) {
      for (int32_t j = 0; j < cols; j++) tr[j] = alpha * tr[j] + cr[j];
    } else if (beta != 0.0f) {
      for (int32_t j = 0; j < cols; j++) tr[j] = alpha * tr[j] + beta * cr[j];
    } else if (alpha != 1.0f) {
      for (int32_t j = 0; j < cols; j++) tr[j] = alpha * tr[j];
    }
    if (last && bias) for (int32_t j = 0; j < cols; j++) tr[j] += bias[j];
    if (last && gelu) {
      if (pre) memcpy(pre + (int64_t)r * ldc, tr, sizeof(float) * (size_t)cols);
      for (int32_t j = 0; j < cols; j++) tr[j] = gelu_f(tr[j]);
    }
    memcpy(cr, tr, sizeof(float) * (size_t)cols);
  }
}

// C = alpha·op(A)·op(B) + beta·C with the epilogue (bias and pre may be 0; pre has C's
// layout). work: dbot_sgemm_scratch(transA, M, N, K) floats. K = 0 is the caller's (BLAS scales C).
KERNEL void dbot_sgemm(int32_t transA, int32_t transB, int32_t M, int32_t N, int32_t K,
                       float alpha, const float* a, int32_t lda, const float* b, int32_t ldb,
                       float beta, float* c, int32_t ldc, const float* bias, float* pre,
                       int32_t gelu, float* work) {
  const int64_t si = transA ? 1 : lda, sk = transA ? lda : 1;
  const int32_t kcmax = gemm_kc(K), ncmax = gemm_nc(N, kcmax);
  float* ap = work + (int64_t)kcmax * ncmax; // with transA: op(A)'s block, [M / 6][kc][6]
  for (int32_t k0 = 0; k0 < K; k0 += kcmax) {
    const int32_t kc = K - k0 < kcmax ? K - k0 : kcmax;
    const int32_t first = k0 == 0, last = k0 + kc == K;
    if (transA) {
      // op(A)'s rows are A's columns: each 6 of them, one cache line per k, copied once per
      // block to [k][6] and read contiguously by every panel
      for (int32_t i0 = 0; i0 < M; i0 += GEMM_MR) {
        const int32_t rows = M - i0 < GEMM_MR ? M - i0 : GEMM_MR;
        const float* ai = a + i0 + (int64_t)k0 * lda;
        float* d = ap + (int64_t)i0 * kc;
        for (int32_t k = 0; k < kc; k++)
          for (int32_t r = 0; r < GEMM_MR; r++) d[k * GEMM_MR + r] = ai[k * sk + (r < rows ? r : 0)];
      }
    }
    for (int32_t jc = 0; jc < N; jc += ncmax) {
      const int32_t nc = N - jc < ncmax ? N - jc : ncmax;
      gemm_pack(work, b, ldb, transB, jc, nc, k0, kc);
      for (int32_t i0 = 0; i0 < M; i0 += GEMM_MR) {
        const int32_t rows = M - i0 < GEMM_MR ? M - i0 : GEMM_MR;
        const float* ai = transA ? ap + (int64_t)i0 * kc : a + i0 * si + k0 * sk;
        const int64_t ti = transA ? 1 : si, tk = transA ? GEMM_MR : sk;
        for (int32_t p0 = 0; p0 < nc; p0 += GEMM_NR) {
          const int32_t j0 = jc + p0, cols = nc - p0 < GEMM_NR ? nc - p0 : GEMM_NR;
          float* cij = c + (int64_t)i0 * ldc + j0;
          gemm_tile(cij, ldc, ai, ti, tk, work + (int64_t)p0 * kc, kc, rows, cols, alpha, beta,
                    first, last, bias ? bias + j0 : 0, pre ? pre + (int64_t)i0 * ldc + j0 : 0,
                    gelu);
        }
      }
    }
  }
}
