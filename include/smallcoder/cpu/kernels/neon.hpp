// NEON (aarch64 Advanced SIMD) kernels, which every aarch64 CPU runs: register tiles for the
// float and 32-element block weights through tiling.hpp's loop nest, one super-block at a
// time for the k-quants, and the activation quantizers (the scalar level's bytes). Their
// 8-bit products go through a Dot policy: widening multiplies here (MullDot); the dotprod
// level (dotprod.hpp) runs these same kernels with the sdot instruction, which leaves the
// same int32 lanes, so the two levels compute the same bits.
#pragma once

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels/activations.hpp"
#include "smallcoder/cpu/kernels/scalar.hpp"
#include "smallcoder/cpu/kernels/tiling.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

#ifdef SMALLCODER_AARCH64

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace smallcoder::cpu::neon {

// The f16 scale stored (unaligned) at p, by the hardware conversion (exact, as f16_to_f32).
inline float f16_at(const std::byte* p) {
  __fp16 h;
  std::memcpy(&h, p, sizeof h);
  return h;
}

// ---- activation quantizers: the same bytes as scalar::quantize_acts_* ----

// A block's values for write_q8_0_row / write_q8_k_row.
struct ActValues {
  // Compare and select skips NaNs as the scalar loop does (vmaxq would return them); the
  // lanes' maximum is then the same in any order.
  static float abs_max(const float* x, int n) {
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int j = 0; j < n; j += 4) {
      const float32x4_t a = vabsq_f32(vld1q_f32(x + j));
      m = vbslq_f32(vcgtq_f32(a, m), a, m);
    }
    return vmaxvq_f32(m);
  }

  // round(x * inv) limited to [-127, 127]: quantize_act_value's compares (a NaN fails both
  // and gives -127; vmaxq/vminq would keep it), vcvtnq's rounding to nearest even.
  static int32x4_t quantize4(const float* x, float32x4_t inv) {
    const float32x4_t low = vdupq_n_f32(-127.0f), high = vdupq_n_f32(127.0f);
    const float32x4_t v = vmulq_f32(vld1q_f32(x), inv);
    const float32x4_t above = vbslq_f32(vcgtq_f32(v, low), v, low);
    return vcvtnq_s32_f32(vbslq_f32(vcltq_f32(above, high), above, high));
  }

  static std::int32_t quantize32(const float* x, float inv, std::int8_t* q) {
    const float32x4_t scale = vdupq_n_f32(inv);
    int32x4_t sum = vdupq_n_s32(0);
    for (int j = 0; j < 32; j += 16) {
      const int32x4_t q0 = quantize4(x + j, scale), q1 = quantize4(x + j + 4, scale), q2 = quantize4(x + j + 8, scale),
                      q3 = quantize4(x + j + 12, scale);
      const int16x8_t lo = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
      const int16x8_t hi = vcombine_s16(vmovn_s32(q2), vmovn_s32(q3));
      vst1q_s8(q + j, vcombine_s8(vmovn_s16(lo), vmovn_s16(hi)));
      sum = vaddq_s32(sum, vaddq_s32(vaddq_s32(q0, q1), vaddq_s32(q2, q3)));
    }
    return vaddvq_s32(sum);
  }
};

inline void quantize_acts_q8_0(const float* x, std::int64_t n, std::byte* out) { write_q8_0_row<ActValues>(x, n, out); }

inline void quantize_acts_q8_k(const float* x, std::int64_t n, std::byte* out) { write_q8_k_row<ActValues>(x, n, out); }

// ---- float weights: fp32 activations, exact fp32 products ----

// load(row, k): elements k .. k+3 of a row as fp32.
struct F32Rows {
  static float32x4_t load(const std::byte* row, std::int64_t k) {
    return vld1q_f32(reinterpret_cast<const float*>(row) + k);
  }
};

inline uint16x4_t load_halves(const std::byte* row, std::int64_t k) {
  return vld1_u16(reinterpret_cast<const std::uint16_t*>(row) + k);
}

struct Bf16Rows {
  static float32x4_t load(const std::byte* row, std::int64_t k) {
    return vreinterpretq_f32_u32(vshll_n_u16(load_halves(row, k), 16));
  }
};

struct F16Rows {
  static float32x4_t load(const std::byte* row, std::int64_t k) {
    return vcvt_f32_f16(vreinterpret_f16_u16(load_halves(row, k)));
  }
};

// R rows x T tokens, each with two 4-lane accumulators (8 elements a step): 4 x 2 takes 16
// of the 32 registers, and one token's product still runs 8 independent chains of sums.
template <class Rows>
struct FloatTiles {
  static constexpr int kRows = 4, kTokens = 2, kStep = 8;

  // acc[i][t] += elements k .. k + 7 of row i times those of token t.
  template <int R, int T>
  static void step(const std::byte* const* rows, const float* const* x, std::int64_t k, float32x4_t (&acc)[R][T][2]) {
    float32x4_t xv[T][2];
    for (int t = 0; t < T; ++t) {
      xv[t][0] = vld1q_f32(x[t] + k);
      xv[t][1] = vld1q_f32(x[t] + k + 4);
    }
    for (int i = 0; i < R; ++i) {
      const float32x4_t w0 = Rows::load(rows[i], k), w1 = Rows::load(rows[i], k + 4);
      for (int t = 0; t < T; ++t) {
        acc[i][t][0] = vfmaq_f32(acc[i][t][0], w0, xv[t][0]);
        acc[i][t][1] = vfmaq_f32(acc[i][t][1], w1, xv[t][1]);
      }
    }
  }

  template <int R, int T>
  static void tile(const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride, float* y,
                   std::size_t ldy, bool accumulate) {
    const TileRows<R, T> in(w, r, acts, act_stride);
    const float* x[T];
    for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(in.act[t]);
    float32x4_t acc[R][T][2];
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) acc[i][t][0] = acc[i][t][1] = vdupq_n_f32(0.0f);
    }
    const std::int64_t n = w.cols, whole = n / kStep * kStep;
    const std::size_t element = w.row_bytes() / static_cast<std::size_t>(n), ahead = R * w.row_bytes();
    for (std::int64_t k = 0; k < whole; k += kStep) {
      for (int i = 0; i < R; ++i) prefetch_ahead(in.w[i] + k * element, ahead);
      step<R, T>(in.w, x, k, acc);
    }
    if (whole < n) {  // the last n - whole elements: one more step on zero-padded copies
      const std::size_t left = static_cast<std::size_t>(n - whole);
      std::byte w_rest[R][kStep * sizeof(float)] = {};
      float x_rest[T][kStep] = {};
      const std::byte* w_at[R];
      const float* x_at[T];
      for (int i = 0; i < R; ++i) {
        std::memcpy(w_rest[i], in.w[i] + whole * element, left * element);
        w_at[i] = w_rest[i];
      }
      for (int t = 0; t < T; ++t) {
        std::memcpy(x_rest[t], x[t] + whole, left * sizeof(float));
        x_at[t] = x_rest[t];
      }
      step<R, T>(w_at, x_at, 0, acc);
    }
    float sums[R][T];
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) sums[i][t] = vaddvq_f32(vaddq_f32(acc[i][t][0], acc[i][t][1]));
    }
    store_tile(sums, y, ldy, r, accumulate);
  }
};

// ---- 8-bit products ----

// This level's Dot policy: acc's int32 lane j plus w[4j .. 4j+3] . a[4j .. 4j+3], the lanes
// sdot leaves, from widening multiplies: an int16 holds the sum of two products (|w a| <=
// 128 * 127), the pairwise adds bring four together.
struct MullDot {
  static int32x4_t dot(int32x4_t acc, int8x16_t w, int8x16_t a) {
    const int16x8_t lo = vmull_s8(vget_low_s8(w), vget_low_s8(a)), hi = vmull_high_s8(w, a);
    return vpadalq_s16(acc, vpaddq_s16(lo, hi));
  }
};

// A 32-element block's weights as signed bytes (elements 0-15, 16-31) and its scale.
struct Block32 {
  int8x16_t lo, hi;
  float d;
};

struct Q8_0Blocks {
  static constexpr int kBytes = sizeof(BlockQ8_0);
  static Block32 unpack(const std::byte* block) {
    const std::int8_t* q = reinterpret_cast<const std::int8_t*>(block + 2);
    return {vld1q_s8(q), vld1q_s8(q + 16), f16_at(block)};
  }
};

// Element j < 16 is the low nibble of byte j, element j + 16 its high nibble, less 8.
struct Q4_0Blocks {
  static constexpr int kBytes = sizeof(BlockQ4_0);
  static Block32 unpack(const std::byte* block) {
    const uint8x16_t bytes = vld1q_u8(reinterpret_cast<const std::uint8_t*>(block + 2));
    const int8x16_t eight = vdupq_n_s8(8);
    return {vsubq_s8(vreinterpretq_s8_u8(vandq_u8(bytes, vdupq_n_u8(0x0F))), eight),
            vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(bytes, 4)), eight), f16_at(block)};
  }
};

// int32 lanes summing to a block's exact product with the activations lo, hi (elements 0-15, 16-31).
template <class Dot>
inline int32x4_t block_lanes(const Block32& w, int8x16_t lo, int8x16_t hi) {
  return Dot::dot(Dot::dot(vdupq_n_s32(0), w.lo, lo), w.hi, hi);
}

// 4 rows x 4 tokens: a row's block takes two registers, a token's activations two, and 16
// accumulators leave the rest for the products in flight.
template <class Blocks, class Dot>
struct QuantTiles {
  static constexpr int kRows = 4, kTokens = 4;

  template <int R, int T>
  static void tile(const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride, float* y,
                   std::size_t ldy, bool accumulate) {
    const TileRows<R, T> in(w, r, acts, act_stride);
    Q8Acts a[T];
    for (int t = 0; t < T; ++t) a[t] = q8_acts(in.act[t], w.cols);
    float32x4_t acc[R][T];
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) acc[i][t] = vdupq_n_f32(0.0f);
    }
    const std::size_t ahead = R * w.row_bytes();
    for (std::int64_t b = 0; b < w.cols / kQ0Block; ++b) {
      Block32 u[R];
      for (int i = 0; i < R; ++i) {
        prefetch_ahead(in.w[i] + b * Blocks::kBytes, ahead);
        u[i] = Blocks::unpack(in.w[i] + b * Blocks::kBytes);
      }
      for (int t = 0; t < T; ++t) {
        const std::int8_t* q = a[t].qs + b * kQ0Block;
        const int8x16_t lo = vld1q_s8(q), hi = vld1q_s8(q + 16);
        for (int i = 0; i < R; ++i) {
          const float32x4_t products = vcvtq_f32_s32(block_lanes<Dot>(u[i], lo, hi));
          acc[i][t] = vfmaq_f32(acc[i][t], products, vdupq_n_f32(u[i].d * a[t].d[b]));
        }
      }
    }
    float sums[R][T];
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) sums[i][t] = vaddvq_f32(acc[i][t]);
    }
    store_tile(sums, y, ldy, r, accumulate);
  }
};

// ---- k-quants against Q8_K: one super-block of one row and one token at a time ----
//
// The blocks' exact integer sums, for scalar::row_dot_*_with, whose float steps then give
// the scalar level's products.

template <class Dot>
inline scalar::Q4KSums q4k_sums(const BlockQ4K& w, const BlockQ8K& a) {
  std::uint8_t scales[8], mins[8];
  q4k_scales_mins(w.scales, scales, mins);
  const uint8x16_t low = vdupq_n_u8(0x0F);
  const int32x4_t zero = vdupq_n_s32(0);
  int32x4_t scaled = zero;
  for (int c = 0; c < 4; ++c) {  // 32 bytes: sub-block 2c in the low nibbles, 2c + 1 in the high
    const uint8x16_t b0 = vld1q_u8(w.qs + 32 * c), b1 = vld1q_u8(w.qs + 32 * c + 16);
    const std::int8_t* x = a.qs + 64 * c;
    const int32x4_t lo = Dot::dot(Dot::dot(zero, vreinterpretq_s8_u8(vandq_u8(b0, low)), vld1q_s8(x)),
                                  vreinterpretq_s8_u8(vandq_u8(b1, low)), vld1q_s8(x + 16));
    const int32x4_t hi = Dot::dot(Dot::dot(zero, vreinterpretq_s8_u8(vshrq_n_u8(b0, 4)), vld1q_s8(x + 32)),
                                  vreinterpretq_s8_u8(vshrq_n_u8(b1, 4)), vld1q_s8(x + 48));
    scaled = vmlaq_n_s32(vmlaq_n_s32(scaled, lo, scales[2 * c]), hi, scales[2 * c + 1]);
  }
  // Sub-block s's activation sum times min s.
  const int16x8_t sums = vld1q_s16(a.sums);
  const int16x8_t m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mins)));
  const int32x4_t products = vmlal_high_s16(vmull_s16(vget_low_s16(m), vget_low_s16(sums)), m, sums);
  return {vaddvq_s32(scaled), vaddvq_s32(products)};
}

// Per 16 elements l of a half's quarters j: the 6-bit value is a nibble of ql with bits 2j,
// 2j + 1 of qh[l] on top (see q6k_value), less 32; each quarter's 16 have a scale of their own.
template <class Dot>
inline std::int32_t q6k_sum(const BlockQ6K& w, const BlockQ8K& a) {
  const uint8x16_t low = vdupq_n_u8(0x0F), high_pair = vdupq_n_u8(0x30);
  const int8x16_t offset = vdupq_n_s8(32);
  int32x4_t sum = vdupq_n_s32(0);
  for (int half = 0; half < 2; ++half) {
    const std::uint8_t* ql = w.ql + 64 * half;
    for (int g = 0; g < 2; ++g) {
      const uint8x16_t l0 = vld1q_u8(ql + 16 * g), l1 = vld1q_u8(ql + 32 + 16 * g);
      const uint8x16_t h = vld1q_u8(w.qh + 32 * half + 16 * g);
      const uint8x16_t q[4] = {
          vorrq_u8(vandq_u8(l0, low), vandq_u8(vshlq_n_u8(h, 4), high_pair)),
          vorrq_u8(vandq_u8(l1, low), vandq_u8(vshlq_n_u8(h, 2), high_pair)),
          vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(h, high_pair)),
          vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(h, 2), high_pair)),
      };
      for (int j = 0; j < 4; ++j) {
        const int8x16_t centred = vsubq_s8(vreinterpretq_s8_u8(q[j]), offset);
        const int32x4_t lanes = Dot::dot(vdupq_n_s32(0), centred, vld1q_s8(a.qs + 128 * half + 32 * j + 16 * g));
        sum = vmlaq_n_s32(sum, lanes, w.scales[8 * half + 2 * j + g]);
      }
    }
  }
  return vaddvq_s32(sum);
}

}  // namespace smallcoder::cpu::neon

#endif  // SMALLCODER_AARCH64
