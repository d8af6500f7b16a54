/* field.c: arithmetic modulo p = 2^61 - 1 and in F_{p^2} for VALKYRIE's checks and proofs.
 *
 * Weighted sums of integer matrices (the hot path: multilinear-extension evaluations and
 * Freivalds checks) never reduce per product. Each 61-bit weight is split into limbs small enough
 * that (matrix entry) x (limb) products accumulate exactly in int64 lanes for a whole chunk of
 * rows or columns:
 *   int8, int16 entries: two limbs of 31 and 30 bits (|product| < 2^38 resp. 2^46),
 *   int32 entries:       three limbs of 21, 21 and 19 bits (|product| < 2^52, 2048 terms < 2^63).
 * A limb product is one signed 32 x 32 -> 64 multiply (vpmuldq), so the loops are plain C that
 * GCC vectorizes under per-function target attributes (AVX2, AVX-512), one portable build. At the
 * end of a chunk each int64 sum is reduced mod p and shifted into place: multiplying by 2^k
 * modulo a Mersenne prime is a 61-bit rotation. int64 entries (the C of int32 jobs, which the
 * verifier reduces in full) are split into two int32 halves that go through the int32 passes.
 *
 * Every result is canonical, so all paths (and the numba fallback) give the same bits. */
#include "field.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define P61 RAMNET_P61
#define ALWAYS_INLINE static inline __attribute__((always_inline))

typedef unsigned __int128 u128;

/* ---- scalar F_p helpers ---- */

/* s mod p in [0, p) for any int64 s: s = hi * 2^61 + lo with lo in [0, 2^61), and 2^61 = 1. */
ALWAYS_INLINE uint64_t mod_s64(int64_t s) {
  int64_t r = (int64_t)((uint64_t)s & P61) + (s >> 61);
  if (r < 0) r += (int64_t)P61;
  if ((uint64_t)r >= P61) r -= (int64_t)P61;
  return (uint64_t)r;
}

/* r * 2^k mod p for r < p and 0 <= k < 61: a rotation of the 61-bit word. */
ALWAYS_INLINE uint64_t rot61(uint64_t r, unsigned k) {
  if (k == 0) return r;
  return ((r << k) | (r >> (61 - k))) & P61;
}

ALWAYS_INLINE uint64_t add_p(uint64_t a, uint64_t b) {
  uint64_t s = a + b;
  return s >= P61 ? s - P61 : s;
}

ALWAYS_INLINE uint64_t sub_p(uint64_t a, uint64_t b) { return a >= b ? a - b : a + P61 - b; }

/* t mod p for any 128-bit t. */
ALWAYS_INLINE uint64_t reduce128(u128 t) {
  uint64_t lo = (uint64_t)t & P61, mid = (uint64_t)(t >> 61) & P61, hi = (uint64_t)(t >> 122);
  uint64_t s = lo + mid + hi; /* < 2^63 */
  s = (s & P61) + (s >> 61);
  return s >= P61 ? s - P61 : s;
}

ALWAYS_INLINE uint64_t mul_p(uint64_t a, uint64_t b) { return reduce128((u128)a * b); }

/* w >= p exactly when w + 1 or w (for w = 2^64 - 1) reaches 2^61: shifts and ors, which GCC
 * vectorizes, where a compare per element ran at one element a cycle (it is called on every
 * weight of every call, and the verifier calls the kernels once per strip of a matrix). */
static int weights_ok(size_t count, const uint64_t *w) {
  uint64_t bad = 0;
  for (size_t i = 0; i < count; i++) bad |= (w[i] >> 61) | ((w[i] + 1) >> 61);
  return bad == 0;
}

/* ---- dispatch ---- */

int ramnet_field_path_supported(int path) {
  switch (path) {
    case RAMNET_PATH_PORTABLE:
    case RAMNET_PATH_AVX2:
    case RAMNET_PATH_AVX512:
      /* Same CPU requirements as the wide GEMM family (AVX2+FMA; AVX-512 F/BW/VL/DQ). */
      return ramnet_path_supported(RAMNET_KERNEL_GEMM_WIDE, path);
    case RAMNET_PATH_AVX512VNNI: /* AVX-512 F/BW/VL/DQ + VNNI, as the int8 GEMM's path */
      return ramnet_path_supported(RAMNET_KERNEL_GEMM_WIDE, RAMNET_PATH_AVX512) &&
             ramnet_path_supported(RAMNET_KERNEL_GEMM_S8, RAMNET_PATH_AVX512VNNI);
    case RAMNET_PATH_AVX512IFMA:
#if RAMNET_X86
      return ramnet_field_path_supported(RAMNET_PATH_AVX512VNNI) &&
             __builtin_cpu_supports("avx512ifma");
#else
      return 0;
#endif
    default:
      return 0;
  }
}

int ramnet_field_best_path(void) {
  static const int order[] = {RAMNET_PATH_AVX512IFMA, RAMNET_PATH_AVX512VNNI, RAMNET_PATH_AVX512,
                              RAMNET_PATH_AVX2};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
    if (ramnet_field_path_supported(order[i])) return order[i];
  return RAMNET_PATH_PORTABLE;
}

static int field_resolve(int path) {
  if (path == RAMNET_PATH_AUTO) return ramnet_field_best_path();
  return ramnet_field_path_supported(path) ? path : RAMNET_ENOTSUP;
}

/* ---- limb layouts ---- */

#define G_MAX 4   /* weight vectors per pass over the matrix */
#define JB 512    /* columns per block in the column sums */
#define NB 2048   /* columns per chunk in the row sums */
#define ACC_MAX (G_MAX * 3)

/* Limb l of weight w for an L-limb layout (L = 2: 31 + 30 bits; L = 3: 21 + 21 + 19 bits). */
ALWAYS_INLINE int32_t limb(uint64_t w, unsigned L, unsigned l) {
  unsigned bits = L == 2 ? 31 : 21;
  uint64_t v = w >> (bits * l);
  if (l + 1 < L) v &= ((uint64_t)1 << bits) - 1;
  return (int32_t)v;
}

ALWAYS_INLINE unsigned limb_shift(unsigned L, unsigned l) { return (L == 2 ? 31 : 21) * l; }

/* ---- inner passes ----
 * colpass: acc[l][j] += sum_r limb_l(w[r]) * x_r[j] for j < jn, four rows x_0..x_3, all L limbs
 *          of one weight per row (each entry is loaded and widened once for all limbs).
 * rowpass: s[r][l] = sum_j wl[l][j] * x_r[j] for four rows (wl: L limb rows, NB apart).
 * The portable passes are plain C; the AVX2 and AVX-512 passes use vpmuldq (signed 32 x 32 -> 64)
 * on entries sign-extended to 64-bit lanes. */

#define DEFINE_PASSES_PORTABLE(SUF, T, L)                                                      \
  ALWAYS_INLINE void colpass_##SUF##_portable(size_t jn, const T *restrict x0,                \
                                              const T *restrict x1, const T *restrict x2,     \
                                              const T *restrict x3, const uint64_t w[4],      \
                                              int64_t (*restrict acc)[JB]) {                  \
    for (unsigned l = 0; l < L; l++) {                                                         \
      int64_t c0 = limb(w[0], L, l), c1 = limb(w[1], L, l), c2 = limb(w[2], L, l),             \
              c3 = limb(w[3], L, l);                                                           \
      int64_t *restrict a = acc[l];                                                            \
      for (size_t j = 0; j < jn; j++) a[j] += c0 * x0[j] + c1 * x1[j] + c2 * x2[j] + c3 * x3[j]; \
    }                                                                                          \
  }                                                                                            \
  ALWAYS_INLINE void rowpass_##SUF##_portable(size_t jn, const T *restrict x0,                \
                                              const T *restrict x1, const T *restrict x2,     \
                                              const T *restrict x3,                           \
                                              const int32_t *restrict wl, int64_t s[4][3]) {  \
    for (unsigned l = 0; l < L; l++) {                                                         \
      const int32_t *restrict c = wl + l * NB;                                                 \
      int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                 \
      for (size_t j = 0; j < jn; j++) {                                                        \
        int64_t cj = c[j];                                                                     \
        s0 += cj * x0[j];                                                                      \
        s1 += cj * x1[j];                                                                      \
        s2 += cj * x2[j];                                                                      \
        s3 += cj * x3[j];                                                                      \
      }                                                                                        \
      s[0][l] = s0;                                                                            \
      s[1][l] = s1;                                                                            \
      s[2][l] = s2;                                                                            \
      s[3][l] = s3;                                                                            \
    }                                                                                          \
  }

#if RAMNET_X86
#define ATTR_AVX2 __attribute__((target("avx2,fma")))
#define ATTR_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))

static inline int32_t load_i32(const void *p) {
  int32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* W entries starting at p, sign-extended to 64-bit lanes. */
#define LD4_s8(p) _mm256_cvtepi8_epi64(_mm_cvtsi32_si128(load_i32(p)))
#define LD4_s16(p) _mm256_cvtepi16_epi64(_mm_loadl_epi64((const __m128i *)(const void *)(p)))
#define LD4_s32(p) _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define LD8_s8(p) _mm512_cvtepi8_epi64(_mm_loadl_epi64((const __m128i *)(const void *)(p)))
#define LD8_s16(p) _mm512_cvtepi16_epi64(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define LD8_s32(p) _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(const void *)(p)))

ATTR_AVX2 static inline int64_t hsum256(__m256i v) {
  __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

/* VT: vector type of W int64 lanes; LDX: entry loader; LDW: limb loader; H: horizontal sum. */
#define DEFINE_PASSES_VEC(SUF, T, L, PATH, ATTR, VT, W, SET1, MUL, ADD, LOADU, STOREU, LDX, LDW, \
                          H)                                                                   \
  ATTR static inline void colpass_##SUF##_##PATH(size_t jn, const T *restrict x0,             \
                                                 const T *restrict x1, const T *restrict x2,  \
                                                 const T *restrict x3, const uint64_t w[4],   \
                                                 int64_t (*restrict acc)[JB]) {               \
    VT c0[L], c1[L], c2[L], c3[L];                                                             \
    for (unsigned l = 0; l < L; l++) {                                                         \
      c0[l] = SET1(limb(w[0], L, l));                                                          \
      c1[l] = SET1(limb(w[1], L, l));                                                          \
      c2[l] = SET1(limb(w[2], L, l));                                                          \
      c3[l] = SET1(limb(w[3], L, l));                                                          \
    }                                                                                          \
    size_t j = 0;                                                                              \
    for (; j + W <= jn; j += W) {                                                              \
      VT a = LDX(x0 + j), b = LDX(x1 + j), c = LDX(x2 + j), d = LDX(x3 + j);                   \
      _Pragma("GCC unroll 3") for (unsigned l = 0; l < L; l++) {                               \
        VT p = ADD(ADD(MUL(c0[l], a), MUL(c1[l], b)), ADD(MUL(c2[l], c), MUL(c3[l], d)));      \
        STOREU((void *)(acc[l] + j), ADD(LOADU((const void *)(acc[l] + j)), p));               \
      }                                                                                        \
    }                                                                                          \
    for (; j < jn; j++)                                                                        \
      for (unsigned l = 0; l < L; l++)                                                         \
        acc[l][j] += (int64_t)limb(w[0], L, l) * x0[j] + (int64_t)limb(w[1], L, l) * x1[j] +   \
                     (int64_t)limb(w[2], L, l) * x2[j] + (int64_t)limb(w[3], L, l) * x3[j];    \
  }                                                                                            \
  ATTR static inline void rowpass_##SUF##_##PATH(size_t jn, const T *restrict x0,             \
                                                 const T *restrict x1, const T *restrict x2,  \
                                                 const T *restrict x3,                        \
                                                 const int32_t *restrict wl, int64_t s[4][3]) { \
    VT a0[L], a1[L], a2[L], a3[L];                                                             \
    for (unsigned l = 0; l < L; l++) a0[l] = a1[l] = a2[l] = a3[l] = SET1(0);                  \
    size_t j = 0;                                                                              \
    for (; j + W <= jn; j += W) {                                                              \
      VT a = LDX(x0 + j), b = LDX(x1 + j), c = LDX(x2 + j), d = LDX(x3 + j);                   \
      _Pragma("GCC unroll 3") for (unsigned l = 0; l < L; l++) {                               \
        VT cw = LDW(wl + l * NB + j);                                                          \
        a0[l] = ADD(a0[l], MUL(cw, a));                                                        \
        a1[l] = ADD(a1[l], MUL(cw, b));                                                        \
        a2[l] = ADD(a2[l], MUL(cw, c));                                                        \
        a3[l] = ADD(a3[l], MUL(cw, d));                                                        \
      }                                                                                        \
    }                                                                                          \
    for (unsigned l = 0; l < L; l++) {                                                         \
      int64_t s0 = H(a0[l]), s1 = H(a1[l]), s2 = H(a2[l]), s3 = H(a3[l]);                      \
      const int32_t *c = wl + l * NB;                                                          \
      for (size_t k = j; k < jn; k++) {                                                        \
        s0 += (int64_t)c[k] * x0[k];                                                           \
        s1 += (int64_t)c[k] * x1[k];                                                           \
        s2 += (int64_t)c[k] * x2[k];                                                           \
        s3 += (int64_t)c[k] * x3[k];                                                           \
      }                                                                                        \
      s[0][l] = s0;                                                                            \
      s[1][l] = s1;                                                                            \
      s[2][l] = s2;                                                                            \
      s[3][l] = s3;                                                                            \
    }                                                                                          \
  }

#define LDW4(p) _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define LDW8(p) _mm512_cvtepi32_epi64(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define SET1_256(c) _mm256_set1_epi64x((int64_t)(c))
#define SET1_512(c) _mm512_set1_epi64((int64_t)(c))

#define DEFINE_PASSES(SUF, T, L)                                                               \
  DEFINE_PASSES_PORTABLE(SUF, T, L)                                                            \
  DEFINE_PASSES_VEC(SUF, T, L, avx2, ATTR_AVX2, __m256i, 4, SET1_256, _mm256_mul_epi32,        \
                    _mm256_add_epi64, _mm256_loadu_si256, _mm256_storeu_si256, LD4_##SUF,      \
                    LDW4, hsum256)                                                             \
  DEFINE_PASSES_VEC(SUF, T, L, avx512, ATTR_AVX512, __m512i, 8, SET1_512, _mm512_mul_epi32,    \
                    _mm512_add_epi64, _mm512_loadu_si512, _mm512_storeu_si512, LD8_##SUF,      \
                    LDW8, _mm512_reduce_add_epi64)
#else
#define ATTR_AVX2
#define ATTR_AVX512
/* Other architectures: the vector paths are never selected; they alias the portable passes. */
#define DEFINE_PASSES(SUF, T, L)                                                               \
  DEFINE_PASSES_PORTABLE(SUF, T, L)                                                            \
  ALWAYS_INLINE void colpass_##SUF##_avx2(size_t jn, const T *x0, const T *x1, const T *x2,   \
                                          const T *x3, const uint64_t w[4],                   \
                                          int64_t (*acc)[JB]) {                               \
    colpass_##SUF##_portable(jn, x0, x1, x2, x3, w, acc);                                      \
  }                                                                                            \
  ALWAYS_INLINE void rowpass_##SUF##_avx2(size_t jn, const T *x0, const T *x1, const T *x2,   \
                                          const T *x3, const int32_t *wl, int64_t s[4][3]) {  \
    rowpass_##SUF##_portable(jn, x0, x1, x2, x3, wl, s);                                       \
  }                                                                                            \
  ALWAYS_INLINE void colpass_##SUF##_avx512(size_t jn, const T *x0, const T *x1, const T *x2, \
                                            const T *x3, const uint64_t w[4],                 \
                                            int64_t (*acc)[JB]) {                             \
    colpass_##SUF##_portable(jn, x0, x1, x2, x3, w, acc);                                      \
  }                                                                                            \
  ALWAYS_INLINE void rowpass_##SUF##_avx512(size_t jn, const T *x0, const T *x1, const T *x2, \
                                            const T *x3, const int32_t *wl, int64_t s[4][3]) { \
    rowpass_##SUF##_portable(jn, x0, x1, x2, x3, wl, s);                                       \
  }
#endif

DEFINE_PASSES(s8, int8_t, 2)
DEFINE_PASSES(s16, int16_t, 2)
DEFINE_PASSES(s32, int32_t, 3)

/* ---- weighted column sums (vecmat) ---- */

/* Reduces the limb sums of g weight vectors (block columns j0..j0+jn) into out, then zeroes
 * them. */
ALWAYS_INLINE void col_flush_by(unsigned L, size_t g, size_t jn, int64_t (*acc)[JB],
                                uint64_t *out, size_t n, unsigned by) {
  for (size_t gi = 0; gi < g; gi++) {
    for (size_t j = 0; j < jn; j++) {
      uint64_t t = out[gi * n + j];
      for (unsigned l = 0; l < L; l++)
        t = add_p(t, rot61(mod_s64(acc[gi * L + l][j]), (limb_shift(L, l) + by) % 61));
      out[gi * n + j] = t;
    }
    for (unsigned l = 0; l < L; l++) memset(acc[gi * L + l], 0, jn * sizeof(int64_t));
  }
}

ALWAYS_INLINE void col_flush(unsigned L, size_t g, size_t jn, int64_t (*acc)[JB], uint64_t *out,
                             size_t n) {
  col_flush_by(L, g, jn, acc, out, n, 0);
}

/* Column sums for entry type T with L limbs, flushing every R rows (R a multiple of 4 with
 * R * max|entry * limb| < 2^63). For each block of JB columns, every four-row pass runs over the
 * up to G_MAX weight vectors while the rows are in L1. out must be zeroed. */
#define DEFINE_VECMAT(SUF, T, L, R, PATH, ATTR)                                                \
  ATTR static void vecmat_##SUF##_##PATH(size_t m, size_t n, const T *x, size_t ldx,          \
                                         size_t nw, const uint64_t *w, uint64_t *out) {        \
    int64_t acc[G_MAX * L][JB];                                                                \
    memset(acc, 0, sizeof acc);                                                                \
    for (size_t g0 = 0; g0 < nw; g0 += G_MAX) {                                                \
      size_t g = nw - g0 < G_MAX ? nw - g0 : G_MAX;                                            \
      for (size_t j0 = 0; j0 < n; j0 += JB) {                                                  \
        size_t jn = n - j0 < JB ? n - j0 : JB;                                                 \
        size_t rows = 0;                                                                       \
        for (size_t i = 0; i < m; i += 4) {                                                    \
          const T *x0 = x + i * ldx + j0;                                                      \
          const T *x1 = i + 1 < m ? x0 + ldx : x0;                                             \
          const T *x2 = i + 2 < m ? x0 + 2 * ldx : x0;                                         \
          const T *x3 = i + 3 < m ? x0 + 3 * ldx : x0;                                         \
          for (size_t gi = 0; gi < g; gi++) {                                                  \
            const uint64_t *wr = w + (g0 + gi) * m + i;                                        \
            uint64_t w4[4] = {wr[0], i + 1 < m ? wr[1] : 0, i + 2 < m ? wr[2] : 0,             \
                              i + 3 < m ? wr[3] : 0};                                          \
            colpass_##SUF##_##PATH(jn, x0, x1, x2, x3, w4, acc + gi * L);                      \
          }                                                                                    \
          rows += 4;                                                                           \
          if (rows >= (R)) {                                                                   \
            col_flush(L, g, jn, acc, out + g0 * n + j0, n);                                    \
            rows = 0;                                                                          \
          }                                                                                    \
        }                                                                                      \
        if (rows) col_flush(L, g, jn, acc, out + g0 * n + j0, n);                              \
      }                                                                                        \
    }                                                                                          \
  }

/* ---- weighted row sums (matvec) ---- */

/* Row sums; wl is scratch of G_MAX * L * NB int32 (NB * max|entry * limb| < 2^63). out must be
 * zeroed. */
#define DEFINE_MATVEC(SUF, T, L, PATH, ATTR)                                                   \
  ATTR static void matvec_##SUF##_##PATH(size_t m, size_t n, const T *x, size_t ldx,          \
                                         size_t nw, const uint64_t *w, uint64_t *out,          \
                                         int32_t *wl) {                                       \
    for (size_t g0 = 0; g0 < nw; g0 += G_MAX) {                                                \
      size_t g = nw - g0 < G_MAX ? nw - g0 : G_MAX;                                            \
      for (size_t j0 = 0; j0 < n; j0 += NB) {                                                  \
        size_t jn = n - j0 < NB ? n - j0 : NB;                                                 \
        for (size_t gi = 0; gi < g; gi++)                                                      \
          for (unsigned l = 0; l < L; l++)                                                     \
            for (size_t j = 0; j < jn; j++)                                                    \
              wl[(gi * L + l) * NB + j] = limb(w[(g0 + gi) * n + j0 + j], L, l);               \
        for (size_t i = 0; i < m; i += 4) {                                                    \
          const T *x0 = x + i * ldx + j0;                                                      \
          const T *x1 = i + 1 < m ? x0 + ldx : x0;                                             \
          const T *x2 = i + 2 < m ? x0 + 2 * ldx : x0;                                         \
          const T *x3 = i + 3 < m ? x0 + 3 * ldx : x0;                                         \
          size_t rn = m - i < 4 ? m - i : 4;                                                   \
          for (size_t gi = 0; gi < g; gi++) {                                                  \
            int64_t s[4][3];                                                                   \
            rowpass_##SUF##_##PATH(jn, x0, x1, x2, x3, wl + gi * L * NB, s);                   \
            uint64_t *o = out + (g0 + gi) * m + i;                                             \
            for (size_t r = 0; r < rn; r++) {                                                  \
              uint64_t t = o[r];                                                               \
              for (unsigned l = 0; l < L; l++)                                                 \
                t = add_p(t, rot61(mod_s64(s[r][l]), limb_shift(L, l)));                       \
              o[r] = t;                                                                        \
            }                                                                                  \
          }                                                                                    \
        }                                                                                      \
      }                                                                                        \
    }                                                                                          \
  }

/* Flush bounds: R * max|entry| * max limb < 2^63 (R rows per column flush; NB columns likewise):
 * int8: 2^22 * 2^38, int16: 2^16 * 2^46, int32: 2^11 * (2^31 * (2^21 - 1)). */
#define DEFINE_ALL(SUF, T, L, R)                    \
  DEFINE_VECMAT(SUF, T, L, R, portable, )           \
  DEFINE_VECMAT(SUF, T, L, R, avx2, ATTR_AVX2)      \
  DEFINE_VECMAT(SUF, T, L, R, avx512, ATTR_AVX512)  \
  DEFINE_MATVEC(SUF, T, L, portable, )              \
  DEFINE_MATVEC(SUF, T, L, avx2, ATTR_AVX2)         \
  DEFINE_MATVEC(SUF, T, L, avx512, ATTR_AVX512)

DEFINE_ALL(s8, int8_t, 2, ((size_t)1 << 22))
DEFINE_ALL(s16, int16_t, 2, ((size_t)1 << 16))
DEFINE_ALL(s32, int32_t, 3, ((size_t)2048))

/* ---- int64 row sums: two int32 halves through the int32 row passes ----
 *
 * x = 2^32 hi + lo with hi = x >> 32 (signed) and lo = x mod 2^32; lo_s = lo - 2^31 is a signed
 * int32 too. Each chunk of four rows is split into its lo_s and hi rows (a pass over data in L1
 * and L2 that GCC vectorizes), and both halves go through the path's int32 row passes, whose
 * flush bounds then hold as they are:
 *   sum_j x_j w_j = sum lo_s w + 2^32 sum hi w + 2^31 sum w         (vpmuldq and portable passes)
 *   sum_j x_j w_j = sum lo w + 2^32 sum (hi + 2^31) w - 2^63 sum w  (IFMA: its loads add 2^31)
 * An int64 entry was a scalar 64 x 64 -> 128-bit product per weight before. */

/* Rows x_0..x_3 (ldx apart; rows from rn on repeat the first) split over columns [0, jn):
 * half + r * NB gets row r's lo_s, half + (4 + r) * NB its hi. */
ALWAYS_INLINE void split_s64(size_t rn, size_t jn, const int64_t *x, size_t ldx, int32_t *half) {
  for (size_t r = 0; r < 4; r++) {
    const int64_t *restrict xr = x + (r < rn ? r : 0) * ldx;
    int32_t *restrict lo = half + r * NB, *restrict hi = half + (4 + r) * NB;
    for (size_t j = 0; j < jn; j++) {
      lo[j] = (int32_t)((uint32_t)xr[j] ^ 0x80000000u);
      hi[j] = (int32_t)(xr[j] >> 32);
    }
  }
}

/* sum_j w[j] mod p: the low and high 32-bit halves apart (2^31 terms of either fit in 64 bits). */
static uint64_t weight_sum(size_t k, const uint64_t *w) {
  uint64_t s = 0;
  for (size_t i0 = 0; i0 < k; i0 += (size_t)1 << 31) {
    size_t i1 = k - i0 < ((size_t)1 << 31) ? k : i0 + ((size_t)1 << 31);
    uint64_t lo = 0, hi = 0;
    for (size_t i = i0; i < i1; i++) {
      lo += w[i] & 0xFFFFFFFFu;
      hi += w[i] >> 32;
    }
    s = add_p(s, add_p(mod_s64((int64_t)lo), rot61(mod_s64((int64_t)hi), 32))); /* both < 2^63 */
  }
  return s;
}

/* Row sums of int64 entries; wl is scratch of G_MAX * 3 * NB int32, half of 8 * NB. out must be
 * zeroed. */
#define DEFINE_MATVEC_S64(PATH, ATTR)                                                          \
  ATTR static void matvec_s64_##PATH(size_t m, size_t n, const int64_t *x, size_t ldx,          \
                                     size_t nw, const uint64_t *w, uint64_t *out, int32_t *wl, \
                                     int32_t *half) {                                          \
    for (size_t g0 = 0; g0 < nw; g0 += G_MAX) {                                                \
      size_t g = nw - g0 < G_MAX ? nw - g0 : G_MAX;                                            \
      for (size_t j0 = 0; j0 < n; j0 += NB) {                                                  \
        size_t jn = n - j0 < NB ? n - j0 : NB;                                                 \
        for (size_t gi = 0; gi < g; gi++)                                                      \
          for (unsigned l = 0; l < 3; l++)                                                     \
            for (size_t j = 0; j < jn; j++)                                                    \
              wl[(gi * 3 + l) * NB + j] = limb(w[(g0 + gi) * n + j0 + j], 3, l);               \
        for (size_t i = 0; i < m; i += 4) {                                                    \
          size_t rn = m - i < 4 ? m - i : 4;                                                   \
          split_s64(rn, jn, x + i * ldx + j0, ldx, half);                                      \
          for (size_t gi = 0; gi < g; gi++) {                                                  \
            int64_t lo[4][3], hi[4][3];                                                        \
            rowpass_s32_##PATH(jn, half, half + NB, half + 2 * NB, half + 3 * NB,              \
                               wl + gi * 3 * NB, lo);                                          \
            rowpass_s32_##PATH(jn, half + 4 * NB, half + 5 * NB, half + 6 * NB,                \
                               half + 7 * NB, wl + gi * 3 * NB, hi);                           \
            uint64_t *o = out + (g0 + gi) * m + i;                                             \
            for (size_t r = 0; r < rn; r++) {                                                  \
              uint64_t t = o[r];                                                               \
              for (unsigned l = 0; l < 3; l++) {                                               \
                t = add_p(t, rot61(mod_s64(lo[r][l]), limb_shift(3, l)));                      \
                t = add_p(t, rot61(mod_s64(hi[r][l]), (limb_shift(3, l) + 32) % 61));          \
              }                                                                                \
              o[r] = t;                                                                        \
            }                                                                                  \
          }                                                                                    \
        }                                                                                      \
      }                                                                                        \
    }                                                                                          \
    for (size_t g = 0; g < nw; g++) {                                                          \
      uint64_t b = rot61(weight_sum(n, w + g * n), 31);                                        \
      for (size_t i = 0; i < m; i++) out[g * m + i] = add_p(out[g * m + i], b);                \
    }                                                                                          \
  }

DEFINE_MATVEC_S64(portable, )
DEFINE_MATVEC_S64(avx2, ATTR_AVX2)
DEFINE_MATVEC_S64(avx512, ATTR_AVX512)

/* Column sums of int64 entries, as the row sums: each block of four rows split into halves that
 * go through the int32 column passes into accumulators of their own (acc: 2 * G_MAX * 3 rows of
 * JB), flushed every 2048 rows (the int32 bound), the high halves' shifted by 32; half is
 * scratch of 8 * NB int32. out must be zeroed. */
#define DEFINE_VECMAT_S64(PATH, ATTR)                                                          \
  ATTR static void vecmat_s64_##PATH(size_t m, size_t n, const int64_t *x, size_t ldx,          \
                                     size_t nw, const uint64_t *w, uint64_t *out,              \
                                     int64_t (*acc)[JB], int32_t *half) {                      \
    int64_t(*hi_acc)[JB] = acc + G_MAX * 3;                                                    \
    memset(acc, 0, 2 * G_MAX * 3 * sizeof acc[0]);                                             \
    for (size_t g0 = 0; g0 < nw; g0 += G_MAX) {                                                \
      size_t g = nw - g0 < G_MAX ? nw - g0 : G_MAX;                                            \
      for (size_t j0 = 0; j0 < n; j0 += JB) {                                                  \
        size_t jn = n - j0 < JB ? n - j0 : JB, rows = 0;                                       \
        for (size_t i = 0; i < m; i += 4) {                                                    \
          split_s64(m - i < 4 ? m - i : 4, jn, x + i * ldx + j0, ldx, half);                   \
          for (size_t gi = 0; gi < g; gi++) {                                                  \
            const uint64_t *wr = w + (g0 + gi) * m + i;                                        \
            uint64_t w4[4] = {wr[0], i + 1 < m ? wr[1] : 0, i + 2 < m ? wr[2] : 0,             \
                              i + 3 < m ? wr[3] : 0};                                          \
            colpass_s32_##PATH(jn, half, half + NB, half + 2 * NB, half + 3 * NB, w4,          \
                               acc + gi * 3);                                                  \
            colpass_s32_##PATH(jn, half + 4 * NB, half + 5 * NB, half + 6 * NB,                \
                               half + 7 * NB, w4, hi_acc + gi * 3);                            \
          }                                                                                    \
          rows += 4;                                                                           \
          if (rows >= 2048 || i + 4 >= m) {                                                    \
            col_flush_by(3, g, jn, acc, out + g0 * n + j0, n, 0);                              \
            col_flush_by(3, g, jn, hi_acc, out + g0 * n + j0, n, 32);                          \
            rows = 0;                                                                          \
          }                                                                                    \
        }                                                                                      \
      }                                                                                        \
    }                                                                                          \
    for (size_t g = 0; g < nw; g++) {                                                          \
      uint64_t b = rot61(weight_sum(m, w + g * m), 31);                                        \
      for (size_t j = 0; j < n; j++) out[g * n + j] = add_p(out[g * n + j], b);                \
    }                                                                                          \
  }

DEFINE_VECMAT_S64(portable, )
DEFINE_VECMAT_S64(avx2, ATTR_AVX2)
DEFINE_VECMAT_S64(avx512, ATTR_AVX512)

/* ---- AVX-512 VNNI (int8) and IFMA (int16, int32) kernels ----
 *
 * int8 via vpdpbusd (u8 x s8, four products summed into an int32 lane): each weight is split into
 * eight unsigned byte limbs b_l (w = sum_l b_l 2^(8l)), the u8 operand; the matrix is the s8
 * operand. One instruction step adds at most 4 * 255 * 128 = 130560 in magnitude to a lane, so
 * 16384 steps (65536 rows of the column sums) stay below 2^31; the int32 sums are then combined,
 * sum_l acc_l 2^(8l) mod p, and zeroed.
 *   Column sums: four rows are interleaved byte-wise into a packed block (lane = X[i..i+3, j]) and
 *   the u8 operand is the broadcast dword of limb l of W[i..i+3].
 *   Row sums: a row of X is the s8 operand as it is (lane = X[i, j..j+3]) and the u8 operand is
 *   limb l of W[j..j+3], from a byte-limb copy of the weights.
 * int16/int32 via vpmadd52luq/vpmadd52huq (52 x 52 -> 104-bit unsigned products, low or high 52
 * bits added into 64-bit lanes): entries are made unsigned, u = x + B (B = 2^31 resp. 2^15), and
 * B * sum(weights) is subtracted at the end. int32: w = c0 + c1 2^52 (c0 < 2^52, c1 < 2^9),
 *   acc0 += lo52(u c0), acc1 += hi52(u c0) + lo52(u c1), value = acc0 + 2^52 acc1;
 * int16: w = c0 + c1 2^36 (u c0 < 2^52, u c1 < 2^41: low halves only), value = acc0 + 2^36 acc1.
 * Every lane term is below 2^52, so 4096 terms fit in a uint64 lane before a reduction. */

#if RAMNET_X86
#define ATTR_VNNI __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512vnni")))
#define ATTR_IFMA __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512ifma")))
#define VNNI_INLINE ATTR_VNNI static inline __attribute__((always_inline))
#define IFMA_INLINE ATTR_IFMA static inline __attribute__((always_inline))

#ifndef VC_JB
#define VC_JB 512           /* columns per block of the int8 column sums */
#endif
#ifndef VC_PF
#define VC_PF 8
#endif
#ifndef VC_RB
#define VC_RB 64            /* rows per packed block */
#endif
#define VC_FLUSH 16384      /* 4-row steps per int32 flush (16384 * 130560 < 2^31) */
#define VR_CB 32768         /* columns per chunk of the int8 row sums (32768 * 32640 < 2^31) */
#ifndef IC_JB
#define IC_JB 1024 /* columns per block of the IFMA column sums */
#endif
#define IFMA_TERMS 4096     /* terms below 2^52 per uint64 lane */
#ifndef IR_PF
#define IR_PF 256 /* entries ahead to prefetch in the IFMA row sums */
#endif
#define IR_CB (IFMA_TERMS * 8) /* columns per chunk of the IFMA row sums */

/* Byte limbs of four weights w[0..3]: *lo gets dwords l = 0..3, *hi dwords l = 4..7; byte t of
 * dword l is byte l of w[t]. */
VNNI_INLINE void limbs4(const uint64_t *w, __m128i *lo, __m128i *hi) {
  const __m256i idx = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15, 0, 8,
                                       1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  __m256i v = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(const void *)w), idx);
  __m128i a = _mm256_castsi256_si128(v), b = _mm256_extracti128_si256(v, 1);
  *lo = _mm_unpacklo_epi16(a, b);
  *hi = _mm_unpackhi_epi16(a, b);
}

/* sum_l a[l * stride] 2^(8l) mod p for eight int32 limb sums. */
ALWAYS_INLINE uint64_t combine8(const int32_t *a, size_t stride) {
  int64_t lo = 0, hi = 0;
  for (unsigned l = 0; l < 4; l++) {
    lo += (int64_t)a[l * stride] * ((int64_t)1 << (8 * l));
    hi += (int64_t)a[(l + 4) * stride] * ((int64_t)1 << (8 * l));
  }
  return add_p(mod_s64(lo), rot61(mod_s64(hi), 32));
}

/* acc (int32 [8] rows of VC_JB lanes, at vectors q and q + 1) += the limb dot products of `steps`
 * packed 4-row steps of both vectors (xb0, xb1) with one weight's broadcast limb dwords wl (wst
 * dwords per step): each broadcast feeds two vpdpbusd, where one vector at a time (for two
 * weights) needed a broadcast per vpdpbusd. Named accumulators (not an array), and the asm
 * keeps GCC 12 from a broadcast-operand form it then copies around. */
#define VQ_LD(v, q, l) __m512i v = _mm512_setzero_si512()
#define VQ_ST(v, q, l)                                                                          \
  {                                                                                             \
    int32_t *p_ = acc + l * VC_JB + 16 * q;                                                     \
    _mm512_storeu_si512(p_, _mm512_add_epi32(_mm512_loadu_si512(p_), v));                       \
  }
#define VQ_ALL(OP)                                                                              \
  OP(a0, 0, 0); OP(a1, 0, 1); OP(a2, 0, 2); OP(a3, 0, 3);                                       \
  OP(a4, 0, 4); OP(a5, 0, 5); OP(a6, 0, 6); OP(a7, 0, 7);                                       \
  OP(b0, 1, 0); OP(b1, 1, 1); OP(b2, 1, 2); OP(b3, 1, 3);                                       \
  OP(b4, 1, 4); OP(b5, 1, 5); OP(b6, 1, 6); OP(b7, 1, 7)
#define VQ_DP(l)                                                                                \
  {                                                                                             \
    __m512i b_ = _mm512_set1_epi32(ws[l]);                                                      \
    __asm__("" : "+v"(b_));                                                                     \
    a##l = _mm512_dpbusd_epi32(a##l, b_, x0);                                                   \
    b##l = _mm512_dpbusd_epi32(b##l, b_, x1);                                                   \
  }
ATTR_VNNI __attribute__((noinline)) static void vc_kernel_q2(size_t steps, const __m512i *xb0,
                                                             const __m512i *xb1,
                                                             const int32_t *wl, size_t wst,
                                                             int32_t *acc) {
  VQ_ALL(VQ_LD);
  const int32_t *ws = wl;
  for (size_t s = 0; s < steps; s++, ws += wst) {
    __m512i x0 = _mm512_load_si512(xb0 + s), x1 = _mm512_load_si512(xb1 + s);
    VQ_DP(0) VQ_DP(1) VQ_DP(2) VQ_DP(3) VQ_DP(4) VQ_DP(5) VQ_DP(6) VQ_DP(7)
  }
  VQ_ALL(VQ_ST);
}
#undef VQ_LD
#undef VQ_ST
#undef VQ_ALL
#undef VQ_DP

/* Packs rows [0, rows) x columns [0, jn) of x: vector q = 4c + v of the block holds, in lane
 * 4k + t, the four rows of column 64c + 16k + 4v + t (the order of the byte/word unpacks); vector
 * q of step s is buf[q * steps + s]. Missing rows and columns are zero. */
ATTR_VNNI static void vc_pack(size_t rows, size_t jn, const int8_t *x, size_t ldx, __m512i *buf) {
  size_t steps = (rows + 3) / 4;
  for (size_t s = 0; s < steps; s++) { /* along the rows: sequential reads */
    for (size_t c = 0; c * 64 < jn; c++) {
      size_t rem = jn - c * 64;
      __mmask64 mask = rem >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << rem) - 1);
      __m512i r[4];
      for (unsigned t = 0; t < 4; t++) {
        size_t i = 4 * s + t;
        r[t] = i < rows ? _mm512_maskz_loadu_epi8(mask, x + i * ldx + c * 64)
                        : _mm512_setzero_si512();
        if (i + VC_PF < rows) _mm_prefetch((const char *)(x + (i + VC_PF) * ldx + c * 64), _MM_HINT_T0);
      }
      __m512i ab_lo = _mm512_unpacklo_epi8(r[0], r[1]), ab_hi = _mm512_unpackhi_epi8(r[0], r[1]);
      __m512i cd_lo = _mm512_unpacklo_epi8(r[2], r[3]), cd_hi = _mm512_unpackhi_epi8(r[2], r[3]);
      __m512i *o = buf + 4 * c * steps + s;
      _mm512_store_si512(o, _mm512_unpacklo_epi16(ab_lo, cd_lo));
      _mm512_store_si512(o + steps, _mm512_unpackhi_epi16(ab_lo, cd_lo));
      _mm512_store_si512(o + 2 * steps, _mm512_unpacklo_epi16(ab_hi, cd_hi));
      _mm512_store_si512(o + 3 * steps, _mm512_unpackhi_epi16(ab_hi, cd_hi));
    }
  }
}

/* Adds the int32 limb sums of the block (columns j0..j0+jn) into out and zeroes them. */
static void vc_flush(size_t nw, size_t jn, int32_t *acc, uint64_t *out, size_t n) {
  for (size_t g = 0; g < nw; g++) {
    const int32_t *a = acc + g * 8 * VC_JB;
    for (size_t j = 0; j < jn; j++) {
      size_t lane = (j & ~(size_t)63) + ((j >> 2) & 3) * 16 + ((j >> 4) & 3) * 4 + (j & 3);
      out[g * n + j] = add_p(out[g * n + j], combine8(a + lane, VC_JB));
    }
  }
  memset(acc, 0, nw * 8 * VC_JB * sizeof(int32_t));
}

/* int8 column sums with vpdpbusd; returns RAMNET_ENOMEM or RAMNET_OK. out must be zeroed. */
ATTR_VNNI static int vecmat_s8_vnni(size_t m, size_t n, const int8_t *x, size_t ldx, size_t nw,
                                    const uint64_t *w, uint64_t *out) {
  const size_t sb = VC_RB / 4;
  size_t acc_bytes = nw * 8 * VC_JB * sizeof(int32_t), buf_bytes = VC_RB * VC_JB;
  size_t wl_bytes = sb * nw * 8 * sizeof(int32_t);
  unsigned char *mem = aligned_alloc(64, buf_bytes + acc_bytes + wl_bytes);
  if (!mem) return RAMNET_ENOMEM;
  __m512i *buf = (__m512i *)(void *)mem;
  int32_t *acc = (int32_t *)(void *)(mem + buf_bytes);
  int32_t *wl = (int32_t *)(void *)(mem + buf_bytes + acc_bytes);
  memset(acc, 0, acc_bytes);
  for (size_t j0 = 0; j0 < n; j0 += VC_JB) {
    size_t jn = n - j0 < VC_JB ? n - j0 : VC_JB, nq = 4 * ((jn + 63) / 64), steps_done = 0;
    for (size_t i0 = 0; i0 < m; i0 += VC_RB) {
      size_t rows = m - i0 < VC_RB ? m - i0 : VC_RB, steps = (rows + 3) / 4;
      for (size_t s = 0; s < steps; s++) /* limb dwords of rows i0 + 4s .. +3, every weight */
        for (size_t g = 0; g < nw; g++) {
          const uint64_t *wr = w + g * m + i0 + 4 * s;
          uint64_t tmp[4] = {0, 0, 0, 0};
          if (4 * s + 4 > rows) {
            for (size_t t = 0; 4 * s + t < rows; t++) tmp[t] = wr[t];
            wr = tmp;
          }
          __m128i lo, hi;
          limbs4(wr, &lo, &hi);
          _mm_storeu_si128((__m128i *)(void *)(wl + (s * nw + g) * 8), lo);
          _mm_storeu_si128((__m128i *)(void *)(wl + (s * nw + g) * 8 + 4), hi);
        }
      vc_pack(rows, jn, x + i0 * ldx + j0, ldx, buf);
      /* The next block: rows i0 + VC_RB.. of this column block, or the top of the next one. */
      const int8_t *pf = NULL;
      size_t pf_rows = 0, pf_cols = 0;
      if (i0 + VC_RB < m) {
        pf = x + (i0 + VC_RB) * ldx + j0;
        pf_rows = m - i0 - VC_RB < VC_RB ? m - i0 - VC_RB : VC_RB;
        pf_cols = jn;
      } else if (j0 + VC_JB < n) {
        pf = x + j0 + VC_JB;
        pf_rows = m < VC_RB ? m : VC_RB;
        pf_cols = n - j0 - VC_JB < VC_JB ? n - j0 - VC_JB : VC_JB;
      }
      if (pf_rows > 2 * nq) pf_rows = 2 * nq;
      for (size_t g = 0; g < nw; g++) { /* nq is a multiple of 4: q in pairs */
        for (size_t q = 0; q < nq; q += 2) {
          if (g == 0 && pf_rows) /* two rows of the next block per vector: all of it by the end */
            for (size_t r = 2 * q; r < 2 * q + 4 && r < pf_rows; r++)
              for (size_t c = 0; c < pf_cols; c += 64) _mm_prefetch((const char *)(pf + r * ldx + c), _MM_HINT_T0);
          vc_kernel_q2(steps, buf + q * steps, buf + (q + 1) * steps, wl + g * 8, nw * 8,
                       acc + g * 8 * VC_JB + 16 * q);
        }
      }
      steps_done += steps;
      if (steps_done + VC_RB / 4 > VC_FLUSH) {
        vc_flush(nw, jn, acc, out + j0, n);
        steps_done = 0;
      }
    }
    vc_flush(nw, jn, acc, out + j0, n);
  }
  free(mem);
  return RAMNET_OK;
}

/* Lane i of the result is the sum of the 16 int32 lanes of v[i]: a tree of interleaves and adds
 * (45 instructions), where a horizontal sum of each vector apart costs about 150; at n = 2048
 * those made up a quarter of the row sums. */
VNNI_INLINE __m512i hsum16(const __m512i v[16]) {
  __m512i w[8], x[4];
  for (unsigned j = 0; j < 8; j++) /* 128-bit block: even lanes from v[2j], odd from v[2j+1] */
    w[j] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * j], v[2 * j + 1]),
                            _mm512_unpackhi_epi32(v[2 * j], v[2 * j + 1]));
  for (unsigned j = 0; j < 4; j++) /* 128-bit block, lane t: from v[4j + t] */
    x[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(w[2 * j], w[2 * j + 1]),
                            _mm512_unpackhi_epi64(w[2 * j], w[2 * j + 1]));
  __m512i y0 = _mm512_add_epi32(_mm512_shuffle_i32x4(x[0], x[1], 0x44),
                                _mm512_shuffle_i32x4(x[0], x[1], 0xEE));
  __m512i y1 = _mm512_add_epi32(_mm512_shuffle_i32x4(x[2], x[3], 0x44),
                                _mm512_shuffle_i32x4(x[2], x[3], 0xEE));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(y0, y1, 0x88), _mm512_shuffle_i32x4(y0, y1, 0xDD));
}

/* Row sums of four rows xr[0..3] over columns [0, n) (n <= VR_CB) for limbs l0 .. l0+LP-1 of G
 * weight vectors: s[r][g][l] += sum_j limb_l(w_g[j]) x_r[j]. wb: byte limbs, row (g*8+l) at
 * wb + (g*8+l)*ld, zero past n. */
VNNI_INLINE void vr_kernel(unsigned G, unsigned LP, unsigned l0, size_t n, const int8_t *const xr[4],
                           const uint8_t *wb, size_t ld, int64_t s[4][3][8]) {
  __m512i a[4][3][4];
#pragma GCC unroll 4
  for (unsigned r = 0; r < 4; r++)
#pragma GCC unroll 3
    for (unsigned g = 0; g < G; g++)
#pragma GCC unroll 4
      for (unsigned k = 0; k < LP; k++) a[r][g][k] = _mm512_setzero_si512();
  size_t j = 0;
  for (;; j += 64) {
    __m512i xv[4];
    if (j + 64 <= n) {
#pragma GCC unroll 4
      for (unsigned r = 0; r < 4; r++) xv[r] = _mm512_loadu_si512(xr[r] + j);
    } else if (j < n) {
      __mmask64 mask = ((__mmask64)1 << (n - j)) - 1;
#pragma GCC unroll 4
      for (unsigned r = 0; r < 4; r++) xv[r] = _mm512_maskz_loadu_epi8(mask, xr[r] + j);
    } else {
      break;
    }
#pragma GCC unroll 3
    for (unsigned g = 0; g < G; g++)
#pragma GCC unroll 4
      for (unsigned k = 0; k < LP; k++) {
        __m512i wv = _mm512_loadu_si512(wb + (g * 8 + l0 + k) * ld + j);
#pragma GCC unroll 4
        for (unsigned r = 0; r < 4; r++) a[r][g][k] = _mm512_dpbusd_epi32(a[r][g][k], wv, xv[r]);
      }
  }
  /* 4 * G * LP lane totals, 16 at a time (see hsum16) */
  __m512i flat[32];
  unsigned count = 0;
#pragma GCC unroll 4
  for (unsigned r = 0; r < 4; r++)
#pragma GCC unroll 3
    for (unsigned g = 0; g < G; g++)
#pragma GCC unroll 4
      for (unsigned k = 0; k < LP; k++) flat[count++] = a[r][g][k];
  for (unsigned i = count; i < 32; i++) flat[i] = _mm512_setzero_si512();
  int32_t tot[32];
  _mm512_storeu_si512(tot, hsum16(flat));
  if (count > 16) _mm512_storeu_si512(tot + 16, hsum16(flat + 16));
  count = 0;
  for (unsigned r = 0; r < 4; r++)
    for (unsigned g = 0; g < G; g++)
      for (unsigned k = 0; k < LP; k++) s[r][g][l0 + k] += tot[count++];
}

ATTR_VNNI static void vr_rows(unsigned G, size_t n, const int8_t *const xr[4], const uint8_t *wb,
                              size_t ld, int64_t s[4][3][8]) {
  if (G == 1) {
    vr_kernel(1, 4, 0, n, xr, wb, ld, s);
    vr_kernel(1, 4, 4, n, xr, wb, ld, s);
  } else if (G == 2) {
    for (unsigned l0 = 0; l0 < 8; l0 += 2) vr_kernel(2, 2, l0, n, xr, wb, ld, s);
  } else {
    for (unsigned l0 = 0; l0 < 8; l0 += 2) vr_kernel(3, 2, l0, n, xr, wb, ld, s);
  }
}

/* int8 row sums with vpdpbusd. out must be zeroed. */
ATTR_VNNI static int matvec_s8_vnni(size_t m, size_t n, const int8_t *x, size_t ldx, size_t nw,
                                    const uint64_t *w, uint64_t *out) {
  /* One cache line more than the row: the kernel streams up to 24 limb rows at once, and rows a
   * multiple of 4 KiB apart would all fall into the same L1 set. */
  size_t ld = ((n + 63) & ~(size_t)63) + 64;
  uint8_t *wb = aligned_alloc(64, nw * 8 * ld);
  if (!wb) return RAMNET_ENOMEM;
  for (size_t g = 0; g < nw; g++) {
    uint8_t *o = wb + g * 8 * ld;
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
      __m128i lo, hi;
      limbs4(w + g * n + j, &lo, &hi);
      int32_t d[8];
      _mm_storeu_si128((__m128i *)(void *)d, lo);
      _mm_storeu_si128((__m128i *)(void *)(d + 4), hi);
      for (unsigned l = 0; l < 8; l++) memcpy(o + l * ld + j, d + l, 4);
    }
    for (; j < ld; j++)
      for (unsigned l = 0; l < 8; l++) o[l * ld + j] = j < n ? (uint8_t)(w[g * n + j] >> (8 * l)) : 0;
  }
  for (size_t g0 = 0; g0 < nw; g0 += 3) {
    unsigned G = nw - g0 < 3 ? (unsigned)(nw - g0) : 3;
    for (size_t i = 0; i < m; i += 4) {
      size_t rn = m - i < 4 ? m - i : 4;
      int64_t s[4][3][8];
      memset(s, 0, sizeof s);
      for (size_t j0 = 0; j0 < n; j0 += VR_CB) {
        size_t jn = n - j0 < VR_CB ? n - j0 : VR_CB;
        const int8_t *xr[4];
        for (unsigned r = 0; r < 4; r++) xr[r] = x + (i + (r < rn ? r : 0)) * ldx + j0;
        vr_rows(G, jn, xr, wb + g0 * 8 * ld + j0, ld, s);
      }
      for (size_t r = 0; r < rn; r++)
        for (unsigned g = 0; g < G; g++) {
          uint64_t t = 0;
          for (unsigned l = 0; l < 8; l++) t = add_p(t, rot61(mod_s64(s[r][g][l]), 8 * l));
          out[(g0 + g) * m + i + r] = t;
        }
    }
  }
  free(wb);
  return RAMNET_OK;
}

/* ---- IFMA ---- */

/* Eight entries made unsigned (x + B) in 64-bit lanes; `mask` selects the loaded ones. */
IFMA_INLINE __m512i ifma_load_s32(const int32_t *p, __mmask8 mask) {
  __m256i v = _mm256_maskz_loadu_epi32(mask, p);
  return _mm512_cvtepu32_epi64(_mm256_xor_si256(v, _mm256_set1_epi32(INT32_MIN)));
}
IFMA_INLINE __m512i ifma_load_s16(const int16_t *p, __mmask8 mask) {
  __m128i v = _mm_maskz_loadu_epi16(mask, p);
  return _mm512_cvtepu16_epi64(_mm_xor_si128(v, _mm_set1_epi16(INT16_MIN)));
}

/* u mod p for any uint64 u. */
ALWAYS_INLINE uint64_t mod_u64(uint64_t u) {
  uint64_t r = (u & P61) + (u >> 61);
  return r >= P61 ? r - P61 : r;
}

/* B * sum(w) mod p for B = 2^bits. The low and high 32-bit halves are summed apart (2^31 terms
 * of either fit in 64 bits), a loop GCC vectorizes, not a chain of modular adds. */
ATTR_IFMA static uint64_t bias_sum(size_t k, const uint64_t *w, unsigned bits) {
  uint64_t s = 0;
  for (size_t i0 = 0; i0 < k; i0 += (size_t)1 << 31) {
    size_t i1 = k - i0 < ((size_t)1 << 31) ? k : i0 + ((size_t)1 << 31);
    uint64_t lo = 0, hi = 0;
    for (size_t i = i0; i < i1; i++) {
      lo += w[i] & 0xFFFFFFFFu;
      hi += w[i] >> 32;
    }
    s = add_p(s, add_p(mod_u64(lo), rot61(mod_u64(hi), 32)));
  }
  return rot61(s, bits);
}

#define DEFINE_IFMA(SUF, T, K, HI, BITS)                                                        \
  /* acc[g][0..1][j] += the unsigned-entry limb products of four rows xr, G <= 2 weights. */     \
  IFMA_INLINE void ic_pass_##SUF(unsigned G, size_t jn, const T *const xr[4],                   \
                                 const T *const pf[4], const uint64_t wv[2][4], uint64_t *acc) { \
    const __m512i mlo = _mm512_set1_epi64((int64_t)(((uint64_t)1 << K) - 1));                   \
    __m512i c0[2][4], c1[2][4];                                                                 \
    _Pragma("GCC unroll 3") for (unsigned g = 0; g < G; g++)                                                            \
      _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++) {                                                        \
        __m512i v = _mm512_set1_epi64((int64_t)wv[g][r]);                                       \
        c0[g][r] = _mm512_and_si512(v, mlo);                                                    \
        c1[g][r] = _mm512_srli_epi64(v, K);                                                     \
      }                                                                                         \
    for (size_t j = 0; j < jn; j += 16) { /* two vectors: independent madd chains interleave */ \
      __m512i u[2][4];                                                                          \
      _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++)                                  \
        _mm_prefetch((const char *)(pf[r] + j), _MM_HINT_T0);                                   \
      _Pragma("GCC unroll 2") for (unsigned v = 0; v < 2; v++) {                                \
        size_t jv = j + 8 * v, left = jv < jn ? jn - jv : 0;                                    \
        __mmask8 mask = left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1);              \
        _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++) u[v][r] =                      \
            ifma_load_##SUF(xr[r] + (left ? jv : 0), mask);                                     \
      }                                                                                         \
      _Pragma("GCC unroll 3") for (unsigned g = 0; g < G; g++) {                                \
        uint64_t *a = acc + g * 2 * IC_JB + j;                                                  \
        __m512i a0[2], a1[2];                                                                   \
        _Pragma("GCC unroll 2") for (unsigned v = 0; v < 2; v++) {                              \
          a0[v] = _mm512_loadu_si512(a + 8 * v);                                                \
          a1[v] = _mm512_loadu_si512(a + IC_JB + 8 * v);                                        \
        }                                                                                       \
        _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++)                                \
          _Pragma("GCC unroll 2") for (unsigned v = 0; v < 2; v++) {                            \
            a0[v] = _mm512_madd52lo_epu64(a0[v], u[v][r], c0[g][r]);                            \
            if (HI) a1[v] = _mm512_madd52hi_epu64(a1[v], u[v][r], c0[g][r]);                    \
          }                                                                                     \
        _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++)                                \
          _Pragma("GCC unroll 2") for (unsigned v = 0; v < 2; v++)                              \
            a1[v] = _mm512_madd52lo_epu64(a1[v], u[v][r], c1[g][r]);                            \
        _Pragma("GCC unroll 2") for (unsigned v = 0; v < 2; v++) {                              \
          _mm512_storeu_si512(a + 8 * v, a0[v]);                                                \
          _mm512_storeu_si512(a + IC_JB + 8 * v, a1[v]);                                        \
        }                                                                                       \
      }                                                                                         \
    }                                                                                           \
  }                                                                                             \
  ATTR_IFMA static int vecmat_##SUF##_ifma(size_t m, size_t n, const T *x, size_t ldx,          \
                                           size_t nw, const uint64_t *w, uint64_t *out) {        \
    uint64_t *acc = aligned_alloc(64, nw * 2 * IC_JB * sizeof(uint64_t));                       \
    if (!acc) return RAMNET_ENOMEM;                                                             \
    memset(acc, 0, nw * 2 * IC_JB * sizeof(uint64_t));                                          \
    for (size_t j0 = 0; j0 < n; j0 += IC_JB) {                                                  \
      size_t jn = n - j0 < IC_JB ? n - j0 : IC_JB;                                              \
      for (size_t i0 = 0; i0 < m; i0 += IFMA_TERMS) {                                           \
        size_t i1 = m - i0 < IFMA_TERMS ? m : i0 + IFMA_TERMS;                                  \
        for (size_t i = i0; i < i1; i += 4) {                                                   \
          const T *xr[4], *pf[4]; /* pf: the rows four ahead, to prefetch */                   \
          for (size_t r = 0; r < 4; r++) {                                                      \
            xr[r] = x + (i + r < i1 ? i + r : i) * ldx + j0;                                    \
            pf[r] = i + 4 + r < m ? xr[r] + 4 * ldx : xr[r];                                    \
          }                                                                                     \
          for (size_t g0 = 0; g0 < nw; g0 += 2) {                                               \
            uint64_t wv[2][4] = {{0}};                                                          \
            unsigned G = nw - g0 < 2 ? 1 : 2;                                                   \
            _Pragma("GCC unroll 3") for (unsigned g = 0; g < G; g++)                                                    \
              for (size_t r = 0; r < 4 && i + r < i1; r++) wv[g][r] = w[(g0 + g) * m + i + r];  \
            if (G == 2) ic_pass_##SUF(2, jn, xr, pf, wv, acc + g0 * 2 * IC_JB);                 \
            else ic_pass_##SUF(1, jn, xr, pf, wv, acc + g0 * 2 * IC_JB);                        \
          }                                                                                     \
        }                                                                                       \
        for (size_t g = 0; g < nw; g++) {                                                       \
          uint64_t *a = acc + g * 2 * IC_JB, *o = out + g * n + j0;                             \
          for (size_t j = 0; j < jn; j++)                                                       \
            o[j] = add_p(o[j], add_p(mod_u64(a[j]), rot61(mod_u64(a[IC_JB + j]), K)));          \
        }                                                                                       \
        memset(acc, 0, nw * 2 * IC_JB * sizeof(uint64_t));                                      \
      }                                                                                         \
    }                                                                                           \
    free(acc);                                                                                  \
    for (size_t g = 0; g < nw; g++) {                                                           \
      uint64_t b = bias_sum(m, w + g * m, BITS);                                                \
      for (size_t j = 0; j < n; j++) out[g * n + j] = sub_p(out[g * n + j], b);                 \
    }                                                                                           \
    return RAMNET_OK;                                                                           \
  }                                                                                             \
  /* Row sums of four rows over columns [0, n) (n <= IR_CB) for G <= 3 weights (row g at    \
   * w + g * wst). s[r][g] += value mod p. The limbs c0, c1 of each weight are cut here (an and \
   * and a shift, which do not compete with the multiplies) rather than copied out beforehand:  \
   * a copy cost more than the sums on the strips the verifier hands over. */                  \
  IFMA_INLINE void ir_kernel_##SUF(unsigned G, size_t n, const T *const xr[4],                  \
                                   const uint64_t *w, size_t wst, uint64_t s[4][3]) {           \
    const __m512i mlo = _mm512_set1_epi64((int64_t)(((uint64_t)1 << K) - 1));                   \
    __m512i a0[4][3], a1[4][3];                                                                 \
    _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++)                                                            \
      _Pragma("GCC unroll 3") for (unsigned g = 0; g < G; g++) a0[r][g] = a1[r][g] = _mm512_setzero_si512();            \
    for (size_t j = 0; j < n; j += 8) {                                                         \
      __mmask8 mask = n - j >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - j)) - 1);            \
      __m512i u[4];                                                                             \
      if (j + IR_PF < n && (j & 15) == 0)                                                       \
        _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++)                                \
          _mm_prefetch((const char *)(xr[r] + j + IR_PF), _MM_HINT_T0);                         \
      _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++) u[r] = ifma_load_##SUF(xr[r] + j, mask);                 \
      _Pragma("GCC unroll 3") for (unsigned g = 0; g < G; g++) {                                                        \
        /* masked-off weights load as 0, so the biased entries there (B) add nothing */         \
        __m512i wv = _mm512_maskz_loadu_epi64(mask, w + g * wst + j);                           \
        __m512i c0 = _mm512_and_si512(wv, mlo), c1 = _mm512_srli_epi64(wv, K);                  \
        _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++) {                                                      \
          a0[r][g] = _mm512_madd52lo_epu64(a0[r][g], u[r], c0);                                 \
          if (HI) a1[r][g] = _mm512_madd52hi_epu64(a1[r][g], u[r], c0);                         \
          a1[r][g] = _mm512_madd52lo_epu64(a1[r][g], u[r], c1);                                 \
        }                                                                                       \
      }                                                                                         \
    }                                                                                           \
    const __m512i pv = _mm512_set1_epi64((int64_t)P61);                                         \
    _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++)                                                            \
      _Pragma("GCC unroll 3") for (unsigned g = 0; g < G; g++) {                                                        \
        /* lanes reduced to < 2^61 + 8 first, so the 8-lane sums fit in 64 bits */             \
        __m512i v0 = _mm512_add_epi64(_mm512_and_si512(a0[r][g], pv),                           \
                                      _mm512_srli_epi64(a0[r][g], 61));                         \
        __m512i v1 = _mm512_add_epi64(_mm512_and_si512(a1[r][g], pv),                           \
                                      _mm512_srli_epi64(a1[r][g], 61));                         \
        uint64_t t0 = mod_u64((uint64_t)_mm512_reduce_add_epi64(v0));                           \
        uint64_t t1 = mod_u64((uint64_t)_mm512_reduce_add_epi64(v1));                           \
        s[r][g] = add_p(s[r][g], add_p(t0, rot61(t1, K)));                                      \
      }                                                                                         \
  }                                                                                             \
  ATTR_IFMA static int matvec_##SUF##_ifma(size_t m, size_t n, const T *x, size_t ldx,          \
                                           size_t nw, const uint64_t *w, uint64_t *out) {        \
    for (size_t g0 = 0; g0 < nw; g0 += 3) {                                                     \
      unsigned G = nw - g0 < 3 ? (unsigned)(nw - g0) : 3;                                       \
      for (size_t i = 0; i < m; i += 4) {                                                       \
        size_t rn = m - i < 4 ? m - i : 4;                                                      \
        uint64_t s[4][3] = {{0}};                                                               \
        for (size_t j0 = 0; j0 < n; j0 += IR_CB) {                                              \
          size_t jn = n - j0 < IR_CB ? n - j0 : IR_CB;                                          \
          const T *xr[4];                                                                       \
          _Pragma("GCC unroll 4") for (unsigned r = 0; r < 4; r++) xr[r] = x + (i + (r < rn ? r : 0)) * ldx + j0;       \
          const uint64_t *wg = w + g0 * n + j0;                                                 \
          if (G == 3) ir_kernel_##SUF(3, jn, xr, wg, n, s);                                     \
          else if (G == 2) ir_kernel_##SUF(2, jn, xr, wg, n, s);                                \
          else ir_kernel_##SUF(1, jn, xr, wg, n, s);                                            \
        }                                                                                       \
        for (size_t r = 0; r < rn; r++)                                                         \
          _Pragma("GCC unroll 3") for (unsigned g = 0; g < G; g++) out[(g0 + g) * m + i + r] = s[r][g];                 \
      }                                                                                         \
    }                                                                                           \
    for (size_t g = 0; g < nw; g++) {                                                           \
      uint64_t b = bias_sum(n, w + g * n, BITS);                                                \
      for (size_t i = 0; i < m; i++) out[g * m + i] = sub_p(out[g * m + i], b);                 \
    }                                                                                           \
    return RAMNET_OK;                                                                           \
  }

DEFINE_IFMA(s32, int32_t, 52, 1, 31)
DEFINE_IFMA(s16, int16_t, 36, 0, 15)

/* int64 row sums through the int32 IFMA kernel (see the int64 row sums above). out must be
 * zeroed. */
ATTR_IFMA static int matvec_s64_ifma(size_t m, size_t n, const int64_t *x, size_t ldx, size_t nw,
                                     const uint64_t *w, uint64_t *out) {
  int32_t *half = aligned_alloc(64, 8 * NB * sizeof(int32_t));
  if (!half) return RAMNET_ENOMEM;
  const int32_t *lo[4] = {half, half + NB, half + 2 * NB, half + 3 * NB};
  const int32_t *hi[4] = {half + 4 * NB, half + 5 * NB, half + 6 * NB, half + 7 * NB};
  for (size_t i = 0; i < m; i += 4) {
    size_t rn = m - i < 4 ? m - i : 4;
    for (size_t j0 = 0; j0 < n; j0 += NB) {
      size_t jn = n - j0 < NB ? n - j0 : NB;
      split_s64(rn, jn, x + i * ldx + j0, ldx, half);
      for (size_t g0 = 0; g0 < nw; g0 += 3) {
        unsigned G = nw - g0 < 3 ? (unsigned)(nw - g0) : 3;
        uint64_t sl[4][3] = {{0}}, sh[4][3] = {{0}};
        const uint64_t *wg = w + g0 * n + j0;
        if (G == 3) {
          ir_kernel_s32(3, jn, lo, wg, n, sl);
          ir_kernel_s32(3, jn, hi, wg, n, sh);
        } else if (G == 2) {
          ir_kernel_s32(2, jn, lo, wg, n, sl);
          ir_kernel_s32(2, jn, hi, wg, n, sh);
        } else {
          ir_kernel_s32(1, jn, lo, wg, n, sl);
          ir_kernel_s32(1, jn, hi, wg, n, sh);
        }
        for (size_t r = 0; r < rn; r++)
          for (unsigned g = 0; g < G; g++) {
            uint64_t *o = out + (g0 + g) * m + i + r;
            *o = add_p(*o, add_p(sl[r][g], rot61(sh[r][g], 32)));
          }
      }
    }
  }
  free(half);
  for (size_t g = 0; g < nw; g++) {
    uint64_t b = bias_sum(n, w + g * n, 2); /* 2^63 = 2^2 mod p */
    for (size_t i = 0; i < m; i++) out[g * m + i] = sub_p(out[g * m + i], b);
  }
  return RAMNET_OK;
}
#endif /* RAMNET_X86 */

/* The VNNI/IFMA kernels for a resolved path: 1 if one ran (*code set), 0 to use the AVX-512 one.
 * The IFMA path implies VNNI support, so it runs the VNNI kernel for int8. */
static int fast_vecmat_s8(int p, size_t m, size_t n, const int8_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out, int *code) {
#if RAMNET_X86
  if (p == RAMNET_PATH_AVX512VNNI || p == RAMNET_PATH_AVX512IFMA) {
    *code = vecmat_s8_vnni(m, n, x, ldx, nw, w, out);
    return 1;
  }
#else
  (void)p, (void)m, (void)n, (void)x, (void)ldx, (void)nw, (void)w, (void)out, (void)code;
#endif
  return 0;
}

static int fast_matvec_s8(int p, size_t m, size_t n, const int8_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out, int *code) {
#if RAMNET_X86
  if (p == RAMNET_PATH_AVX512VNNI || p == RAMNET_PATH_AVX512IFMA) {
    *code = matvec_s8_vnni(m, n, x, ldx, nw, w, out);
    return 1;
  }
#else
  (void)p, (void)m, (void)n, (void)x, (void)ldx, (void)nw, (void)w, (void)out, (void)code;
#endif
  return 0;
}

#if RAMNET_X86
#define DEFINE_FAST_IFMA(KIND, SUF, T)                                                          \
  static int fast_##KIND##_##SUF(int p, size_t m, size_t n, const T *x, size_t ldx, size_t nw,  \
                                 const uint64_t *w, uint64_t *out, int *code) {                 \
    if (p != RAMNET_PATH_AVX512IFMA) return 0;                                                  \
    *code = KIND##_##SUF##_ifma(m, n, x, ldx, nw, w, out);                                      \
    return 1;                                                                                   \
  }
#else
#define DEFINE_FAST_IFMA(KIND, SUF, T)                                                          \
  static int fast_##KIND##_##SUF(int p, size_t m, size_t n, const T *x, size_t ldx, size_t nw,  \
                                 const uint64_t *w, uint64_t *out, int *code) {                 \
    (void)p, (void)m, (void)n, (void)x, (void)ldx, (void)nw, (void)w, (void)out, (void)code;    \
    return 0;                                                                                   \
  }
#endif
DEFINE_FAST_IFMA(vecmat, s16, int16_t)
DEFINE_FAST_IFMA(vecmat, s32, int32_t)
DEFINE_FAST_IFMA(matvec, s16, int16_t)
DEFINE_FAST_IFMA(matvec, s32, int32_t)

/* Checks the common arguments; returns the resolved path or a negative code. */
static int check_args(int path, size_t m, size_t n, const void *x, size_t ldx, size_t nw,
                      const uint64_t *w, size_t wlen, const uint64_t *out) {
  int p = field_resolve(path);
  if (p < 0) return RAMNET_ENOTSUP;
  if (nw == 0) return p;
  if (!out || !w) return RAMNET_EINVAL;
  if (m && n && (!x || ldx < n)) return RAMNET_EINVAL;
  if (!weights_ok(nw * wlen, w)) return RAMNET_EINVAL;
  return p;
}

#define VECMAT_ENTRY(SUF, T)                                                                   \
  int ramnet_p61_vecmat_##SUF(int path, size_t m, size_t n, const T *x, size_t ldx, size_t nw, \
                              const uint64_t *w, uint64_t *out) {                              \
    int p = check_args(path, m, n, x, ldx, nw, w, m, out);                                     \
    if (p < 0) return p;                                                                       \
    if (nw == 0 || n == 0) return RAMNET_OK;                                                   \
    memset(out, 0, nw * n * sizeof(uint64_t));                                                 \
    if (m == 0) return RAMNET_OK;                                                              \
    int code = RAMNET_OK;                                                                      \
    if (fast_vecmat_##SUF(p, m, n, x, ldx, nw, w, out, &code)) return code;                    \
    if (p > RAMNET_PATH_AVX512) p = RAMNET_PATH_AVX512;                                        \
    if (p == RAMNET_PATH_AVX512) vecmat_##SUF##_avx512(m, n, x, ldx, nw, w, out);              \
    else if (p == RAMNET_PATH_AVX2) vecmat_##SUF##_avx2(m, n, x, ldx, nw, w, out);             \
    else vecmat_##SUF##_portable(m, n, x, ldx, nw, w, out);                                    \
    return RAMNET_OK;                                                                          \
  }

#define MATVEC_ENTRY(SUF, T)                                                                   \
  int ramnet_p61_matvec_##SUF(int path, size_t m, size_t n, const T *x, size_t ldx, size_t nw, \
                              const uint64_t *w, uint64_t *out) {                              \
    int p = check_args(path, m, n, x, ldx, nw, w, n, out);                                     \
    if (p < 0) return p;                                                                       \
    if (nw == 0 || m == 0) return RAMNET_OK;                                                   \
    memset(out, 0, nw * m * sizeof(uint64_t));                                                 \
    if (n == 0) return RAMNET_OK;                                                              \
    int code = RAMNET_OK;                                                                      \
    if (fast_matvec_##SUF(p, m, n, x, ldx, nw, w, out, &code)) return code;                    \
    if (p > RAMNET_PATH_AVX512) p = RAMNET_PATH_AVX512;                                        \
    int32_t *wl = malloc(sizeof(int32_t) * ACC_MAX * NB);                                      \
    if (!wl) return RAMNET_ENOMEM;                                                             \
    if (p == RAMNET_PATH_AVX512) matvec_##SUF##_avx512(m, n, x, ldx, nw, w, out, wl);          \
    else if (p == RAMNET_PATH_AVX2) matvec_##SUF##_avx2(m, n, x, ldx, nw, w, out, wl);         \
    else matvec_##SUF##_portable(m, n, x, ldx, nw, w, out, wl);                                \
    free(wl);                                                                                  \
    return RAMNET_OK;                                                                          \
  }

VECMAT_ENTRY(s8, int8_t)
VECMAT_ENTRY(s16, int16_t)
VECMAT_ENTRY(s32, int32_t)
MATVEC_ENTRY(s8, int8_t)
MATVEC_ENTRY(s16, int16_t)
MATVEC_ENTRY(s32, int32_t)

/* ---- int64 entries: the split into int32 halves above ---- */

int ramnet_p61_vecmat_s64(int path, size_t m, size_t n, const int64_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out) {
  int p = check_args(path, m, n, x, ldx, nw, w, m, out);
  if (p < 0) return p;
  if (nw == 0 || n == 0) return RAMNET_OK;
  memset(out, 0, nw * n * sizeof(uint64_t));
  if (m == 0) return RAMNET_OK;
  if (p > RAMNET_PATH_AVX512) p = RAMNET_PATH_AVX512;
  int64_t(*acc)[JB] = malloc(2 * G_MAX * 3 * sizeof acc[0] + 8 * NB * sizeof(int32_t));
  if (!acc) return RAMNET_ENOMEM;
  int32_t *half = (int32_t *)(void *)(acc + 2 * G_MAX * 3);
  if (p == RAMNET_PATH_AVX512) vecmat_s64_avx512(m, n, x, ldx, nw, w, out, acc, half);
  else if (p == RAMNET_PATH_AVX2) vecmat_s64_avx2(m, n, x, ldx, nw, w, out, acc, half);
  else vecmat_s64_portable(m, n, x, ldx, nw, w, out, acc, half);
  free(acc);
  return RAMNET_OK;
}

int ramnet_p61_matvec_s64(int path, size_t m, size_t n, const int64_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out) {
  int p = check_args(path, m, n, x, ldx, nw, w, n, out);
  if (p < 0) return p;
  if (nw == 0 || m == 0) return RAMNET_OK;
  memset(out, 0, nw * m * sizeof(uint64_t));
  if (n == 0) return RAMNET_OK;
#if RAMNET_X86
  if (p == RAMNET_PATH_AVX512IFMA) return matvec_s64_ifma(m, n, x, ldx, nw, w, out);
#endif
  if (p > RAMNET_PATH_AVX512) p = RAMNET_PATH_AVX512;
  int32_t *wl = malloc(sizeof(int32_t) * (G_MAX * 3 + 8) * NB);
  if (!wl) return RAMNET_ENOMEM;
  int32_t *half = wl + G_MAX * 3 * NB;
  if (p == RAMNET_PATH_AVX512) matvec_s64_avx512(m, n, x, ldx, nw, w, out, wl, half);
  else if (p == RAMNET_PATH_AVX2) matvec_s64_avx2(m, n, x, ldx, nw, w, out, wl, half);
  else matvec_s64_portable(m, n, x, ldx, nw, w, out, wl, half);
  free(wl);
  return RAMNET_OK;
}

/* ---- F_{p^2} = F_p[i] / (i^2 + 1) ---- */

typedef struct {
  uint64_t re, im;
} fp2;

ALWAYS_INLINE fp2 fp2_load(const uint64_t *a) {
  fp2 r = {a[0], a[1]};
  return r;
}

ALWAYS_INLINE void fp2_store(uint64_t *a, fp2 v) {
  a[0] = v.re;
  a[1] = v.im;
}

ALWAYS_INLINE fp2 fp2_add(fp2 a, fp2 b) {
  fp2 r = {add_p(a.re, b.re), add_p(a.im, b.im)};
  return r;
}

ALWAYS_INLINE fp2 fp2_sub(fp2 a, fp2 b) {
  fp2 r = {sub_p(a.re, b.re), sub_p(a.im, b.im)};
  return r;
}

/* (a + bi)(c + di) = (ac - bd) + (ad + bc)i; -bd is (p - b)d, so both parts are sums of two
 * products below 2^122. */
ALWAYS_INLINE fp2 fp2_mul(fp2 a, fp2 b) {
  fp2 r = {reduce128((u128)a.re * b.re + (u128)(P61 - a.im) * b.im),
           reduce128((u128)a.re * b.im + (u128)a.im * b.re)};
  return r;
}

static int fp2_ok(size_t n, const uint64_t *a) { return weights_ok(2 * n, a); }

int ramnet_p61x2_eq_table(size_t nvars, const uint64_t *r, uint64_t *out) {
  if (nvars > 40 || !out || (nvars && !r) || !fp2_ok(nvars, r)) return RAMNET_EINVAL;
  out[0] = 1;
  out[1] = 0;
  for (size_t t = 0; t < nvars; t++) {
    size_t half = (size_t)1 << t;
    fp2 rt = fp2_load(r + 2 * t);
    for (size_t b = 0; b < half; b++) {
      fp2 lo = fp2_load(out + 2 * b);
      fp2 hi = fp2_mul(lo, rt);
      fp2_store(out + 2 * (b + half), hi);
      fp2_store(out + 2 * b, fp2_sub(lo, hi));
    }
  }
  return RAMNET_OK;
}

int ramnet_p61x2_sumcheck_round(size_t n, const uint64_t *u, const uint64_t *v, uint64_t *g) {
  if (n % 2 || !g || (n && (!u || !v)) || !fp2_ok(n, u) || !fp2_ok(n, v)) return RAMNET_EINVAL;
  fp2 g0 = {0, 0}, g1 = {0, 0}, g2 = {0, 0};
  for (size_t t = 0; t < n; t += 2) {
    fp2 u0 = fp2_load(u + 2 * t), u1 = fp2_load(u + 2 * t + 2);
    fp2 v0 = fp2_load(v + 2 * t), v1 = fp2_load(v + 2 * t + 2);
    fp2 u2 = fp2_sub(fp2_add(u1, u1), u0), v2 = fp2_sub(fp2_add(v1, v1), v0);
    g0 = fp2_add(g0, fp2_mul(u0, v0));
    g1 = fp2_add(g1, fp2_mul(u1, v1));
    g2 = fp2_add(g2, fp2_mul(u2, v2));
  }
  fp2_store(g, g0);
  fp2_store(g + 2, g1);
  fp2_store(g + 4, g2);
  return RAMNET_OK;
}

int ramnet_p61x2_fold(size_t n, uint64_t *u, const uint64_t *r) {
  if (n % 2 || !r || (n && !u) || !fp2_ok(1, r) || !fp2_ok(n, u)) return RAMNET_EINVAL;
  fp2 rr = fp2_load(r);
  for (size_t t = 0; t < n / 2; t++) {
    fp2 a = fp2_load(u + 4 * t), b = fp2_load(u + 4 * t + 2);
    fp2_store(u + 2 * t, fp2_add(a, fp2_mul(rr, fp2_sub(b, a))));
  }
  return RAMNET_OK;
}

int ramnet_p61x2_fold_round(size_t n, uint64_t *u, uint64_t *v, const uint64_t *r,
                            uint64_t *g) {
  if (n % 2 || !r || !g || (n && (!u || !v)) || !fp2_ok(1, r) || !fp2_ok(n, u) || !fp2_ok(n, v))
    return RAMNET_EINVAL;
  fp2 rr = fp2_load(r);
  for (size_t t = 0; t < n / 2; t++) {
    fp2 a = fp2_load(u + 4 * t), b = fp2_load(u + 4 * t + 2);
    fp2_store(u + 2 * t, fp2_add(a, fp2_mul(rr, fp2_sub(b, a))));
    a = fp2_load(v + 4 * t), b = fp2_load(v + 4 * t + 2);
    fp2_store(v + 2 * t, fp2_add(a, fp2_mul(rr, fp2_sub(b, a))));
  }
  if (n / 2 < 2 || (n / 2) % 2) return RAMNET_OK;
  return ramnet_p61x2_sumcheck_round(n / 2, u, v, g);
}

int ramnet_p61x2_dot(size_t n, const uint64_t *u, const uint64_t *v, uint64_t *out) {
  if (!out || (n && (!u || !v)) || !fp2_ok(n, u) || !fp2_ok(n, v)) return RAMNET_EINVAL;
  fp2 s = {0, 0};
  for (size_t t = 0; t < n; t++) s = fp2_add(s, fp2_mul(fp2_load(u + 2 * t), fp2_load(v + 2 * t)));
  fp2_store(out, s);
  return RAMNET_OK;
}
