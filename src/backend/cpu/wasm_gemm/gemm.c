// Single-precision GEMM in WebAssembly SIMD for the CPU backend (see wasm_gemm.ts).
//
// Built twice by build.sh: plain SIMD (multiply then add) and, with -DRELAXED, relaxed
// SIMD (f32x4.relaxed_madd, a fused multiply-add where the engine has one). The caller
// copies its operands into this module's memory and calls, per column chunk of C:
//   pack_b      op(B)[K, nc] into KC×NR micro-panels (once per chunk),
//   gemm        C[mc, nc] = alpha·op(A)[mc, K]·(packed B) + beta·C, any number of times
//               with other row chunks of A and C against the same packed B, with an
//               optional bias/GELU epilogue on each block of rows once it is final,
//   gemm_batch  a batch of small products stored one after another (attention), each
//               packed and multiplied in one call.
// Row-major, strides in floats; pointers are byte offsets in this memory.
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

// Register block: MR rows × NR columns of C in MR·NR/4 v128 accumulators. V8 on x64 has
// 15 xmm registers for wasm: 4×8 (8 accumulators, 2 for the B row, 2 for A) ran fastest;
// 6×8 and 8×8 spill, 3×8, 2×16 and 4×12 were no faster, nor unrolling k (measured, Zen 4).
#define MR 4 // the micro-kernel loads the 4 values of A at one k as one v128
#ifndef NR
#define NR 8
#endif
#define NV (NR / 4)
// Cache blocks: a KC×NR panel of B (8 KiB) stays in L1 across the MR-row tiles of an
// MC×KC block of A (144 KiB, L2).
#ifndef KC
#define KC 256
#endif
#ifndef MC
#define MC 144
#endif

#ifdef RELAXED
// clang-14 spells f32x4.relaxed_madd as its prototype's f32x4.fma (0xfd 0xaf 0x01);
// build.sh rewrites the opcode to the standard one (0xfd 0x85 0x02): x·y + z.
#define MADD(acc, x, y) __builtin_wasm_fma_f32x4(x, y, acc)
#else
#define MADD(acc, x, y) wasm_f32x4_add(acc, wasm_f32x4_mul(x, y))
#endif

// erf(x), Eigen's generic_fast_erf_float: x·P(x²)/Q(x²) on x clamped to [-4, 4], and
// gelu(x) = ½·x·(1 + erf(x/√2)): the code of erf4/gelu4 in ../simd/kernels.c (the
// elementwise kernels) with the same constants, plain mul/add in both builds, so the fused
// epilogue gives the bits of a GEMM followed by that module's bias_gelu
// (tests/wasm_gemm_test.ts compares the two). The constants sit in a table that the
// epilogue loads once into locals (GeluConsts) before its loops: V8 builds a v128.const
// from immediates through a general register at every use, and clang rematerialises
// constants inside loops; a table it cannot see through (neither static nor const) keeps
// them loop-invariant (measured ~20% faster GELU).
enum {
  G_HI, G_LO, G_P0, G_P1, G_P2, G_P3, G_P4, G_P5, G_P6, G_Q0, G_Q1, G_Q2, G_Q3, G_Q4,
  G_HALF, G_ONE, G_SQRT1_2, G_COUNT
};
#define LANES4(x) {x, x, x, x}
float gemm_gelu_consts[G_COUNT][4] __attribute__((aligned(16))) = {
    LANES4(4.0f),
    LANES4(-4.0f),
    LANES4(-2.72614225801306e-10f),
    LANES4(2.77068142495902e-08f),
    LANES4(-2.10102402082508e-06f),
    LANES4(-5.69250639462346e-05f),
    LANES4(-7.34990630326855e-04f),
    LANES4(-2.95459980854025e-03f),
    LANES4(-1.60960333262415e-02f),
    LANES4(-1.45660718464996e-05f),
    LANES4(-2.13374055278905e-04f),
    LANES4(-1.68282697438203e-03f),
    LANES4(-7.37332916720468e-03f),
    LANES4(-1.42647390514189e-02f),
    LANES4(0.5f),
    LANES4(1.0f),
    LANES4(0.70710678118654752f),
};
typedef struct {
  v128_t k[G_COUNT];
} GeluConsts;

static inline void load_gelu_consts(GeluConsts *g) {
  for (int i = 0; i < G_COUNT; i++) g->k[i] = wasm_v128_load(gemm_gelu_consts[i]);
}

static inline v128_t erf4(v128_t v, const GeluConsts *g) {
  const v128_t *k = g->k;
  v128_t x = wasm_f32x4_pmax(wasm_f32x4_pmin(v, k[G_HI]), k[G_LO]);
  v128_t x2 = wasm_f32x4_mul(x, x);
  v128_t p = wasm_f32x4_add(wasm_f32x4_mul(x2, k[G_P0]), k[G_P1]);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), k[G_P2]);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), k[G_P3]);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), k[G_P4]);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), k[G_P5]);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), k[G_P6]);
  v128_t q = wasm_f32x4_add(wasm_f32x4_mul(x2, k[G_Q0]), k[G_Q1]);
  q = wasm_f32x4_add(wasm_f32x4_mul(q, x2), k[G_Q2]);
  q = wasm_f32x4_add(wasm_f32x4_mul(q, x2), k[G_Q3]);
  q = wasm_f32x4_add(wasm_f32x4_mul(q, x2), k[G_Q4]);
  return wasm_f32x4_div(wasm_f32x4_mul(x, p), q);
}

static inline v128_t gelu4(v128_t x, const GeluConsts *g) {
  v128_t e = erf4(wasm_f32x4_mul(x, g->k[G_SQRT1_2]), g);
  return wasm_f32x4_mul(x, wasm_f32x4_mul(g->k[G_HALF], wasm_f32x4_add(g->k[G_ONE], e)));
}

// The matmul epilogue over rows × cols of C (row stride ldc): bias (cols floats, or null)
// is added per column, then with gelu the sum goes to pre (when not null; row stride ldc
// like C) and gelu of it to C. gemm runs it on each MC-row block right after the block's
// last K block, while the block is still in L2. Two vectors per step (independent chains
// through the polynomial), the last columns through a zero-padded vector. Not inlined:
// inside the GEMM's loops (per register tile, measured) it ran slower than as a pass.
typedef struct {
  const float *bias;
  float *pre;
  int gelu;
} Epilogue;

static inline v128_t epi4(v128_t x, const Epilogue *e, const float *bias, float *pre,
                          const GeluConsts *g) {
  if (bias) x = wasm_f32x4_add(x, wasm_v128_load(bias));
  if (e->gelu) {
    if (pre) wasm_v128_store(pre, x);
    x = gelu4(x, g);
  }
  return x;
}

__attribute__((noinline)) static void epilogue_rows(float *c, int ldc, int rows, int cols,
                                                    const Epilogue *e) {
  GeluConsts g;
  load_gelu_consts(&g);
  for (int i = 0; i < rows; i++) {
    float *row = c + i * ldc;
    float *prow = e->gelu && e->pre ? e->pre + i * ldc : 0;
    const float *b = e->bias;
    int j = 0;
    for (; j + 8 <= cols; j += 8) {
      v128_t x0 = epi4(wasm_v128_load(row + j), e, b ? b + j : 0, prow ? prow + j : 0, &g);
      v128_t x1 =
          epi4(wasm_v128_load(row + j + 4), e, b ? b + j + 4 : 0, prow ? prow + j + 4 : 0, &g);
      wasm_v128_store(row + j, x0);
      wasm_v128_store(row + j + 4, x1);
    }
    for (; j < cols; j += 4) {
      int w = cols - j < 4 ? cols - j : 4;
      float t[4] = {0, 0, 0, 0}, bt[4] = {0, 0, 0, 0}, p[4];
      for (int l = 0; l < w; l++) t[l] = row[j + l];
      if (b) for (int l = 0; l < w; l++) bt[l] = b[j + l];
      v128_t x = epi4(wasm_v128_load(t), e, b ? bt : 0, p, &g);
      wasm_v128_store(t, x);
      for (int l = 0; l < w; l++) {
        if (prow) prow[j + l] = p[l];
        row[j + l] = t[l];
      }
    }
  }
}

// Scratch for the packed A block and for the edge tiles.
static float apack[MC * KC] __attribute__((aligned(16)));
static float edge[MR * NR] __attribute__((aligned(16)));

// Transposes the 4×4 block of rows r0…r3 (each evaluated once) into columns c0…c3.
#define TRANSPOSE4(r0, r1, r2, r3, c0, c1, c2, c3)            \
  do {                                                        \
    v128_t x0_ = (r0), x1_ = (r1), x2_ = (r2), x3_ = (r3);    \
    v128_t t0_ = wasm_i32x4_shuffle(x0_, x1_, 0, 4, 1, 5);    \
    v128_t t1_ = wasm_i32x4_shuffle(x2_, x3_, 0, 4, 1, 5);    \
    v128_t t2_ = wasm_i32x4_shuffle(x0_, x1_, 2, 6, 3, 7);    \
    v128_t t3_ = wasm_i32x4_shuffle(x2_, x3_, 2, 6, 3, 7);    \
    c0 = wasm_i32x4_shuffle(t0_, t1_, 0, 1, 4, 5);            \
    c1 = wasm_i32x4_shuffle(t0_, t1_, 2, 3, 6, 7);            \
    c2 = wasm_i32x4_shuffle(t2_, t3_, 0, 1, 4, 5);            \
    c3 = wasm_i32x4_shuffle(t2_, t3_, 2, 3, 6, 7);            \
  } while (0)

// op(B)[k, j] for stored b: transB → b[j·ldb + k], else b[k·ldb + j].
// Packed: K blocks of KC rows; in a block of kb rows, panel p (columns p·NR…) is kb×NR
// contiguous at offset k0·ncp + p·kb·NR, zero-padded past nc (ncp = nc rounded up to NR).
EXPORT(pack_b)
void pack_b(int transB, int K, int nc, const float *b, int ldb, float *bp) {
  int ncp = (nc + NR - 1) / NR * NR;
  for (int k0 = 0; k0 < K; k0 += KC) {
    int kb = K - k0 < KC ? K - k0 : KC;
    for (int j0 = 0; j0 < ncp; j0 += NR) {
      float *dst = bp + k0 * ncp + j0 * kb;
      int w = nc - j0 < NR ? nc - j0 : NR;
      if (!transB && w == NR) {
        for (int k = 0; k < kb; k++) {
          const float *src = b + (k0 + k) * ldb + j0;
          for (int v = 0; v < NV; v++) {
            wasm_v128_store(dst + k * NR + 4 * v, wasm_v128_load(src + 4 * v));
          }
        }
      } else if (!transB) {
        for (int k = 0; k < kb; k++) {
          const float *src = b + (k0 + k) * ldb + j0;
          for (int j = 0; j < NR; j++) dst[k * NR + j] = j < w ? src[j] : 0.0f;
        }
      } else if (w == NR) {
        // Stored [N, K]: 4×4 blocks of 4 stored rows (columns of op(B)) by 4 k.
        int k = 0;
        for (; k + 4 <= kb; k += 4) {
          for (int v = 0; v < NV; v++) {
            const float *s0 = b + (j0 + 4 * v) * ldb + k0 + k;
            v128_t c0, c1, c2, c3;
            TRANSPOSE4(wasm_v128_load(s0), wasm_v128_load(s0 + ldb), wasm_v128_load(s0 + 2 * ldb),
                       wasm_v128_load(s0 + 3 * ldb), c0, c1, c2, c3);
            wasm_v128_store(dst + k * NR + 4 * v, c0);
            wasm_v128_store(dst + (k + 1) * NR + 4 * v, c1);
            wasm_v128_store(dst + (k + 2) * NR + 4 * v, c2);
            wasm_v128_store(dst + (k + 3) * NR + 4 * v, c3);
          }
        }
        for (; k < kb; k++) {
          for (int j = 0; j < NR; j++) dst[k * NR + j] = b[(j0 + j) * ldb + k0 + k];
        }
      } else {
        for (int j = 0; j < NR; j++) {
          if (j < w) {
            const float *src = b + (j0 + j) * ldb + k0;
            for (int k = 0; k < kb; k++) dst[k * NR + j] = src[k];
          } else {
            for (int k = 0; k < kb; k++) dst[k * NR + j] = 0.0f;
          }
        }
      }
    }
  }
}

// apack = alpha·op(A)[i0:i0+mb, k0:k0+kb] as MR-row panels, each kb×MR, zero-padded.
// Packing A is repeated per column chunk and KC block, so full panels go 4×4 in SIMD.
static void pack_a(int transA, const float *a, int lda, float alpha, int i0, int k0, int mb,
                   int kb) {
  v128_t al = wasm_f32x4_splat(alpha);
  for (int r0 = 0; r0 < mb; r0 += MR) {
    float *dst = apack + r0 * kb;
    int h = mb - r0 < MR ? mb - r0 : MR;
    if (transA) {
      // Stored [K, M]: row k holds the MR values of one k, contiguous.
      for (int k = 0; k < kb; k++) {
        const float *src = a + (k0 + k) * lda + i0 + r0;
        if (h == MR) {
          wasm_v128_store(dst + k * MR, wasm_f32x4_mul(al, wasm_v128_load(src)));
        } else {
          for (int r = 0; r < MR; r++) dst[k * MR + r] = r < h ? alpha * src[r] : 0.0f;
        }
      }
    } else if (h == MR) {
      const float *s0 = a + (i0 + r0) * lda + k0;
      const float *s1 = s0 + lda, *s2 = s1 + lda, *s3 = s2 + lda;
      int k = 0;
      for (; k + 4 <= kb; k += 4) {
        v128_t c0, c1, c2, c3;
        TRANSPOSE4(wasm_v128_load(s0 + k), wasm_v128_load(s1 + k), wasm_v128_load(s2 + k),
                   wasm_v128_load(s3 + k), c0, c1, c2, c3);
        wasm_v128_store(dst + k * MR, wasm_f32x4_mul(al, c0));
        wasm_v128_store(dst + k * MR + 4, wasm_f32x4_mul(al, c1));
        wasm_v128_store(dst + k * MR + 8, wasm_f32x4_mul(al, c2));
        wasm_v128_store(dst + k * MR + 12, wasm_f32x4_mul(al, c3));
      }
      for (; k < kb; k++) {
        dst[k * MR] = alpha * s0[k];
        dst[k * MR + 1] = alpha * s1[k];
        dst[k * MR + 2] = alpha * s2[k];
        dst[k * MR + 3] = alpha * s3[k];
      }
    } else {
      for (int r = 0; r < MR; r++) {
        if (r < h) {
          const float *src = a + (i0 + r0 + r) * lda + k0;
          for (int k = 0; k < kb; k++) dst[k * MR + r] = alpha * src[k];
        } else {
          for (int k = 0; k < kb; k++) dst[k * MR + r] = 0.0f;
        }
      }
    }
  }
}

// c[MR, NR] (row stride ldc) = ap[kb, MR]ᵀ·bp[kb, NR] + beta·c: beta 0 overwrites (NaN in
// c included), beta 1 adds. The constant-bound loops unroll fully, so the accumulators
// live in registers.
static void micro(int kb, const float *ap, const float *bp, float *c, int ldc, float beta) {
  v128_t acc[MR][NV];
  for (int i = 0; i < MR; i++) {
    for (int v = 0; v < NV; v++) acc[i][v] = wasm_f32x4_splat(0.0f);
  }
  for (int k = 0; k < kb; k++) {
    v128_t bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = wasm_v128_load(bp + 4 * v);
    // The MR = 4 values of A at this k in one load, each broadcast by a lane shuffle:
    // fewer loads and address adds than four load32_splat (measured ~15% faster).
    v128_t a4 = wasm_v128_load(ap);
    v128_t a;
    a = wasm_i32x4_shuffle(a4, a4, 0, 0, 0, 0);
    for (int v = 0; v < NV; v++) acc[0][v] = MADD(acc[0][v], a, bv[v]);
    a = wasm_i32x4_shuffle(a4, a4, 1, 1, 1, 1);
    for (int v = 0; v < NV; v++) acc[1][v] = MADD(acc[1][v], a, bv[v]);
    a = wasm_i32x4_shuffle(a4, a4, 2, 2, 2, 2);
    for (int v = 0; v < NV; v++) acc[2][v] = MADD(acc[2][v], a, bv[v]);
    a = wasm_i32x4_shuffle(a4, a4, 3, 3, 3, 3);
    for (int v = 0; v < NV; v++) acc[3][v] = MADD(acc[3][v], a, bv[v]);
    ap += MR;
    bp += NR;
  }
  if (beta == 0.0f) {
    for (int i = 0; i < MR; i++) {
      for (int v = 0; v < NV; v++) wasm_v128_store(c + i * ldc + 4 * v, acc[i][v]);
    }
  } else if (beta == 1.0f) {
    for (int i = 0; i < MR; i++) {
      for (int v = 0; v < NV; v++) {
        float *p = c + i * ldc + 4 * v;
        wasm_v128_store(p, wasm_f32x4_add(acc[i][v], wasm_v128_load(p)));
      }
    }
  } else {
    v128_t b = wasm_f32x4_splat(beta);
    for (int i = 0; i < MR; i++) {
      for (int v = 0; v < NV; v++) {
        float *p = c + i * ldc + 4 * v;
        wasm_v128_store(p, wasm_f32x4_add(acc[i][v], wasm_f32x4_mul(b, wasm_v128_load(p))));
      }
    }
  }
}

// C[m, n] = beta·C (beta 0 writes zeros, NaN included).
static void scale_c(int m, int n, float beta, float *c, int ldc) {
  if (beta == 1.0f) return;
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
  }
}

// C[mc, nc] = alpha·op(A)[mc, K]·op(B)[K, nc] + beta·C with op(B) packed by pack_b, then
// the epilogue when bias is not null or gelu is set: C += bias[nc] per column, then with
// gelu pre = C (pre not null; row stride ldc) and C = gelu(C).
// op(A)[i, k]: transA → a[k·lda + i], else a[i·lda + k].
EXPORT(gemm)
void gemm(int transA, int mc, int nc, int K, float alpha, const float *a, int lda,
          const float *bp, float beta, float *c, int ldc, const float *bias, float *pre,
          int gelu) {
  Epilogue epi = {bias, gelu ? pre : 0, gelu};
  const Epilogue *e = bias || gelu ? &epi : 0;
  if (K == 0 || alpha == 0.0f) {
    scale_c(mc, nc, beta, c, ldc);
    if (e) epilogue_rows(c, ldc, mc, nc, e);
    return;
  }
  int ncp = (nc + NR - 1) / NR * NR;
  for (int k0 = 0; k0 < K; k0 += KC) {
    int kb = K - k0 < KC ? K - k0 : KC;
    float bk = k0 == 0 ? beta : 1.0f;
    for (int i0 = 0; i0 < mc; i0 += MC) {
      int mb = mc - i0 < MC ? mc - i0 : MC;
      pack_a(transA, a, lda, alpha, i0, k0, mb, kb);
      for (int j0 = 0; j0 < nc; j0 += NR) {
        const float *bpanel = bp + k0 * ncp + j0 * kb;
        int w = nc - j0 < NR ? nc - j0 : NR;
        for (int r0 = 0; r0 < mb; r0 += MR) {
          int h = mb - r0 < MR ? mb - r0 : MR;
          float *ct = c + (i0 + r0) * ldc + j0;
          if (h == MR && w == NR) {
            micro(kb, apack + r0 * kb, bpanel, ct, ldc, bk);
          } else {
            micro(kb, apack + r0 * kb, bpanel, edge, NR, 0.0f);
            for (int i = 0; i < h; i++) {
              for (int j = 0; j < w; j++) {
                float x = edge[i * NR + j];
                float *p = ct + i * ldc + j;
                *p = bk == 0.0f ? x : bk == 1.0f ? *p + x : x + bk * *p;
              }
            }
          }
        }
      }
      if (e && k0 + kb == K) {
        // the block's rows are final: the epilogue while they are in L2
        Epilogue ei = {bias, epi.pre ? epi.pre + i0 * ldc : 0, gelu};
        epilogue_rows(c + i0 * ldc, ldc, mb, nc, &ei);
      }
    }
  }
}

// count products stored one after another (product p's a, b and c start p·sa, p·sb and
// p·sc floats in): c = alpha·op(a)·op(b) + beta·c each, op(b) packed into bp (K×N, N
// rounded up to NR) per product. Attention's small products in one call.
EXPORT(gemm_batch)
void gemm_batch(int transA, int transB, int count, int M, int N, int K, float alpha,
                const float *a, int lda, int sa, const float *b, int ldb, int sb, float beta,
                float *c, int ldc, int sc, float *bp) {
  for (int p = 0; p < count; p++) {
    pack_b(transB, K, N, b + p * sb, ldb, bp);
    gemm(transA, M, N, K, alpha, a + p * sa, lda, bp, beta, c + p * sc, ldc, 0, 0, 0);
  }
}

// Columns of the register tile: packed B is padded to a multiple of it.
EXPORT(tile_nr)
int tile_nr(void) { return NR; }

// Start of free memory (16-byte aligned) for the caller's operands.
EXPORT(heap_start)
int heap_start(void) {
  extern unsigned char __heap_base;
  return ((int)&__heap_base + 15) & ~15;
}
