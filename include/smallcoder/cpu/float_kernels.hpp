// Widening of rows stored as f32, bf16 or f16 to fp32: norm weights, conversions between
// the float types. The matrix products of every weight type are in cpu/kernels.hpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/tensor/dtype.hpp"

namespace smallcoder::cpu {

// Widens n stored elements of a float type to fp32.
inline void float_row_to_f32(DType type, const std::byte* src, std::int64_t n, float* dst) {
  if (type == DType::f32) {
    const float* s = reinterpret_cast<const float*>(src);
    for (std::int64_t i = 0; i < n; ++i) dst[i] = s[i];
  } else if (type == DType::bf16) {
    const std::uint16_t* s = reinterpret_cast<const std::uint16_t*>(src);
    for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
  } else {
    const std::uint16_t* s = reinterpret_cast<const std::uint16_t*>(src);
    for (std::int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
  }
}

}  // namespace smallcoder::cpu
