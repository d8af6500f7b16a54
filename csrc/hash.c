/* hash.c: BLAKE3 digests of Merkle leaves (see hash.h), written from the BLAKE3 specification:
 * the compression function, chunks of 1024 bytes chained block by block, and the binary tree of
 * chunk chaining values whose left subtree is always complete. Only the unkeyed 32-byte hash is
 * needed.
 *
 * A leaf's chunks are independent once each knows its counter, so its full chunks go through the
 * AVX-512 kernel 16 at a time (one chunk per 32-bit lane; the first chunk, which starts with the
 * leaf's prefix, from a 1 KiB copy), its partial last chunk through the scalar compression, and
 * the tree's parents 16 at a time again. Tiles whose rows are not contiguous (square tiles of a
 * row-major matrix) are packed into a scratch leaf first, one tile at a time, while it is in L2. */
#include "hash.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_LEN 1024
#define BLOCK_LEN 64
#define HEAD_MAX 1008 /* prefix bytes; with the 16-byte tile header the head fits one chunk */
#define HASH_PF 2      /* blocks ahead to prefetch in each of the 16 inputs */

enum { CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8 };

static const uint32_t IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                               0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

/* Message word order of each round: round r applies the specification's permutation
 * (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8) r times. */
static const uint8_t SCHEDULE[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

/* ---- dispatch ---- */

int ramnet_hash_path_supported(int path) {
  if (path == RAMNET_PATH_PORTABLE) return 1;
  if (path == RAMNET_PATH_AVX512) return ramnet_path_supported(RAMNET_KERNEL_STREAM, path);
  return 0;
}

int ramnet_hash_best_path(void) {
  return ramnet_hash_path_supported(RAMNET_PATH_AVX512) ? RAMNET_PATH_AVX512
                                                         : RAMNET_PATH_PORTABLE;
}

/* ---- scalar compression ---- */

static inline uint32_t rotr32(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t load_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

#define G1(a, b, c, d, x, y)    \
  do {                          \
    v[a] = v[a] + v[b] + (x);   \
    v[d] = rotr32(v[d] ^ v[a], 16); \
    v[c] = v[c] + v[d];         \
    v[b] = rotr32(v[b] ^ v[c], 12); \
    v[a] = v[a] + v[b] + (y);   \
    v[d] = rotr32(v[d] ^ v[a], 8);  \
    v[c] = v[c] + v[d];         \
    v[b] = rotr32(v[b] ^ v[c], 7);  \
  } while (0)

/* cv = the first half of compress(cv, m, counter, block_len, flags). */
static void compress1(uint32_t cv[8], const uint32_t m[16], uint64_t counter, uint32_t block_len,
                      uint32_t flags) {
  uint32_t v[16] = {cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
                    IV[0], IV[1], IV[2], IV[3], (uint32_t)counter, (uint32_t)(counter >> 32),
                    block_len, flags};
  for (unsigned r = 0; r < 7; r++) {
    const uint8_t *s = SCHEDULE[r];
    G1(0, 4, 8, 12, m[s[0]], m[s[1]]);
    G1(1, 5, 9, 13, m[s[2]], m[s[3]]);
    G1(2, 6, 10, 14, m[s[4]], m[s[5]]);
    G1(3, 7, 11, 15, m[s[6]], m[s[7]]);
    G1(0, 5, 10, 15, m[s[8]], m[s[9]]);
    G1(1, 6, 11, 12, m[s[10]], m[s[11]]);
    G1(2, 7, 8, 13, m[s[12]], m[s[13]]);
    G1(3, 4, 9, 14, m[s[14]], m[s[15]]);
  }
  for (unsigned i = 0; i < 8; i++) cv[i] = v[i] ^ v[i + 8];
}

/* The chaining value of one chunk of len bytes (at most 1024; 0 only for an empty input) at
 * counter; `last` is added to the flags of its last block (ROOT for a one-chunk input). */
static void chunk_cv(const uint8_t *p, size_t len, uint64_t counter, uint32_t last,
                     uint32_t cv[8]) {
  memcpy(cv, IV, sizeof IV);
  size_t blocks = len ? (len + BLOCK_LEN - 1) / BLOCK_LEN : 1;
  for (size_t b = 0; b < blocks; b++) {
    size_t n = len - b * BLOCK_LEN < BLOCK_LEN ? len - b * BLOCK_LEN : BLOCK_LEN;
    uint8_t buf[BLOCK_LEN] = {0};
    if (n) memcpy(buf, p + b * BLOCK_LEN, n);
    uint32_t m[16];
    for (unsigned i = 0; i < 16; i++) m[i] = load_le32(buf + 4 * i);
    uint32_t flags = (b == 0 ? CHUNK_START : 0) | (b + 1 == blocks ? CHUNK_END | last : 0);
    compress1(cv, m, counter, (uint32_t)n, flags);
  }
}

/* out = the chaining value of the parent of two chaining values. */
static void parent_cv(const uint32_t left[8], const uint32_t right[8], uint32_t flags,
                      uint32_t out[8]) {
  uint32_t m[16];
  memcpy(m, left, 8 * sizeof(uint32_t));
  memcpy(m + 8, right, 8 * sizeof(uint32_t));
  memcpy(out, IV, sizeof IV);
  compress1(out, m, 0, BLOCK_LEN, PARENT | flags);
}

/* ---- 16 inputs at a time (AVX-512 F), one per 32-bit lane ---- */

#if RAMNET_X86
#define ATTR_HASH512 __attribute__((target("avx512f")))

#define ADD16 _mm512_add_epi32
#define XOR16 _mm512_xor_si512
#define ROR16 _mm512_ror_epi32
/* Four independent G functions, a step of each in turn (so the scheduler always has four
 * chains to interleave); the message word is added before the chain's latest value. */
#define G4(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, s, k)                 \
  do {                                                                                         \
    v[a0] = ADD16(ADD16(v[a0], m[s[k]]), v[b0]);                                              \
    v[a1] = ADD16(ADD16(v[a1], m[s[k + 2]]), v[b1]);                                          \
    v[a2] = ADD16(ADD16(v[a2], m[s[k + 4]]), v[b2]);                                          \
    v[a3] = ADD16(ADD16(v[a3], m[s[k + 6]]), v[b3]);                                          \
    v[d0] = ROR16(XOR16(v[d0], v[a0]), 16);                                                    \
    v[d1] = ROR16(XOR16(v[d1], v[a1]), 16);                                                    \
    v[d2] = ROR16(XOR16(v[d2], v[a2]), 16);                                                    \
    v[d3] = ROR16(XOR16(v[d3], v[a3]), 16);                                                    \
    v[c0] = ADD16(v[c0], v[d0]);                                                               \
    v[c1] = ADD16(v[c1], v[d1]);                                                               \
    v[c2] = ADD16(v[c2], v[d2]);                                                               \
    v[c3] = ADD16(v[c3], v[d3]);                                                               \
    v[b0] = ROR16(XOR16(v[b0], v[c0]), 12);                                                    \
    v[b1] = ROR16(XOR16(v[b1], v[c1]), 12);                                                    \
    v[b2] = ROR16(XOR16(v[b2], v[c2]), 12);                                                    \
    v[b3] = ROR16(XOR16(v[b3], v[c3]), 12);                                                    \
    v[a0] = ADD16(ADD16(v[a0], m[s[k + 1]]), v[b0]);                                          \
    v[a1] = ADD16(ADD16(v[a1], m[s[k + 3]]), v[b1]);                                          \
    v[a2] = ADD16(ADD16(v[a2], m[s[k + 5]]), v[b2]);                                          \
    v[a3] = ADD16(ADD16(v[a3], m[s[k + 7]]), v[b3]);                                          \
    v[d0] = ROR16(XOR16(v[d0], v[a0]), 8);                                                     \
    v[d1] = ROR16(XOR16(v[d1], v[a1]), 8);                                                     \
    v[d2] = ROR16(XOR16(v[d2], v[a2]), 8);                                                     \
    v[d3] = ROR16(XOR16(v[d3], v[a3]), 8);                                                     \
    v[c0] = ADD16(v[c0], v[d0]);                                                               \
    v[c1] = ADD16(v[c1], v[d1]);                                                               \
    v[c2] = ADD16(v[c2], v[d2]);                                                               \
    v[c3] = ADD16(v[c3], v[d3]);                                                               \
    v[b0] = ROR16(XOR16(v[b0], v[c0]), 7);                                                     \
    v[b1] = ROR16(XOR16(v[b1], v[c1]), 7);                                                     \
    v[b2] = ROR16(XOR16(v[b2], v[c2]), 7);                                                     \
    v[b3] = ROR16(XOR16(v[b3], v[c3]), 7);                                                     \
  } while (0)
#define ROUND16(r)                                                                   \
  do {                                                                               \
    G4(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, SCHEDULE[r], 0);        \
    G4(0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14, SCHEDULE[r], 8);        \
  } while (0)

/* m[w] = word w of the 64-byte block at in[l] + off, in lane l: a 16 x 16 transpose. */
ATTR_HASH512 static inline void load_words16(const uint8_t *const in[16], size_t off,
                                             __m512i m[16]) {
  __m512i r[16], t[16];
  for (unsigned l = 0; l < 16; l++) r[l] = _mm512_loadu_si512((const void *)(in[l] + off));
  /* t[2k], t[2k+1]: words of inputs 2k, 2k+1 interleaved, within each 128-bit lane */
  for (unsigned k = 0; k < 8; k++) {
    t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  /* r[4g + c], 128-bit lane q: word 4q + c of inputs 4g .. 4g + 3 */
  for (unsigned g = 0; g < 4; g++) {
    r[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    r[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  /* transpose the 4 x 4 grid of 128-bit lanes of r[c], r[4 + c], r[8 + c], r[12 + c] */
  for (unsigned c = 0; c < 4; c++) {
    __m512i x0 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x44);
    __m512i x1 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xEE);
    __m512i x2 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x44);
    __m512i x3 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xEE);
    m[c] = _mm512_shuffle_i32x4(x0, x2, 0x88);
    m[4 + c] = _mm512_shuffle_i32x4(x0, x2, 0xDD);
    m[8 + c] = _mm512_shuffle_i32x4(x1, x3, 0x88);
    m[12 + c] = _mm512_shuffle_i32x4(x1, x3, 0xDD);
  }
}

/* out[l] = the chaining value of `blocks` blocks at in[l], from IV, at counter + l (inc) or
 * counter; flags on every block, `start` added on the first and `end` on the last, whose length
 * is last_len (its bytes past that must be zero). */
ATTR_HASH512 static void hash16(const uint8_t *const in[16], size_t blocks, uint64_t counter,
                                int inc, uint32_t flags, uint32_t start, uint32_t end,
                                uint32_t last_len, uint32_t out[16][8]) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i base = _mm512_set1_epi32((int32_t)(uint32_t)counter);
  __m512i lo = inc ? ADD16(base, lane) : base;
  __mmask16 carry = _mm512_cmplt_epu32_mask(lo, base);
  __m512i hi = _mm512_mask_add_epi32(_mm512_set1_epi32((int32_t)(uint32_t)(counter >> 32)), carry,
                                     _mm512_set1_epi32((int32_t)(uint32_t)(counter >> 32)),
                                     _mm512_set1_epi32(1));
  __m512i h[8];
  for (unsigned i = 0; i < 8; i++) h[i] = _mm512_set1_epi32((int32_t)IV[i]);
  for (size_t b = 0; b < blocks; b++) {
    __m512i m[16], v[16];
    /* Sixteen streams are more than the hardware prefetchers follow. */
    if (b + HASH_PF < blocks)
      for (unsigned l = 0; l < 16; l++)
        _mm_prefetch((const char *)(in[l] + (b + HASH_PF) * BLOCK_LEN), _MM_HINT_T0);
    load_words16(in, b * BLOCK_LEN, m);
    uint32_t f = flags | (b == 0 ? start : 0) | (b + 1 == blocks ? end : 0);
    for (unsigned i = 0; i < 8; i++) v[i] = h[i];
    for (unsigned i = 0; i < 4; i++) v[8 + i] = _mm512_set1_epi32((int32_t)IV[i]);
    v[12] = lo;
    v[13] = hi;
    v[14] = _mm512_set1_epi32((int32_t)(b + 1 == blocks ? last_len : BLOCK_LEN));
    v[15] = _mm512_set1_epi32((int32_t)f);
    ROUND16(0);
    ROUND16(1);
    ROUND16(2);
    ROUND16(3);
    ROUND16(4);
    ROUND16(5);
    ROUND16(6);
    for (unsigned i = 0; i < 8; i++) h[i] = XOR16(v[i], v[i + 8]);
  }
  uint32_t words[8][16];
  for (unsigned i = 0; i < 8; i++) _mm512_storeu_si512((void *)words[i], h[i]);
  for (unsigned l = 0; l < 16; l++)
    for (unsigned i = 0; i < 8; i++) out[l][i] = words[i][l];
}
#endif

/* ---- one leaf ---- */

/* cvs[first + k] = the chaining value of full chunk first + k, k < n (n <= 16); chunk c > 0
 * starts at data + c * 1024 - hlen, chunk 0 is `head_chunk`. */
static void full_chunks(int wide, const uint8_t *head_chunk, const uint8_t *data, size_t hlen,
                        size_t first, size_t n, uint32_t (*cvs)[8]) {
  const uint8_t *in[16];
  for (size_t k = 0; k < 16; k++) {
    size_t c = first + (k < n ? k : 0);
    in[k] = c == 0 ? head_chunk : data + c * CHUNK_LEN - hlen;
  }
#if RAMNET_X86
  if (wide) {
    uint32_t out[16][8];
    hash16(in, CHUNK_LEN / BLOCK_LEN, first, 1, 0, CHUNK_START, CHUNK_END, BLOCK_LEN, out);
    memcpy(cvs[first], out, n * sizeof out[0]);
    return;
  }
#else
  (void)wide;
#endif
  for (size_t k = 0; k < n; k++) chunk_cv(in[k], CHUNK_LEN, first + k, 0, cvs[first + k]);
}

/* cvs[k] = parent(cvs[2k], cvs[2k+1]) for k < pairs. In place: a parent is written only after
 * the children it and every earlier parent read. */
static void parents(int wide, uint32_t (*cvs)[8], size_t pairs) {
  size_t k = 0;
#if RAMNET_X86
  if (wide)
    for (; k + 4 <= pairs; k += 16) { /* fewer than four: the scalar loop is as fast */
      size_t n = pairs - k < 16 ? pairs - k : 16;
      const uint8_t *in[16];
      for (size_t j = 0; j < 16; j++) in[j] = (const uint8_t *)cvs[2 * (k + (j < n ? j : 0))];
      uint32_t out[16][8];
      hash16(in, 1, 0, 0, PARENT, 0, 0, BLOCK_LEN, out);
      memcpy(cvs[k], out, n * sizeof out[0]);
    }
#else
  (void)wide;
#endif
  for (; k < pairs; k++) parent_cv(cvs[2 * k], cvs[2 * k + 1], 0, cvs[k]);
}

/* out = BLAKE3(head | data), hlen <= 1023; cvs holds a chaining value per chunk. */
static void hash_leaf(int wide, const uint8_t *head, size_t hlen, const uint8_t *data, size_t dlen,
                      uint32_t (*cvs)[8], uint8_t out[32]) {
  size_t total = hlen + dlen;
  uint8_t first[CHUNK_LEN];
  size_t take = total <= CHUNK_LEN ? dlen : CHUNK_LEN - hlen;
  memcpy(first, head, hlen);
  if (take) memcpy(first + hlen, data, take);
  uint32_t cv[8];
  if (total <= CHUNK_LEN) {
    chunk_cv(first, total, 0, ROOT, cv);
  } else {
    size_t chunks = (total + CHUNK_LEN - 1) / CHUNK_LEN, full = total / CHUNK_LEN;
    for (size_t c = 0; c < full; c += 16)
      full_chunks(wide, first, data, hlen, c, full - c < 16 ? full - c : 16, cvs);
    if (full < chunks)
      chunk_cv(data + full * CHUNK_LEN - hlen, total - full * CHUNK_LEN, full, 0, cvs[full]);
    /* Pairing neighbours level by level, an odd one out carried up, builds BLAKE3's tree. */
    size_t count = chunks;
    while (count > 2) {
      size_t pairs = count / 2;
      parents(wide, cvs, pairs);
      if (count & 1) memcpy(cvs[pairs], cvs[count - 1], sizeof cvs[0]);
      count = pairs + (count & 1);
    }
    parent_cv(cvs[0], cvs[1], ROOT, cv);
  }
  for (unsigned i = 0; i < 8; i++) store_le32(out + 4 * i, cv[i]);
}

/* ---- tiles ---- */

int ramnet_hash_tiles(int path, const uint8_t *x, size_t rows, size_t row_bytes, size_t ld_bytes,
                      size_t tile_rows, size_t tile_row_bytes, size_t tile_row0,
                      const uint8_t *prefix, size_t prefix_len, uint8_t *out, size_t out_len) {
  if (path == RAMNET_PATH_AUTO) path = ramnet_hash_best_path();
  if (!ramnet_hash_path_supported(path)) return RAMNET_ENOTSUP;
  if (!tile_rows || !tile_row_bytes || (rows && row_bytes && (!x || ld_bytes < row_bytes)) ||
      (prefix_len && !prefix) || prefix_len >= HEAD_MAX)
    return RAMNET_EINVAL;
  size_t grid_rows = row_bytes ? (rows + tile_rows - 1) / tile_rows : 0;
  size_t grid_cols = rows ? (row_bytes + tile_row_bytes - 1) / tile_row_bytes : 0;
  size_t leaves = grid_rows * grid_cols;
  if (leaves > out_len / 32 || (leaves && !out)) return RAMNET_EINVAL;
  if (!leaves) return RAMNET_OK;
  size_t th = rows < tile_rows ? rows : tile_rows;
  size_t tw = row_bytes < tile_row_bytes ? row_bytes : tile_row_bytes;
  /* Whole rows of a contiguous strip (or one-row tiles) are hashed where they lie. */
  int in_place = tw == row_bytes && (ld_bytes == row_bytes || th == 1);
  size_t max_data = th * tw;
  size_t max_chunks = (prefix_len + 16 + max_data) / CHUNK_LEN + 1;
  uint32_t(*cvs)[8] = malloc(max_chunks * sizeof *cvs);
  uint8_t *pack = in_place ? NULL : malloc(max_data);
  if (!cvs || (!in_place && !pack)) {
    free(cvs);
    free(pack);
    return RAMNET_ENOMEM;
  }
  int wide = path == RAMNET_PATH_AVX512;
  uint8_t head[HEAD_MAX + 16];
  if (prefix_len) memcpy(head, prefix, prefix_len);
  uint8_t *o = out;
  for (size_t r0 = 0, ti = tile_row0; r0 < rows; r0 += tile_rows, ti++) {
    size_t h = rows - r0 < tile_rows ? rows - r0 : tile_rows;
    for (size_t c0 = 0, tj = 0; c0 < row_bytes; c0 += tile_row_bytes, tj++) {
      size_t w = row_bytes - c0 < tile_row_bytes ? row_bytes - c0 : tile_row_bytes;
      store_le32(head + prefix_len, (uint32_t)ti);
      store_le32(head + prefix_len + 4, (uint32_t)tj);
      store_le32(head + prefix_len + 8, (uint32_t)h);
      store_le32(head + prefix_len + 12, (uint32_t)w);
      const uint8_t *data = x + r0 * ld_bytes + c0;
      if (!in_place) {
        for (size_t r = 0; r < h; r++) memcpy(pack + r * w, data + r * ld_bytes, w);
        data = pack;
      }
      hash_leaf(wide, head, prefix_len + 16, data, h * w, cvs, o);
      o += 32;
    }
  }
  free(cvs);
  free(pack);
  return RAMNET_OK;
}

/* ---- Merkle nodes ---- */

int ramnet_hash_nodes(int path, const uint8_t *tag, size_t tag_len, const uint8_t *children,
                      size_t count, uint8_t *out) {
  if (path == RAMNET_PATH_AUTO) path = ramnet_hash_best_path();
  if (!ramnet_hash_path_supported(path)) return RAMNET_ENOTSUP;
  if (tag_len > BLOCK_LEN || (tag_len && !tag) || (count && (!children || !out)))
    return RAMNET_EINVAL;
  size_t len = tag_len + 2 * 32, blocks = (len + BLOCK_LEN - 1) / BLOCK_LEN;
  size_t i = 0;
#if RAMNET_X86
  if (path == RAMNET_PATH_AVX512)
    for (; i + 4 <= count; i += 16) { /* fewer than four: the scalar loop is as fast */
      size_t n = count - i < 16 ? count - i : 16;
      uint8_t msg[16][2 * BLOCK_LEN];
      const uint8_t *in[16];
      memset(msg, 0, sizeof msg);
      for (size_t l = 0; l < n; l++) {
        if (tag_len) memcpy(msg[l], tag, tag_len);
        memcpy(msg[l] + tag_len, children + 64 * (i + l), 64);
      }
      for (size_t l = 0; l < 16; l++) in[l] = msg[l < n ? l : 0];
      uint32_t cv[16][8];
      hash16(in, blocks, 0, 0, 0, CHUNK_START, CHUNK_END | ROOT,
             (uint32_t)(len - (blocks - 1) * BLOCK_LEN), cv);
      for (size_t l = 0; l < n; l++)
        for (unsigned w = 0; w < 8; w++) store_le32(out + 32 * (i + l) + 4 * w, cv[l][w]);
    }
#endif
  for (; i < count; i++) {
    uint8_t msg[2 * BLOCK_LEN];
    if (tag_len) memcpy(msg, tag, tag_len);
    memcpy(msg + tag_len, children + 64 * i, 64);
    uint32_t cv[8];
    chunk_cv(msg, len, 0, ROOT, cv);
    for (unsigned w = 0; w < 8; w++) store_le32(out + 32 * i + 4 * w, cv[w]);
  }
  return RAMNET_OK;
}
