/* hash.h: BLAKE3 digests of VALKYRIE's Merkle leaves, computed in C.
 *
 * build_ext.py hands the text between the cdef markers to cffi's cdef(), so that part must stay
 * plain C declarations that cffi can parse. The C sources include this whole file.
 *
 * A leaf is a prefix and a 16-byte tile header followed by the tile's bytes (the layout
 * ramnet_pack_tiles writes, see ramnet.h). Hashing it through an incremental BLAKE3 API costs a
 * quarter more than hashing the tile alone: after the prefix's first chunk, the API may only
 * combine chunks in runs aligned to the chunk counter (1, 2, 4, 8, then 16 at a time), so the
 * first 15 chunks of every leaf miss the 16-way vector path. Here each chunk is hashed at its own
 * counter, so every full chunk of a leaf goes through the 16-way path. The digests are BLAKE3's,
 * bit for bit (the tests compare them with the blake3 package on every path).
 */
#ifndef RAMNET_HASH_H
#define RAMNET_HASH_H
#include "ramnet.h"

/* cdef-begin */
#define RAMNET_KERNEL_HASH 4 /* kernel family of the leaf digests: RAMNET_PATH_AVX512 (16 chunks
                              * at a time, AVX-512 F) or RAMNET_PATH_PORTABLE (one at a time) */

int ramnet_hash_path_supported(int path); /* 1 if this CPU and build can run the path */
int ramnet_hash_best_path(void);          /* the path RAMNET_PATH_AUTO resolves to */

/* Digests of the leaves ramnet_pack_tiles would write for the same arguments: for each tile, in
 * row-major tile order from tile row tile_row0, the 32-byte BLAKE3 digest of prefix | u32 tile
 * row | u32 tile column | u32 rows | u32 bytes per row | the tile's bytes row by row. out_len
 * must be at least 32 per leaf. prefix_len < 1008. May return RAMNET_ENOMEM. */
int ramnet_hash_tiles(int path, const uint8_t *x, size_t rows, size_t row_bytes, size_t ld_bytes,
                      size_t tile_rows, size_t tile_row_bytes, size_t tile_row0,
                      const uint8_t *prefix, size_t prefix_len, uint8_t *out, size_t out_len);
/* Merkle parents: out[32 i ..] = BLAKE3(tag | children[64 i .. 64 i + 64]) for i < count (each
 * message one chunk of at most 128 bytes: tag_len <= 64). */
int ramnet_hash_nodes(int path, const uint8_t *tag, size_t tag_len, const uint8_t *children,
                      size_t count, uint8_t *out);
/* cdef-end */

#endif
