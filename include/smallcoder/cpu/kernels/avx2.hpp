// AVX2 (+FMA, F16C) kernels, compiled into every x86 build through target attributes and
// run only where cpuid reports AVX2: register tiles for the float and 32-block weights, one
// super-block at a time for the k-quants, and the SIMD activation quantizers (the AVX-512
// level uses the latter two as they are).
#pragma once

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels/activations.hpp"
#include "smallcoder/cpu/kernels/tiling.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

#ifdef SMALLCODER_X86

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#define SMALLCODER_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace smallcoder::cpu::avx2 {

SMALLCODER_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

SMALLCODER_AVX2 inline std::int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

SMALLCODER_AVX2 inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// The f16 scale stored (unaligned) at p.
SMALLCODER_AVX2 inline float f16_at(const std::byte* p) {
  std::uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return _cvtsh_ss(h);
}

// ---- activation quantizers: the same bytes as scalar::quantize_acts_* ----

// Largest |x| over n (a multiple of 8) values; max_ps(|x|, m) keeps m where x is NaN.
SMALLCODER_AVX2 inline float abs_max(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
  return hmax(m);
}

// round(x * inv) limited to [-127, 127] as int32 lanes (cvtps rounds to nearest even).
SMALLCODER_AVX2 inline __m256i quantize8(const float* x, __m256 inv) {
  const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
  return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f)));
}

// Four vectors of int32 lanes (32 values in [-127, 127]) as 32 int8 in order.
SMALLCODER_AVX2 inline __m256i pack32(__m256i q0, __m256i q1, __m256i q2, __m256i q3) {
  // The packs work within 128-bit lanes; the permute restores the element order.
  const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
  return _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

SMALLCODER_AVX2 inline void quantize_acts_q8_0(const float* x, std::int64_t n, std::byte* out) {
  const std::int64_t blocks = n / kQ0Block;
  std::int8_t* qs = reinterpret_cast<std::int8_t*>(out);
  float* d = reinterpret_cast<float*>(out + n);
  std::int32_t* sums = reinterpret_cast<std::int32_t*>(out + n + 4 * blocks);
  for (std::int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * kQ0Block;
    const ActScale scale = q8_0_scale(abs_max(xb, kQ0Block));
    const __m256 inv = _mm256_set1_ps(scale.inv);
    const __m256i q0 = quantize8(xb, inv), q1 = quantize8(xb + 8, inv), q2 = quantize8(xb + 16, inv),
                  q3 = quantize8(xb + 24, inv);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * kQ0Block), pack32(q0, q1, q2, q3));
    d[b] = scale.d;
    sums[b] = hsum(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
  }
}

SMALLCODER_AVX2 inline void quantize_acts_q8_k(const float* x, std::int64_t n, std::byte* out) {
  BlockQ8K* blocks = reinterpret_cast<BlockQ8K*>(out);
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    const float* xb = x + b * kQKBlock;
    const ActScale scale = q8_k_scale(abs_max(xb, kQKBlock));
    const __m256 inv = _mm256_set1_ps(scale.inv);
    BlockQ8K& blk = blocks[b];
    for (int j = 0; j < kQKBlock; j += 32) {
      const __m256i q0 = quantize8(xb + j, inv), q1 = quantize8(xb + j + 8, inv), q2 = quantize8(xb + j + 16, inv),
                    q3 = quantize8(xb + j + 24, inv);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(blk.qs + j), pack32(q0, q1, q2, q3));
      blk.bsums[j / 16] = static_cast<std::int16_t>(hsum(_mm256_add_epi32(q0, q1)));
      blk.bsums[j / 16 + 1] = static_cast<std::int16_t>(hsum(_mm256_add_epi32(q2, q3)));
    }
    blk.d = scale.d;
  }
}

// ---- float weights: fp32 activations, exact fp32 products, 8 lanes of partial sums ----

struct F32Rows {
  SMALLCODER_AVX2 static __m256 load(const std::byte* row, std::int64_t k) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  }
  static float at(const std::byte* row, std::int64_t k) { return reinterpret_cast<const float*>(row)[k]; }
};

struct Bf16Rows {
  SMALLCODER_AVX2 static __m256 load(const std::byte* row, std::int64_t k) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float at(const std::byte* row, std::int64_t k) {
    return bf16_to_f32(reinterpret_cast<const std::uint16_t*>(row)[k]);
  }
};

struct F16Rows {
  SMALLCODER_AVX2 static __m256 load(const std::byte* row, std::int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
  }
  static float at(const std::byte* row, std::int64_t k) {
    return f16_to_f32(reinterpret_cast<const std::uint16_t*>(row)[k]);
  }
};

// R rows x T tokens of 8-lane accumulators: 4 x 2 leaves registers for the loaded vectors.
template <class Rows>
struct FloatTiles {
  static constexpr int kRows = 4, kTokens = 2;

  template <int R, int T>
  SMALLCODER_AVX2 static void tile(const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride,
                                   float* y, std::size_t ldy, bool accumulate) {
    const std::int64_t n = w.cols;
    const std::byte* rows[R];
    const float* x[T];
    __m256 acc[R][T];
    for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
    for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(acts + static_cast<std::size_t>(t) * act_stride);
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps();
    }
    const std::size_t ahead = R * w.row_bytes(), element = w.row_bytes() / static_cast<std::size_t>(n);
    std::int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
      for (int i = 0; i < R; ++i) prefetch_ahead(rows[i] + k * element, ahead);
      __m256 xv[T];
      for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x[t] + k);
      for (int i = 0; i < R; ++i) {
        const __m256 wv = Rows::load(rows[i], k);
        for (int t = 0; t < T; ++t) acc[i][t] = _mm256_fmadd_ps(wv, xv[t], acc[i][t]);
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) {
        float sum = hsum(acc[i][t]);
        for (std::int64_t j = k; j < n; ++j) sum += Rows::at(rows[i], j) * x[t][j];
        store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r + i), sum, accumulate);
      }
    }
  }
};

// ---- 32-element blocks: one block per vector, maddubs/madd integer products ----

// Q8_0 weights are signed, so the sign moves onto the activations: |w| * (a * sign(w)),
// which maddubs (unsigned x signed bytes) takes; |w| <= 128 and |a| <= 127 cannot saturate.
struct Q8_0Blocks {
  static constexpr int kBytes = sizeof(BlockQ8_0);
  struct Unpacked {
    __m256i magnitude, w;
    float d;
  };
  SMALLCODER_AVX2 static Unpacked unpack(const std::byte* block) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
    return {_mm256_abs_epi8(w), w, f16_at(block)};
  }
  // int32 lanes summing to the block's exact integer product with activations a (sum: theirs).
  SMALLCODER_AVX2 static __m256i lanes(const Unpacked& u, __m256i a, std::int32_t /*sum*/) {
    const __m256i pairs = _mm256_maddubs_epi16(u.magnitude, _mm256_sign_epi8(a, u.w));
    return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
  }
};

// Q4_0 nibbles are unsigned (0..15) as stored: sum (q - 8) a = sum q a - 8 sum a.
struct Q4_0Blocks {
  static constexpr int kBytes = sizeof(BlockQ4_0);
  struct Unpacked {
    __m256i q;
    float d;
  };
  SMALLCODER_AVX2 static Unpacked unpack(const std::byte* block) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(bytes, 4), bytes);
    return {_mm256_and_si256(both, _mm256_set1_epi8(0x0F)), f16_at(block)};
  }
  SMALLCODER_AVX2 static __m256i lanes(const Unpacked& u, __m256i a, std::int32_t sum) {
    const __m256i products = _mm256_madd_epi16(_mm256_maddubs_epi16(u.q, a), _mm256_set1_epi16(1));
    return _mm256_add_epi32(products, _mm256_zextsi128_si256(_mm_cvtsi32_si128(-8 * sum)));
  }
};

// 4 rows x 1 token: an unpacked block takes up to two registers plus its scale, so more
// tokens per tile would spill; a tile's rows stay in L1 across the token loop instead.
template <class Blocks>
struct QuantTiles {
  static constexpr int kRows = 4, kTokens = 1;

  template <int R, int T>
  SMALLCODER_AVX2 static void tile(const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride,
                                   float* y, std::size_t ldy, bool accumulate) {
    const std::int64_t blocks = w.cols / kQ0Block;
    const std::byte* rows[R];
    Q8Acts a[T];
    __m256 acc[R][T];
    for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
    for (int t = 0; t < T; ++t) a[t] = q8_acts(acts + static_cast<std::size_t>(t) * act_stride, w.cols);
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps();
    }
    const std::size_t ahead = R * w.row_bytes();
    for (std::int64_t b = 0; b < blocks; ++b) {
      typename Blocks::Unpacked u[R];
      for (int i = 0; i < R; ++i) {
        prefetch_ahead(rows[i] + b * Blocks::kBytes, ahead);
        u[i] = Blocks::unpack(rows[i] + b * Blocks::kBytes);
      }
      for (int t = 0; t < T; ++t) {
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].qs + b * kQ0Block));
        const float da = a[t].d[b];
        const std::int32_t sum = a[t].sums[b];
        for (int i = 0; i < R; ++i) {
          const __m256 products = _mm256_cvtepi32_ps(Blocks::lanes(u[i], av, sum));
          acc[i][t] = _mm256_fmadd_ps(products, _mm256_set1_ps(u[i].d * da), acc[i][t]);
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) {
        store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r + i), hsum(acc[i][t]),
                     accumulate);
      }
    }
  }
};

// ---- k-quants against Q8_K: one super-block of one row and one token at a time ----

// The k-quant products below have llama.cpp's x86 arithmetic (the same int32 lanes, the
// same float accumulators and final sums), so their results are the ones llama.cpp computes.

struct Q4KLanes {
  __m256i scaled;  // 8 int32 lanes summing to scalar::Q4KSums::scaled
  __m128i mins;    // 4 int32 lanes summing to scalar::Q4KSums::mins
};

SMALLCODER_AVX2 inline Q4KLanes q4k_lanes(const BlockQ4K& w, const BlockQ8K& a) {
  alignas(16) std::uint8_t scales[16], mins[16];
  q4k_scales_mins(w.scales, scales, mins);
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
  __m256i scaled = _mm256_setzero_si256();
  for (int c = 0; c < 4; ++c) {  // 32 bytes: sub-block 2c in the low nibbles, 2c + 1 in the high
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * c));
    const __m256i lo = _mm256_and_si256(bytes, low_nibbles);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_nibbles);
    const __m256i a_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 64 * c));
    const __m256i a_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 64 * c + 32));
    // 15 * 127 * 2 fits int16; the madd by the 6-bit scale widens to int32.
    const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a_lo), _mm256_set1_epi16(scales[2 * c]));
    const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a_hi), _mm256_set1_epi16(scales[2 * c + 1]));
    scaled = _mm256_add_epi32(scaled, _mm256_add_epi32(p_lo, p_hi));
  }
  // Sub-block s's activation sum is bsums 2s and 2s + 1 added (hadd); times min s (madd).
  const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums));
  const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
  const __m128i mins16 = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mins)));
  return {scaled, _mm_madd_epi16(mins16, pairs)};
}

// Lanes hold (q - 32) * a summed in int16 pairs before the signed group scale widens them:
// maddubs(q, a) - maddubs(32, a) stays within int16 (|q - 32| <= 32, |a| <= 127).
SMALLCODER_AVX2 inline __m256i q6k_lanes(const BlockQ6K& w, const BlockQ8K& a) {
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F), high_pair = _mm256_set1_epi8(0x30);
  const __m256i offset = _mm256_set1_epi8(32);
  __m256i sum = _mm256_setzero_si256();
  for (int half = 0; half < 2; ++half) {
    const std::uint8_t* ql = w.ql + 64 * half;
    const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh + 32 * half));
    // Quarter j takes bits 2j..2j+1 of qh to bits 4-5 (shifts within 16-bit words never
    // carry into those bits from the neighbouring byte).
    const __m256i q[4] = {
        _mm256_or_si256(_mm256_and_si256(l0, low_nibbles), _mm256_and_si256(_mm256_slli_epi16(h, 4), high_pair)),
        _mm256_or_si256(_mm256_and_si256(l1, low_nibbles), _mm256_and_si256(_mm256_slli_epi16(h, 2), high_pair)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low_nibbles), _mm256_and_si256(h, high_pair)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low_nibbles),
                        _mm256_and_si256(_mm256_srli_epi16(h, 2), high_pair)),
    };
    __m256i p[4];
    for (int j = 0; j < 4; ++j) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + 128 * half + 32 * j));
      const std::int8_t* sc = w.scales + 8 * half + 2 * j;  // two 16-element groups per quarter
      const __m256i scales = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
      const __m256i centred = _mm256_sub_epi16(_mm256_maddubs_epi16(q[j], av), _mm256_maddubs_epi16(offset, av));
      p[j] = _mm256_madd_epi16(scales, centred);
    }
    sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3])));
  }
  return sum;
}

SMALLCODER_AVX2 inline float row_dot_q4_k(const std::byte* row, const std::byte* act, std::int64_t n) {
  const BlockQ4K* w = reinterpret_cast<const BlockQ4K*>(row);
  const BlockQ8K* a = reinterpret_cast<const BlockQ8K*>(act);
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_mins = _mm_setzero_ps();
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    const Q4KLanes lanes = q4k_lanes(w[b], a[b]);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(a[b].d * _cvtsh_ss(w[b].d)), _mm256_cvtepi32_ps(lanes.scaled), acc);
    acc_mins = _mm_fmadd_ps(_mm_set1_ps(-a[b].d * _cvtsh_ss(w[b].dmin)), _mm_cvtepi32_ps(lanes.mins), acc_mins);
  }
  acc_mins = _mm_add_ps(acc_mins, _mm_movehl_ps(acc_mins, acc_mins));
  acc_mins = _mm_add_ss(acc_mins, _mm_movehdup_ps(acc_mins));
  return hsum(acc) + _mm_cvtss_f32(acc_mins);
}

SMALLCODER_AVX2 inline float row_dot_q6_k(const std::byte* row, const std::byte* act, std::int64_t n) {
  const BlockQ6K* w = reinterpret_cast<const BlockQ6K*>(row);
  const BlockQ8K* a = reinterpret_cast<const BlockQ8K*>(act);
  __m256 acc = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    acc = _mm256_fmadd_ps(_mm256_set1_ps(a[b].d * _cvtsh_ss(w[b].d)), _mm256_cvtepi32_ps(q6k_lanes(w[b], a[b])), acc);
  }
  return hsum(acc);
}

}  // namespace smallcoder::cpu::avx2

#endif  // SMALLCODER_X86
