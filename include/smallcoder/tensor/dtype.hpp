// Element types that weights can be stored in, and the scalar conversions between
// the 16-bit float formats and fp32. Quantized types store blocks of elements; a row
// of such a tensor must be a whole number of blocks.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "smallcoder/error.hpp"

namespace smallcoder {

enum class DType : std::uint8_t { f32, f16, bf16, q8_0, q4_0, q4_k, q6_k };

struct DTypeInfo {
  const char* name;    // lower-case name used in flags and messages ("bf16", "q8_0")
  int block_elems;     // elements per block (1 for plain floats)
  int block_bytes;     // bytes per block
};

inline const DTypeInfo& dtype_info(DType t) {
  // Block layouts are llama.cpp's (ggml-common.h): Q8_0 = f16 scale + 32 int8;
  // Q4_0 = f16 scale + 16 bytes of nibbles; Q4_K and Q6_K are 256-element super-blocks.
  static const DTypeInfo table[] = {
      {"f32", 1, 4},      {"f16", 1, 2},       {"bf16", 1, 2},       {"q8_0", 32, 34},
      {"q4_0", 32, 18},   {"q4_k", 256, 144},  {"q6_k", 256, 210},
  };
  return table[static_cast<int>(t)];
}

inline const char* dtype_name(DType t) { return dtype_info(t).name; }

inline bool is_float_dtype(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }

// Parses a user-facing name ("bf16", "F16", "q8_0"); throws naming `where` otherwise.
inline DType parse_dtype(std::string_view name, const std::string& where) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  for (int i = 0; i <= static_cast<int>(DType::q6_k); ++i) {
    if (lower == dtype_info(static_cast<DType>(i)).name) return static_cast<DType>(i);
  }
  fail(where, "unknown dtype '" + std::string(name) + "' (known: f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)");
}

// Bytes taken by `elems` consecutive elements; elems must be a whole number of blocks.
inline std::size_t dtype_bytes(DType t, std::int64_t elems) {
  const DTypeInfo& info = dtype_info(t);
  return static_cast<std::size_t>(elems / info.block_elems) * static_cast<std::size_t>(info.block_bytes);
}

inline float bf16_to_f32(std::uint16_t h) {
  const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, as PyTorch and llama.cpp do; NaN stays a (quiet) NaN.
inline std::uint16_t f32_to_bf16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
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
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even; overflow gives infinity, tiny values become subnormals or zero.
inline std::uint16_t f32_to_f16(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs >= 0x38800000u) {                                                  // normal half
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

}  // namespace smallcoder
