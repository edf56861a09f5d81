// AVX-512 (F, BW, VL, DQ, VNNI) kernels, compiled into every x86 build through target
// attributes and run only where cpuid reports all of them: 16-lane register tiles for the
// float weights, groups of four Q4_0 blocks multiplied with vpdpbusd, and Q8_0 with the AVX2
// level's arithmetic, two rows per vector for batches; Q4_0 and Q8_0 have leaner kernels
// for one token. The tiles prefetch the rows of the tile after them. The k-quants and the
// activation quantizers of this level are the AVX2 ones.
#pragma once

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels/activations.hpp"
#include "smallcoder/cpu/kernels/avx2.hpp"
#include "smallcoder/cpu/kernels/tiling.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

#ifdef SMALLCODER_X86

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#define SMALLCODER_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define SMALLCODER_AVX512_INLINE \
  __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

// GCC 12's AVX-512 intrinsics start from self-initialized "undefined" vectors, which its
// uninitialized-use warnings report at every caller (GCC bug 105593, fixed in 12.3).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace smallcoder::cpu::avx512 {

// GCC treats a masked load as possibly reading any memory, so a loop containing one keeps its
// accumulator arrays in memory, storing every accumulator on every iteration (half speed).
// Hence the kernels below load with plain loads in their main loops and with masked loads
// only in a final partial step, whose results go to separate accumulators added at the end.

template <int R, int T>
SMALLCODER_AVX512_INLINE inline void add_into(__m512 (&acc)[R][T], const __m512 (&part)[R][T]) {
  for (int i = 0; i < R; ++i) {
    for (int t = 0; t < T; ++t) acc[i][t] = _mm512_add_ps(acc[i][t], part[i][t]);
  }
}

template <int R, int T>
SMALLCODER_AVX512_INLINE inline void zero(__m512 (&acc)[R][T]) {
  for (int i = 0; i < R; ++i) {
    for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_ps();
  }
}

// A one-token kernel's row range in one function compiled for AVX-512 (walk_decode_rows).
template <class Decode>
struct DecodeRange {
  SMALLCODER_AVX512 __attribute__((flatten)) static void range(const TensorView& w, std::int64_t r0, std::int64_t r1,
                                                               const std::byte* act, float* y, bool accumulate) {
    walk_decode_rows<Decode>(w, r0, r1, act, y, accumulate);
  }
};

// ---- float weights: fp32 activations, exact fp32 products, 16 lanes of partial sums ----

// load<kMasked>(row, k, mask): elements k .. k+15 of a row as fp32; with kMasked, lanes
// outside `mask` are zero and their memory is not read.
struct F32Rows {
  template <bool kMasked>
  SMALLCODER_AVX512_INLINE static __m512 load(const std::byte* row, std::int64_t k, __mmask16 mask) {
    const float* p = reinterpret_cast<const float*>(row) + k;
    return kMasked ? _mm512_maskz_loadu_ps(mask, p) : _mm512_loadu_ps(p);
  }
};

// 16-bit elements k .. k+15 at row.
template <bool kMasked>
SMALLCODER_AVX512_INLINE inline __m256i load_halves(const std::byte* row, std::int64_t k, __mmask16 mask) {
  return kMasked ? _mm256_maskz_loadu_epi16(mask, row + 2 * k)
                 : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * k));
}

struct Bf16Rows {
  template <bool kMasked>
  SMALLCODER_AVX512_INLINE static __m512 load(const std::byte* row, std::int64_t k, __mmask16 mask) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(load_halves<kMasked>(row, k, mask)), 16));
  }
};

struct F16Rows {
  template <bool kMasked>
  SMALLCODER_AVX512_INLINE static __m512 load(const std::byte* row, std::int64_t k, __mmask16 mask) {
    return _mm512_cvtph_ps(load_halves<kMasked>(row, k, mask));
  }
};

// R rows x T tokens of 16-lane accumulators: 4 x 4 uses 16 of the 32 registers, so every
// loaded weight vector feeds four FMAs and every activation vector four.
template <class Rows>
struct FloatTiles {
  static constexpr int kRows = 4, kTokens = 4;

  template <int R, int T, bool kMasked>
  SMALLCODER_AVX512_INLINE static void step(const std::byte* const* rows, const float* const* x, std::int64_t k,
                                            __mmask16 mask, __m512 (&acc)[R][T]) {
    __m512 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = kMasked ? _mm512_maskz_loadu_ps(mask, x[t] + k) : _mm512_loadu_ps(x[t] + k);
    for (int i = 0; i < R; ++i) {
      const __m512 wv = Rows::template load<kMasked>(rows[i], k, mask);
      for (int t = 0; t < T; ++t) acc[i][t] = _mm512_fmadd_ps(wv, xv[t], acc[i][t]);
    }
  }

  template <int R, int T>
  SMALLCODER_AVX512 static void tile(const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride,
                                     float* y, std::size_t ldy, bool accumulate) {
    const std::int64_t n = w.cols;
    const std::byte* rows[R];
    const float* x[T];
    __m512 acc[R][T];
    for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
    for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(acts + static_cast<std::size_t>(t) * act_stride);
    zero(acc);
    std::int64_t k = 0;
    const std::size_t ahead = R * w.row_bytes(), element = w.row_bytes() / static_cast<std::size_t>(n);
    for (; k + 16 <= n; k += 16) {
      for (int i = 0; i < R; ++i) prefetch_ahead(rows[i] + k * element, ahead);
      step<R, T, false>(rows, x, k, 0, acc);
    }
    if (k < n) {
      __m512 tail[R][T];
      zero(tail);
      step<R, T, true>(rows, x, k, static_cast<__mmask16>((1u << (n - k)) - 1u), tail);
      add_into(acc, tail);
    }
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) {
        const float sum = _mm512_reduce_add_ps(acc[i][t]);
        store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r + i), sum, accumulate);
      }
    }
  }
};

// ---- Q4_0: four blocks per step, vpdpbusd on 512-bit vectors ----
//
// A step covers a group of G <= 4 consecutive blocks. Vector A holds the first 16 elements
// of each block, vector B the last 16, so vpdpbusd leaves four int32 lanes per block and a
// single float multiply-add applies the four blocks' scales. The stored nibbles serve as the
// unsigned operand as they are (8 above the values); -8 * (the block's activation sum) in the
// block's first lane corrects that, exactly, since vpdpbusd does not saturate. Lanes of
// absent blocks (G < 4) are zero on both sides.

// Byte mask of the first n (<= 64) bytes.
inline __mmask64 first_bytes(int n) { return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1; }

// The first `valid` bytes at p (at most 64), the rest zero: a plain load when all 64 are
// valid (see the note on masked loads above), else a masked one that reads no further.
SMALLCODER_AVX512_INLINE inline __m512i load_bytes(const std::byte* p, int valid) {
  return valid >= 64 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(first_bytes(valid), p);
}

// 32 word offsets for a word permute, as constant data.
struct WordIndex {
  std::int16_t words[32];
};

constexpr int kQ4_0Words = static_cast<int>(sizeof(BlockQ4_0)) / 2;  // 9

// Offsets, from a block's quants, of the 8 words of quants of block i / 8 (i < 32).
constexpr WordIndex q4_0_quant_index() {
  WordIndex index{};
  for (int i = 0; i < 32; ++i) index.words[i] = static_cast<std::int16_t>(kQ4_0Words * (i / 8) + i % 8);
  return index;
}

// Offsets, from a block's start, of the scales of blocks i / 4 (i < 16), each repeated for
// the block's four lanes.
constexpr WordIndex q4_0_scale_index() {
  WordIndex index{};
  for (int i = 0; i < 16; ++i) index.words[i] = static_cast<std::int16_t>(kQ4_0Words * (i / 4));
  return index;
}

SMALLCODER_AVX512_INLINE inline __m512i load_index(const WordIndex& index) { return _mm512_loadu_si512(index.words); }

struct Q4_0Groups {
  static constexpr int kBytes = sizeof(BlockQ4_0);
  static constexpr WordIndex kQuantWords = q4_0_quant_index();
  static constexpr WordIndex kScaleWords = q4_0_scale_index();

  // Halves A and B of blocks [b, b + G) starting at p, as unsigned nibbles.
  template <int G>
  SMALLCODER_AVX512_INLINE static void unpack(const std::byte* p, __m512i& a, __m512i& b) {
    // The 16 quant bytes of each block in one vector: blocks 0-2 by one single-source word
    // permute of the 64 bytes from p + 2, block 3 (bytes 56-71) broadcast into the last lane.
    // (A two-source permute, vpermt2w, takes two cycles; this is faster.)
    constexpr int kFirst = G < 4 ? G : 3;
    const __m512i window = load_bytes(p + 2, G == 4 ? 64 : kFirst * kBytes - 2);  // a full group is 72 bytes
    __m512i bytes = _mm512_maskz_permutexvar_epi16(static_cast<__mmask32>((1ull << (8 * kFirst)) - 1),
                                                   load_index(kQuantWords), window);
    if constexpr (G == 4) {
      bytes = _mm512_mask_broadcast_i32x4(bytes, 0xF000,
                                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 3 * kBytes + 2)));
    }
    const __m512i low = _mm512_set1_epi8(0x0F);
    a = _mm512_and_si512(bytes, low);
    b = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low);
  }

  // The f16 scales of the G blocks at p as fp32 lanes [d0 x 4, d1 x 4, d2 x 4, d3 x 4]. A full
  // group reads its first 64 bytes (it is 72 long); a partial one no further than its scales.
  template <int G>
  SMALLCODER_AVX512_INLINE static __m512 scales(const std::byte* p) {
    const __m512i words =
        _mm512_permutexvar_epi16(load_index(kScaleWords), load_bytes(p, G == 4 ? 64 : (G - 1) * kBytes + 2));
    return _mm512_maskz_mov_ps(static_cast<__mmask16>((1u << (4 * G)) - 1u),
                               _mm512_cvtph_ps(_mm512_castsi512_si256(words)));
  }
};

// One token's activations for a group of G blocks starting at block b.
struct ActGroup {
  __m512i a, b;        // first and second halves of the blocks, as the weights' A and B
  __m512 d;            // scales [d0 x 4, ..., d3 x 4]
  __m512i correction;  // -8 * sum in lanes 0, 4, 8, 12
};

template <int G>
SMALLCODER_AVX512_INLINE inline ActGroup act_group(const Q8Acts& acts, std::int64_t b) {
  const std::int8_t* q = acts.qs + b * kQ0Block;
  const __m512i z0 = load_bytes(reinterpret_cast<const std::byte*>(q), 32 * (G < 2 ? G : 2));
  const __m512i z1 =
      G > 2 ? load_bytes(reinterpret_cast<const std::byte*>(q + 64), 32 * (G - 2)) : _mm512_setzero_si512();
  const __mmask8 present = static_cast<__mmask8>((1u << G) - 1u);
  const __m128 d4 = G == 4 ? _mm_loadu_ps(acts.d + b) : _mm_maskz_loadu_ps(present, acts.d + b);
  const __m128i s4 = G == 4 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(acts.sums + b))
                            : _mm_maskz_loadu_epi32(present, acts.sums + b);
  const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const __m512 d = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(d4));
  const __m512i sums = _mm512_maskz_permutexvar_epi32(0x1111, spread, _mm512_castsi128_si512(s4));
  return {_mm512_shuffle_i64x2(z0, z1, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_i64x2(z0, z1, _MM_SHUFFLE(3, 1, 3, 1)),
          d, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, 3))};
}

// The exact integer products of a group: 4 lanes per block summing to its block sum.
SMALLCODER_AVX512_INLINE inline __m512i group_lanes(const ActGroup& x, __m512i wa, __m512i wb) {
  return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(x.correction, wa, x.a), wb, x.b);
}

// 4 rows x 3 tokens: a row's group takes three registers (A, B, scales) and a token's four,
// which with twelve accumulators fits the 32 vector registers.
template <class Blocks>
struct QuantTiles {
  static constexpr int kRows = 4, kTokens = 3;

  template <int R, int T, int G>
  SMALLCODER_AVX512_INLINE static void step(const std::byte* const* rows, const Q8Acts* a, std::int64_t b,
                                            __m512 (&acc)[R][T]) {
    __m512i wa[R], wb[R];
    __m512 wd[R];
    for (int i = 0; i < R; ++i) {
      const std::byte* p = rows[i] + b * Blocks::kBytes;
      Blocks::template unpack<G>(p, wa[i], wb[i]);
      wd[i] = Blocks::template scales<G>(p);
    }
    for (int t = 0; t < T; ++t) {
      const ActGroup x = act_group<G>(a[t], b);
      for (int i = 0; i < R; ++i) {
        const __m512 products = _mm512_cvtepi32_ps(group_lanes(x, wa[i], wb[i]));
        acc[i][t] = _mm512_fmadd_ps(products, _mm512_mul_ps(wd[i], x.d), acc[i][t]);
      }
    }
  }

  template <int R, int T>
  SMALLCODER_AVX512 static void tile(const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride,
                                     float* y, std::size_t ldy, bool accumulate) {
    const std::int64_t blocks = w.cols / kQ0Block;
    const std::byte* rows[R];
    Q8Acts a[T];
    __m512 acc[R][T];
    for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
    for (int t = 0; t < T; ++t) a[t] = q8_acts(acts + static_cast<std::size_t>(t) * act_stride, w.cols);
    zero(acc);
    std::int64_t b = 0;
    const std::size_t ahead = R * w.row_bytes();
    for (; b + 4 <= blocks; b += 4) {
      for (int i = 0; i < R; ++i) {  // a group is 72 bytes: two lines cover it
        prefetch_ahead(rows[i] + b * Blocks::kBytes, ahead);
        prefetch_ahead(rows[i] + b * Blocks::kBytes + 64, ahead);
      }
      step<R, T, 4>(rows, a, b, acc);
    }
    if (b < blocks) {
      __m512 tail[R][T];
      zero(tail);
      switch (blocks - b) {
        case 3:
          step<R, T, 3>(rows, a, b, tail);
          break;
        case 2:
          step<R, T, 2>(rows, a, b, tail);
          break;
        default:
          step<R, T, 1>(rows, a, b, tail);
          break;
      }
      add_into(acc, tail);
    }
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) {
        const float sum = _mm512_reduce_add_ps(acc[i][t]);
        store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r + i), sum, accumulate);
      }
    }
  }
};

// ---- Q4_0 for one token: four rows' block sums side by side ----
//
// One token's product streams each weight once, and Q4_0 from cache is bound by the
// instructions per block. Each of four rows leaves a group's 16 int32 lanes (group_lanes);
// two rounds of unpack-and-add transpose the four rows' lanes into one vector of exact
// (block, row) sums, lane 4 * block + row, so one conversion, one scale product and one FMA
// serve 16 row-blocks instead of four, and the rows' 16 f16 scales come in the same order
// from two two-source word permutes (measured on Tiny's products from cache: 1.25 -> 1.10 ms
// per token with two threads). Integer sums are exact, so the result differs from
// QuantTiles' only in the rounding of the float steps.

// Word offsets, in two 64-byte windows (the second from 32 on), of the scale of block
// j / 4 of row j % 4: even rows from the first window, odd ones from the second.
constexpr WordIndex q4_0_row_scale_index() {
  WordIndex index{};
  for (int j = 0; j < 16; ++j) index.words[j] = static_cast<std::int16_t>(kQ4_0Words * (j / 4) + (j % 2 == 1 ? 32 : 0));
  return index;
}

struct Q4_0Decode : DecodeRange<Q4_0Decode> {
  static constexpr int kRows = 4;
  static constexpr WordIndex kScaleWords = q4_0_row_scale_index();

  // Lane 4k + i of the result: row i's exact sum over block k (lanes 4k .. 4k + 3 of lanes[i]).
  SMALLCODER_AVX512_INLINE static __m512i transpose_sums(const __m512i (&lanes)[kRows]) {
    const __m512i s01 =
        _mm512_add_epi32(_mm512_unpacklo_epi32(lanes[0], lanes[1]), _mm512_unpackhi_epi32(lanes[0], lanes[1]));
    const __m512i s23 =
        _mm512_add_epi32(_mm512_unpacklo_epi32(lanes[2], lanes[3]), _mm512_unpackhi_epi32(lanes[2], lanes[3]));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
  }

  // The scales of blocks [b, b + G) of the four rows at p[i], in transpose_sums' order; a
  // partial group reads no further than its last scale, and its absent scales are zero.
  template <int G>
  SMALLCODER_AVX512_INLINE static __m512 scales(const std::byte* const* p) {
    constexpr int kValid = G == 4 ? 64 : (G - 1) * Q4_0Groups::kBytes + 2;
    const __m512i index = load_index(kScaleWords);
    const __m512i rows01 = _mm512_permutex2var_epi16(load_bytes(p[0], kValid), index, load_bytes(p[1], kValid));
    const __m512i rows23 = _mm512_permutex2var_epi16(load_bytes(p[2], kValid), index, load_bytes(p[3], kValid));
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_mask_blend_epi16(0xCCCC, rows01, rows23)));
  }

  template <int G>
  SMALLCODER_AVX512_INLINE static __m512 step(const std::byte* const* rows, const Q8Acts& a, std::int64_t b,
                                              std::size_t ahead, __m512 acc) {
    const ActGroup x = act_group<G>(a, b);
    const std::byte* p[kRows];
    __m512i lanes[kRows];
    for (int i = 0; i < kRows; ++i) {
      p[i] = rows[i] + b * Q4_0Groups::kBytes;
      prefetch_ahead(p[i], ahead);  // a group is 72 bytes: two lines cover it
      prefetch_ahead(p[i] + 64, ahead);
      __m512i wa, wb;
      Q4_0Groups::unpack<G>(p[i], wa, wb);
      lanes[i] = group_lanes(x, wa, wb);
    }
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(transpose_sums(lanes)), _mm512_mul_ps(scales<G>(p), x.d), acc);
  }

  // R <= 4 rows r + i * spacing; fewer than four repeat the last row and store it once.
  template <int R>
  SMALLCODER_AVX512 static void rows(const TensorView& w, std::int64_t r, std::int64_t spacing, const std::byte* act,
                                     float* y, bool accumulate) {
    const std::int64_t blocks = w.cols / kQ0Block;
    const std::size_t ahead = w.row_bytes();  // the stream's next row
    const std::byte* rows[kRows];
    for (int i = 0; i < kRows; ++i) rows[i] = w.row(r + (i < R ? i : R - 1) * spacing);
    const Q8Acts a = q8_acts(act, w.cols);
    __m512 acc = _mm512_setzero_ps();
    std::int64_t b = 0;
    for (; b + 4 <= blocks; b += 4) acc = step<4>(rows, a, b, ahead, acc);
    switch (blocks - b) {
      case 3:
        acc = step<3>(rows, a, b, ahead, acc);
        break;
      case 2:
        acc = step<2>(rows, a, b, ahead, acc);
        break;
      case 1:
        acc = step<1>(rows, a, b, ahead, acc);
        break;
      default:
        break;
    }
    // Row i's total: lanes i, 4 + i, 8 + i, 12 + i.
    const __m256 half = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    float sums[kRows];
    _mm_storeu_ps(sums, _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1)));
    for (int i = 0; i < R; ++i) store_result(y + r + i * spacing, sums[i], accumulate);
  }
};

// ---- Q8_0: two weight rows per 512-bit vector, with the AVX2 level's arithmetic ----
//
// Each 256-bit half computes what the AVX2 level computes for one row: vpdpbusd over |w| and
// a * sign(w) gives exactly the int32 lanes maddubs + madd give (each lane the sum of 4
// products, no saturation either way), and each block is multiply-added in the same order,
// so the two levels agree bit for bit. That arithmetic is also llama.cpp's x86 Q8_0 dot
// product (sign trick, 8 lanes, one FMA per block, same final sum), so a greedy continuation
// that passes a near tie of the logits resolves it as llama.cpp does.
struct Q8_0Tiles {
  static constexpr int kRows = 4, kTokens = 6;  // 2 row pairs x 6 tokens: 12 accumulators

  // One block of two rows: |w| as unsigned bytes, the lanes where w < 0, the two f16 scales.
  struct RowPair {
    __m512i magnitude;
    __mmask64 negative;
    __m512 d;
  };

  SMALLCODER_AVX512_INLINE static RowPair unpack(const std::byte* first, const std::byte* second) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + 2));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(second + 2));
    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    // Both f16 scales through one conversion, then spread over their halves.
    const std::uint32_t scales = avx2::u16_at(first) | static_cast<std::uint32_t>(avx2::u16_at(second)) << 16;
    const __m128 d01 = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(scales)));
    const __m512i spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return {_mm512_abs_epi8(w), _mm512_movepi8_mask(w), _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(d01))};
  }

  // int32 lanes of one token's block a (broadcast to both halves) against a row pair. Where
  // w == 0, |w| == 0 makes the unsigned operand's sign irrelevant.
  SMALLCODER_AVX512_INLINE static __m512i lanes(const RowPair& w, __m512i a) {
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.magnitude,
                               _mm512_mask_sub_epi8(a, w.negative, _mm512_setzero_si512(), a));
  }

  SMALLCODER_AVX512_INLINE static __m512i broadcast_block(const Q8Acts& a, std::int64_t b) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + b * kQ0Block)));
  }

  // R rows as (R + 1) / 2 pairs; an odd last row is paired with itself and stored once.
  template <int R, int T>
  SMALLCODER_AVX512 static void tile(const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride,
                                     float* y, std::size_t ldy, bool accumulate) {
    constexpr int P = (R + 1) / 2;
    const std::int64_t blocks = w.cols / kQ0Block;
    const std::byte* rows[2 * P];
    Q8Acts a[T];
    __m512 acc[P][T];
    for (int i = 0; i < 2 * P; ++i) rows[i] = w.row(r + (i < R ? i : R - 1));
    for (int t = 0; t < T; ++t) a[t] = q8_acts(acts + static_cast<std::size_t>(t) * act_stride, w.cols);
    zero(acc);
    for (std::int64_t b = 0; b < blocks; ++b) {
      RowPair pairs[P];
      for (int p = 0; p < P; ++p) {
        pairs[p] = unpack(rows[2 * p] + b * sizeof(BlockQ8_0), rows[2 * p + 1] + b * sizeof(BlockQ8_0));
      }
      for (int t = 0; t < T; ++t) {
        const __m512i av = broadcast_block(a[t], b);
        const __m512 da = _mm512_set1_ps(a[t].d[b]);
        for (int p = 0; p < P; ++p) {
          const __m512 products = _mm512_cvtepi32_ps(lanes(pairs[p], av));
          acc[p][t] = _mm512_fmadd_ps(products, _mm512_mul_ps(pairs[p].d, da), acc[p][t]);
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) {
        const __m512 pair = acc[i / 2][t];
        const __m256 half = i % 2 == 0 ? _mm512_castps512_ps256(pair) : _mm512_extractf32x8_ps(pair, 1);
        store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r + i), avx2::hsum(half),
                     accumulate);
      }
    }
  }
};

// ---- Q8_0 for one token: four rows at a time, fewer instructions per block ----
//
// The same int32 lanes, the same per-block multiply-add and the same final sum as Q8_0Tiles
// (so the same results, bit for bit), in 256-bit registers, which three ports execute
// instead of two. Flipping a weight's sign bit makes it unsigned (w + 128) for vpdpbusd;
// the surplus, 128 * (the sum of each lane's four activations), is the same for every row,
// so each row's lanes start from its negation, computed once per block. The R scales of a
// block convert in one instruction, and each row prefetches the rows three calls on: one
// call on left the kernel waiting for cache lines (Tiny's products from cache, two threads:
// 2.35 -> 2.07 ms per token at three calls; four was no better).
struct Q8_0Decode : DecodeRange<Q8_0Decode> {
  static constexpr int kRows = 4;
  static constexpr int kCallsAhead = 3;

  template <int R>
  SMALLCODER_AVX512 static void rows(const TensorView& w, std::int64_t r, std::int64_t spacing, const std::byte* act,
                                     float* y, bool accumulate) {
    const std::int64_t blocks = w.cols / kQ0Block;
    const std::size_t stride = static_cast<std::size_t>(spacing) * w.row_bytes();
    const std::byte* first = w.row(r);
    const Q8Acts a = q8_acts(act, w.cols);
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    __m256 acc[R];
    for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::byte* block = first + b * sizeof(BlockQ8_0);
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + b * kQ0Block));
      const __m256i start =
          _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), flip, av));
      const __m256 d = _mm256_castps128_ps256(_mm_mul_ps(avx2::f16_column<R>(block, stride), _mm_set1_ps(a.d[b])));
      for (int i = 0; i < R; ++i) {
        const std::byte* p = block + i * stride;
        prefetch_ahead(p, kCallsAhead * w.row_bytes());  // the stream's row kCallsAhead calls on
        const __m256i wv = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2)), flip);
        const __m256 products = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(start, wv, av));
        acc[i] = _mm256_fmadd_ps(products, _mm256_permutexvar_ps(_mm256_set1_epi32(i), d), acc[i]);
      }
    }
    for (int i = 0; i < R; ++i) store_result(y + r + i * spacing, avx2::hsum(acc[i]), accumulate);
  }
};

}  // namespace smallcoder::cpu::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // SMALLCODER_X86
