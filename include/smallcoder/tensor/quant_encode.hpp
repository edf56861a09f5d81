// Quantizers that turn fp32 weight rows into Q8_0 / Q4_0 blocks, with the rounding of
// llama.cpp's reference quantizers (quantize_row_q8_0_ref / q4_0_ref), so a file we write
// holds the same bytes llama-quantize would. The type records (dtype.hpp) point at them.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "smallcoder/tensor/half.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"

namespace smallcoder {

// a * b rounded to fp32 on its own. The references add to this product afterwards; letting
// the compiler fuse the two into one FMA would round once instead of twice and change some
// quantized values, so the product goes through a volatile.
inline float separately_rounded_product(float a, float b) {
  volatile float product = a * b;
  return product;
}

// v truncated toward zero and limited to [lo, hi]; NaN gives lo. Finite inputs of the
// quantizers never reach the limits except where the references clamp too, so this only
// keeps non-finite weights from undefined float-to-int conversions.
inline int truncate_clamped(float v, int lo, int hi) {
  if (v >= static_cast<float>(hi)) return hi;
  return v > static_cast<float>(lo) ? static_cast<int>(v) : lo;
}

// n elements (a multiple of 32) to n / 32 Q8_0 blocks: d = max|x| / 127, q = round(x / d)
// with halves away from zero (roundf), d stored as f16.
inline void quantize_row_q8_0(const float* x, std::int64_t n, std::byte* dst) {
  BlockQ8_0* blocks = reinterpret_cast<BlockQ8_0*>(dst);
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) {
    const float* xb = x + b * kQ0Block;
    float amax = 0.0f;
    for (int j = 0; j < kQ0Block; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[b].d = f32_to_f16(d);
    for (int j = 0; j < kQ0Block; ++j)
      blocks[b].qs[j] = static_cast<std::int8_t>(truncate_clamped(std::round(xb[j] * id), -127, 127));
  }
}

// n elements (a multiple of 32) to n / 32 Q4_0 blocks: d = m / -8 where m is the element
// of largest magnitude (so m itself maps to nibble 0), nibble = min(15, trunc(x / d + 8.5)).
inline void quantize_row_q4_0(const float* x, std::int64_t n, std::byte* dst) {
  BlockQ4_0* blocks = reinterpret_cast<BlockQ4_0*>(dst);
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) {
    const float* xb = x + b * kQ0Block;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQ0Block; ++j) {
      if (amax < std::fabs(xb[j])) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[b].d = f32_to_f16(d);
    auto nibble = [&](float v) { return truncate_clamped(separately_rounded_product(v, id) + 8.5f, 0, 15); };
    for (int j = 0; j < kQ0Block / 2; ++j) {
      blocks[b].qs[j] = static_cast<std::uint8_t>(nibble(xb[j]) | (nibble(xb[j + kQ0Block / 2]) << 4));
    }
  }
}

}  // namespace smallcoder
