// AMX (AMX-TILE, AMX-BF16) kernels, compiled into every x86 build through target attributes
// and run only at the amx level: batched products of bf16 weights. The weight rows are
// tdpbf16ps's first operand straight from the (memory-mapped) matrix; the activations are
// split into bf16 parts and packed once per product (ActFormat::bf16_split).
#pragma once

#include "smallcoder/cpu/isa.hpp"

#ifdef SMALLCODER_X86

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "smallcoder/cpu/kernels/activations.hpp"
#include "smallcoder/cpu/kernels/avx512.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

#define SMALLCODER_AMX \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

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
    const __m512i even_low = _mm512_shuffle_i32x4(v[j], v[4 + j], 0x88), odd_low = _mm512_shuffle_i32x4(v[j], v[4 + j], 0xDD);
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

// Packs n <= kSplitTokens fp32 rows of `cols` (a multiple of 32) values, ldx floats apart,
// into one group of the bf16_split layout at out (64-byte aligned).
SMALLCODER_AVX512 inline void pack_group(const float* x, std::size_t ldx, int n, std::int64_t cols, std::byte* out) {
  for (std::int64_t c = 0; c < cols / kSplitCols; ++c) {
    __m512i parts[kSplitParts][kSplitTokens];  // per part, per token: 16 column pairs
    for (int j = 0; j < kSplitTokens; ++j) {
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

// ---- bf16 weights x bf16_split activations ----
//
// Tiles 0-3 accumulate C = W . X^T for up to 2 x 2 blocks of 16 weight rows x 16 tokens
// (tile 2i + j: row block i, token group j), tiles 4-5 hold the two row blocks' weights
// (16 rows x 32 columns), tiles 6-7 the two groups' activations of one part.

// The palette-1 tile configuration: `rows` weight rows (<= 16) in tiles 0-5, 16 pair rows
// of activations in tiles 6-7, every tile row 64 bytes.
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

// Writes the C tiles of a RB x GB block, transposed, to y[t * ldy + r] for the `rows` weight
// rows from r and the `tokens` tokens from the block's first.
template <int RB, int GB>
SMALLCODER_AMX inline void store_block(int rows, int tokens, float* y, std::size_t ldy, bool accumulate) {
  alignas(64) float c[RB * GB][16][16];
  _tile_stored(0, c[0], 64);
  if constexpr (GB == 2) _tile_stored(1, c[1], 64);
  if constexpr (RB == 2) _tile_stored(2, c[GB], 64);
  if constexpr (RB == 2 && GB == 2) _tile_stored(3, c[3], 64);
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

// One RB x GB block over all columns: w = the first weight row's start (row_bytes apart),
// acts = the first group's start (group_bytes apart). With `prefetch`, it asks for the
// weights of the next 32 rows into L2 as it goes, so that DRAM streams them while the tiles
// compute: a block reads 16 or 32 short row streams at once, too many for the hardware
// prefetcher alone to keep enough requests in flight.
template <int RB, int GB>
SMALLCODER_AMX inline void block(const std::byte* w, std::size_t row_bytes, std::int64_t chunks, const std::byte* acts,
                                 std::size_t group_bytes, bool prefetch) {
  _tile_zero(0);
  if constexpr (GB == 2) _tile_zero(1);
  if constexpr (RB == 2) _tile_zero(2);
  if constexpr (RB == 2 && GB == 2) _tile_zero(3);
  const long w_stride = static_cast<long>(row_bytes);
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::byte* wc = w + c * kSplitCols * 2;
    if (prefetch) {
      for (int m = 32; m < 64; ++m) {
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(wc) + m * row_bytes), _MM_HINT_T1);
      }
    }
    _tile_loadd(4, wc, w_stride);
    if constexpr (RB == 2) _tile_loadd(5, wc + 16 * row_bytes, w_stride);
    const std::byte* ac = acts + static_cast<std::size_t>(c) * kSplitParts * kSplitTileBytes;
    for (int p = 0; p < kSplitParts; ++p) {
      _tile_loadd(6, ac + p * kSplitTileBytes, 64);
      if constexpr (GB == 2) _tile_loadd(7, ac + p * kSplitTileBytes + group_bytes, 64);
      _tile_dpbf16ps(0, 4, 6);
      if constexpr (GB == 2) _tile_dpbf16ps(1, 4, 7);
      if constexpr (RB == 2) _tile_dpbf16ps(2, 5, 6);
      if constexpr (RB == 2 && GB == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
}

// Weight rows [r, r + rows) (rows <= 16 * RB) against tokens [t0, t1) (t0 a multiple of
// 32), two groups at a time; the first pass over the rows prefetches the next ones.
template <int RB>
SMALLCODER_AMX inline void row_blocks(const TensorView& w, std::int64_t r, int rows, const std::byte* acts,
                                      std::size_t group_bytes, int t0, int t1, float* y, std::size_t ldy,
                                      bool accumulate) {
  const std::int64_t chunks = w.cols / kSplitCols;
  for (int t = t0; t < t1; t += 2 * kSplitTokens) {
    const std::byte* a = acts + static_cast<std::size_t>(t / kSplitTokens) * group_bytes;
    float* yt = y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r);
    if (t1 - t > kSplitTokens) {
      block<RB, 2>(w.row(r), w.row_bytes(), chunks, a, group_bytes, t == t0);
      store_block<RB, 2>(rows, t1 - t, yt, ldy, accumulate);
    } else {
      block<RB, 1>(w.row(r), w.row_bytes(), chunks, a, group_bytes, t == t0);
      store_block<RB, 1>(rows, t1 - t, yt, ldy, accumulate);
    }
  }
}

// Tokens per pass over a range of weight rows: as many as keep their packed activations
// (kSplitParts * 2 bytes per column) within about 768 KiB of L2 beside the rows' weights,
// in pairs of groups.
inline int tokens_per_pass(std::int64_t cols) {
  constexpr std::int64_t kPassBytes = 768 * 1024, kPair = 2 * kSplitTokens;
  const std::int64_t fit = kPassBytes / (cols * kSplitParts * 2) / kPair * kPair;
  return static_cast<int>(std::max(kPair, fit));
}

// y[t * ldy + r] (+)= W[r] . x_t for r in [r0, r1), t < n, with acts the bf16_split groups
// of x (act_stride = act_row_bytes(bf16_split, cols): one token's share) and W.cols a
// multiple of 32. Loads its tile configuration and releases the tiles before returning, so
// it may run on any thread and leaves no tile state behind.
SMALLCODER_AMX inline void gemm_bf16(const TensorView& w, std::int64_t r0, std::int64_t r1, const std::byte* acts,
                                     std::size_t act_stride, int n, float* y, std::size_t ldy, bool accumulate) {
  const std::size_t group_bytes = act_stride * kSplitTokens;
  const TileConfig full(16);
  const int rest = static_cast<int>((r1 - r0) % 16);
  const TileConfig partial(rest);
  const int span = tokens_per_pass(w.cols);
  for (int t0 = 0; t0 < n; t0 += span) {
    const int t1 = std::min(n, t0 + span);
    _tile_loadconfig(&full);
    std::int64_t r = r0;
    for (; r + 32 <= r1; r += 32) row_blocks<2>(w, r, 32, acts, group_bytes, t0, t1, y, ldy, accumulate);
    if (r + 16 <= r1) {
      row_blocks<1>(w, r, 16, acts, group_bytes, t0, t1, y, ldy, accumulate);
      r += 16;
    }
    if (rest != 0) {
      _tile_loadconfig(&partial);
      row_blocks<1>(w, r, rest, acts, group_bytes, t0, t1, y, ldy, accumulate);
    }
  }
  _tile_release();
}

}  // namespace smallcoder::cpu::amx

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // SMALLCODER_X86
