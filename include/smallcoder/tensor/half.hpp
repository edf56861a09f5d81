// The 16-bit float formats and fp32: scalar conversions with the rounding
// PyTorch and llama.cpp use, and whole rows of the float weight types widened
// to fp32 or stored from it. Every layer above (blocks' scales, the KV cache,
// the kernels' references) converts through these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace smallcoder {

// fp32's bits and back (std::bit_cast is C++20).
inline std::uint32_t f32_bits(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

inline float f32_from_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float bf16_to_f32(std::uint16_t h) { return f32_from_bits(static_cast<std::uint32_t>(h) << 16); }

// Round to nearest even, as PyTorch and llama.cpp do; NaN stays a (quiet) NaN.
inline std::uint16_t f32_to_bf16(float f) {
  std::uint32_t bits = f32_bits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf or NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal: shift the mantissa up until its leading one is the implicit bit.
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  return f32_from_bits(bits);
}

// Round to nearest even; overflow gives infinity, tiny values become subnormals or zero.
inline std::uint16_t f32_to_f16(float f) {
  const std::uint32_t bits = f32_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs >= 0x38800000u) {                                                   // normal half
    const std::uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
  }
  if (abs < 0x33000000u) return sign;  // below half the smallest subnormal
  // Subnormal half: value = mant * 2^-24; shift the full 24-bit mantissa accordingly.
  const std::uint32_t exp = abs >> 23;
  const std::uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
  const std::uint32_t shift = 126u - exp;  // 14..24
  std::uint32_t half = mant >> shift;
  const std::uint32_t rem = mant & ((1u << shift) - 1u);
  const std::uint32_t halfway = 1u << (shift - 1u);
  if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
  return static_cast<std::uint16_t>(sign | half);
}

// Rows of the float weight types widened to fp32 and stored from it, in the
// shape of the block types' row functions (quant_blocks.hpp, quant_encode.hpp),
// so that the type records (dtype.hpp) hold every type alike.
inline void widen_f32_row(const std::byte* src, std::int64_t n, float* dst) {
  std::memcpy(dst, src, sizeof(float) * static_cast<std::size_t>(n));
}

inline void widen_f16_row(const std::byte* src, std::int64_t n, float* dst) {
  const std::uint16_t* s = reinterpret_cast<const std::uint16_t*>(src);
  for (std::int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
}

inline void widen_bf16_row(const std::byte* src, std::int64_t n, float* dst) {
  const std::uint16_t* s = reinterpret_cast<const std::uint16_t*>(src);
  for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
}

inline void store_f32_row(const float* x, std::int64_t n, std::byte* dst) {
  std::memcpy(dst, x, sizeof(float) * static_cast<std::size_t>(n));
}

inline void store_f16_row(const float* x, std::int64_t n, std::byte* dst) {
  for (std::int64_t i = 0; i < n; ++i) reinterpret_cast<std::uint16_t*>(dst)[i] = f32_to_f16(x[i]);
}

inline void store_bf16_row(const float* x, std::int64_t n, std::byte* dst) {
  for (std::int64_t i = 0; i < n; ++i) reinterpret_cast<std::uint16_t*>(dst)[i] = f32_to_bf16(x[i]);
}

}  // namespace smallcoder
