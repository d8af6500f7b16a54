#!/usr/bin/env bash
# Builds the gemm_s8 harness with the package's flags (and an ASan/UBSan variant).
# Usage: bench/c/build.sh [extra cflags...]   (run from anywhere; outputs in bench/c/build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/bench/c/build"
mkdir -p "$out"
srcs=("$root/csrc/cpu.c" "$root/csrc/gemm_s8.c" "$root/bench/c/gemm_s8_harness.c")
gcc -O3 -std=c11 -Wall -Wextra -fPIC -I"$root/csrc" "$@" "${srcs[@]}" -lpthread \
    -o "$out/gemm_s8_harness"
gcc -O1 -g -std=c11 -Wall -Wextra -fPIC -fsanitize=address,undefined -fno-sanitize-recover=all \
    -I"$root/csrc" "$@" "${srcs[@]}" -lpthread -o "$out/gemm_s8_harness_asan"
# AVX-VNNI check on AVX-512 VNNI machines: the 256-bit kernel, EVEX-encoded, behind the
# avx512-vnni path name (its "avx512-vnni" results then test the AVX-VNNI code).
gcc -O3 -std=c11 -Wall -Wextra -fPIC -DGEMM_S8_EMULATE_AVXVNNI -I"$root/csrc" "$@" "${srcs[@]}" \
    -lpthread -o "$out/gemm_s8_harness_avxvnni_emul"
echo "built $out/gemm_s8_harness, gemm_s8_harness_asan, gemm_s8_harness_avxvnni_emul"
