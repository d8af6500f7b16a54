/* stream.c: McCalpin's four STREAM operations (copy, scale, add, triad) for float64 and float32.
 *
 * Memory-bound by design, so the vector paths differ mainly in how they store: once the
 * destination is larger than the caches are likely to keep (RAMNET_NT_BYTES), they write with
 * streaming (non-temporal) stores, which skip the read-for-ownership of the destination line and
 * so move a third less data for triad. Smaller vectors keep ordinary stores and stay in cache. */
#include "internal.h"

#define RAMNET_NT_BYTES ((size_t)1 << 21)

/* OP(i) is the value of a[i]; X_ARGS are the operand parameters after `a`. */
#define SCALAR_BODY(T, OP)                      \
  for (size_t i = 0; i < n; i++) a[i] = (OP);

#define DEFINE_PORTABLE(NAME, T, PARAMS, OP) \
  static void NAME##_portable PARAMS { SCALAR_BODY(T, OP) }

#if RAMNET_X86
/* The vector body: a scalar head up to the alignment that streaming stores need, a vector main
 * loop, a scalar tail. VLOAD/VSTORE/VSTREAM name the intrinsics of one register width. */
#define VECTOR_BODY(T, VT, W, VOP, OP, VSTORE, VSTREAM)                                  \
  size_t i = 0;                                                                         \
  if (n * sizeof(T) >= RAMNET_NT_BYTES) {                                               \
    while (i < n && ((uintptr_t)(a + i) % (W * sizeof(T))) != 0) {                      \
      a[i] = (OP);                                                                      \
      i++;                                                                              \
    }                                                                                   \
    for (; i + 2 * W <= n; i += 2 * W) {                                                \
      VT v0 = VOP(i), v1 = VOP(i + W);                                                  \
      VSTREAM((void *)(a + i), v0);                                                     \
      VSTREAM((void *)(a + i + W), v1);                                                 \
    }                                                                                   \
    _mm_sfence();                                                                       \
  } else {                                                                              \
    for (; i + 2 * W <= n; i += 2 * W) {                                                \
      VT v0 = VOP(i), v1 = VOP(i + W);                                                  \
      VSTORE((void *)(a + i), v0);                                                      \
      VSTORE((void *)(a + i + W), v1);                                                  \
    }                                                                                   \
  }                                                                                     \
  for (; i < n; i++) a[i] = (OP);
#endif

/* ---- operand expressions, scalar and vector, for each op and width ---- */
#define COPY_OP (b[i])
#define SCALE_OP (s * b[i])
#define ADD_OP (b[i] + c[i])
/* Rounded like numpy's b + s*c (multiply, then add; no fused multiply-add), so every path gives
 * the same bits. */
#define TRIAD_OP (b[i] + s * c[i])

#if RAMNET_X86
#define V512D_LD(p) _mm512_loadu_pd(p)
#define V512S_LD(p) _mm512_loadu_ps(p)
#define V256D_LD(p) _mm256_loadu_pd(p)
#define V256S_LD(p) _mm256_loadu_ps(p)

#define COPY_512D(j) V512D_LD(b + (j))
#define SCALE_512D(j) _mm512_mul_pd(vs, V512D_LD(b + (j)))
#define ADD_512D(j) _mm512_add_pd(V512D_LD(b + (j)), V512D_LD(c + (j)))
#define TRIAD_512D(j) _mm512_add_pd(V512D_LD(b + (j)), _mm512_mul_pd(vs, V512D_LD(c + (j))))
#define COPY_512S(j) V512S_LD(b + (j))
#define SCALE_512S(j) _mm512_mul_ps(vs, V512S_LD(b + (j)))
#define ADD_512S(j) _mm512_add_ps(V512S_LD(b + (j)), V512S_LD(c + (j)))
#define TRIAD_512S(j) _mm512_add_ps(V512S_LD(b + (j)), _mm512_mul_ps(vs, V512S_LD(c + (j))))
#define COPY_256D(j) V256D_LD(b + (j))
#define SCALE_256D(j) _mm256_mul_pd(vs, V256D_LD(b + (j)))
#define ADD_256D(j) _mm256_add_pd(V256D_LD(b + (j)), V256D_LD(c + (j)))
#define TRIAD_256D(j) _mm256_add_pd(V256D_LD(b + (j)), _mm256_mul_pd(vs, V256D_LD(c + (j))))
#define COPY_256S(j) V256S_LD(b + (j))
#define SCALE_256S(j) _mm256_mul_ps(vs, V256S_LD(b + (j)))
#define ADD_256S(j) _mm256_add_ps(V256S_LD(b + (j)), V256S_LD(c + (j)))
#define TRIAD_256S(j) _mm256_add_ps(V256S_LD(b + (j)), _mm256_mul_ps(vs, V256S_LD(c + (j))))

#define ST512D(p, v) _mm512_storeu_pd(p, v)
#define NT512D(p, v) _mm512_stream_pd(p, v)
#define ST512S(p, v) _mm512_storeu_ps(p, v)
#define NT512S(p, v) _mm512_stream_ps(p, v)
#define ST256D(p, v) _mm256_storeu_pd(p, v)
#define NT256D(p, v) _mm256_stream_pd(p, v)
#define ST256S(p, v) _mm256_storeu_ps(p, v)
#define NT256S(p, v) _mm256_stream_ps(p, v)
#endif


/* Writing the 16 public functions out by hand keeps the signatures greppable and cffi-checked. */
#define DISPATCH(NAME, ARGS)                                                     \
  do {                                                                           \
    int p = ramnet_resolve_path(RAMNET_KERNEL_STREAM, path);                     \
    if (p < 0) return RAMNET_ENOTSUP;                                            \
    if (n == 0) return RAMNET_OK;                                                \
    if (p == RAMNET_PATH_AVX512) NAME##_avx512 ARGS;                             \
    else if (p == RAMNET_PATH_AVX2) NAME##_avx2 ARGS;                            \
    else NAME##_portable ARGS;                                                   \
    return RAMNET_OK;                                                            \
  } while (0)

#if !RAMNET_X86
/* Only the portable path exists off x86; the vector names alias it. */
#define VECTOR_ALIASES(NAME, PARAMS, ARGS)                     \
  static void NAME##_avx2 PARAMS { NAME##_portable ARGS; }     \
  static void NAME##_avx512 PARAMS { NAME##_portable ARGS; }
#endif

#if RAMNET_X86
#define KERNELS(NAME, T, PARAMS, ARGS, OP, OPNAME, SUF5, SUF2, VT512, VT256, W512, W256, SET512,   \
                SET256)                                                                           \
  DEFINE_PORTABLE(NAME, T, PARAMS, OP)                                                            \
  __attribute__((target("avx2,fma"))) static void NAME##_avx2 PARAMS {                            \
    SET256;                                                                                       \
    VECTOR_BODY(T, VT256, W256, OPNAME##_256##SUF2, OP, ST256##SUF2, NT256##SUF2)                 \
  }                                                                                               \
  __attribute__((target("avx512f"))) static void NAME##_avx512 PARAMS {                           \
    SET512;                                                                                       \
    VECTOR_BODY(T, VT512, W512, OPNAME##_512##SUF5, OP, ST512##SUF5, NT512##SUF5)                 \
  }
#else
#define KERNELS(NAME, T, PARAMS, ARGS, OP, OPNAME, SUF5, SUF2, VT512, VT256, W512, W256, SET512, \
                SET256)                                                                         \
  DEFINE_PORTABLE(NAME, T, PARAMS, OP)                                                          \
  VECTOR_ALIASES(NAME, PARAMS, ARGS)
#endif

#define NOSET (void)0
#define SETD5 __m512d vs = _mm512_set1_pd(s)
#define SETD2 __m256d vs = _mm256_set1_pd(s)
#define SETS5 __m512 vs = _mm512_set1_ps(s)
#define SETS2 __m256 vs = _mm256_set1_ps(s)

/* float64 */
KERNELS(copy_f64, double, (double *restrict a, const double *restrict b, size_t n), (a, b, n),
        COPY_OP, COPY, D, D, __m512d, __m256d, 8, 4, NOSET, NOSET)
KERNELS(scale_f64, double, (double *restrict a, const double *restrict b, double s, size_t n),
        (a, b, s, n), SCALE_OP, SCALE, D, D, __m512d, __m256d, 8, 4, SETD5, SETD2)
KERNELS(add_f64, double,
        (double *restrict a, const double *restrict b, const double *restrict c, size_t n),
        (a, b, c, n), ADD_OP, ADD, D, D, __m512d, __m256d, 8, 4, NOSET, NOSET)
KERNELS(triad_f64, double,
        (double *restrict a, const double *restrict b, const double *restrict c, double s,
         size_t n),
        (a, b, c, s, n), TRIAD_OP, TRIAD, D, D, __m512d, __m256d, 8, 4, SETD5, SETD2)
/* float32 */
KERNELS(copy_f32, float, (float *restrict a, const float *restrict b, size_t n), (a, b, n),
        COPY_OP, COPY, S, S, __m512, __m256, 16, 8, NOSET, NOSET)
KERNELS(scale_f32, float, (float *restrict a, const float *restrict b, float s, size_t n),
        (a, b, s, n), SCALE_OP, SCALE, S, S, __m512, __m256, 16, 8, SETS5, SETS2)
KERNELS(add_f32, float,
        (float *restrict a, const float *restrict b, const float *restrict c, size_t n),
        (a, b, c, n), ADD_OP, ADD, S, S, __m512, __m256, 16, 8, NOSET, NOSET)
KERNELS(triad_f32, float,
        (float *restrict a, const float *restrict b, const float *restrict c, float s, size_t n),
        (a, b, c, s, n), TRIAD_OP, TRIAD, S, S, __m512, __m256, 16, 8, SETS5, SETS2)

#define CHECK2 if (n && (!a || !b)) return RAMNET_EINVAL
#define CHECK3 if (n && (!a || !b || !c)) return RAMNET_EINVAL

int ramnet_stream_copy_f64(int path, double *a, const double *b, size_t n) {
  CHECK2;
  DISPATCH(copy_f64, (a, b, n));
}
int ramnet_stream_scale_f64(int path, double *a, const double *b, double s, size_t n) {
  CHECK2;
  DISPATCH(scale_f64, (a, b, s, n));
}
int ramnet_stream_add_f64(int path, double *a, const double *b, const double *c, size_t n) {
  CHECK3;
  DISPATCH(add_f64, (a, b, c, n));
}
int ramnet_stream_triad_f64(int path, double *a, const double *b, const double *c, double s,
                            size_t n) {
  CHECK3;
  DISPATCH(triad_f64, (a, b, c, s, n));
}
int ramnet_stream_copy_f32(int path, float *a, const float *b, size_t n) {
  CHECK2;
  DISPATCH(copy_f32, (a, b, n));
}
int ramnet_stream_scale_f32(int path, float *a, const float *b, float s, size_t n) {
  CHECK2;
  DISPATCH(scale_f32, (a, b, s, n));
}
int ramnet_stream_add_f32(int path, float *a, const float *b, const float *c, size_t n) {
  CHECK3;
  DISPATCH(add_f32, (a, b, c, n));
}
int ramnet_stream_triad_f32(int path, float *a, const float *b, const float *c, float s,
                            size_t n) {
  CHECK3;
  DISPATCH(triad_f32, (a, b, c, s, n));
}
