// AMX (AMX-TILE, AMX-BF16, AMX-INT8) kernels, compiled into every x86 build through target
// attributes and run only at the amx level: batched products of bf16, Q8_0 and Q4_0
// weights. The weights are the tiles' first operand straight from the (memory-mapped)
// matrix (Q4_0's nibbles unpacked per block on the way); the activations are packed once
// per product, split into bf16 parts (ActFormat::bf16_split) or quantized to q8_0 and
// regrouped (ActFormat::q8_0_tiles).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels/activations.hpp"
#include "smallcoder/cpu/kernels/avx2.hpp"
#include "smallcoder/cpu/kernels/avx512.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

#ifdef SMALLCODER_X86

#include <immintrin.h>

#define SMALLCODER_AMX \
  __attribute__((target("amx-tile,amx-bf16,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

// See avx512.hpp: GCC 12's AVX-512 intrinsics trip its uninitialized-use warnings.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace smallcoder::cpu::amx {

// Transposes the 16 x 16 matrix of 32-bit elements held as rows v[0..15], in place.
SMALLCODER_AVX512_INLINE inline void transpose16(__m512i (&v)[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {  // within each 128-bit lane: pairs of rows interleaved
    t[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // lane L of v[i + j]: column 4L + j of rows i .. i + 3
    v[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    v[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    v[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    v[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int j = 0; j < 4; ++j) {  // gather lane L of v[j], v[4 + j], v[8 + j], v[12 + j] into row 4L + j
    const __m512i even_low = _mm512_shuffle_i32x4(v[j], v[4 + j], 0x88),
                  odd_low = _mm512_shuffle_i32x4(v[j], v[4 + j], 0xDD);
    const __m512i even_high = _mm512_shuffle_i32x4(v[8 + j], v[12 + j], 0x88),
                  odd_high = _mm512_shuffle_i32x4(v[8 + j], v[12 + j], 0xDD);
    t[j] = _mm512_shuffle_i32x4(even_low, even_high, 0x88);
    t[4 + j] = _mm512_shuffle_i32x4(odd_low, odd_high, 0x88);
    t[8 + j] = _mm512_shuffle_i32x4(even_low, even_high, 0xDD);
    t[12 + j] = _mm512_shuffle_i32x4(odd_low, odd_high, 0xDD);
  }
  for (int i = 0; i < 16; ++i) v[i] = t[i];
}

// ---- activations: fp32 rows split into bf16 parts, packed in tdpbf16ps's pair layout ----

// x rounded to bf16 (nearest, ties to even) and widened back: the part's value exactly.
SMALLCODER_AVX512_INLINE inline __m512 round_to_bf16(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF)));
  return _mm512_castsi512_ps(_mm512_and_si512(rounded, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
}

// The bf16 words of two vectors of bf16-valued floats (their upper halves), in order.
SMALLCODER_AVX512_INLINE inline __m512i bf16_words(__m512 low, __m512 high) {
  alignas(64) static constexpr std::int16_t kUpperHalves[32] = {1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21,
                                                                23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43,
                                                                45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
  return _mm512_permutex2var_epi16(_mm512_castps_si512(low), _mm512_load_si512(kUpperHalves),
                                   _mm512_castps_si512(high));
}

// Packs n <= kGroupTokens fp32 rows of `cols` (a multiple of 32) values, ldx floats apart,
// into one group of the bf16_split layout at out (64-byte aligned).
SMALLCODER_AVX512 inline void pack_group(const float* x, std::size_t ldx, int n, std::int64_t cols, std::byte* out) {
  for (std::int64_t c = 0; c < cols / kSplitCols; ++c) {
    __m512i parts[kSplitParts][kGroupTokens];  // per part, per token: 16 column pairs
    for (int j = 0; j < kGroupTokens; ++j) {
      if (j >= n) {
        for (auto& part : parts) part[j] = _mm512_setzero_si512();
        continue;
      }
      const float* row = x + static_cast<std::size_t>(j) * ldx + c * kSplitCols;
      __m512 low = _mm512_loadu_ps(row), high = _mm512_loadu_ps(row + 16);
      for (int p = 0; p < kSplitParts; ++p) {
        const __m512 low_part = round_to_bf16(low), high_part = round_to_bf16(high);
        parts[p][j] = bf16_words(low_part, high_part);
        low = _mm512_sub_ps(low, low_part);  // exact: what the next part rounds
        high = _mm512_sub_ps(high, high_part);
      }
    }
    for (int p = 0; p < kSplitParts; ++p) {
      transpose16(parts[p]);
      std::byte* tile = out + static_cast<std::size_t>(c * kSplitParts + p) * kSplitTileBytes;
      for (int kk = 0; kk < 16; ++kk) _mm512_store_si512(tile + 64 * kk, parts[p][kk]);
    }
  }
}

// ---- the loop nest shared by the products ----
//
// A product walks its rows in blocks of 32 (then 16, then the rest) and, for each, its
// tokens in pairs of groups: Tiles::block<RB, GB> computes RB x GB tiles of 16 weight rows
// x 16 tokens into fp32 c[i * GB + j] (row block i, group j), in tiles 0-3 (tile 2i + j),
// with tiles 4-5 for the row blocks' weights and 6-7 for the groups' activations; the
// tiles are then written, transposed, to y. Tokens go in passes of a size that keeps
// their activations in L2 beside the rows' weights.

// A palette-1 tile configuration: `rows` weight rows (<= 16) in tiles 0-5, 16 rows in
// tiles 6-7, every tile row 64 bytes; the products adjust it.
struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};

  explicit TileConfig(int weight_rows) {
    for (int i = 0; i < 8; ++i) {
      bytes_per_row[i] = 64;
      rows[i] = static_cast<std::uint8_t>(i < 6 ? weight_rows : 16);
    }
  }
};

template <int RB, int GB>
using BlockSums = float[RB * GB][16][16];

// Stores tiles 0-3 of a RB x GB block into c.
template <int RB, int GB>
SMALLCODER_AMX inline void store_tiles(BlockSums<RB, GB>& c) {
  _tile_stored(0, c[0], 64);
  if constexpr (GB == 2) _tile_stored(1, c[1], 64);
  if constexpr (RB == 2) _tile_stored(2, c[GB], 64);
  if constexpr (RB == 2 && GB == 2) _tile_stored(3, c[3], 64);
}

template <int RB, int GB>
SMALLCODER_AMX inline void zero_tiles() {
  _tile_zero(0);
  if constexpr (GB == 2) _tile_zero(1);
  if constexpr (RB == 2) _tile_zero(2);
  if constexpr (RB == 2 && GB == 2) _tile_zero(3);
}

// Writes c transposed to y[t * ldy + r] for the `rows` weight rows from r and the `tokens`
// tokens from the block's first (y points at the first's).
template <int RB, int GB>
SMALLCODER_AMX inline void write_block(const BlockSums<RB, GB>& c, int rows, int tokens, float* y, std::size_t ldy,
                                       bool accumulate) {
  for (int i = 0; i < RB; ++i) {
    const int block_rows = std::min(16, rows - 16 * i);
    const __mmask16 valid = static_cast<__mmask16>((1u << block_rows) - 1u);
    for (int j = 0; j < GB; ++j) {
      __m512i v[16];
      for (int m = 0; m < 16; ++m) v[m] = _mm512_load_si512(c[i * GB + j][m]);
      transpose16(v);
      for (int t = 0; t < std::min(16, tokens - 16 * j); ++t) {
        float* out = y + static_cast<std::size_t>(16 * j + t) * ldy + 16 * i;
        __m512 sum = _mm512_castsi512_ps(v[t]);
        if (accumulate) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(valid, out));
        _mm512_mask_storeu_ps(out, valid, sum);
      }
    }
  }
}

// Asks for the 32 rows from `first` at byte `offset` into L2, so that DRAM streams the next
// row block's weights while this one computes: a block reads 16 or 32 short row streams at
// once, too many for the hardware prefetcher alone to keep enough requests in flight.
SMALLCODER_AMX inline void prefetch_rows(const std::byte* first, std::size_t row_bytes, std::size_t offset) {
  const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(first) + offset;  // past the matrix: ignored
  for (std::size_t m = 0; m < 32; ++m) _mm_prefetch(reinterpret_cast<const char*>(p + m * row_bytes), _MM_HINT_T1);
}

// Weight rows [r, r + rows) (rows <= 16 * RB) against tokens [t0, t1) (t0 a multiple of 32),
// two groups at a time; the first pass over the rows prefetches the next 32.
template <class Tiles, int RB>
SMALLCODER_AMX inline void row_blocks(const TensorView& w, std::int64_t r, int rows, const std::byte* acts,
                                      std::size_t group_bytes, int t0, int t1, float* y, std::size_t ldy,
                                      bool accumulate) {
  for (int t = t0; t < t1; t += 2 * kGroupTokens) {
    const std::byte* a = acts + static_cast<std::size_t>(t / kGroupTokens) * group_bytes;
    float* yt = y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r);
    if (t1 - t > kGroupTokens) {
      alignas(64) BlockSums<RB, 2> c;
      Tiles::template block<RB, 2>(w, r, rows, a, group_bytes, t == t0, c);
      write_block<RB, 2>(c, rows, t1 - t, yt, ldy, accumulate);
    } else {
      alignas(64) BlockSums<RB, 1> c;
      Tiles::template block<RB, 1>(w, r, rows, a, group_bytes, t == t0, c);
      write_block<RB, 1>(c, rows, t1 - t, yt, ldy, accumulate);
    }
  }
}

// Tokens per pass over a range of weight rows: as many as keep their activations
// (act_stride bytes each) within about 768 KiB of L2 beside the rows' weights, in pairs
// of groups.
inline int tokens_per_pass(std::size_t act_stride) {
  constexpr std::size_t kPassBytes = 768 * 1024, kPair = 2 * kGroupTokens;
  return static_cast<int>(std::max(kPair, kPassBytes / act_stride / kPair * kPair));
}

// y[t * ldy + r] (+)= W[r] . x_t for r in [r0, r1), t < n, with acts the groups of x in
// Tiles' format (act_stride = act_row_bytes(format, cols): one token's share). Loads its
// tile configuration and releases the tiles before returning, so it may run on any
// thread and leaves no tile state behind.
template <class Tiles>
SMALLCODER_AMX inline void gemm(const TensorView& w, std::int64_t r0, std::int64_t r1, const std::byte* acts,
                                std::size_t act_stride, int n, float* y, std::size_t ldy, bool accumulate) {
  const std::size_t group_bytes = act_stride * kGroupTokens;
  const int rest = static_cast<int>((r1 - r0) % 16);
  const typename Tiles::Config full(16), partial(rest);
  const int span = tokens_per_pass(act_stride);
  for (int t0 = 0; t0 < n; t0 += span) {
    const int t1 = std::min(n, t0 + span);
    _tile_loadconfig(&full);
    std::int64_t r = r0;
    for (; r + 32 <= r1; r += 32) row_blocks<Tiles, 2>(w, r, 32, acts, group_bytes, t0, t1, y, ldy, accumulate);
    if (r + 16 <= r1) {
      row_blocks<Tiles, 1>(w, r, 16, acts, group_bytes, t0, t1, y, ldy, accumulate);
      r += 16;
    }
    if (rest != 0) {
      _tile_loadconfig(&partial);
      row_blocks<Tiles, 1>(w, r, rest, acts, group_bytes, t0, t1, y, ldy, accumulate);
    }
  }
  _tile_release();
}

// ---- bf16 weights x bf16_split activations: tdpbf16ps ----
//
// Each 32-column chunk: the row blocks' weights (16 rows x 64 bytes at the rows' stride),
// then per part the groups' tiles, accumulated in tiles 0-3 over all columns.
struct Bf16Tiles {
  using Config = TileConfig;

  template <int RB, int GB>
  SMALLCODER_AMX static void block(const TensorView& w, std::int64_t r, int, const std::byte* acts,
                                   std::size_t group_bytes, bool prefetch, BlockSums<RB, GB>& c) {
    const std::size_t row_bytes = w.row_bytes();
    const long w_stride = static_cast<long>(row_bytes);
    const std::byte* first = w.row(r);
    zero_tiles<RB, GB>();
    for (std::int64_t k = 0; k < w.cols / kSplitCols; ++k) {
      const std::byte* wk = first + k * kSplitCols * 2;
      if (prefetch) prefetch_rows(wk, row_bytes, 32 * row_bytes);
      _tile_loadd(4, wk, w_stride);
      if constexpr (RB == 2) _tile_loadd(5, wk + 16 * row_bytes, w_stride);
      const std::byte* ak = acts + static_cast<std::size_t>(k) * kSplitParts * kSplitTileBytes;
      for (int p = 0; p < kSplitParts; ++p) {
        _tile_loadd(6, ak + p * kSplitTileBytes, 64);
        if constexpr (GB == 2) _tile_loadd(7, ak + p * kSplitTileBytes + group_bytes, 64);
        _tile_dpbf16ps(0, 4, 6);
        if constexpr (GB == 2) _tile_dpbf16ps(1, 4, 7);
        if constexpr (RB == 2) _tile_dpbf16ps(2, 5, 6);
        if constexpr (RB == 2 && GB == 2) _tile_dpbf16ps(3, 5, 7);
      }
    }
    store_tiles<RB, GB>(c);
  }
};

// ---- Q8_0 and Q4_0 weights x q8_0_tiles activations: tdpbssd per block, scaled in AVX-512 ----
//
// Per 32-element block b: tdpbssd on signed bytes gives each (row, token) the block's exact
// int32 sum (the scalar level's block sum); AVX-512 adds it times the row's and the token's
// scales into fp32 sums, block after block as the scalar level does. Blocks::tile gives
// where a tile load finds block b of 16 rows (fewer in a partial tile) as 32 signed bytes
// each. (GCC's tile intrinsics paste the tile number into their assembly text, so it must
// be a literal at the call, never a template parameter.)

struct TileSource {
  const void* data;
  long stride;
};

// Q8_0: the quants straight from the blocks, 32 bytes at 2 + 34 b in each row.
struct Q8_0Blocks {
  static constexpr std::size_t kBytes = sizeof(BlockQ8_0);
  struct Scratch {};

  SMALLCODER_AMX static TileSource tile(const std::byte* first, std::size_t row_bytes, int, std::int64_t b, Scratch&) {
    return {first + static_cast<std::size_t>(b) * kBytes + 2, static_cast<long>(row_bytes)};
  }
};

// Q4_0: the 16 bytes of nibbles of each row unpacked to q - 8 in element order (low nibbles
// are elements 0-15, high ones 16-31) into a scratch tile, four rows per 512-bit vector.
struct Q4_0Blocks {
  static constexpr std::size_t kBytes = sizeof(BlockQ4_0);
  struct Scratch {
    alignas(64) std::int8_t q[16][kQ0Block];
  };

  SMALLCODER_AMX static TileSource tile(const std::byte* first, std::size_t row_bytes, int rows, std::int64_t b,
                                        Scratch& s) {
    const std::byte* p = first + static_cast<std::size_t>(b) * kBytes + 2;
    const __m512i low = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    const __m512i first_pair = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11),
                  second_pair = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    for (int m = 0; m < rows; m += 4) {  // rows of a partial tile past `rows` stay unread
      auto row = [&](int i) {
        return m + i < rows ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + (m + i) * row_bytes))
                            : _mm_setzero_si128();
      };
      __m512i q = _mm512_castsi128_si512(row(0));
      q = _mm512_inserti32x4(q, row(1), 1);
      q = _mm512_inserti32x4(q, row(2), 2);
      q = _mm512_inserti32x4(q, row(3), 3);
      const __m512i lo = _mm512_sub_epi8(_mm512_and_si512(q, low), eight);
      const __m512i hi = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(q, 4), low), eight);
      _mm512_store_si512(s.q[m], _mm512_permutex2var_epi64(lo, first_pair, hi));  // rows m, m + 1
      _mm512_store_si512(s.q[m + 2], _mm512_permutex2var_epi64(lo, second_pair, hi));
    }
    return {s.q, kQ0Block};
  }
};

template <class Blocks>
struct QuantTiles {
  // The weight tiles are one block (32 bytes) wide, the activation tiles 8 rows of quads.
  struct Config : TileConfig {
    explicit Config(int weight_rows) : TileConfig(weight_rows) {
      bytes_per_row[4] = bytes_per_row[5] = kQ0Block;
      rows[6] = rows[7] = kQ0Block / 4;
    }
  };

  // The f16 scales of block b of `rows` (<= 16) rows from `first`, as fp32.
  SMALLCODER_AMX static __m512 row_scales(const std::byte* first, std::size_t row_bytes, int rows, std::int64_t b) {
    const __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                               _mm512_set1_epi32(static_cast<int>(row_bytes)));
    const __mmask16 valid = static_cast<__mmask16>((1u << rows) - 1u);
    // 4 bytes from each block's start: its scale and two quant bytes, all inside the row.
    const __m512i words = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, offsets,
                                                      first + static_cast<std::size_t>(b) * Blocks::kBytes, 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(words));
  }

  template <int RB, int GB>
  SMALLCODER_AMX static void block(const TensorView& w, std::int64_t r, int rows, const std::byte* acts,
                                   std::size_t group_bytes, bool prefetch, BlockSums<RB, GB>& c) {
    const std::size_t row_bytes = w.row_bytes();
    const std::byte* first = w.row(r);
    const std::byte* tiles = acts + q8_0_tiles_at(w.cols);
    for (auto& tile : c) {
      for (auto& row : tile) _mm512_store_ps(row, _mm512_setzero_ps());
    }
    alignas(64) std::int32_t sums[RB * GB][16][16];
    alignas(64) float scales[RB][16];
    typename Blocks::Scratch scratch[RB];
    for (std::int64_t b = 0; b < w.cols / kQ0Block; ++b) {
      if (prefetch) prefetch_rows(first + static_cast<std::size_t>(b) * Blocks::kBytes, row_bytes, 32 * row_bytes);
      const std::byte* ab = tiles + static_cast<std::size_t>(b) * kQ8TileBytes;
      zero_tiles<RB, GB>();
      const TileSource a0 = Blocks::tile(first, row_bytes, std::min(16, rows), b, scratch[0]);
      _tile_loadd(4, a0.data, a0.stride);
      if constexpr (RB == 2) {
        const TileSource a1 = Blocks::tile(first + 16 * row_bytes, row_bytes, rows - 16, b, scratch[RB - 1]);
        _tile_loadd(5, a1.data, a1.stride);
      }
      _tile_loadd(6, ab, 64);
      if constexpr (GB == 2) _tile_loadd(7, ab + group_bytes, 64);
      _tile_dpbssd(0, 4, 6);
      if constexpr (GB == 2) _tile_dpbssd(1, 4, 7);
      if constexpr (RB == 2) _tile_dpbssd(2, 5, 6);
      if constexpr (RB == 2 && GB == 2) _tile_dpbssd(3, 5, 7);
      _tile_stored(0, sums[0], 64);
      if constexpr (GB == 2) _tile_stored(1, sums[1], 64);
      if constexpr (RB == 2) _tile_stored(2, sums[GB], 64);
      if constexpr (RB == 2 && GB == 2) _tile_stored(3, sums[3], 64);
      for (int i = 0; i < RB; ++i) {
        _mm512_store_ps(scales[i], row_scales(first + 16 * i * row_bytes, row_bytes, std::min(16, rows - 16 * i), b));
      }
      for (int j = 0; j < GB; ++j) {
        const __m512 token_scales = _mm512_loadu_ps(
            reinterpret_cast<const float*>(ab + static_cast<std::size_t>(j) * group_bytes + kQ8QuadBytes));
        for (int i = 0; i < RB; ++i) {
          for (int m = 0; m < 16; ++m) {
            const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(scales[i][m]), token_scales);
            const __m512 products = _mm512_cvtepi32_ps(_mm512_load_si512(sums[i * GB + j][m]));
            _mm512_store_ps(c[i * GB + j][m], _mm512_fmadd_ps(scale, products, _mm512_load_ps(c[i * GB + j][m])));
          }
        }
      }
    }
  }
};

// Quantizes n <= kGroupTokens fp32 rows of `cols` (a multiple of 32) values, ldx floats
// apart, into one group of the q8_0_tiles layout at out (64-byte aligned): the q8_0 rows
// first, then their quants regrouped two blocks at a time (16 tokens x 16 quads, transposed).
SMALLCODER_AVX512 inline void pack_q8_0_group(const float* x, std::size_t ldx, int n, std::int64_t cols,
                                              std::byte* out) {
  const std::size_t row = act_row_bytes(ActFormat::q8_0, cols);
  for (int j = 0; j < kGroupTokens; ++j) {
    std::byte* q = out + static_cast<std::size_t>(j) * row;
    if (j < n) {
      avx2::quantize_acts_q8_0(x + static_cast<std::size_t>(j) * ldx, cols, q);
    } else {
      std::memset(q, 0, row);
    }
  }
  std::byte* tiles = out + q8_0_tiles_at(cols);
  const std::int64_t blocks = cols / kQ0Block;
  const __m512i token_offsets =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int>(row)));
  for (std::int64_t b = 0; b < blocks; b += 2) {
    const bool pair = b + 1 < blocks;
    __m512i v[16];
    for (int j = 0; j < kGroupTokens; ++j) {
      const std::byte* q = out + static_cast<std::size_t>(j) * row + b * kQ0Block;
      v[j] = pair ? _mm512_loadu_si512(q) : _mm512_maskz_loadu_epi32(0x00FF, q);
    }
    transpose16(v);  // v[kq]: quad kq of block b for every token; v[8 + kq]: of block b + 1
    for (int half = 0; half < (pair ? 2 : 1); ++half) {
      std::byte* tile = tiles + static_cast<std::size_t>(b + half) * kQ8TileBytes;
      for (int kq = 0; kq < 8; ++kq) _mm512_storeu_si512(tile + 64 * kq, v[8 * half + kq]);
      const __m512 d = _mm512_i32gather_ps(token_offsets, out + cols + 4 * (b + half), 1);
      _mm512_storeu_ps(tile + kQ8QuadBytes, d);
    }
  }
}

}  // namespace smallcoder::cpu::amx

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // SMALLCODER_X86
