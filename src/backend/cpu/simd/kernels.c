// dbot CPU elementwise kernels in WebAssembly SIMD (f32x4).
//
// Built by build.sh into kernels_wasm.ts (the .wasm bytes, base64). Every
// pointer is an offset into this module's own memory: simd.ts copies a block
// of the caller's arrays in, runs a kernel, and copies the result out. Each
// function handles any length (the tail uses the same vector code on a
// zero-padded lane set), and NaN propagates.
#include <wasm_simd128.h>

typedef v128_t v4;

#define EXPORT(name) __attribute__((export_name(#name)))

#define SPLAT(x) wasm_f32x4_splat(x)

// The polynomial and clamp constants, 4 lanes each. Every kernel that needs them loads
// the table once into locals (Consts) before its loops: V8 builds a v128.const from
// immediates through a general register at every use, and clang rematerialises
// constants inside loops; a table it cannot see through (neither static nor const) keeps
// them loop-invariant (GELU ~20% faster, measured). K(name) is constant `name` of the
// Consts *c in scope.
#define KERNEL_CONSTS(X) \
  X(EXP_LO, -87.3f) \
  X(EXP_HI, 88.7f) \
  X(LOG2E, 1.44269504088896341f) \
  X(LN2_HI, 0.693359375f) \
  X(LN2_LO, -2.12194440e-4f) \
  X(EXP_P0, 1.9875691500e-4f) \
  X(EXP_P1, 1.3981999507e-3f) \
  X(EXP_P2, 8.3334519073e-3f) \
  X(EXP_P3, 4.1665795894e-2f) \
  X(EXP_P4, 1.6666665459e-1f) \
  X(EXP_P5, 5.0000001201e-1f) \
  X(ONE, 1.0f) \
  X(ROUND, 12582912.0f) \
  X(ERF_LO, -4.0f) \
  X(ERF_HI, 4.0f) \
  X(ERF_P0, -2.72614225801306e-10f) \
  X(ERF_P1, 2.77068142495902e-08f) \
  X(ERF_P2, -2.10102402082508e-06f) \
  X(ERF_P3, -5.69250639462346e-05f) \
  X(ERF_P4, -7.34990630326855e-04f) \
  X(ERF_P5, -2.95459980854025e-03f) \
  X(ERF_P6, -1.60960333262415e-02f) \
  X(ERF_Q0, -1.45660718464996e-05f) \
  X(ERF_Q1, -2.13374055278905e-04f) \
  X(ERF_Q2, -1.68282697438203e-03f) \
  X(ERF_Q3, -7.37332916720468e-03f) \
  X(ERF_Q4, -1.42647390514189e-02f) \
  X(HALF, 0.5f) \
  X(SQRT1_2, 0.70710678118654752f) \
  X(INV_SQRT_2PI, 0.39894228040143268f) \
  X(MINUS_HALF, -0.5f)
#define KERNEL_CONST_ENUM(name, value) K_##name,
enum { KERNEL_CONSTS(KERNEL_CONST_ENUM) K_COUNT };
#define KERNEL_CONST_ROW(name, value) {value, value, value, value},
float kernel_consts[K_COUNT][4] __attribute__((aligned(16))) = {KERNEL_CONSTS(KERNEL_CONST_ROW)};
typedef struct {
  v4 k[K_COUNT];
} Consts;
static inline void load_consts(Consts *c) {
  for (int i = 0; i < K_COUNT; i++) c->k[i] = wasm_v128_load(kernel_consts[i]);
}
#define K(name) (c->k[K_##name])
// Declares the Consts c of a kernel, loaded from the table.
#define CONSTS \
  Consts consts_;       \
  load_consts(&consts_); \
  const Consts *c = &consts_

// clamp(x, lo, hi) that keeps NaN: pmin/pmax return their first operand when the
// comparison is false, and each is one minps/maxps on x86 (f32x4.min/max, with
// their -0 and NaN rules, take several instructions).
static inline v4 clamp4(v4 x, v4 lo, v4 hi) {
  return wasm_f32x4_pmax(wasm_f32x4_pmin(x, hi), lo);
}

// exp(x), Cephes expf: x = n·ln2 + r, |r| ≤ ln2/2, degree-6 polynomial, 2^n
// through the exponent bits. Relative error ≈ 1e-7; x is clamped to
// [-87.3, 88.7] (exp(-87.3) ≈ 1.2e-38, the smallest normal f32).
static inline v4 exp4(v4 x, const Consts *c) {
  x = clamp4(x, K(EXP_LO), K(EXP_HI));
  v4 n = wasm_f32x4_nearest(wasm_f32x4_mul(x, K(LOG2E)));
  v4 r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, K(LN2_HI)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, K(LN2_LO)));
  v4 p = K(EXP_P0);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), K(EXP_P1));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), K(EXP_P2));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), K(EXP_P3));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), K(EXP_P4));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), K(EXP_P5));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, wasm_f32x4_mul(r, r)), r);
  p = wasm_f32x4_add(p, K(ONE));
  // n + 1.5·2^23 holds the integer n in its low mantissa bits: 2^n = (n + 127) << 23.
  v4 nb = wasm_f32x4_add(n, K(ROUND));
  v4 pow2n = wasm_i32x4_shl(wasm_i32x4_sub(nb, wasm_i32x4_splat(0x4B400000 - 127)), 23);
  return wasm_f32x4_mul(p, pow2n);
}

// erf(x), Eigen's generic_fast_erf_float: x·P(x²)/Q(x²) on x clamped to
// [-4, 4] (erf is ±1 in f32 beyond). Absolute error a few 1e-8.
static inline v4 erf4(v4 v, const Consts *c) {
  v4 x = clamp4(v, K(ERF_LO), K(ERF_HI));
  v4 x2 = wasm_f32x4_mul(x, x);
  v4 p = wasm_f32x4_add(wasm_f32x4_mul(x2, K(ERF_P0)), K(ERF_P1));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), K(ERF_P2));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), K(ERF_P3));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), K(ERF_P4));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), K(ERF_P5));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), K(ERF_P6));
  v4 q = wasm_f32x4_add(wasm_f32x4_mul(x2, K(ERF_Q0)), K(ERF_Q1));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, x2), K(ERF_Q2));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, x2), K(ERF_Q3));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, x2), K(ERF_Q4));
  return wasm_f32x4_div(wasm_f32x4_mul(x, p), q);
}

// gelu(x) = ½·x·(1 + erf(x/√2))
static inline v4 gelu4(v4 x, const Consts *c) {
  v4 cdf = wasm_f32x4_mul(K(HALF), wasm_f32x4_add(K(ONE), erf4(wasm_f32x4_mul(x, K(SQRT1_2)), c)));
  return wasm_f32x4_mul(x, cdf);
}

// gelu'(x) = Φ(x) + x·φ(x)
static inline v4 gelu_grad4(v4 x, const Consts *c) {
  v4 cdf = wasm_f32x4_mul(K(HALF), wasm_f32x4_add(K(ONE), erf4(wasm_f32x4_mul(x, K(SQRT1_2)), c)));
  v4 pdf = wasm_f32x4_mul(K(INV_SQRT_2PI), exp4(wasm_f32x4_mul(K(MINUS_HALF), wasm_f32x4_mul(x, x)), c));
  return wasm_f32x4_add(cdf, wasm_f32x4_mul(x, pdf));
}

// Loads lanes [0, k) of p (k < 4), the rest zero; stores them back.
static inline v4 load_tail(const float* p, int k) {
  float t[4] = {0, 0, 0, 0};
  for (int i = 0; i < k; i++) t[i] = p[i];
  return wasm_v128_load(t);
}
static inline void store_tail(float* p, v4 x, int k) {
  float t[4];
  wasm_v128_store(t, x);
  for (int i = 0; i < k; i++) p[i] = t[i];
}

// out[i] = gelu(inp[i]), i < n; out may alias inp.
// The loops below do two vectors per iteration: two independent dependency chains
// through the polynomials run ~15% faster under V8 than one (measured on gelu).
EXPORT(gelu) void gelu(float* out, const float* inp, int n) {
  CONSTS;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    v4 a = wasm_v128_load(inp + i), b = wasm_v128_load(inp + i + 4);
    wasm_v128_store(out + i, gelu4(a, c));
    wasm_v128_store(out + i + 4, gelu4(b, c));
  }
  for (; i + 4 <= n; i += 4) wasm_v128_store(out + i, gelu4(wasm_v128_load(inp + i), c));
  if (i < n) store_tail(out + i, gelu4(load_tail(inp + i, n - i), c), n - i);
}

// dinp[i] = dout[i]·gelu'(inp[i]); dinp may alias dout.
EXPORT(gelu_backward) void gelu_backward(float* dinp, const float* dout, const float* inp, int n) {
  CONSTS;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    v4 g0 = gelu_grad4(wasm_v128_load(inp + i), c), g1 = gelu_grad4(wasm_v128_load(inp + i + 4), c);
    wasm_v128_store(dinp + i, wasm_f32x4_mul(wasm_v128_load(dout + i), g0));
    wasm_v128_store(dinp + i + 4, wasm_f32x4_mul(wasm_v128_load(dout + i + 4), g1));
  }
  for (; i + 4 <= n; i += 4) {
    v4 g = gelu_grad4(wasm_v128_load(inp + i), c);
    wasm_v128_store(dinp + i, wasm_f32x4_mul(wasm_v128_load(dout + i), g));
  }
  if (i < n) {
    v4 g = gelu_grad4(load_tail(inp + i, n - i), c);
    store_tail(dinp + i, wasm_f32x4_mul(load_tail(dout + i, n - i), g), n - i);
  }
}

// The matmul epilogue of rows × N: out += bias (per row, when bias ≠ 0); then with
// gelu: pre = out (when pre ≠ 0) and out = gelu(out).
EXPORT(bias_gelu) void bias_gelu(float* out, const float* bias, float* pre, int rows, int N, int gelu) {
  CONSTS;
  for (int r = 0; r < rows; r++) {
    float* row = out + r * N;
    float* prow = pre ? pre + r * N : 0;
    int j = 0;
    for (; gelu && j + 8 <= N; j += 8) {
      v4 z0 = wasm_v128_load(row + j), z1 = wasm_v128_load(row + j + 4);
      if (bias) {
        z0 = wasm_f32x4_add(z0, wasm_v128_load(bias + j));
        z1 = wasm_f32x4_add(z1, wasm_v128_load(bias + j + 4));
      }
      if (prow) {
        wasm_v128_store(prow + j, z0);
        wasm_v128_store(prow + j + 4, z1);
      }
      wasm_v128_store(row + j, gelu4(z0, c));
      wasm_v128_store(row + j + 4, gelu4(z1, c));
    }
    for (; j + 4 <= N; j += 4) {
      v4 z = wasm_v128_load(row + j);
      if (bias) z = wasm_f32x4_add(z, wasm_v128_load(bias + j));
      if (gelu) {
        if (prow) wasm_v128_store(prow + j, z);
        z = gelu4(z, c);
      }
      wasm_v128_store(row + j, z);
    }
    if (j < N) {
      int k = N - j;
      v4 z = load_tail(row + j, k);
      if (bias) z = wasm_f32x4_add(z, load_tail(bias + j, k));
      if (gelu) {
        if (prow) store_tail(prow + j, z, k);
        z = gelu4(z, c);
      }
      store_tail(row + j, z, k);
    }
  }
}

static inline float hmax(v4 x) {
  float t[4];
  wasm_v128_store(t, x);
  float a = t[0] > t[1] ? t[0] : t[1], b = t[2] > t[3] ? t[2] : t[3];
  return a > b ? a : b;
}
static inline float hsum(v4 x) {
  float t[4];
  wasm_v128_store(t, x);
  return (t[0] + t[1]) + (t[2] + t[3]);
}

// out[r, :] = softmax(scale·inp[r, :]) for rows × C (max subtracted first).
// A row holding NaN gives NaN. out may alias inp.
EXPORT(softmax) void softmax(float* out, const float* inp, int rows, int C, float scale) {
  CONSTS;
  v4 s = SPLAT(scale);
  for (int r = 0; r < rows; r++) {
    const float* x = inp + r * C;
    float* y = out + r * C;
    int j = 0;
    v4 m4 = SPLAT(-__builtin_inff());
    for (; j + 4 <= C; j += 4) m4 = wasm_f32x4_pmax(m4, wasm_f32x4_mul(s, wasm_v128_load(x + j)));
    float m = hmax(m4);
    for (; j < C; j++) {
      float t = scale * x[j];
      m = (t > m || t != t) ? t : m;
    }
    v4 mv = SPLAT(m);
    v4 sum4 = SPLAT(0.0f);
    j = 0;
    for (; j + 4 <= C; j += 4) {
      v4 e = exp4(wasm_f32x4_sub(wasm_f32x4_mul(s, wasm_v128_load(x + j)), mv), c);
      wasm_v128_store(y + j, e);
      sum4 = wasm_f32x4_add(sum4, e);
    }
    float sum = hsum(sum4);
    if (j < C) {
      int k = C - j;
      v4 e = exp4(wasm_f32x4_sub(wasm_f32x4_mul(s, load_tail(x + j, k)), mv), c);
      store_tail(y + j, e, k);
      float t[4];
      wasm_v128_store(t, e);
      for (int i = 0; i < k; i++) sum += t[i];
    }
    v4 inv = SPLAT(1.0f / sum);
    j = 0;
    for (; j + 4 <= C; j += 4) wasm_v128_store(y + j, wasm_f32x4_mul(wasm_v128_load(y + j), inv));
    for (; j < C; j++) y[j] *= 1.0f / sum;
  }
}

// Sum of lanes [0, C) of a row.
static inline float row_sum(const float* x, int C) {
  v4 a = SPLAT(0.0f);
  int j = 0;
  for (; j + 4 <= C; j += 4) a = wasm_f32x4_add(a, wasm_v128_load(x + j));
  float s = hsum(a);
  for (; j < C; j++) s += x[j];
  return s;
}

// LayerNorm of rows × C: out = (x − mean)·rstd·weight + bias, rstd = 1/√(var + eps),
// biased variance (two passes). mean and rstd are written per row.
EXPORT(layernorm) void layernorm(float* out, float* mean, float* rstd, const float* inp, const float* weight,
               const float* bias, int rows, int C, float eps) {
  for (int r = 0; r < rows; r++) {
    const float* x = inp + r * C;
    float* y = out + r * C;
    float m = row_sum(x, C) / (float)C;
    v4 mv = SPLAT(m);
    v4 a = SPLAT(0.0f);
    int j = 0;
    for (; j + 4 <= C; j += 4) {
      v4 d = wasm_f32x4_sub(wasm_v128_load(x + j), mv);
      a = wasm_f32x4_add(a, wasm_f32x4_mul(d, d));
    }
    float var = hsum(a);
    for (; j < C; j++) var += (x[j] - m) * (x[j] - m);
    var /= (float)C;
    float s = 1.0f / __builtin_sqrtf(var + eps);
    v4 sv = SPLAT(s);
    j = 0;
    for (; j + 4 <= C; j += 4) {
      v4 n = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + j), mv), sv);
      wasm_v128_store(y + j, wasm_f32x4_add(wasm_f32x4_mul(n, wasm_v128_load(weight + j)), wasm_v128_load(bias + j)));
    }
    for (; j < C; j++) y[j] = (x[j] - m) * s * weight[j] + bias[j];
    mean[r] = m;
    rstd[r] = s;
  }
}

// dinp[r, :] = scale·out ⊙ (dout − Σ dout⊙out) for rows × C; dinp may alias dout.
EXPORT(softmax_backward) void softmax_backward(float* dinp, const float* dout, const float* out,
                                               int rows, int C, float scale) {
  for (int r = 0; r < rows; r++) {
    const float* g = dout + r * C;
    const float* y = out + r * C;
    float* d = dinp + r * C;
    v4 a = SPLAT(0.0f);
    int j = 0;
    for (; j + 4 <= C; j += 4) a = wasm_f32x4_add(a, wasm_f32x4_mul(wasm_v128_load(g + j), wasm_v128_load(y + j)));
    float dot = hsum(a);
    for (; j < C; j++) dot += g[j] * y[j];
    v4 dv = SPLAT(dot), sv = SPLAT(scale);
    j = 0;
    for (; j + 4 <= C; j += 4) {
      v4 t = wasm_f32x4_sub(wasm_v128_load(g + j), dv);
      wasm_v128_store(d + j, wasm_f32x4_mul(sv, wasm_f32x4_mul(wasm_v128_load(y + j), t)));
    }
    for (; j < C; j++) d[j] = scale * (y[j] * (g[j] - dot));
  }
}

// LayerNorm backward of rows × C: dinp = rstd·(dnorm − mean(dnorm) − norm·mean(dnorm⊙norm))
// with dnorm = weight⊙dout (assigned, or added when accumulate), and dweight += Σ norm⊙dout,
// dbias += Σ dout over the rows.
EXPORT(layernorm_backward) void layernorm_backward(float* dinp, float* dweight, float* dbias,
                                                   const float* dout, const float* inp,
                                                   const float* weight, const float* mean,
                                                   const float* rstd, int rows, int C,
                                                   int accumulate) {
  for (int r = 0; r < rows; r++) {
    const float* g = dout + r * C;
    const float* x = inp + r * C;
    float* d = dinp + r * C;
    v4 mv = SPLAT(mean[r]), sv = SPLAT(rstd[r]);
    v4 a = SPLAT(0.0f), b = SPLAT(0.0f);
    int j = 0;
    for (; j + 4 <= C; j += 4) {
      v4 n = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + j), mv), sv);
      v4 dn = wasm_f32x4_mul(wasm_v128_load(weight + j), wasm_v128_load(g + j));
      a = wasm_f32x4_add(a, dn);
      b = wasm_f32x4_add(b, wasm_f32x4_mul(dn, n));
    }
    float sa = hsum(a), sb = hsum(b);
    for (; j < C; j++) {
      float n = (x[j] - mean[r]) * rstd[r];
      float dn = weight[j] * g[j];
      sa += dn;
      sb += dn * n;
    }
    v4 ma = SPLAT(sa / (float)C), mb = SPLAT(sb / (float)C);
    j = 0;
    for (; j + 4 <= C; j += 4) {
      v4 gj = wasm_v128_load(g + j);
      v4 n = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + j), mv), sv);
      v4 dn = wasm_f32x4_mul(wasm_v128_load(weight + j), gj);
      v4 v = wasm_f32x4_mul(wasm_f32x4_sub(wasm_f32x4_sub(dn, ma), wasm_f32x4_mul(n, mb)), sv);
      if (accumulate) v = wasm_f32x4_add(v, wasm_v128_load(d + j));
      wasm_v128_store(d + j, v);
      wasm_v128_store(dbias + j, wasm_f32x4_add(wasm_v128_load(dbias + j), gj));
      wasm_v128_store(dweight + j, wasm_f32x4_add(wasm_v128_load(dweight + j), wasm_f32x4_mul(n, gj)));
    }
    for (; j < C; j++) {
      float n = (x[j] - mean[r]) * rstd[r];
      float dn = weight[j] * g[j];
      float v = (dn - sa / (float)C - n * (sb / (float)C)) * rstd[r];
      d[j] = accumulate ? d[j] + v : v;
      dbias[j] += g[j];
      dweight[j] += n * g[j];
    }
  }
}

// AdamW on n elements of one parameter segment: g = clip·grad; m = β1·m + (1−β1)·g;
// v = β2·v + (1−β2)·g²; param = param·decay − step·m / (√(v·inv_bc2) + eps), where
// step = lr/bc1 and decay = 1 − lr·wd.
EXPORT(adamw) void adamw(float* param, const float* grad, float* m, float* v, int n, float clip,
                         float beta1, float beta2, float step, float inv_bc2, float eps,
                         float decay) {
  v4 c = SPLAT(clip), b1 = SPLAT(beta1), b2 = SPLAT(beta2), o1 = SPLAT(1.0f - beta1),
     o2 = SPLAT(1.0f - beta2), st = SPLAT(step), ib = SPLAT(inv_bc2), ep = SPLAT(eps),
     dc = SPLAT(decay);
  // The tail runs the same vector code on zero-padded lanes, so an element's result
  // does not depend on where a block or a thread's share starts.
  for (int i = 0; i < n; i += 4) {
    int k = n - i < 4 ? n - i : 4;
    v4 g = wasm_f32x4_mul(k == 4 ? wasm_v128_load(grad + i) : load_tail(grad + i, k), c);
    v4 m0 = k == 4 ? wasm_v128_load(m + i) : load_tail(m + i, k);
    v4 v0 = k == 4 ? wasm_v128_load(v + i) : load_tail(v + i, k);
    v4 p0 = k == 4 ? wasm_v128_load(param + i) : load_tail(param + i, k);
    v4 mi = wasm_f32x4_add(wasm_f32x4_mul(b1, m0), wasm_f32x4_mul(o1, g));
    v4 vi = wasm_f32x4_add(wasm_f32x4_mul(b2, v0), wasm_f32x4_mul(o2, wasm_f32x4_mul(g, g)));
    v4 den = wasm_f32x4_add(wasm_f32x4_sqrt(wasm_f32x4_mul(vi, ib)), ep);
    v4 p = wasm_f32x4_sub(wasm_f32x4_mul(p0, dc), wasm_f32x4_div(wasm_f32x4_mul(st, mi), den));
    if (k == 4) {
      wasm_v128_store(m + i, mi);
      wasm_v128_store(v + i, vi);
      wasm_v128_store(param + i, p);
    } else {
      store_tail(m + i, mi, k);
      store_tail(v + i, vi, k);
      store_tail(param + i, p, k);
    }
  }
}

// ---- attention (one sample's heads [h0, h1); see native/dbot_cpu.c for the same in C) ----
// C [M, n] = A [M, K] · B [K, n] (row strides lda, ldb, ldc), assigned: tiles of 4 rows ×
// 8 columns in 8 vector accumulators, then 4 columns, then single columns; rows past M are
// computed from row M − 1 and dropped.
static inline void mm_nn(float* c, int ldc, const float* a, int lda, const float* b, int ldb,
                         int M, int n, int K) {
  for (int i0 = 0; i0 < M; i0 += 4) {
    const float* a0 = a + i0 * lda;
    const float* a1 = a + (i0 + 1 < M ? i0 + 1 : M - 1) * lda;
    const float* a2 = a + (i0 + 2 < M ? i0 + 2 : M - 1) * lda;
    const float* a3 = a + (i0 + 3 < M ? i0 + 3 : M - 1) * lda;
    int rows = M - i0 < 4 ? M - i0 : 4;
    float* c0 = c + i0 * ldc;
    int j0 = 0;
    for (; j0 + 8 <= n; j0 += 8) {
      v4 x0 = SPLAT(0.0f), x1 = x0, y0 = x0, y1 = x0, z0 = x0, z1 = x0, w0 = x0, w1 = x0;
      for (int k = 0; k < K; k++) {
        const float* br = b + k * ldb + j0;
        v4 b0 = wasm_v128_load(br), b1 = wasm_v128_load(br + 4);
        v4 s0 = SPLAT(a0[k]), s1 = SPLAT(a1[k]), s2 = SPLAT(a2[k]), s3 = SPLAT(a3[k]);
        x0 = wasm_f32x4_add(x0, wasm_f32x4_mul(s0, b0));
        x1 = wasm_f32x4_add(x1, wasm_f32x4_mul(s0, b1));
        y0 = wasm_f32x4_add(y0, wasm_f32x4_mul(s1, b0));
        y1 = wasm_f32x4_add(y1, wasm_f32x4_mul(s1, b1));
        z0 = wasm_f32x4_add(z0, wasm_f32x4_mul(s2, b0));
        z1 = wasm_f32x4_add(z1, wasm_f32x4_mul(s2, b1));
        w0 = wasm_f32x4_add(w0, wasm_f32x4_mul(s3, b0));
        w1 = wasm_f32x4_add(w1, wasm_f32x4_mul(s3, b1));
      }
      v4 t[8] = {x0, x1, y0, y1, z0, z1, w0, w1};
      for (int r = 0; r < rows; r++) {
        wasm_v128_store(c0 + r * ldc + j0, t[2 * r]);
        wasm_v128_store(c0 + r * ldc + j0 + 4, t[2 * r + 1]);
      }
    }
    for (; j0 + 4 <= n; j0 += 4) {
      v4 x0 = SPLAT(0.0f), y0 = x0, z0 = x0, w0 = x0;
      for (int k = 0; k < K; k++) {
        v4 b0 = wasm_v128_load(b + k * ldb + j0);
        x0 = wasm_f32x4_add(x0, wasm_f32x4_mul(SPLAT(a0[k]), b0));
        y0 = wasm_f32x4_add(y0, wasm_f32x4_mul(SPLAT(a1[k]), b0));
        z0 = wasm_f32x4_add(z0, wasm_f32x4_mul(SPLAT(a2[k]), b0));
        w0 = wasm_f32x4_add(w0, wasm_f32x4_mul(SPLAT(a3[k]), b0));
      }
      v4 t[4] = {x0, y0, z0, w0};
      for (int r = 0; r < rows; r++) wasm_v128_store(c0 + r * ldc + j0, t[r]);
    }
    for (; j0 < n; j0++) {
      for (int r = 0; r < rows; r++) {
        const float* ar = a + (i0 + r) * lda;
        float s = 0.0f;
        for (int k = 0; k < K; k++) s += ar[k] * b[k * ldb + j0];
        c0[r * ldc + j0] = s;
      }
    }
  }
}

// t [n, ldt] = sᵀ for s [m, n] with row stride lds (t's columns m … ldt − 1 are zeroed).
static inline void transpose(float* t, int ldt, const float* s, int lds, int m, int n) {
  for (int j = 0; j < n; j++) {
    float* tr = t + j * ldt;
    for (int i = 0; i < m; i++) tr[i] = s[i * lds + j];
    for (int i = m; i < ldt; i++) tr[i] = 0.0f;
  }
}

// Columns of the per-head scratch rows: N rounded up to 8, so scores use full tiles.
static inline int padded(int N) { return (N + 7) & ~7; }

// Floats of scratch that attention and attention_backward need.
EXPORT(attention_scratch) int attention_scratch(int N, int HS) { return (HS + 3 * N) * padded(N); }

// Heads [h0, h1) of one sample, qkv [N, 3, NH, HS]: att [h1 − h0, N, N] (from head h0) =
// softmax(scale · q·kᵀ) and out[:, h] [N, HS] (row stride D) = att · v.
EXPORT(attention) void attention(float* out, float* att, const float* qkv, float* work, int h0,
                                 int h1, int N, int NH, int HS, float scale) {
  const int D = NH * HS, ld = 3 * D, Np = padded(N);
  float* kt = work;         // [HS, Np] kᵀ, zero past N
  float* s = kt + HS * Np;  // [N, Np] scores, then probabilities
  for (int h = h0; h < h1; h++) {
    const float* q = qkv + h * HS;  // k at + D, v at + 2D
    float* a = att + (h - h0) * N * N;
    transpose(kt, Np, q + D, ld, N, HS);
    mm_nn(s, Np, q, ld, kt, Np, N, Np, HS);
    for (int i = 0; i < N; i++) softmax(a + i * N, s + i * Np, 1, N, scale);
    for (int i = 0; i < N; i++)
      for (int j = 0; j < N; j++) s[i * Np + j] = a[i * N + j];
    mm_nn(out + h * HS, D, s, Np, q + 2 * D, ld, N, HS, N);
  }
}

// Backward of attention for heads [h0, h1) of one sample: dqkv (those heads' q, k, v
// columns, assigned) and dlogits [h1 − h0, N, N] (from head h0), the gradient of the
// unscaled logits, from dout [N, D] and att (from head h0).
EXPORT(attention_backward) void attention_backward(float* dqkv, float* dlogits, const float* dout,
                                                   const float* qkv, const float* att, float* work,
                                                   int h0, int h1, int N, int NH, int HS,
                                                   float scale) {
  const int D = NH * HS, ld = 3 * D, Np = padded(N);
  float* vt = work;         // [HS, Np] vᵀ
  float* g = vt + HS * Np;  // [N, Np] datt, then the logits' gradient
  float* at = g + N * Np;   // [N, Np] attᵀ
  float* gt = at + N * Np;  // [N, Np] the logits' gradient, transposed
  for (int h = h0; h < h1; h++) {
    const float* q = qkv + h * HS;
    float* dq = dqkv + h * HS;
    const float* go = dout + h * HS;
    const float* a = att + (h - h0) * N * N;
    float* dl = dlogits + (h - h0) * N * N;
    transpose(vt, Np, q + 2 * D, ld, N, HS);
    mm_nn(g, Np, go, D, vt, Np, N, Np, HS);
    transpose(at, Np, a, N, N, N);
    mm_nn(dq + 2 * D, ld, at, Np, go, D, N, HS, N);
    for (int i = 0; i < N; i++) softmax_backward(dl + i * N, g + i * Np, a + i * N, 1, N, scale);
    for (int i = 0; i < N; i++)
      for (int j = 0; j < N; j++) g[i * Np + j] = dl[i * N + j];
    mm_nn(dq, ld, g, Np, q + D, ld, N, HS, N);
    transpose(gt, Np, g, Np, N, N);
    mm_nn(dq + D, ld, gt, Np, q, ld, N, HS, N);
  }
}
