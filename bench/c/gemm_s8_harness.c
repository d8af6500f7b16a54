/* gemm_s8_harness.c: correctness tests and timings for ramnet_gemm_s8s32.
 *
 *   harness test [small]             check every supported path against a naive reference
 *   harness bench N THREADS [SPLIT] [PATH] [REPS]
 *        square N x N x N; THREADS 1 or more; SPLIT "cols" or "rows" (how C is cut between the
 *        threads); PATH a path name or "auto"; prints the median, best GOP/s over REPS runs.
 *   harness benchmnk M N K [PATH] [REPS]   one thread, rectangular
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ramnet.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* fill: 0 random, 1 all -128, 2 all 127, 3 mixed extremes (-128/127), 4 small */
static void fill(int8_t *x, size_t count, int kind) {
  for (size_t i = 0; i < count; i++) {
    switch (kind) {
      case 1: x[i] = -128; break;
      case 2: x[i] = 127; break;
      case 3: x[i] = (rng() & 1) ? 127 : -128; break;
      case 4: x[i] = (int8_t)((int)(rng() % 7) - 3); break;
      default: x[i] = (int8_t)(rng() & 0xff); break;
    }
  }
}

static void reference(size_t m, size_t n, size_t k, const int8_t *a, size_t lda, const int8_t *b,
                      size_t ldb, int32_t *c, size_t ldc, int accumulate) {
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < n; j++) {
      uint32_t s = accumulate ? (uint32_t)c[i * ldc + j] : 0u;
      for (size_t p = 0; p < k; p++) s += (uint32_t)((int32_t)a[i * lda + p] * (int32_t)b[p * ldb + j]);
      c[i * ldc + j] = (int32_t)s;
    }
}

static int path_by_name(const char *s) {
  if (!strcmp(s, "auto")) return RAMNET_PATH_AUTO;
  for (int p = 0; p < RAMNET_NPATHS; p++)
    if (!strcmp(s, ramnet_path_name(p))) return p;
  return atoi(s);
}

static long failures = 0, checks = 0;

/* one test case on one path; pads leading dimensions and checks that C outside the m x n block
 * is untouched */
static void check_case(int path, size_t m, size_t n, size_t k, size_t pad_a, size_t pad_b,
                       size_t pad_c, int fa, int fb, int accumulate) {
  size_t lda = k + pad_a, ldb = n + pad_b, ldc = n + pad_c;
  int8_t *a = malloc(m * lda + 1), *b = malloc(k * ldb + 1);
  int32_t *c = malloc((m * ldc + 1) * sizeof(int32_t));
  int32_t *r = malloc((m * ldc + 1) * sizeof(int32_t));
  fill(a, m * lda, fa);
  fill(b, k * ldb, fb);
  for (size_t i = 0; i < m * ldc; i++) c[i] = r[i] = (int32_t)(uint32_t)rng();
  reference(m, n, k, a, lda, b, ldb, r, ldc, accumulate);
  int rc = ramnet_gemm_s8s32(path, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
  checks++;
  size_t bad = 0, first = (size_t)-1;
  if (rc != RAMNET_OK) {
    bad = 1;
  } else {
    for (size_t i = 0; i < m * ldc; i++)
      if (c[i] != r[i]) {
        if (!bad) first = i;
        bad++;
      }
  }
  if (bad) {
    failures++;
    if (failures <= 20) {
      printf("FAIL path=%s m=%zu n=%zu k=%zu lda=%zu ldb=%zu ldc=%zu fill=%d/%d acc=%d rc=%d "
             "bad=%zu",
             ramnet_path_name(path), m, n, k, lda, ldb, ldc, fa, fb, accumulate, rc, bad);
      if (first != (size_t)-1)
        printf(" first=(%zu,%zu) got %d want %d", first / ldc, first % ldc, c[first], r[first]);
      printf("\n");
    }
  }
  free(a);
  free(b);
  free(c);
  free(r);
}

static int run_tests(int small) {
  static const size_t shapes[][3] = {
      {1, 1, 1},     {1, 1, 2},       {2, 3, 1},       {1, 100, 1},     {100, 1, 1},
      {1, 1, 1000},  {1, 37, 53},     {37, 1, 53},     {37, 53, 97},    {7, 48, 4},
      {8, 48, 4},    {9, 49, 5},      {16, 64, 3},     {12, 32, 17},    {6, 16, 8},
      {5, 17, 2},    {13, 95, 63},    {127, 129, 131}, {64, 64, 64},    {100, 100, 512},
      {33, 97, 513}, {200, 300, 517}, {5000, 3, 7},    {3, 5000, 7},    {193, 50, 1030},
      {50, 4100, 9}, {385, 200, 100}, {2, 4097, 33},   {257, 4200, 70}, {520, 60, 1100},
  };
  size_t nshapes = sizeof shapes / sizeof shapes[0];
  for (int path = 0; path < RAMNET_NPATHS; path++) {
    if (!ramnet_path_supported(RAMNET_KERNEL_GEMM_S8, path)) continue;
    long before = failures;
    for (size_t s = 0; s < nshapes; s++) {
      size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
      if (small && m * n * k > 300000) continue;
      for (int acc = 0; acc <= 1; acc++) {
        check_case(path, m, n, k, 0, 0, 0, 0, 0, acc);
        check_case(path, m, n, k, 3, 5, 7, 0, 0, acc);
        if (m * n * k <= 3000000) {
          check_case(path, m, n, k, 1, 0, 2, 1, 1, acc);
          check_case(path, m, n, k, 0, 1, 0, 2, 2, acc);
          check_case(path, m, n, k, 0, 0, 1, 1, 2, acc);
          check_case(path, m, n, k, 2, 2, 2, 3, 3, acc);
          check_case(path, m, n, k, 0, 0, 0, 4, 0, acc);
        }
      }
    }
    /* large k (every product extreme: -128 * -128 summed over k; wraps modulo 2^32 past 131072) */
    if (!small) {
      check_case(path, 9, 50, 140000, 0, 0, 0, 1, 1, 0);
      check_case(path, 9, 50, 140000, 0, 0, 0, 3, 3, 1);
    }
    /* k == 0 and empty shapes */
    {
      int32_t c[6] = {1, 2, 3, 4, 5, 6};
      int8_t a1 = 1, b1 = 1;
      int rc = ramnet_gemm_s8s32(path, 2, 3, 0, &a1, 0, &b1, 3, c, 3, 1);
      checks++;
      if (rc || c[0] != 1 || c[5] != 6) failures++, printf("FAIL k=0 accumulate\n");
      rc = ramnet_gemm_s8s32(path, 2, 3, 0, NULL, 0, NULL, 3, c, 3, 0);
      checks++;
      for (int i = 0; i < 6; i++)
        if (rc || c[i]) { failures++; printf("FAIL k=0 store\n"); break; }
      rc = ramnet_gemm_s8s32(path, 0, 3, 5, NULL, 5, NULL, 3, NULL, 3, 0);
      checks++;
      if (rc) failures++, printf("FAIL m=0\n");
      rc = ramnet_gemm_s8s32(path, 2, 0, 5, NULL, 5, NULL, 0, NULL, 0, 0);
      checks++;
      if (rc) failures++, printf("FAIL n=0\n");
      rc = ramnet_gemm_s8s32(path, 2, 3, 5, NULL, 5, &b1, 3, c, 3, 0);
      checks++;
      if (rc != RAMNET_EINVAL) failures++, printf("FAIL null a -> %d\n", rc);
      rc = ramnet_gemm_s8s32(path, 2, 3, 5, &a1, 4, &b1, 3, c, 3, 0);
      checks++;
      if (rc != RAMNET_EINVAL) failures++, printf("FAIL lda<k -> %d\n", rc);
      rc = ramnet_gemm_s8s32(path, 2, 3, 5, &a1, 5, &b1, 2, c, 3, 0);
      checks++;
      if (rc != RAMNET_EINVAL) failures++, printf("FAIL ldb<n -> %d\n", rc);
      rc = ramnet_gemm_s8s32(path, 2, 3, 5, &a1, 5, &b1, 3, c, 2, 0);
      checks++;
      if (rc != RAMNET_EINVAL) failures++, printf("FAIL ldc<n -> %d\n", rc);
    }
    printf("path %-12s %s\n", ramnet_path_name(path), failures == before ? "ok" : "FAILED");
  }
  for (int path = 0; path < RAMNET_NPATHS; path++)
    if (!ramnet_path_supported(RAMNET_KERNEL_GEMM_S8, path)) {
      int8_t x = 0;
      int32_t y = 0;
      int rc = ramnet_gemm_s8s32(path, 1, 1, 1, &x, 1, &x, 1, &y, 1, 0);
      checks++;
      if (rc != RAMNET_ENOTSUP) failures++, printf("FAIL unsupported %d -> %d\n", path, rc);
    }
  printf("%ld checks, %ld failures\n", checks, failures);
  return failures != 0;
}

typedef struct {
  int path;
  size_t m, n, k;
  const int8_t *a, *b;
  size_t lda, ldb, ldc;
  int32_t *c;
  int rc;
  pthread_barrier_t *bar;
} job;

static void *worker(void *arg) {
  job *j = arg;
  pthread_barrier_wait(j->bar);
  j->rc = ramnet_gemm_s8s32(j->path, j->m, j->n, j->k, j->a, j->lda, j->b, j->ldb, j->c, j->ldc, 0);
  return NULL;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* runs C = A.B with `threads` threads, C cut into column (split 0) or row (split 1) tiles */
static double timed_run(int path, size_t m, size_t n, size_t k, const int8_t *a, const int8_t *b,
                        int32_t *c, int threads, int split) {
  job jobs[64];
  pthread_t tid[64];
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, (unsigned)threads);
  for (int t = 0; t < threads; t++) {
    job *j = &jobs[t];
    j->path = path;
    j->k = k;
    j->lda = k;
    j->ldb = n;
    j->ldc = n;
    j->bar = &bar;
    if (split == 0) {
      size_t step = (n / (size_t)threads + 15) / 16 * 16;
      size_t j0 = step * (size_t)t, j1 = t == threads - 1 ? n : step * (size_t)(t + 1);
      if (j0 > n) j0 = n;
      if (j1 > n) j1 = n;
      j->m = m;
      j->n = j1 - j0;
      j->a = a;
      j->b = b + j0;
      j->c = c + j0;
    } else {
      size_t i0 = m * (size_t)t / (size_t)threads, i1 = m * (size_t)(t + 1) / (size_t)threads;
      j->m = i1 - i0;
      j->n = n;
      j->a = a + i0 * k;
      j->b = b;
      j->c = c + i0 * n;
    }
  }
  for (int t = 1; t < threads; t++) pthread_create(&tid[t], NULL, worker, &jobs[t]);
  double t0;
  if (threads > 1) pthread_barrier_wait(&bar); /* all threads start together */
  t0 = now();
  jobs[0].rc = ramnet_gemm_s8s32(jobs[0].path, jobs[0].m, jobs[0].n, jobs[0].k, jobs[0].a,
                                 jobs[0].lda, jobs[0].b, jobs[0].ldb, jobs[0].c, jobs[0].ldc, 0);
  for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
  double dt = now() - t0;
  pthread_barrier_destroy(&bar);
  for (int t = 0; t < threads; t++)
    if (jobs[t].rc) {
      fprintf(stderr, "rc %d\n", jobs[t].rc);
      exit(1);
    }
  return dt;
}

static int run_bench(size_t m, size_t n, size_t k, int threads, int split, int path, int reps) {
  int8_t *a = aligned_alloc(64, (m * k + 63) / 64 * 64);
  int8_t *b = aligned_alloc(64, (k * n + 63) / 64 * 64);
  int32_t *c = aligned_alloc(64, (m * n * 4 + 63) / 64 * 64);
  fill(a, m * k, 0);
  fill(b, k * n, 0);
  memset(c, 0, m * n * 4);
  double *ts = malloc(sizeof(double) * (size_t)reps);
  timed_run(path, m, n, k, a, b, c, threads, split); /* warm-up */
  for (int r = 0; r < reps; r++) ts[r] = timed_run(path, m, n, k, a, b, c, threads, split);
  /* spot check against the reference on a few entries */
  for (int s = 0; s < 64; s++) {
    size_t i = rng() % m, j = rng() % n;
    uint32_t ref = 0;
    for (size_t p = 0; p < k; p++) ref += (uint32_t)((int32_t)a[i * k + p] * (int32_t)b[p * n + j]);
    if ((int32_t)ref != c[i * n + j]) {
      printf("MISMATCH at (%zu,%zu)\n", i, j);
      return 1;
    }
  }
  qsort(ts, (size_t)reps, sizeof(double), cmp_double);
  double ops = 2.0 * (double)m * (double)n * (double)k;
  printf("path=%s m=%zu n=%zu k=%zu threads=%d split=%s median %.1f GOP/s best %.1f GOP/s "
         "(median %.2f ms)\n",
         path == RAMNET_PATH_AUTO ? "auto" : ramnet_path_name(path), m, n, k, threads,
         split ? "rows" : "cols", ops / ts[reps / 2] / 1e9, ops / ts[0] / 1e9,
         ts[reps / 2] * 1e3);
  free(ts);
  free(a);
  free(b);
  free(c);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "test")) {
    printf("cpu: %s; best gemm_s8 path: %s\n", ramnet_cpu_features(),
           ramnet_path_name(ramnet_best_path(RAMNET_KERNEL_GEMM_S8)));
    return run_tests(argc > 2 && !strcmp(argv[2], "small"));
  }
  if (!strcmp(argv[1], "bench") && argc >= 4) {
    size_t n = strtoul(argv[2], NULL, 10);
    int threads = atoi(argv[3]);
    int split = argc > 4 && !strcmp(argv[4], "rows");
    int path = argc > 5 ? path_by_name(argv[5]) : RAMNET_PATH_AUTO;
    int reps = argc > 6 ? atoi(argv[6]) : 5;
    if (threads < 1 || threads > 64) return 2;
    return run_bench(n, n, n, threads, split, path, reps);
  }
  if (!strcmp(argv[1], "benchmnk") && argc >= 5) {
    size_t m = strtoul(argv[2], NULL, 10), n = strtoul(argv[3], NULL, 10),
           k = strtoul(argv[4], NULL, 10);
    int path = argc > 5 ? path_by_name(argv[5]) : RAMNET_PATH_AUTO;
    int reps = argc > 6 ? atoi(argv[6]) : 5;
    return run_bench(m, n, k, 1, 0, path, reps);
  }
  fprintf(stderr, "usage: %s test [small] | bench N THREADS [cols|rows] [PATH] [REPS] | "
                  "benchmnk M N K [PATH] [REPS]\n", argv[0]);
  return 2;
}
