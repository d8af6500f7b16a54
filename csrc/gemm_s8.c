/* gemm_s8.c: int8 x int8 -> int32 GEMM (ramnet_gemm_s8s32).
 *
 * One portable build: every vector path is compiled with a per-function target attribute and is
 * chosen at run time through ramnet_resolve_path. All arithmetic is modulo 2^32 (vector adds wrap,
 * the portable path accumulates in uint32_t), so the result is exact whenever the true product
 * fits in int32.
 *
 * Vector paths follow the Goto/BLIS structure:
 *   for jc (NC columns of B/C)
 *     for pc (KC of k): pack B[pc:pc+KC, jc:jc+NC] into NR-column micro-panels
 *       for ic (MC rows of A/C): pack A[ic:ic+MC, pc:pc+KC] into MR-row micro-panels
 *         for jr (NR) for ir (MR): micro-kernel on an MR x NR tile of C
 *
 * VNNI paths (AVX-512 VNNI, AVX-VNNI): vpdpbusd multiplies u8 x s8, so A is packed as
 * u8 = A ^ 0x80 = A + 128, and each C[i,j] is corrected by -128 * sum_k B[k,j]. The correction
 * of each packed KC x NR micro-panel is computed while packing B and is the initial value of the
 * micro-kernel's accumulators, so it costs nothing in the inner loop. Packed layouts (k in groups
 * of 4, zero padded):
 *   B: [NR-col micro-panel][k/4][NR][4 bytes]      A: [MR-row micro-panel][k/4][MR][4 bytes]
 * A's k padding is u8 0 and B's is 0, so padding contributes nothing.
 *
 * AVX2 path (no VNNI): vpmaddubsw saturates, so it is not used. Both operands are sign-extended to
 * int16 while packing (k in pairs) and the kernel uses vpmaddwd (s16 pairs -> s32, exact) plus
 * vpaddd. Packed layouts: B: [NR-col micro-panel][k/2][NR][2 x int16], A: [MR][k/2][MR][2 x int16].
 *
 * Edge tiles (partial MR x NR) are computed into a local tile and then copied/added into C.
 * Scratch is allocated per call (reentrant: several threads may call concurrently).
 */
#include "ramnet.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Blocking (k per panel, rows per A block, columns per B panel), measured on Zen 4 (32 KiB L1,
 * 1 MiB L2 per core, 32 MiB L3). A large KC matters most: C tiles are read and written k/KC
 * times, and KC = 1024 measured ~4% faster than 512. The KC x NR B micro-panel (64 KiB) and the
 * MC x KC packed A block (192 KiB) then both live in L2, whose bandwidth is far above the ~8
 * bytes/cycle the micro-kernel needs; the KC x NC packed B panel lives in L3. MC hardly matters
 * (96..288 measure the same). The defaults may be overridden at compile time for tuning. */
#ifndef GEMM_S8_KC
#define GEMM_S8_KC 1024
#endif
#ifndef GEMM_S8_MC
#define GEMM_S8_MC 192
#endif
#ifndef GEMM_S8_NC
#define GEMM_S8_NC 4080
#endif

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* ---------------------------------------------------------------------------------------------
 * Portable path: rows in blocks of 4, columns in blocks of JB, uint32 accumulators in a local
 * buffer; the inner loop over columns is a plain widening multiply-add that compilers vectorize.
 */
#define PORT_IB 4
#define PORT_JB 256

static void gemm_portable(size_t m, size_t n, size_t k, const int8_t *a, size_t lda,
                          const int8_t *b, size_t ldb, int32_t *c, size_t ldc, int accumulate) {
  uint32_t acc[PORT_IB][PORT_JB];
  for (size_t j0 = 0; j0 < n; j0 += PORT_JB) {
    size_t nb = min_sz(PORT_JB, n - j0);
    for (size_t i0 = 0; i0 < m; i0 += PORT_IB) {
      size_t mb = min_sz(PORT_IB, m - i0);
      for (size_t i = 0; i < PORT_IB; i++)
        for (size_t j = 0; j < nb; j++)
          acc[i][j] = (accumulate && i < mb) ? (uint32_t)c[(i0 + i) * ldc + j0 + j] : 0u;
      if (mb == PORT_IB) {
        const int8_t *a0 = a + (i0 + 0) * lda, *a1 = a + (i0 + 1) * lda;
        const int8_t *a2 = a + (i0 + 2) * lda, *a3 = a + (i0 + 3) * lda;
        for (size_t p = 0; p < k; p++) {
          const int8_t *bp = b + p * ldb + j0;
          /* int8 products fit int16 exactly: 16-bit multiplies vectorize on every SIMD ISA */
          int16_t x0 = a0[p], x1 = a1[p], x2 = a2[p], x3 = a3[p];
          for (size_t j = 0; j < nb; j++) {
            int16_t bj = bp[j];
            acc[0][j] += (uint32_t)(int32_t)(int16_t)(x0 * bj);
            acc[1][j] += (uint32_t)(int32_t)(int16_t)(x1 * bj);
            acc[2][j] += (uint32_t)(int32_t)(int16_t)(x2 * bj);
            acc[3][j] += (uint32_t)(int32_t)(int16_t)(x3 * bj);
          }
        }
      } else {
        for (size_t i = 0; i < mb; i++) {
          const int8_t *ai = a + (i0 + i) * lda;
          for (size_t p = 0; p < k; p++) {
            const int8_t *bp = b + p * ldb + j0;
            int32_t x = ai[p];
            for (size_t j = 0; j < nb; j++) acc[i][j] += (uint32_t)(x * (int32_t)bp[j]);
          }
        }
      }
      for (size_t i = 0; i < mb; i++)
        for (size_t j = 0; j < nb; j++) c[(i0 + i) * ldc + j0 + j] = (int32_t)acc[i][j];
    }
  }
}

#if RAMNET_X86
/* ---------------------------------------------------------------------------------------------
 * Blocked driver shared by the vector paths.
 */
static size_t round_up(size_t x, size_t r) { return (x + r - 1) / r * r; }

/* C11 aligned_alloc: the size is a multiple of the alignment */
static void *alloc64(size_t bytes) { return aligned_alloc(64, round_up(bytes ? bytes : 64, 64)); }

typedef void (*kernel_fn)(size_t kg, const void *pa, const void *pb, const int32_t *comp,
                          int32_t *c, size_t ldc, int add);
/* Packs rows [0, mc) x k [0, kc) of A into MR-row micro-panels of kcp (padded) k. */
typedef void (*pack_a_fn)(const int8_t *a, size_t lda, size_t mc, size_t kc, size_t kcp,
                          size_t mr, void *pa);
/* Packs k [0, kc) x columns [0, nc) of B into NR-column micro-panels; writes comp[0, ncp). */
typedef void (*pack_b_fn)(const int8_t *b, size_t ldb, size_t kc, size_t kcp, size_t nc,
                          size_t nr, void *pb, int32_t *comp);

typedef struct {
  size_t mr, nr, kgroup, elem; /* elem: bytes per packed element (1 for u8/s8, 2 for s16) */
  kernel_fn kernel;
  pack_a_fn pack_a;
  pack_b_fn pack_b;
} gemm_impl;

#define MAX_TILE (16 * 64)

/* The micro-kernels over one packed MC x KC block of A and one packed KC x NC panel of B, into
 * C (m x n at c, ldc). Edge tiles go through a local tile. */
static void macro_kernel(const gemm_impl *im, size_t mc, size_t nc, size_t kcp, const uint8_t *pa,
                         const uint8_t *pb, const int32_t *comp, int32_t *c, size_t ldc, int add) {
  const size_t mr = im->mr, nr = im->nr, kgroup = im->kgroup, elem = im->elem;
  _Alignas(64) int32_t tile[MAX_TILE];
  for (size_t jr = 0; jr < nc; jr += nr) {
    const size_t nrr = min_sz(nr, nc - jr);
    const uint8_t *pbj = pb + jr * kcp * elem;
    for (size_t ir = 0; ir < mc; ir += mr) {
      const size_t mrr = min_sz(mr, mc - ir);
      const uint8_t *pai = pa + ir * kcp * elem;
      int32_t *cij = c + ir * ldc + jr;
      if (mrr == mr && nrr == nr) {
        im->kernel(kcp / kgroup, pai, pbj, comp + jr, cij, ldc, add);
      } else {
        im->kernel(kcp / kgroup, pai, pbj, comp + jr, tile, nr, 0);
        for (size_t i = 0; i < mrr; i++) {
          int32_t *ci = cij + i * ldc;
          const int32_t *ti = tile + i * nr;
          if (add)
            for (size_t j = 0; j < nrr; j++) ci[j] = (int32_t)((uint32_t)ci[j] + (uint32_t)ti[j]);
          else
            memcpy(ci, ti, nrr * sizeof(int32_t));
        }
      }
    }
  }
}

static int gemm_blocked(const gemm_impl *im, size_t m, size_t n, size_t k, const int8_t *a,
                        size_t lda, const int8_t *b, size_t ldb, int32_t *c, size_t ldc,
                        int accumulate) {
  const size_t mr = im->mr, nr = im->nr, kgroup = im->kgroup, elem = im->elem;
  const size_t kc_max = min_sz(GEMM_S8_KC, round_up(k, kgroup));
  const size_t mc_max = min_sz(round_up(GEMM_S8_MC, mr), round_up(m, mr));
  const size_t nc_max = min_sz(round_up(GEMM_S8_NC, nr), round_up(n, nr));
  uint8_t *pa = alloc64(mc_max * kc_max * elem);
  uint8_t *pb = alloc64(nc_max * kc_max * elem);
  int32_t *comp = alloc64(nc_max * sizeof(int32_t));
  if (!pa || !pb || !comp) {
    free(pa);
    free(pb);
    free(comp);
    return RAMNET_ENOMEM;
  }
  for (size_t jc = 0; jc < n; jc += nc_max) {
    const size_t nc = min_sz(nc_max, n - jc);
    for (size_t pc = 0; pc < k; pc += kc_max) {
      const size_t kc = min_sz(kc_max, k - pc);
      const size_t kcp = round_up(kc, kgroup);
      const int add = accumulate || pc > 0;
      im->pack_b(b + pc * ldb + jc, ldb, kc, kcp, nc, nr, pb, comp);
      for (size_t ic = 0; ic < m; ic += mc_max) {
        const size_t mc = min_sz(mc_max, m - ic);
        im->pack_a(a + ic * lda + pc, lda, mc, kc, kcp, mr, pa);
        macro_kernel(im, mc, nc, kcp, pa, pb, comp, c + ic * ldc + jc, ldc, add);
      }
    }
  }
  free(pa);
  free(pb);
  free(comp);
  return RAMNET_OK;
}

/* Several products that share operands (ramnet_gemm_s8s32_many). The B operands are cut into
 * segments of at most NC columns, and the segments into groups of at most NC columns in all (a
 * group holds at least one segment). For each group and each KC panel of k, every segment of the
 * group is packed once; then for each A used with the group, each MC block of it is packed once
 * and run against the segments of every product that pairs it with one of them. A shard whose B
 * tiles fit one group packs every A and every B once, where one call per product packs both
 * operands of every product. */
typedef struct {
  size_t b, col, width, offset; /* B index, first column, columns, column offset in the group */
} segment;

static int gemm_many_blocked(const gemm_impl *im, size_t k, size_t na, const int8_t *const *a,
                             const size_t *m, const size_t *lda, size_t nb,
                             const int8_t *const *b, const size_t *n, const size_t *ldb,
                             size_t count, const size_t *a_of, const size_t *b_of,
                             int32_t *const *c, const size_t *ldc) {
  const size_t mr = im->mr, nr = im->nr, kgroup = im->kgroup, elem = im->elem;
  const size_t nc_max = round_up(GEMM_S8_NC, nr);
  const size_t kc_max = min_sz(GEMM_S8_KC, round_up(k, kgroup));
  size_t m_max = 0, segments = 0;
  for (size_t i = 0; i < na; i++) m_max = m[i] > m_max ? m[i] : m_max;
  for (size_t j = 0; j < nb; j++) segments += (n[j] + nc_max - 1) / nc_max;
  const size_t mc_max = min_sz(round_up(GEMM_S8_MC, mr), round_up(m_max ? m_max : 1, mr));
  segment *seg = malloc((segments ? segments : 1) * sizeof(segment));
  uint8_t *pa = alloc64(mc_max * kc_max * elem);
  uint8_t *pb = alloc64(nc_max * kc_max * elem);
  int32_t *comp = alloc64(nc_max * sizeof(int32_t));
  if (!seg || !pa || !pb || !comp) {
    free(seg);
    free(pa);
    free(pb);
    free(comp);
    return RAMNET_ENOMEM;
  }
  size_t s = 0;
  for (size_t j = 0; j < nb; j++)
    for (size_t col = 0; col < n[j]; col += nc_max) seg[s++] = (segment){j, col, min_sz(nc_max, n[j] - col), 0};

  for (size_t first = 0; first < segments;) {
    /* The group: segments first..last-1, each at a multiple of NR within the packed panel. */
    size_t last = first, width = 0;
    while (last < segments && (last == first || width + round_up(seg[last].width, nr) <= nc_max)) {
      seg[last].offset = width;
      width += round_up(seg[last].width, nr);
      last++;
    }
    for (size_t pc = 0; pc < k; pc += kc_max) {
      const size_t kc = min_sz(kc_max, k - pc);
      const size_t kcp = round_up(kc, kgroup);
      for (size_t g = first; g < last; g++)
        im->pack_b(b[seg[g].b] + pc * ldb[seg[g].b] + seg[g].col, ldb[seg[g].b], kc, kcp,
                   seg[g].width, nr, pb + seg[g].offset * kcp * elem, comp + seg[g].offset);
      for (size_t i = 0; i < na; i++) {
        int used = 0;
        for (size_t t = 0; t < count && !used; t++)
          if (a_of[t] == i)
            for (size_t g = first; g < last; g++) used |= b_of[t] == seg[g].b;
        if (!used) continue;
        for (size_t ic = 0; ic < m[i]; ic += mc_max) {
          const size_t mc = min_sz(mc_max, m[i] - ic);
          im->pack_a(a[i] + ic * lda[i] + pc, lda[i], mc, kc, kcp, mr, pa);
          for (size_t t = 0; t < count; t++) {
            if (a_of[t] != i) continue;
            for (size_t g = first; g < last; g++) {
              if (b_of[t] != seg[g].b) continue;
              macro_kernel(im, mc, seg[g].width, kcp, pa, pb + seg[g].offset * kcp * elem,
                           comp + seg[g].offset, c[t] + ic * ldc[t] + seg[g].col, ldc[t], pc > 0);
            }
          }
        }
      }
    }
    first = last;
  }
  free(seg);
  free(pa);
  free(pb);
  free(comp);
  return RAMNET_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Packing for the VNNI paths (k in groups of 4). Uses only SSE2..AVX2, compiled for avx2 (every
 * VNNI-capable CPU has it).
 */
#define T_AVX2 "avx2,fma"

/* A: [micro-panel][k/4][MR][4 bytes], u8 = A ^ 0x80, padding 0. */
__attribute__((target(T_AVX2))) static void pack_a_vnni(const int8_t *a, size_t lda, size_t mc,
                                                         size_t kc, size_t kcp, size_t mr,
                                                         void *out) {
  uint8_t *pa = out;
  const __m128i flip = _mm_set1_epi8((char)0x80);
  const size_t kq = kcp / 4;      /* k groups per panel */
  const size_t kfull = kc / 16;   /* groups of 16 k that are fully inside [0, kc) */
  for (size_t i0 = 0; i0 < mc; i0 += mr) {
    uint8_t *panel = pa + i0 * kcp; /* mr * kcp bytes */
    size_t rows = min_sz(mr, mc - i0);
    size_t r4 = 0;
    /* 4 rows x 16 k at a time: a 4x4 transpose of 32-bit words */
    for (; r4 + 4 <= rows; r4 += 4) {
      const int8_t *s0 = a + (i0 + r4) * lda, *s1 = s0 + lda, *s2 = s1 + lda, *s3 = s2 + lda;
      uint8_t *d = panel + r4 * 4;
      for (size_t g = 0; g < kfull; g++) {
        __m128i x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s0 + 16 * g)), flip);
        __m128i x1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s1 + 16 * g)), flip);
        __m128i x2 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s2 + 16 * g)), flip);
        __m128i x3 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s3 + 16 * g)), flip);
        __m128i t0 = _mm_unpacklo_epi32(x0, x1), t1 = _mm_unpacklo_epi32(x2, x3);
        __m128i t2 = _mm_unpackhi_epi32(x0, x1), t3 = _mm_unpackhi_epi32(x2, x3);
        uint8_t *dg = d + 4 * g * mr * 4;
        _mm_storeu_si128((__m128i *)(dg + 0 * mr * 4), _mm_unpacklo_epi64(t0, t1));
        _mm_storeu_si128((__m128i *)(dg + 1 * mr * 4), _mm_unpackhi_epi64(t0, t1));
        _mm_storeu_si128((__m128i *)(dg + 2 * mr * 4), _mm_unpacklo_epi64(t2, t3));
        _mm_storeu_si128((__m128i *)(dg + 3 * mr * 4), _mm_unpackhi_epi64(t2, t3));
      }
    }
    /* then 2 rows x 16 k at a time (MR = 6) */
    for (; r4 + 2 <= rows; r4 += 2) {
      const int8_t *s0 = a + (i0 + r4) * lda, *s1 = s0 + lda;
      uint8_t *d = panel + r4 * 4;
      for (size_t g = 0; g < kfull; g++) {
        __m128i x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s0 + 16 * g)), flip);
        __m128i x1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s1 + 16 * g)), flip);
        __m128i t0 = _mm_unpacklo_epi32(x0, x1), t2 = _mm_unpackhi_epi32(x0, x1);
        uint8_t *dg = d + 4 * g * mr * 4;
        _mm_storel_epi64((__m128i *)(dg + 0 * mr * 4), t0);
        _mm_storel_epi64((__m128i *)(dg + 1 * mr * 4), _mm_unpackhi_epi64(t0, t0));
        _mm_storel_epi64((__m128i *)(dg + 2 * mr * 4), t2);
        _mm_storel_epi64((__m128i *)(dg + 3 * mr * 4), _mm_unpackhi_epi64(t2, t2));
      }
    }
    /* remaining k of the full 4-row groups, and all remaining rows (incl. zero rows) */
    for (size_t r = 0; r < mr; r++) {
      const int8_t *src = a + (r < rows ? i0 + r : i0) * lda;
      for (size_t q = (r < r4 ? 4 * kfull : 0); q < kq; q++) {
        uint8_t *d = panel + (q * mr + r) * 4;
        size_t p0 = 4 * q;
        if (r < rows && p0 + 4 <= kc) {
          uint32_t w;
          memcpy(&w, src + p0, 4);
          w ^= 0x80808080u;
          memcpy(d, &w, 4);
        } else {
          for (size_t t = 0; t < 4; t++)
            d[t] = (r < rows && p0 + t < kc) ? (uint8_t)(src[p0 + t] ^ 0x80) : 0;
        }
      }
    }
  }
}

/* One 4 x 16 block of B (4 k rows, 16 columns) -> 64 packed bytes (16 columns x 4 k); adds the
 * 16 column sums of the block into sum[0, 16). */
__attribute__((target(T_AVX2), always_inline)) static inline void pack_b_vnni_block(
    __m128i r0, __m128i r1, __m128i r2, __m128i r3, uint8_t *d, int32_t *sum) {
  __m128i t0 = _mm_unpacklo_epi8(r0, r1), t1 = _mm_unpackhi_epi8(r0, r1);
  __m128i t2 = _mm_unpacklo_epi8(r2, r3), t3 = _mm_unpackhi_epi8(r2, r3);
  __m256i y0 = _mm256_set_m128i(_mm_unpackhi_epi16(t0, t2), _mm_unpacklo_epi16(t0, t2));
  __m256i y1 = _mm256_set_m128i(_mm_unpackhi_epi16(t1, t3), _mm_unpacklo_epi16(t1, t3));
  _mm256_storeu_si256((__m256i *)d, y0);
  _mm256_storeu_si256((__m256i *)(d + 32), y1);
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  __m256i *s0 = (__m256i *)sum, *s1 = (__m256i *)(sum + 8);
  _mm256_storeu_si256(s0, _mm256_add_epi32(_mm256_loadu_si256(s0),
                                           _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, y0), ones16)));
  _mm256_storeu_si256(s1, _mm256_add_epi32(_mm256_loadu_si256(s1),
                                           _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, y1), ones16)));
}

/* B: [micro-panel][k/4][NR][4 bytes], padding 0; comp[j] = -128 * sum_k B[k, j] (0 on padding).
 * nr is a multiple of 16. Rows of B are read contiguously (4 at a time) across all panels. */
__attribute__((target(T_AVX2))) static void pack_b_vnni(const int8_t *b, size_t ldb, size_t kc,
                                                         size_t kcp, size_t nc, size_t nr,
                                                         void *out, int32_t *comp) {
  uint8_t *pb = out;
  const size_t kq = kcp / 4, kq_full = kc / 4;
  const size_t ncp = round_up(nc, nr), nc16 = nc / 16 * 16;
  memset(comp, 0, ncp * sizeof(int32_t));
  /* full 16-column blocks, full k groups */
  const int8_t *src = b;
  for (size_t q = 0; q < kq_full; q++, src += 4 * ldb) {
    for (size_t j = 0; j < nc16; j += 16) {
      const int8_t *s0 = src + j;
      uint8_t *d = pb + (j / nr) * nr * kcp + (q * nr + j % nr) * 4;
      pack_b_vnni_block(_mm_loadu_si128((const __m128i *)s0),
                        _mm_loadu_si128((const __m128i *)(s0 + ldb)),
                        _mm_loadu_si128((const __m128i *)(s0 + 2 * ldb)),
                        _mm_loadu_si128((const __m128i *)(s0 + 3 * ldb)), d, comp + j);
    }
  }
  /* the rest: partial/padding columns for every k group, the k tail for full columns */
  for (size_t j = 0; j < ncp; j += 16) {
    size_t cols = j < nc ? min_sz(16, nc - j) : 0;
    for (size_t q = (j < nc16 ? kq_full : 0); q < kq; q++) {
      _Alignas(16) int8_t tmp[4][16];
      memset(tmp, 0, sizeof tmp);
      for (size_t t = 0; t < 4; t++) {
        size_t p = 4 * q + t;
        if (p < kc && cols) memcpy(tmp[t], b + p * ldb + j, cols);
      }
      uint8_t *d = pb + (j / nr) * nr * kcp + (q * nr + j % nr) * 4;
      pack_b_vnni_block(_mm_load_si128((const __m128i *)tmp[0]),
                        _mm_load_si128((const __m128i *)tmp[1]),
                        _mm_load_si128((const __m128i *)tmp[2]),
                        _mm_load_si128((const __m128i *)tmp[3]), d, comp + j);
    }
  }
  const __m256i m128 = _mm256_set1_epi32(-128);
  for (size_t j = 0; j < ncp; j += 8) {
    __m256i *p = (__m256i *)(comp + j);
    _mm256_storeu_si256(p, _mm256_mullo_epi32(_mm256_loadu_si256(p), m128));
  }
}

/* ---------------------------------------------------------------------------------------------
 * VNNI micro-kernels: MR rows x NV vectors of LANES int32. acc starts at comp (the -128*colsum
 * correction); per k group: load NV vectors of packed B, broadcast one 32-bit word of packed A per
 * row, vpdpbusd. The same body serves the 512-bit and 256-bit paths through these macros.
 */
#define VNNI_KERNEL_BODY(VEC, LANES, LOADU, LOAD, STOREU, SET1, DP, ADD, MR, NV)               \
  const uint8_t *pa = (const uint8_t *)pa_;                                                   \
  const uint8_t *pb = (const uint8_t *)pb_;                                                   \
  VEC acc[MR][NV];                                                                            \
  _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) {                                     \
    VEC z = LOADU((const void *)(comp + LANES * v));                                          \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) acc[i][v] = z;                      \
  }                                                                                           \
  _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                      \
      _Pragma("GCC unroll 16") for (int v = 0; v < (NV * LANES * 4 + 63) / 64; v++)           \
          _mm_prefetch((const char *)(c + i * ldc) + 64 * v, _MM_HINT_T0);                    \
  for (size_t q = 0; q < kg; q++) {                                                           \
    VEC bv[NV];                                                                               \
    _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++)                                     \
        bv[v] = LOAD((const void *)(pb + 4 * LANES * v));                                     \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                                   \
      int32_t w;                                                                              \
      memcpy(&w, pa + 4 * i, 4);                                                              \
      VEC av = SET1(w);                                                                       \
      _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) acc[i][v] = DP(acc[i][v], av, bv[v]); \
    }                                                                                         \
    pa += 4 * MR;                                                                             \
    pb += 4 * LANES * NV;                                                                     \
  }                                                                                           \
  if (add) {                                                                                  \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                     \
        _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) {                               \
      void *p = (void *)(c + i * ldc + LANES * v);                                            \
      STOREU(p, ADD(LOADU(p), acc[i][v]));                                                    \
    }                                                                                         \
  } else {                                                                                    \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                     \
        _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++)                                 \
            STOREU((void *)(c + i * ldc + LANES * v), acc[i][v]);                             \
  }

#define T_512 "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma"
#define T_AVXVNNI "avx2,fma,avxvnni"

/* 6 rows x 4 zmm (6x64): 24 accumulators + 4 B vectors + 1 broadcast of 32 zmm. 8x48 and 12x32
 * measure the same on Zen 4 (within noise); 64 columns divide power-of-two widths (no edge
 * tiles at n = 512, 1024, 2048 ...). */
#ifndef VNNI512_MR
#define VNNI512_MR 6
#endif
#ifndef VNNI512_NV
#define VNNI512_NV 4
#endif

#define L512(p) _mm512_loadu_si512(p)
#define LA512(p) _mm512_load_si512(p)
#define S512(p, x) _mm512_storeu_si512(p, x)

__attribute__((target(T_512))) static void kernel_vnni512(size_t kg, const void *pa_,
                                                           const void *pb_, const int32_t *comp,
                                                           int32_t *c, size_t ldc, int add) {
  VNNI_KERNEL_BODY(__m512i, 16, L512, LA512, S512, _mm512_set1_epi32, _mm512_dpbusd_epi32,
                   _mm512_add_epi32, VNNI512_MR, VNNI512_NV)
}

#define L256(p) _mm256_loadu_si256((const __m256i *)(p))
#define LA256(p) _mm256_load_si256((const __m256i *)(p))
#define S256(p, x) _mm256_storeu_si256((__m256i *)(p), x)

/* Test-only build switch (never set by the package): GEMM_S8_EMULATE_AVXVNNI compiles the
 * AVX-VNNI kernel with the EVEX encoding of the same instruction (AVX512-VL VNNI, identical
 * semantics) and routes the avx512-vnni path to it, so that the 256-bit code can be checked on a
 * CPU with AVX-512 VNNI but no AVX-VNNI (bench/c/build.sh builds such a harness). */
#ifdef GEMM_S8_EMULATE_AVXVNNI
#undef T_AVXVNNI
#define T_AVXVNNI "avx2,fma,avx512f,avx512vl,avx512vnni"
#define DP256 _mm256_dpbusd_epi32
#else
#define DP256 _mm256_dpbusd_avx_epi32
#endif

/* 256-bit: 6 rows x 2 vectors (6x16) = 12 accumulators + 2 B + 1 broadcast of 16 ymm. */
__attribute__((target(T_AVXVNNI))) static void kernel_avxvnni(size_t kg, const void *pa_,
                                                               const void *pb_,
                                                               const int32_t *comp, int32_t *c,
                                                               size_t ldc, int add) {
  VNNI_KERNEL_BODY(__m256i, 8, L256, LA256, S256, _mm256_set1_epi32, DP256, _mm256_add_epi32, 6,
                   2)
}

/* ---------------------------------------------------------------------------------------------
 * AVX2 path: int16 operands, k in pairs.
 */
/* A: [micro-panel][k/2][MR][2 x int16], sign-extended, padding 0. */
__attribute__((target(T_AVX2))) static void pack_a_s16(const int8_t *a, size_t lda, size_t mc,
                                                        size_t kc, size_t kcp, size_t mr,
                                                        void *out) {
  int16_t *pa = out;
  const size_t kp = kcp / 2;
  const size_t kfull = kc / 8; /* groups of 8 k (4 pairs) fully inside */
  for (size_t i0 = 0; i0 < mc; i0 += mr) {
    int16_t *panel = pa + i0 * kcp;
    size_t rows = min_sz(mr, mc - i0);
    size_t r4 = 0;
    for (; r4 + 4 <= rows; r4 += 4) {
      const int8_t *s0 = a + (i0 + r4) * lda, *s1 = s0 + lda, *s2 = s1 + lda, *s3 = s2 + lda;
      int16_t *d = panel + r4 * 2;
      for (size_t g = 0; g < kfull; g++) {
        __m128i x0 = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(s0 + 8 * g)));
        __m128i x1 = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(s1 + 8 * g)));
        __m128i x2 = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(s2 + 8 * g)));
        __m128i x3 = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(s3 + 8 * g)));
        __m128i t0 = _mm_unpacklo_epi32(x0, x1), t1 = _mm_unpacklo_epi32(x2, x3);
        __m128i t2 = _mm_unpackhi_epi32(x0, x1), t3 = _mm_unpackhi_epi32(x2, x3);
        int16_t *dg = d + 4 * g * mr * 2;
        _mm_storeu_si128((__m128i *)(dg + 0 * mr * 2), _mm_unpacklo_epi64(t0, t1));
        _mm_storeu_si128((__m128i *)(dg + 1 * mr * 2), _mm_unpackhi_epi64(t0, t1));
        _mm_storeu_si128((__m128i *)(dg + 2 * mr * 2), _mm_unpacklo_epi64(t2, t3));
        _mm_storeu_si128((__m128i *)(dg + 3 * mr * 2), _mm_unpackhi_epi64(t2, t3));
      }
    }
    for (size_t r = 0; r < mr; r++) {
      const int8_t *src = a + (r < rows ? i0 + r : i0) * lda;
      for (size_t q = (r < r4 ? 4 * kfull : 0); q < kp; q++) {
        int16_t *d = panel + (q * mr + r) * 2;
        size_t p0 = 2 * q;
        d[0] = (r < rows && p0 < kc) ? (int16_t)src[p0] : 0;
        d[1] = (r < rows && p0 + 1 < kc) ? (int16_t)src[p0 + 1] : 0;
      }
    }
  }
}

/* B: [micro-panel][k/2][NR][2 x int16], padding 0. nr is a multiple of 16. comp is zeroed. */
__attribute__((target(T_AVX2))) static void pack_b_s16(const int8_t *b, size_t ldb, size_t kc,
                                                        size_t kcp, size_t nc, size_t nr,
                                                        void *out, int32_t *comp) {
  int16_t *pb = out;
  const size_t kp = kcp / 2, kp_full = kc / 2;
  for (size_t j0 = 0; j0 < nc; j0 += nr) {
    int16_t *panel = pb + j0 * kcp;
    for (size_t c16 = 0; c16 < nr; c16 += 16) {
      size_t j = j0 + c16;
      size_t cols = j < nc ? min_sz(16, nc - j) : 0;
      int16_t *d = panel + c16 * 2;
      size_t q = 0;
      if (cols == 16) {
        const int8_t *s = b + j;
        for (; q < kp_full; q++, s += 2 * ldb) {
          __m128i r0 = _mm_loadu_si128((const __m128i *)s);
          __m128i r1 = _mm_loadu_si128((const __m128i *)(s + ldb));
          int16_t *dq = d + q * nr * 2;
          _mm256_storeu_si256((__m256i *)dq, _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(r0, r1)));
          _mm256_storeu_si256((__m256i *)(dq + 16),
                              _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(r0, r1)));
        }
      }
      for (; q < kp; q++) {
        int16_t *dq = d + q * nr * 2;
        for (size_t jj = 0; jj < 16; jj++)
          for (size_t t = 0; t < 2; t++) {
            size_t p = 2 * q + t;
            dq[2 * jj + t] = (jj < cols && p < kc) ? (int16_t)b[p * ldb + j + jj] : 0;
          }
      }
    }
  }
  memset(comp, 0, round_up(nc, nr) * sizeof(int32_t));
}

/* 4 rows x 2 ymm (4x16): 8 accumulators + 2 B + broadcast + products; 6x16 makes GCC spill. */
#ifndef AVX2_MR
#define AVX2_MR 4
#endif
#define AVX2_NV 2
__attribute__((target(T_AVX2))) static void kernel_avx2(size_t kg, const void *pa_,
                                                         const void *pb_, const int32_t *comp,
                                                         int32_t *c, size_t ldc, int add) {
  (void)comp;
  const uint8_t *pa = (const uint8_t *)pa_;
  const uint8_t *pb = (const uint8_t *)pb_;
  __m256i acc[AVX2_MR][AVX2_NV];
#pragma GCC unroll 16
  for (int i = 0; i < AVX2_MR; i++)
#pragma GCC unroll 16
    for (int v = 0; v < AVX2_NV; v++) acc[i][v] = _mm256_setzero_si256();
  for (size_t q = 0; q < kg; q++) {
    __m256i bv[AVX2_NV];
#pragma GCC unroll 16
    for (int v = 0; v < AVX2_NV; v++) bv[v] = _mm256_load_si256((const __m256i *)(pb + 32 * v));
#pragma GCC unroll 16
    for (int i = 0; i < AVX2_MR; i++) {
      int32_t w;
      memcpy(&w, pa + 4 * i, 4);
      __m256i av = _mm256_set1_epi32(w);
#pragma GCC unroll 16
      for (int v = 0; v < AVX2_NV; v++)
        acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(av, bv[v]));
    }
    pa += 4 * AVX2_MR;
    pb += 32 * AVX2_NV;
  }
#pragma GCC unroll 16
  for (int i = 0; i < AVX2_MR; i++)
#pragma GCC unroll 16
    for (int v = 0; v < AVX2_NV; v++) {
      __m256i *p = (__m256i *)(c + i * ldc + 8 * v);
      _mm256_storeu_si256(p, add ? _mm256_add_epi32(_mm256_loadu_si256(p), acc[i][v]) : acc[i][v]);
    }
}

static const gemm_impl impl_vnni512 = {VNNI512_MR, 16 * VNNI512_NV, 4, 1, kernel_vnni512,
                                       pack_a_vnni, pack_b_vnni};
static const gemm_impl impl_avxvnni = {6, 16, 4, 1, kernel_avxvnni, pack_a_vnni, pack_b_vnni};
static const gemm_impl impl_avx2 = {AVX2_MR, 8 * AVX2_NV, 2, 2, kernel_avx2, pack_a_s16,
                                    pack_b_s16};
#endif /* RAMNET_X86 */

int ramnet_gemm_s8s32(int path, size_t m, size_t n, size_t k, const int8_t *a, size_t lda,
                      const int8_t *b, size_t ldb, int32_t *c, size_t ldc, int accumulate) {
  int p = ramnet_resolve_path(RAMNET_KERNEL_GEMM_S8, path);
  if (p < 0) return RAMNET_ENOTSUP;
  if (lda < k || ldb < n || ldc < n) return RAMNET_EINVAL;
  if (m == 0 || n == 0) return RAMNET_OK;
  if (!c) return RAMNET_EINVAL;
  if (k == 0) {
    if (!accumulate)
      for (size_t i = 0; i < m; i++) memset(c + i * ldc, 0, n * sizeof(int32_t));
    return RAMNET_OK;
  }
  if (!a || !b) return RAMNET_EINVAL;
  switch (p) {
#if RAMNET_X86
    case RAMNET_PATH_AVX512VNNI:
#ifdef GEMM_S8_EMULATE_AVXVNNI
      return gemm_blocked(&impl_avxvnni, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
#endif
      return gemm_blocked(&impl_vnni512, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    case RAMNET_PATH_AVXVNNI:
      return gemm_blocked(&impl_avxvnni, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    case RAMNET_PATH_AVX2:
      return gemm_blocked(&impl_avx2, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
#endif
    case RAMNET_PATH_PORTABLE:
      gemm_portable(m, n, k, a, lda, b, ldb, c, ldc, accumulate);
      return RAMNET_OK;
    default:
      return RAMNET_ENOTSUP;
  }
}

int ramnet_gemm_s8s32_many(int path, size_t k, size_t na, const int8_t *const *a, const size_t *m,
                           const size_t *lda, size_t nb, const int8_t *const *b, const size_t *n,
                           const size_t *ldb, size_t count, const size_t *a_of,
                           const size_t *b_of, int32_t *const *c, const size_t *ldc) {
  int p = ramnet_resolve_path(RAMNET_KERNEL_GEMM_S8, path);
  if (p < 0) return RAMNET_ENOTSUP;
  if (count == 0) return RAMNET_OK;
  if (!a_of || !b_of || !c || !ldc || (na && (!a || !m || !lda)) || (nb && (!b || !n || !ldb)))
    return RAMNET_EINVAL;
  for (size_t i = 0; i < na; i++)
    if (lda[i] < k || (m[i] && k && !a[i])) return RAMNET_EINVAL;
  for (size_t j = 0; j < nb; j++)
    if (ldb[j] < n[j] || (n[j] && k && !b[j])) return RAMNET_EINVAL;
  int empty = 1;
  for (size_t t = 0; t < count; t++) {
    if (a_of[t] >= na || b_of[t] >= nb) return RAMNET_EINVAL;
    const size_t rows = m[a_of[t]], cols = n[b_of[t]];
    if (rows && cols && (!c[t] || ldc[t] < cols)) return RAMNET_EINVAL;
    empty &= !(rows && cols);
  }
  if (empty) return RAMNET_OK;
  if (k == 0) {
    for (size_t t = 0; t < count; t++)
      for (size_t i = 0; i < m[a_of[t]] && n[b_of[t]]; i++)
        memset(c[t] + i * ldc[t], 0, n[b_of[t]] * sizeof(int32_t));
    return RAMNET_OK;
  }
  const gemm_impl *im = NULL;
  switch (p) {
#if RAMNET_X86
    case RAMNET_PATH_AVX512VNNI:
#ifdef GEMM_S8_EMULATE_AVXVNNI
      im = &impl_avxvnni;
      break;
#endif
      im = &impl_vnni512;
      break;
    case RAMNET_PATH_AVXVNNI:
      im = &impl_avxvnni;
      break;
    case RAMNET_PATH_AVX2:
      im = &impl_avx2;
      break;
#endif
    case RAMNET_PATH_PORTABLE:
      break;
    default:
      return RAMNET_ENOTSUP;
  }
  if (im == NULL) { /* no packing to share: one product at a time */
    for (size_t t = 0; t < count; t++) {
      const size_t i = a_of[t], j = b_of[t];
      if (m[i] && n[j]) gemm_portable(m[i], n[j], k, a[i], lda[i], b[j], ldb[j], c[t], ldc[t], 0);
    }
    return RAMNET_OK;
  }
  return gemm_many_blocked(im, k, na, a, m, lda, nb, b, n, ldb, count, a_of, b_of, c, ldc);
}

