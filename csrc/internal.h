/* internal.h: helpers shared by the C sources; not part of the cffi interface. */
#ifndef RAMNET_INTERNAL_H
#define RAMNET_INTERNAL_H
#include "ramnet.h"

#if defined(__x86_64__) || defined(_M_X64)
#define RAMNET_X86 1
#include <immintrin.h>
#else
#define RAMNET_X86 0
#endif

#if defined(__aarch64__)
#define RAMNET_ARM64 1
#include <arm_neon.h>
#else
#define RAMNET_ARM64 0
#endif

/* Resolves RAMNET_PATH_AUTO to the best supported path of a kernel family, or checks that an
 * explicit path is supported; returns the path or RAMNET_ENOTSUP. */
int ramnet_resolve_path(int kernel, int path);

#endif
