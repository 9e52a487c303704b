// dbot's CPU elementwise kernels, native: the same functions as
// src/backend/cpu/simd/kernels.c (WebAssembly SIMD), written as plain loops that the C
// compiler vectorises (AVX2 + FMA on x86-64 through target_clones, with a baseline clone
// for older CPUs). The CPU backend calls them through Deno.dlopen on its own tensors, so
// unlike the WebAssembly kernels nothing is copied. Build: native/build.sh.
//
// Semantics follow the JS ops in src/backend/cpu/ref/: NaN propagates (the clamps are
// written so that a comparison with NaN keeps NaN), any length and any aliasing of an
// output with its input is allowed (no `restrict`).
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
