// AVX2 k-quant kernels (Q4_K and Q6_K weights against Q8_K activations), which the AVX-512
// level uses as they are. They have llama.cpp's x86 arithmetic: the same int32 lanes per
// super-block, one FMA per super-block into the same float accumulators and the same final
// sums, so their results are the ones llama.cpp computes (and a greedy continuation through
// a near tie of the logits follows llama.cpp's). Integer sums are exact in any order, so the
// kernels are free to compute a super-block's lanes chunk by chunk across several rows and
// tokens; only the float steps keep llama.cpp's order.
#pragma once

#include "smallcoder/cpu/kernels/avx2.hpp"
#include "smallcoder/cpu/kernels/tiling.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

#ifdef SMALLCODER_X86

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace smallcoder::cpu::avx2 {

// A k-quant type's steps, for the kernels below: a super-block is kChunks chunks of 32 or 64
// elements. Per (row, super-block): header() unpacks what the chunks share (scales). Per
// (row, chunk): weights() unpacks the quants into registers. Per (token, chunk): acts() loads
// the activations. Per (row, token, chunk): lanes() gives int32 lanes whose sum over the
// chunks is the super-block's exact integer product, and add_block() multiply-adds that into
// the float sums, which total() reduces.

// The int16 words {2k, 2k + 1} of a vector's every 128-bit lane as a byte shuffle: what
// _mm256_shuffle_epi8 takes to broadcast word k of each lane across that lane.
SMALLCODER_AVX2 inline __m256i word_broadcast_index(int k) {
  return _mm256_set1_epi16(static_cast<short>((2 * k + 1) << 8 | 2 * k));
}

// Q4_K: chunk c is 32 bytes of quants, sub-block 2c in the low nibbles and 2c + 1 in the
// high ones, each sub-block with its own 6-bit scale (and min, applied per super-block).
struct Q4KSteps {
  using Block = BlockQ4K;
  static constexpr int kChunks = 4;
  // One token, two rows at a time: two streams per thread keep twice the DRAM requests in
  // flight. From DRAM (bench_speed --cold, Tiny Q4_K_M, Emerald Rapids at avx2, 2 threads)
  // that ran at 77-85% of the bandwidth probe against 68-75% for one row, which keeps every
  // value in registers and was the faster one on one Zen 5 core with the weights in cache
  // (before the header's scales were words in memory, two rows spilled and ran 15-30% slower);
  // from this core's L3 the two were within the noise.
  static constexpr int kDecodeRows = 2;

  struct Header {
    // Scale s in both int16 halves of word s: each chunk's scale vectors are then broadcast
    // loads, not byte shuffles (eight per super-block, all on the one shuffle port of an
    // Intel core, which bound the kernel there).
    alignas(32) std::int32_t scale_pairs[8];
    __m128i mins;  // the 8 mins as int16
  };
  struct Weights {
    __m256i lo, hi, scale_lo, scale_hi;
  };
  struct Acts {
    __m256i lo, hi;  // the activations of sub-blocks 2c and 2c + 1
  };
  struct Sums {
    __m256 scaled;
    __m128 mins;
  };

  // The packing of q4k_scales_mins (quant_blocks.hpp), four bytes at a time: byte j of
  // word 0 holds scale j, of word 1 min j (low 6 bits each); byte j of word 2 holds the
  // low four bits of scale 4 + j and of min 4 + j, whose top two bits are bits 6-7 of
  // word 0's and word 1's byte j. (Scalar: on AMD cores the integer units are not the
  // vector pipes the rest of the kernel keeps busy.)
  SMALLCODER_AVX2 static Header header(const BlockQ4K& w) {
    std::uint64_t word01;
    std::uint32_t word2;
    std::memcpy(&word01, w.scales, sizeof word01);
    std::memcpy(&word2, w.scales + 8, sizeof word2);
    const auto word0 = static_cast<std::uint32_t>(word01), word1 = static_cast<std::uint32_t>(word01 >> 32);
    constexpr std::uint32_t k6Bits = 0x3F3F3F3F, kLow4 = 0x0F0F0F0F, kBits45 = 0x30303030;
    const std::uint64_t scales = (word0 & k6Bits) | std::uint64_t{(word2 & kLow4) | ((word0 >> 2) & kBits45)} << 32;
    const std::uint64_t mins = (word1 & k6Bits) | std::uint64_t{((word2 >> 4) & kLow4) | ((word1 >> 2) & kBits45)}
                                                      << 32;
    const __m256i scales32 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(scales)));
    Header h;
    _mm256_store_si256(reinterpret_cast<__m256i*>(h.scale_pairs),
                       _mm256_or_si256(scales32, _mm256_slli_epi32(scales32, 16)));
    h.mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(mins)));
    return h;
  }
  SMALLCODER_AVX2 static Weights weights(const BlockQ4K& w, const Header& h, int c) {
    const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * c));
    // Hidden from the optimizer, which would otherwise keep the stored pairs in a register
    // and broadcast them there (four shuffles each instead of one load).
    const std::int32_t* pairs = h.scale_pairs;
    asm("" : "+r"(pairs));
    return {_mm256_and_si256(bytes, low_nibbles), _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_nibbles),
            _mm256_set1_epi32(pairs[2 * c]), _mm256_set1_epi32(pairs[2 * c + 1])};
  }
  SMALLCODER_AVX2 static Acts acts(const BlockQ8K& a, int c) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 64 * c)),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 64 * c + 32))};
  }
  // 15 * 127 * 2 fits int16; the madd by the 6-bit scale widens to int32.
  SMALLCODER_AVX2 static __m256i lanes(const Weights& q, const Acts& a) {
    const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(q.lo, a.lo), q.scale_lo);
    const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(q.hi, a.hi), q.scale_hi);
    return _mm256_add_epi32(p_lo, p_hi);
  }
  // 4 int32 lanes summing to scalar::Q4KSums::mins: each sub-block's activation sum times
  // its min.
  SMALLCODER_AVX2 static __m128i min_lanes(const Header& h, const BlockQ8K& a) {
    return _mm_madd_epi16(h.mins, _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.sums)));
  }
  // The float steps are llama.cpp's: a.d * d times the lanes into `scaled`, -a.d * dmin
  // times the mins' lanes into `mins`. d and dmin, adjacent, are widened together; fnmadd
  // by a.d * dmin gives the same bits as fmadd by -a.d * dmin.
  SMALLCODER_AVX2 static void add_block(Sums& s, const Header& h, const BlockQ4K& w, const BlockQ8K& a,
                                        __m256i scaled) {
    // A float broadcast of the pair's 4 bytes is a plain load (an integer one is a shuffle).
    const __m128i pair = _mm_castps_si128(_mm_broadcast_ss(reinterpret_cast<const float*>(&w.d)));
    const __m128 d = _mm_mul_ps(_mm_cvtph_ps(pair), _mm_set1_ps(a.d));  // {d, dmin, d, dmin} * a.d
    s.scaled = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(scaled), s.scaled);
    s.mins = _mm_fnmadd_ps(_mm_movehdup_ps(d), _mm_cvtepi32_ps(min_lanes(h, a)), s.mins);
  }
  SMALLCODER_AVX2 static Sums zero() { return {_mm256_setzero_ps(), _mm_setzero_ps()}; }
  SMALLCODER_AVX2 static float total(const Sums& s) {
    __m128 mins = _mm_add_ps(s.mins, _mm_movehl_ps(s.mins, s.mins));
    mins = _mm_add_ss(mins, _mm_movehdup_ps(mins));
    return hsum(s.scaled) + _mm_cvtss_f32(mins);
  }
};

// Q6_K: chunk c is quarter c % 4 of half c / 4, 32 elements whose low four bits are in ql and
// high two in qh; each 16 of them has a signed 8-bit scale. Lanes hold (q - 32) * a summed in
// int16 pairs before the scale widens them: maddubs(q, a) - maddubs(32, a) stays within
// int16 (|q - 32| <= 32, |a| <= 127), and maddubs(32, a), the same for every row, is part of
// the activations.
struct Q6KSteps {
  using Block = BlockQ6K;
  static constexpr int kChunks = 8;
  // One token, two rows at a time: the activations and their maddubs(32, a) serve both
  // (8-20% faster than one row, the kernel alone on one Zen 5 core at the avx2 level).
  static constexpr int kDecodeRows = 2;

  struct Header {
    __m256i scales[2];  // half h's 8 group scales as int16, in both 128-bit lanes
  };
  struct Weights {
    __m256i q, scales;
  };
  struct Acts {
    __m256i a, offset;  // the activations and maddubs(32, a)
  };
  struct Sums {
    __m256 scaled;
  };

  SMALLCODER_AVX2 static Header header(const BlockQ6K& w) {
    const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales)));
    return {{_mm256_permute4x64_epi64(scales16, 0x44), _mm256_permute4x64_epi64(scales16, 0xEE)}};
  }
  SMALLCODER_AVX2 static Weights weights(const BlockQ6K& w, const Header& header, int c) {
    const int half = c / 4, quarter = c % 4;
    const __m256i low_nibbles = _mm256_set1_epi8(0x0F), high_pair = _mm256_set1_epi8(0x30);
    // Quarters 0 and 2 take the low and high nibbles of ql's first 32 bytes, 1 and 3 those
    // of the next 32; quarter j takes bits 2j..2j+1 of qh to bits 4-5 (shifts within 16-bit
    // words never carry into those bits from the neighbouring byte).
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.ql + 64 * half + 32 * (quarter % 2)));
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh + 32 * half));
    const __m256i nibbles = quarter < 2 ? l : _mm256_srli_epi16(l, 4);
    const __m256i top = quarter == 0   ? _mm256_slli_epi16(h, 4)
                        : quarter == 1 ? _mm256_slli_epi16(h, 2)
                        : quarter == 2 ? h
                                       : _mm256_srli_epi16(h, 2);
    // Two 16-element groups per quarter: the first half of the lanes takes scale 2 * quarter,
    // the second 2 * quarter + 1.
    const __m256i index = _mm256_set_m128i(_mm256_castsi256_si128(word_broadcast_index(2 * quarter + 1)),
                                           _mm256_castsi256_si128(word_broadcast_index(2 * quarter)));
    return {_mm256_or_si256(_mm256_and_si256(nibbles, low_nibbles), _mm256_and_si256(top, high_pair)),
            _mm256_shuffle_epi8(header.scales[half], index)};
  }
  SMALLCODER_AVX2 static Acts acts(const BlockQ8K& a, int c) {
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * c));
    return {av, _mm256_maddubs_epi16(_mm256_set1_epi8(32), av)};
  }
  SMALLCODER_AVX2 static __m256i lanes(const Weights& q, const Acts& a) {
    return _mm256_madd_epi16(q.scales, _mm256_sub_epi16(_mm256_maddubs_epi16(q.q, a.a), a.offset));
  }
  SMALLCODER_AVX2 static void add_block(Sums& s, const Header&, const BlockQ6K& w, const BlockQ8K& a, __m256i scaled) {
    s.scaled = _mm256_fmadd_ps(_mm256_set1_ps(a.d * _cvtsh_ss(w.d)), _mm256_cvtepi32_ps(scaled), s.scaled);
  }
  SMALLCODER_AVX2 static Sums zero() { return {_mm256_setzero_ps()}; }
  SMALLCODER_AVX2 static float total(const Sums& s) { return hsum(s.scaled); }
};

// The int32 lanes of one super-block of one row against one token: what every kernel below
// sums per (row, token), chunk by chunk (the tests compare these with the scalar sums).
template <class Steps>
SMALLCODER_AVX2 inline __m256i super_block_lanes(const typename Steps::Block& w, const BlockQ8K& a) {
  const typename Steps::Header h = Steps::header(w);
  __m256i sum = _mm256_setzero_si256();
#pragma GCC unroll 8
  for (int c = 0; c < Steps::kChunks; ++c)
    sum = _mm256_add_epi32(sum, Steps::lanes(Steps::weights(w, h, c), Steps::acts(a, c)));
  return sum;
}

// R rows (r, r + spacing, ...) x T tokens of a k-quant matrix. Per super-block, each row's
// chunk is unpacked once for the T tokens and each token's chunk loaded once for the R rows;
// the integer lanes of every (row, token) pair build up over the chunks, then one FMA per
// pair adds the super-block to its float sums. Each row asks for its block's lines `ahead`
// bytes on.
template <class Steps, int R, int T>
SMALLCODER_AVX2 inline void kquant_tile(const TensorView& w, std::int64_t r, std::int64_t spacing,
                                        const std::byte* acts, std::size_t act_stride, float* y, std::size_t ldy,
                                        bool accumulate, std::size_t ahead) {
  using Block = typename Steps::Block;
  const std::int64_t blocks = w.cols / kQKBlock;
  const Block* rows[R];
  const BlockQ8K* a[T];
  typename Steps::Sums sums[R][T];
  for (int i = 0; i < R; ++i) rows[i] = reinterpret_cast<const Block*>(w.row(r + i * spacing));
  for (int t = 0; t < T; ++t) a[t] = reinterpret_cast<const BlockQ8K*>(acts + static_cast<std::size_t>(t) * act_stride);
  for (int i = 0; i < R; ++i) {
    for (int t = 0; t < T; ++t) sums[i][t] = Steps::zero();
  }
  for (std::int64_t b = 0; b < blocks; ++b) {
    typename Steps::Header h[R];
    for (int i = 0; i < R; ++i) {
      const std::byte* block = reinterpret_cast<const std::byte*>(rows[i] + b);
      for (std::size_t at = 0; at < sizeof(Block); at += 64) prefetch_ahead(block + at, ahead);
      h[i] = Steps::header(rows[i][b]);
    }
    __m256i lanes[R][T];
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) lanes[i][t] = _mm256_setzero_si256();
    }
#pragma GCC unroll 8
    for (int c = 0; c < Steps::kChunks; ++c) {  // unrolled: each chunk's offsets and shifts are constants
      typename Steps::Acts x[T];
      for (int t = 0; t < T; ++t) x[t] = Steps::acts(a[t][b], c);
      for (int i = 0; i < R; ++i) {  // one row's chunk in registers at a time
        const typename Steps::Weights q = Steps::weights(rows[i][b], h[i], c);
        for (int t = 0; t < T; ++t) lanes[i][t] = _mm256_add_epi32(lanes[i][t], Steps::lanes(q, x[t]));
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) Steps::add_block(sums[i][t], h[i], rows[i][b], a[t][b], lanes[i][t]);
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int t = 0; t < T; ++t) {
      store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r + i * spacing),
                   Steps::total(sums[i][t]), accumulate);
    }
  }
}

// Batches: one row x four tokens. A k-quant chunk takes four registers unpacked (Q4_K:
// both nibbles and both scales) and a token's two, so larger tiles spill; measured by
// llvm-mca on GCC 12's code (cycles per (row, token) super-block, Zen 1 / Zen 3 models):
// Q4_K 17 / 16.5 at 1 x 4, 21 / 20 at 2 x 2, 27 / 18 at 1 x 1.
template <class Steps>
struct KQuantTiles {
  static constexpr int kRows = 1, kTokens = 4;

  template <int R, int T>
  SMALLCODER_AVX2 static void tile(const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride,
                                   float* y, std::size_t ldy, bool accumulate) {
    kquant_tile<Steps, R, T>(w, r, 1, acts, act_stride, y, ldy, accumulate, R * w.row_bytes());
  }
};

// One token: Steps::kDecodeRows rows r, r + spacing, ... at a time (walk_decode_rows reads
// them as that many sequential streams).
template <class Steps>
struct KQuantDecode : DecodeRange<KQuantDecode<Steps>> {
  static constexpr int kRows = Steps::kDecodeRows;

  template <int R>
  SMALLCODER_AVX2 static void rows(const TensorView& w, std::int64_t r, std::int64_t spacing, const std::byte* act,
                                   float* y, bool accumulate) {
    kquant_tile<Steps, R, 1>(w, r, spacing, act, 0, y, 0, accumulate, kDecodeCallsAhead * w.row_bytes());
  }
};

}  // namespace smallcoder::cpu::avx2

#endif  // SMALLCODER_X86
