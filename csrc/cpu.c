/* cpu.c: CPU feature detection and code-path dispatch for every kernel family.
 *
 * One portable build (never -march=native): the vector code paths are compiled with per-function
 * target attributes, and this file decides at run time which of them the CPU can execute. */
#include "ramnet.h"
#include "internal.h"

#include <string.h>

static const char *const path_names[RAMNET_NPATHS] = {
    "portable", "avx2", "avx-vnni", "avx512", "avx512-vnni", "neon", "avx512-ifma",
};

const char *ramnet_path_name(int path) {
  if (path < 0 || path >= RAMNET_NPATHS) return "unknown";
  return path_names[path];
}

#if RAMNET_X86
static int has_avx2(void) {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int has_avx512(void) {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
static int has_avx512vnni(void) { return has_avx512() && __builtin_cpu_supports("avx512vnni"); }
static int has_avxvnni(void) { return has_avx2() && __builtin_cpu_supports("avxvnni"); }
#endif

static int cpu_has_path(int path) {
  switch (path) {
    case RAMNET_PATH_PORTABLE: return 1;
#if RAMNET_X86
    case RAMNET_PATH_AVX2: return has_avx2();
    case RAMNET_PATH_AVXVNNI: return has_avxvnni();
    case RAMNET_PATH_AVX512: return has_avx512();
    case RAMNET_PATH_AVX512VNNI: return has_avx512vnni();
#endif
#if RAMNET_ARM64
    case RAMNET_PATH_NEON: return 1;
#endif
    default: return 0;
  }
}

/* Which paths each kernel family implements, best first. */
static const int gemm_s8_order[] = {RAMNET_PATH_AVX512VNNI, RAMNET_PATH_AVXVNNI, RAMNET_PATH_AVX2,
                                    RAMNET_PATH_PORTABLE};
static const int wide_order[] = {RAMNET_PATH_AVX512, RAMNET_PATH_AVX2, RAMNET_PATH_PORTABLE};
static const int stream_order[] = {RAMNET_PATH_AVX512, RAMNET_PATH_AVX2, RAMNET_PATH_PORTABLE};

static const int *family(int kernel, size_t *count) {
  switch (kernel) {
    case RAMNET_KERNEL_GEMM_S8:
      *count = sizeof gemm_s8_order / sizeof gemm_s8_order[0];
      return gemm_s8_order;
    case RAMNET_KERNEL_GEMM_WIDE:
      *count = sizeof wide_order / sizeof wide_order[0];
      return wide_order;
    case RAMNET_KERNEL_STREAM:
      *count = sizeof stream_order / sizeof stream_order[0];
      return stream_order;
    default:
      *count = 0;
      return NULL;
  }
}

int ramnet_path_supported(int kernel, int path) {
  size_t count;
  const int *order = family(kernel, &count);
  for (size_t i = 0; i < count; i++)
    if (order[i] == path) return cpu_has_path(path);
  return 0;
}

int ramnet_best_path(int kernel) {
  size_t count;
  const int *order = family(kernel, &count);
  for (size_t i = 0; i < count; i++)
    if (cpu_has_path(order[i])) return order[i];
  return RAMNET_PATH_PORTABLE;
}

int ramnet_resolve_path(int kernel, int path) {
  if (path == RAMNET_PATH_AUTO) return ramnet_best_path(kernel);
  return ramnet_path_supported(kernel, path) ? path : RAMNET_ENOTSUP;
}

const char *ramnet_cpu_features(void) {
  static char buf[256];
  buf[0] = '\0';
#if RAMNET_X86
  static const char *const names[] = {"sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw",
                                      "avx512vl", "avx512dq", "avx512vnni", "avxvnni"};
  int present[10];
  present[0] = __builtin_cpu_supports("sse4.2");
  present[1] = __builtin_cpu_supports("avx");
  present[2] = __builtin_cpu_supports("avx2");
  present[3] = __builtin_cpu_supports("fma");
  present[4] = __builtin_cpu_supports("avx512f");
  present[5] = __builtin_cpu_supports("avx512bw");
  present[6] = __builtin_cpu_supports("avx512vl");
  present[7] = __builtin_cpu_supports("avx512dq");
  present[8] = __builtin_cpu_supports("avx512vnni");
  present[9] = __builtin_cpu_supports("avxvnni");
  for (int i = 0; i < 10; i++) {
    if (!present[i]) continue;
    if (buf[0]) strcat(buf, " ");
    strcat(buf, names[i]);
  }
#elif RAMNET_ARM64
  strcpy(buf, "neon");
#endif
  return buf;
}
