// The portable kernels: plain C++ every build compiles and every CPU runs (non-x86 ones
// included). They define the results: the SIMD levels must give bit-equal quantized
// activations and integer block sums, and float results equal up to summation order.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "smallcoder/cpu/kernels/activations.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

namespace smallcoder::cpu::scalar {

// ---- activation quantizers (layouts in activations.hpp) ----

// The values of one block for write_q8_0_row / write_q8_k_row.
struct ActValues {
  // Largest |x| over n values; NaNs are skipped, as SIMD max does with the order used there.
  static float abs_max(const float* x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; ++j) amax = std::fabs(x[j]) > amax ? std::fabs(x[j]) : amax;
    return amax;
  }
  static std::int32_t quantize32(const float* x, float inv, std::int8_t* q) {
    std::int32_t sum = 0;
    for (int j = 0; j < 32; ++j) {
      q[j] = static_cast<std::int8_t>(quantize_act_value(x[j] * inv));
      sum += q[j];
    }
    return sum;
  }
};

inline void quantize_acts_q8_0(const float* x, std::int64_t n, std::byte* out) { write_q8_0_row<ActValues>(x, n, out); }

inline void quantize_acts_q8_k(const float* x, std::int64_t n, std::byte* out) { write_q8_k_row<ActValues>(x, n, out); }

// ---- exact integer products of one weight block with its activations ----

inline std::int32_t dot_q8_0(const BlockQ8_0& w, const std::int8_t* a) {
  std::int32_t sum = 0;
  for (int j = 0; j < kQ0Block; ++j) sum += w.qs[j] * a[j];
  return sum;
}

inline std::int32_t dot_q4_0(const BlockQ4_0& w, const std::int8_t* a) {
  std::int32_t sum = 0;
  for (int j = 0; j < kQ0Block / 2; ++j) {
    sum += ((w.qs[j] & 0x0F) - 8) * a[j] + ((w.qs[j] >> 4) - 8) * a[j + kQ0Block / 2];
  }
  return sum;
}

// A Q4_K super-block against a Q8_K one: scaled = sum_s scale_s * (q_s . a_s) and
// mins = sum_s min_s * sum(a_s) over the eight sub-blocks s; the block's product is
// a.d * (d * scaled - dmin * mins).
struct Q4KSums {
  std::int32_t scaled;
  std::int32_t mins;
};

inline Q4KSums dot_q4_k(const BlockQ4K& w, const BlockQ8K& a) {
  std::uint8_t scales[8], mins[8];
  q4k_scales_mins(w.scales, scales, mins);
  Q4KSums sums{0, 0};
  for (int s = 0; s < 8; ++s) {
    const std::uint8_t* q = w.qs + 32 * (s / 2);
    const int shift = 4 * (s % 2);
    std::int32_t dot = 0;
    for (int l = 0; l < 32; ++l) dot += ((q[l] >> shift) & 0x0F) * a.qs[32 * s + l];
    sums.scaled += scales[s] * dot;
    sums.mins += mins[s] * a.sums[s];
  }
  return sums;
}

// A Q6_K super-block against a Q8_K one: sum_g scale_g * ((q_g - 32) . a_g); the block's
// product is a.d * d * that. Byte l of each half yields elements l, l+32, l+64, l+96 (see
// q6k_value), which fall in groups l/16 + 0, 2, 4, 6 of the half.
inline std::int32_t dot_q6_k(const BlockQ6K& w, const BlockQ8K& a) {
  std::int32_t sum = 0;
  for (int half = 0; half < 2; ++half) {
    const std::uint8_t* ql = w.ql + 64 * half;
    const std::uint8_t* qh = w.qh + 32 * half;
    const std::int8_t* x = a.qs + 128 * half;
    const std::int8_t* scales = w.scales + 8 * half;
    for (int g = 0; g < 2; ++g) {
      std::int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int l = 16 * g; l < 16 * g + 16; ++l) {
        s0 += (((ql[l] & 0x0F) | ((qh[l] & 0x03) << 4)) - 32) * x[l];
        s1 += (((ql[l + 32] & 0x0F) | ((qh[l] & 0x0C) << 2)) - 32) * x[l + 32];
        s2 += (((ql[l] >> 4) | (qh[l] & 0x30)) - 32) * x[l + 64];
        s3 += (((ql[l + 32] >> 4) | ((qh[l] & 0xC0) >> 2)) - 32) * x[l + 96];
      }
      sum += scales[g] * s0 + scales[g + 2] * s1 + scales[g + 4] * s2 + scales[g + 6] * s3;
    }
  }
  return sum;
}

// ---- one weight row against one prepared activation row ----

// Sixteen independent partial sums, the shape the SIMD kernels add in, vectorizable too.
template <class Load>
inline float dot_widened(const Load& load, const float* x, std::int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += load(i + j) * x[i + j];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += load(i) * x[i];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  }
  return acc[0] + tail;
}

inline float row_dot_f32(const std::byte* row, const std::byte* act, std::int64_t n) {
  const float* w = reinterpret_cast<const float*>(row);
  return dot_widened([w](std::int64_t i) { return w[i]; }, reinterpret_cast<const float*>(act), n);
}

inline float row_dot_bf16(const std::byte* row, const std::byte* act, std::int64_t n) {
  const std::uint16_t* w = reinterpret_cast<const std::uint16_t*>(row);
  return dot_widened([w](std::int64_t i) { return bf16_to_f32(w[i]); }, reinterpret_cast<const float*>(act), n);
}

inline float row_dot_f16(const std::byte* row, const std::byte* act, std::int64_t n) {
  const std::uint16_t* w = reinterpret_cast<const std::uint16_t*>(row);
  return dot_widened([w](std::int64_t i) { return f16_to_f32(w[i]); }, reinterpret_cast<const float*>(act), n);
}

inline float row_dot_q8_0(const std::byte* row, const std::byte* act, std::int64_t n) {
  const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(row);
  const Q8Acts a = q8_acts(act, n);
  float sum = 0.0f;
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) {
    sum += f16_to_f32(w[b].d) * a.d[b] * static_cast<float>(dot_q8_0(w[b], a.qs + b * kQ0Block));
  }
  return sum;
}

inline float row_dot_q4_0(const std::byte* row, const std::byte* act, std::int64_t n) {
  const BlockQ4_0* w = reinterpret_cast<const BlockQ4_0*>(row);
  const Q8Acts a = q8_acts(act, n);
  float sum = 0.0f;
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) {
    sum += f16_to_f32(w[b].d) * a.d[b] * static_cast<float>(dot_q4_0(w[b], a.qs + b * kQ0Block));
  }
  return sum;
}

// The k-quant rows from their blocks' exact integer sums, which Sums computes: this level's,
// or a SIMD level's equal ones (neon.hpp), which then gets this level's results.
template <Q4KSums (*Sums)(const BlockQ4K&, const BlockQ8K&)>
inline float row_dot_q4_k_with(const std::byte* row, const std::byte* act, std::int64_t n) {
  const BlockQ4K* w = reinterpret_cast<const BlockQ4K*>(row);
  const BlockQ8K* a = reinterpret_cast<const BlockQ8K*>(act);
  float sum = 0.0f;
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    const Q4KSums s = Sums(w[b], a[b]);
    sum += a[b].d *
           (f16_to_f32(w[b].d) * static_cast<float>(s.scaled) - f16_to_f32(w[b].dmin) * static_cast<float>(s.mins));
  }
  return sum;
}

template <std::int32_t (*Sum)(const BlockQ6K&, const BlockQ8K&)>
inline float row_dot_q6_k_with(const std::byte* row, const std::byte* act, std::int64_t n) {
  const BlockQ6K* w = reinterpret_cast<const BlockQ6K*>(row);
  const BlockQ8K* a = reinterpret_cast<const BlockQ8K*>(act);
  float sum = 0.0f;
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    sum += a[b].d * f16_to_f32(w[b].d) * static_cast<float>(Sum(w[b], a[b]));
  }
  return sum;
}

inline float row_dot_q4_k(const std::byte* row, const std::byte* act, std::int64_t n) {
  return row_dot_q4_k_with<dot_q4_k>(row, act, n);
}

inline float row_dot_q6_k(const std::byte* row, const std::byte* act, std::int64_t n) {
  return row_dot_q6_k_with<dot_q6_k>(row, act, n);
}

}  // namespace smallcoder::cpu::scalar
