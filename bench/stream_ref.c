/* stream_ref.c: the triad of McCalpin's STREAM benchmark, measured his way, as the reference that
 * bench_stream.py compares RAMNET's triad against.
 *
 * Our own rewrite of the method, not his file: three static arrays of STREAM_ARRAY_SIZE doubles,
 * initialised in parallel (first touch), NTIMES timed runs of the plain OpenMP loop
 * `a[j] = b[j] + scalar*c[j]`, the first run skipped, and the best rate reported as
 * 3 * 8 * N bytes / the minimum time. Built with -O3 -march=native -fopenmp, as STREAM is usually
 * built; OMP_NUM_THREADS sets the threads. Prints one JSON line. */
#include <omp.h>
#include <stdio.h>
#include <time.h>

#ifndef STREAM_ARRAY_SIZE
#define STREAM_ARRAY_SIZE (1L << 25)
#endif
#ifndef NTIMES
#define NTIMES 10
#endif

static double a[STREAM_ARRAY_SIZE], b[STREAM_ARRAY_SIZE], c[STREAM_ARRAY_SIZE];

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
  long j;
  const double scalar = 3.0;
#pragma omp parallel for
  for (j = 0; j < STREAM_ARRAY_SIZE; j++) {
    a[j] = 1.0;
    b[j] = 2.0;
    c[j] = 0.0;
  }
  double best = 1e30, total = 0;
  for (int k = 0; k < NTIMES; k++) {
    double t = now();
#pragma omp parallel for
    for (j = 0; j < STREAM_ARRAY_SIZE; j++) a[j] = b[j] + scalar * c[j];
    t = now() - t;
    if (k == 0) continue; /* STREAM skips the first iteration */
    total += t;
    if (t < best) best = t;
  }
  double bytes = 3.0 * sizeof(double) * (double)STREAM_ARRAY_SIZE;
  printf("{\"threads\": %d, \"n\": %ld, \"triad_best_gbs\": %.2f, \"triad_avg_gbs\": %.2f, \"check\": %g}\n",
         omp_get_max_threads(), (long)STREAM_ARRAY_SIZE, bytes / best / 1e9,
         bytes / (total / (NTIMES - 1)) / 1e9, a[STREAM_ARRAY_SIZE / 2]);
  return 0;
}
