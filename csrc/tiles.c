/* tiles.c: packs a row-major matrix into the canonical leaf layout of VALKYRIE's Merkle
 * commitments, so that each leaf can be hashed with one call.
 *
 * The tile grid is walked in row-major order from tile row `tile_row0`; each leaf is
 *   prefix (prefix_len bytes, the same for every leaf: domain tag, dtype, shape, tile shape)
 *   u32 tile row, u32 tile column, u32 rows in this tile, u32 bytes per row in this tile (LE)
 *   the tile's rows, each row's bytes contiguous (C order within the tile)
 * Edge tiles are smaller, never padded. Copies are memcpy per tile row, which runs near memory
 * bandwidth where numpy's strided 4-D transpose does not. */
#include "internal.h"

#include <string.h>

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

int ramnet_pack_tiles(const uint8_t *x, size_t rows, size_t row_bytes, size_t ld_bytes,
                      size_t tile_rows, size_t tile_row_bytes, size_t tile_row0,
                      const uint8_t *prefix, size_t prefix_len, uint8_t *out, size_t out_len) {
  if (!tile_rows || !tile_row_bytes || (rows && row_bytes && (!x || ld_bytes < row_bytes)) ||
      (prefix_len && !prefix))
    return RAMNET_EINVAL;
  size_t need = 0;
  for (size_t r0 = 0; r0 < rows; r0 += tile_rows)
    for (size_t c0 = 0; c0 < row_bytes; c0 += tile_row_bytes) {
      size_t h = rows - r0 < tile_rows ? rows - r0 : tile_rows;
      size_t w = row_bytes - c0 < tile_row_bytes ? row_bytes - c0 : tile_row_bytes;
      need += prefix_len + 16 + h * w;
    }
  if (need > out_len || (need && !out)) return RAMNET_EINVAL;
  uint8_t *o = out;
  for (size_t r0 = 0, ti = tile_row0; r0 < rows; r0 += tile_rows, ti++) {
    size_t h = rows - r0 < tile_rows ? rows - r0 : tile_rows;
    for (size_t c0 = 0, tj = 0; c0 < row_bytes; c0 += tile_row_bytes, tj++) {
      size_t w = row_bytes - c0 < tile_row_bytes ? row_bytes - c0 : tile_row_bytes;
      if (prefix_len) memcpy(o, prefix, prefix_len);
      o += prefix_len;
      put_u32(o, (uint32_t)ti);
      put_u32(o + 4, (uint32_t)tj);
      put_u32(o + 8, (uint32_t)h);
      put_u32(o + 12, (uint32_t)w);
      o += 16;
      for (size_t r = 0; r < h; r++) {
        memcpy(o, x + (r0 + r) * ld_bytes + c0, w);
        o += w;
      }
    }
  }
  return RAMNET_OK;
}
