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
 * modulo a Mersenne prime is a 61-bit rotation. int64 entries are reduced mod p first and go
 * through a scalar unsigned __int128 loop on every path (they are rare and not on a hot path).
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

static int weights_ok(size_t count, const uint64_t *w) {
  uint64_t bad = 0;
  for (size_t i = 0; i < count; i++) bad |= (uint64_t)(w[i] >= P61);
  return bad == 0;
}

/* ---- dispatch ---- */

int ramnet_field_path_supported(int path) {
  if (path != RAMNET_PATH_PORTABLE && path != RAMNET_PATH_AVX2 && path != RAMNET_PATH_AVX512)
    return 0;
  /* Same CPU requirements as the wide GEMM family (AVX2+FMA; AVX-512 F/BW/VL/DQ). */
  return ramnet_path_supported(RAMNET_KERNEL_GEMM_WIDE, path);
}

int ramnet_field_best_path(void) {
  if (ramnet_field_path_supported(RAMNET_PATH_AVX512)) return RAMNET_PATH_AVX512;
  if (ramnet_field_path_supported(RAMNET_PATH_AVX2)) return RAMNET_PATH_AVX2;
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
ALWAYS_INLINE void col_flush(unsigned L, size_t g, size_t jn, int64_t (*acc)[JB], uint64_t *out,
                             size_t n) {
  for (size_t gi = 0; gi < g; gi++) {
    for (size_t j = 0; j < jn; j++) {
      uint64_t t = out[gi * n + j];
      for (unsigned l = 0; l < L; l++)
        t = add_p(t, rot61(mod_s64(acc[gi * L + l][j]), limb_shift(L, l)));
      out[gi * n + j] = t;
    }
    for (unsigned l = 0; l < L; l++) memset(acc[gi * L + l], 0, jn * sizeof(int64_t));
  }
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

/* ---- int64 entries: reduce each entry mod p, accumulate exact 128-bit products ---- */

#define U128_TERMS 32 /* products < 2^122, so 32 of them fit in 128 bits */

int ramnet_p61_vecmat_s64(int path, size_t m, size_t n, const int64_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out) {
  int p = check_args(path, m, n, x, ldx, nw, w, m, out);
  if (p < 0) return p;
  if (nw == 0 || n == 0) return RAMNET_OK;
  memset(out, 0, nw * n * sizeof(uint64_t));
  u128 acc[JB];
  for (size_t g = 0; g < nw; g++) {
    for (size_t j0 = 0; j0 < n; j0 += JB) {
      size_t jn = n - j0 < JB ? n - j0 : JB;
      uint64_t *o = out + g * n + j0;
      for (size_t i0 = 0; i0 < m; i0 += U128_TERMS) {
        size_t i1 = m - i0 < U128_TERMS ? m : i0 + U128_TERMS;
        memset(acc, 0, jn * sizeof(u128));
        for (size_t i = i0; i < i1; i++) {
          uint64_t wi = w[g * m + i];
          const int64_t *xr = x + i * ldx + j0;
          for (size_t j = 0; j < jn; j++) acc[j] += (u128)wi * mod_s64(xr[j]);
        }
        for (size_t j = 0; j < jn; j++) o[j] = add_p(o[j], reduce128(acc[j]));
      }
    }
  }
  return RAMNET_OK;
}

int ramnet_p61_matvec_s64(int path, size_t m, size_t n, const int64_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out) {
  int p = check_args(path, m, n, x, ldx, nw, w, n, out);
  if (p < 0) return p;
  if (nw == 0 || m == 0) return RAMNET_OK;
  memset(out, 0, nw * m * sizeof(uint64_t));
  for (size_t g = 0; g < nw; g++) {
    const uint64_t *wg = w + g * n;
    for (size_t i = 0; i < m; i++) {
      const int64_t *xr = x + i * ldx;
      uint64_t t = 0;
      for (size_t j0 = 0; j0 < n; j0 += U128_TERMS) {
        size_t j1 = n - j0 < U128_TERMS ? n : j0 + U128_TERMS;
        u128 s = 0;
        for (size_t j = j0; j < j1; j++) s += (u128)wg[j] * mod_s64(xr[j]);
        t = add_p(t, reduce128(s));
      }
      out[g * m + i] = t;
    }
  }
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

int ramnet_p61x2_dot(size_t n, const uint64_t *u, const uint64_t *v, uint64_t *out) {
  if (!out || (n && (!u || !v)) || !fp2_ok(n, u) || !fp2_ok(n, v)) return RAMNET_EINVAL;
  fp2 s = {0, 0};
  for (size_t t = 0; t < n; t++) s = fp2_add(s, fp2_mul(fp2_load(u + 2 * t), fp2_load(v + 2 * t)));
  fp2_store(out, s);
  return RAMNET_OK;
}
