/* ramnet.h: the C interface of RAMNET's native kernels (ORCHID).
 *
 * build_ext.py hands the text between the cdef markers to cffi's cdef(), so that part must stay
 * plain C declarations that cffi can parse: no #include, no #if, no attributes. The C sources
 * include this whole file.
 *
 * Conventions: matrices are row-major with a leading dimension (elements per row, >= columns).
 * Every function returns RAMNET_OK (0) or a negative RAMNET_E* code; none prints or aborts.
 * Kernels are single-threaded: the Python scheduler runs them from several threads, and cffi
 * releases the GIL around each call.
 */
#ifndef RAMNET_H
#define RAMNET_H
#include <stddef.h>
#include <stdint.h>

/* cdef-begin */
#define RAMNET_OK 0
#define RAMNET_EINVAL -1      /* a bad argument: null pointer, leading dimension too small */
#define RAMNET_ENOTSUP -2     /* the requested code path is not supported by this CPU/build */
#define RAMNET_ENOMEM -3      /* a scratch allocation failed */

/* Code paths. RAMNET_PATH_AUTO asks the library to pick the best one this CPU supports. */
#define RAMNET_PATH_AUTO -1
#define RAMNET_PATH_PORTABLE 0   /* plain C, any CPU */
#define RAMNET_PATH_AVX2 1       /* x86-64 AVX2 (+FMA) */
#define RAMNET_PATH_AVXVNNI 2    /* x86-64 AVX-VNNI (256-bit VEX vpdpbusd) */
#define RAMNET_PATH_AVX512 3     /* x86-64 AVX-512 F/BW/VL without VNNI */
#define RAMNET_PATH_AVX512VNNI 4 /* x86-64 AVX-512 VNNI */
#define RAMNET_PATH_NEON 5       /* aarch64 Advanced SIMD */
#define RAMNET_PATH_AVX512IFMA 6 /* x86-64 AVX-512 VNNI + IFMA (the field kernels only) */
#define RAMNET_NPATHS 7

/* Kernel families, for ramnet_best_path / ramnet_path_supported. */
#define RAMNET_KERNEL_GEMM_S8 0
#define RAMNET_KERNEL_GEMM_WIDE 1
#define RAMNET_KERNEL_STREAM 2

/* CPU and dispatch. */
const char *ramnet_path_name(int path);                  /* "avx512-vnni", ...; "unknown" */
int ramnet_path_supported(int kernel, int path);         /* 1 if this CPU and build can run it */
int ramnet_best_path(int kernel);                        /* the path AUTO resolves to */
const char *ramnet_cpu_features(void);                   /* space-separated feature names */

/* int8 x int8 -> int32 GEMM: C = A.B, or C += A.B when accumulate != 0.
 * A is m x k (lda), B is k x n (ldb), C is m x n (ldc). Arithmetic is modulo 2^32, so the result
 * is exact whenever the true product fits in int32 (always when k <= 131071). */
int ramnet_gemm_s8s32(int path, size_t m, size_t n, size_t k,
                      const int8_t *a, size_t lda, const int8_t *b, size_t ldb,
                      int32_t *c, size_t ldc, int accumulate);

/* Several int8 products that share operands, each operand packed once per panel instead of once
 * per product (a mesh worker's shard of block products):
 *   c[t] = a[a_of[t]] . b[b_of[t]]  for t < count,
 * where a[i] is m[i] x k (lda[i]), b[j] is k x n[j] (ldb[j]) and c[t] is m[a_of[t]] x n[b_of[t]]
 * (ldc[t]). Every operand shares the inner dimension k. Results are overwritten, with the same
 * arithmetic as ramnet_gemm_s8s32. */
int ramnet_gemm_s8s32_many(int path, size_t k,
                           size_t na, const int8_t *const *a, const size_t *m, const size_t *lda,
                           size_t nb, const int8_t *const *b, const size_t *n, const size_t *ldb,
                           size_t count, const size_t *a_of, const size_t *b_of,
                           int32_t *const *c, const size_t *ldc);

/* int16 x int16 -> int64 and int32 x int32 -> int64 GEMM (exact while the true product fits in
 * int64; the caller checks the bound), same conventions as above. */
int ramnet_gemm_s16s64(int path, size_t m, size_t n, size_t k,
                       const int16_t *a, size_t lda, const int16_t *b, size_t ldb,
                       int64_t *c, size_t ldc, int accumulate);
int ramnet_gemm_s32s64(int path, size_t m, size_t n, size_t k,
                       const int32_t *a, size_t lda, const int32_t *b, size_t ldb,
                       int64_t *c, size_t ldc, int accumulate);

/* STREAM kernels on contiguous vectors of n elements (McCalpin's four operations):
 * copy: a = b; scale: a = s*b; add: a = b + c; triad: a = b + s*c.
 * Large vectors are written with streaming (non-temporal) stores where the path has them. */
int ramnet_stream_copy_f64(int path, double *a, const double *b, size_t n);
int ramnet_stream_scale_f64(int path, double *a, const double *b, double s, size_t n);
int ramnet_stream_add_f64(int path, double *a, const double *b, const double *c, size_t n);
int ramnet_stream_triad_f64(int path, double *a, const double *b, const double *c, double s,
                            size_t n);
int ramnet_stream_copy_f32(int path, float *a, const float *b, size_t n);
int ramnet_stream_scale_f32(int path, float *a, const float *b, float s, size_t n);
int ramnet_stream_add_f32(int path, float *a, const float *b, const float *c, size_t n);
int ramnet_stream_triad_f32(int path, float *a, const float *b, const float *c, float s, size_t n);
/* Packs a row-major matrix (rows x row_bytes bytes, rows ld_bytes apart) into Merkle leaves:
 * for each tile of tile_rows x tile_row_bytes, in row-major tile order starting at tile row
 * tile_row0: the prefix, four little-endian u32 (tile row, tile column, rows, bytes per row),
 * then the tile's bytes row by row. Edge tiles are smaller. out_len must cover every leaf. */
int ramnet_pack_tiles(const uint8_t *x, size_t rows, size_t row_bytes, size_t ld_bytes,
                      size_t tile_rows, size_t tile_row_bytes, size_t tile_row0,
                      const uint8_t *prefix, size_t prefix_len, uint8_t *out, size_t out_len);
/* cdef-end */

#endif
