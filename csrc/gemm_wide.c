/* gemm_wide.c: exact int16 x int16 -> int64 and int32 x int32 -> int64 GEMM.
 *
 * Products of int16 or int32 entries overflow int32 accumulators after a term or two, so these
 * kernels accumulate in int64; the Python layer checks the bound that keeps every partial sum in
 * range before it calls them. The inner loop updates four rows of C from one row of B, a
 * form every compiler vectorizes; the vector paths are the same source compiled for AVX2 and
 * AVX-512 through target attributes. */
#include "internal.h"

#include <string.h>

#define JB 512 /* columns of C per block: 4 rows x 512 x 8 bytes stay in L1 */

/* Adds A[rows, :] . B into C[rows, j0:j1] for up to four rows. */
#define WIDE_BODY(TA)                                                                          \
  for (size_t j0 = 0; j0 < n; j0 += JB) {                                                      \
    size_t jn = n - j0 < JB ? n - j0 : JB;                                                     \
    size_t i = 0;                                                                              \
    for (; i + 4 <= m; i += 4) {                                                               \
      int64_t *restrict c0 = c + i * ldc + j0, *restrict c1 = c0 + ldc, *restrict c2 = c1 + ldc, \
                        *restrict c3 = c2 + ldc;                                               \
      for (size_t p = 0; p < k; p++) {                                                         \
        const TA *restrict br = b + p * ldb + j0;                                              \
        int64_t a0 = a[i * lda + p], a1 = a[(i + 1) * lda + p], a2 = a[(i + 2) * lda + p],     \
                a3 = a[(i + 3) * lda + p];                                                     \
        for (size_t j = 0; j < jn; j++) {                                                      \
          int64_t bj = br[j];                                                                  \
          c0[j] += a0 * bj;                                                                    \
          c1[j] += a1 * bj;                                                                    \
          c2[j] += a2 * bj;                                                                    \
          c3[j] += a3 * bj;                                                                    \
        }                                                                                      \
      }                                                                                        \
    }                                                                                          \
    for (; i < m; i++) {                                                                       \
      int64_t *restrict c0 = c + i * ldc + j0;                                                 \
      for (size_t p = 0; p < k; p++) {                                                         \
        const TA *restrict br = b + p * ldb + j0;                                              \
        int64_t a0 = a[i * lda + p];                                                           \
        for (size_t j = 0; j < jn; j++) c0[j] += a0 * (int64_t)br[j];                          \
      }                                                                                        \
    }                                                                                          \
  }

/* No partial sum can overflow: a product of two int32 entries fits in int64, and the caller
 * guarantees k * max|A| * max|B| < 2^63 (for int16 inputs that holds for any k < 2^33). */
#define DEFINE_WIDE(NAME, TA)                                                                  \
  static void NAME##_portable(size_t m, size_t n, size_t k, const TA *a, size_t lda,          \
                              const TA *b, size_t ldb, int64_t *c, size_t ldc) {               \
    WIDE_BODY(TA)                                                                              \
  }                                                                                            \
  WIDE_VECTOR(NAME, TA)

#if RAMNET_X86
#define WIDE_VECTOR(NAME, TA)                                                                  \
  __attribute__((target("avx2,fma"))) static void NAME##_avx2(                                 \
      size_t m, size_t n, size_t k, const TA *a, size_t lda, const TA *b, size_t ldb,          \
      int64_t *c, size_t ldc) {                                                                \
    WIDE_BODY(TA)                                                                              \
  }                                                                                            \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) static void NAME##_avx512(     \
      size_t m, size_t n, size_t k, const TA *a, size_t lda, const TA *b, size_t ldb,          \
      int64_t *c, size_t ldc) {                                                                \
    WIDE_BODY(TA)                                                                              \
  }
#else
#define WIDE_VECTOR(NAME, TA)                                                                  \
  static void NAME##_avx2(size_t m, size_t n, size_t k, const TA *a, size_t lda, const TA *b,  \
                          size_t ldb, int64_t *c, size_t ldc) {                                \
    NAME##_portable(m, n, k, a, lda, b, ldb, c, ldc);                                          \
  }                                                                                            \
  static void NAME##_avx512(size_t m, size_t n, size_t k, const TA *a, size_t lda,             \
                            const TA *b, size_t ldb, int64_t *c, size_t ldc) {                 \
    NAME##_portable(m, n, k, a, lda, b, ldb, c, ldc);                                          \
  }
#endif

DEFINE_WIDE(s16, int16_t)
DEFINE_WIDE(s32, int32_t)

#define WIDE_ENTRY(NAME, TA)                                                                   \
  int ramnet_gemm_##NAME##s64(int path, size_t m, size_t n, size_t k, const TA *a, size_t lda, \
                              const TA *b, size_t ldb, int64_t *c, size_t ldc,                 \
                              int accumulate) {                                                \
    int p = ramnet_resolve_path(RAMNET_KERNEL_GEMM_WIDE, path);                                \
    if (p < 0) return RAMNET_ENOTSUP;                                                          \
    if (m == 0 || n == 0) return RAMNET_OK;                                                    \
    if (!c || ldc < n || (k && (!a || !b || lda < k || ldb < n))) return RAMNET_EINVAL;        \
    if (!accumulate)                                                                           \
      for (size_t i = 0; i < m; i++) memset(c + i * ldc, 0, n * sizeof(int64_t));             \
    if (k == 0) return RAMNET_OK;                                                              \
    if (p == RAMNET_PATH_AVX512) NAME##_avx512(m, n, k, a, lda, b, ldb, c, ldc);               \
    else if (p == RAMNET_PATH_AVX2) NAME##_avx2(m, n, k, a, lda, b, ldb, c, ldc);              \
    else NAME##_portable(m, n, k, a, lda, b, ldb, c, ldc);                                     \
    return RAMNET_OK;                                                                          \
  }

WIDE_ENTRY(s16, int16_t)
WIDE_ENTRY(s32, int32_t)
