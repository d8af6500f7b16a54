/* field.h: prime-field arithmetic kernels for VALKYRIE (p = 2^61 - 1 and its extension F_{p^2}).
 *
 * build_ext.py hands the text between the cdef markers to cffi's cdef(), so that part must stay
 * plain C declarations that cffi can parse. The C sources include this whole file.
 *
 * Field elements: an F_p element is a uint64 in [0, p). An F_{p^2} = F_p[i]/(i^2 + 1) element
 * (p = 3 mod 4, so -1 is not a square) is a pair (re, im) stored interleaved as two uint64, so an
 * array of n F_{p^2} elements is 2n uint64. Every output is canonical (in [0, p)), so results are
 * bit-identical across code paths and with the numba fallback.
 *
 * The weighted sums take any int8/int16/int32/int64 matrix (row-major, leading dimension ldx >= n)
 * and nw weight vectors of F_p elements (each weight < p, else RAMNET_EINVAL). They are exact: the
 * matrix entries are taken as integers and the result is their weighted sum reduced mod p.
 * Kernels are single-threaded and reentrant; every function returns RAMNET_OK or a negative
 * RAMNET_E* code and never prints or aborts.
 */
#ifndef RAMNET_FIELD_H
#define RAMNET_FIELD_H
#include "ramnet.h"

#define RAMNET_P61 ((uint64_t)0x1FFFFFFFFFFFFFFFULL) /* 2^61 - 1 */

/* cdef-begin */
#define RAMNET_KERNEL_FIELD 3 /* kernel family of the weighted sums (paths below) */
/* The field family's paths, best first: RAMNET_PATH_AVX512IFMA (AVX-512 + VNNI + IFMA: int8 with
 * vpdpbusd, int16/int32 with vpmadd52*), RAMNET_PATH_AVX512VNNI (int8 with vpdpbusd, the other
 * types as RAMNET_PATH_AVX512), RAMNET_PATH_AVX512, RAMNET_PATH_AVX2, RAMNET_PATH_PORTABLE.
 * int64 entries are split into two int32 halves that run the path's int32 kernels (the IFMA
 * path's column sums run the AVX-512 ones). */

/* Dispatch for the field family (cpu.c knows only the families of ramnet.h). */
int ramnet_field_path_supported(int path); /* 1 if this CPU and build can run the path */
int ramnet_field_best_path(void);          /* the path RAMNET_PATH_AUTO resolves to */

/* Weighted column sums: out[w*n + j] = sum_i W[w*m + i] * X[i*ldx + j] mod p, for w < nw.
 * X is m x n; W is nw x m; out is nw x n. */
int ramnet_p61_vecmat_s8(int path, size_t m, size_t n, const int8_t *x, size_t ldx, size_t nw,
                         const uint64_t *w, uint64_t *out);
int ramnet_p61_vecmat_s16(int path, size_t m, size_t n, const int16_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out);
int ramnet_p61_vecmat_s32(int path, size_t m, size_t n, const int32_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out);
int ramnet_p61_vecmat_s64(int path, size_t m, size_t n, const int64_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out);

/* Weighted row sums: out[w*m + i] = sum_j X[i*ldx + j] * W[w*n + j] mod p, for w < nw.
 * X is m x n; W is nw x n; out is nw x m. May return RAMNET_ENOMEM (weight-limb scratch). */
int ramnet_p61_matvec_s8(int path, size_t m, size_t n, const int8_t *x, size_t ldx, size_t nw,
                         const uint64_t *w, uint64_t *out);
int ramnet_p61_matvec_s16(int path, size_t m, size_t n, const int16_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out);
int ramnet_p61_matvec_s32(int path, size_t m, size_t n, const int32_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out);
int ramnet_p61_matvec_s64(int path, size_t m, size_t n, const int64_t *x, size_t ldx, size_t nw,
                          const uint64_t *w, uint64_t *out);

/* F_{p^2} kernels (scalar; every input element must be canonical, else RAMNET_EINVAL).
 * eq table: out[b] = prod_t (bit t of b ? r_t : 1 - r_t) for b < 2^nvars; r holds nvars elements,
 * out 2^nvars elements (nvars <= 40). */
int ramnet_p61x2_eq_table(size_t nvars, const uint64_t *r, uint64_t *out);
/* One sum-check round over the lowest variable of g(X) = sum_b u(X, b) v(X, b): u and v hold n
 * (even) elements, pair t being (u[2t], u[2t+1]) = (u(0, t), u(1, t)). Writes g(0), g(1), g(2). */
int ramnet_p61x2_sumcheck_round(size_t n, const uint64_t *u, const uint64_t *v, uint64_t *g);
/* In place: u[t] = u[2t] + r * (u[2t+1] - u[2t]) for t < n/2 (n even). */
int ramnet_p61x2_fold(size_t n, uint64_t *u, const uint64_t *r);
/* A prover's step: fold u and v in place with r (as ramnet_p61x2_fold, n even), then, when the
 * folded length n/2 is even and at least 2, write the next round's g(0), g(1), g(2) of the folded
 * tables to g (as ramnet_p61x2_sumcheck_round); g is left alone otherwise. */
int ramnet_p61x2_fold_round(size_t n, uint64_t *u, uint64_t *v, const uint64_t *r, uint64_t *g);
/* out = sum_t u[t] * v[t] over n elements. */
int ramnet_p61x2_dot(size_t n, const uint64_t *u, const uint64_t *v, uint64_t *out);
/* cdef-end */

#endif
