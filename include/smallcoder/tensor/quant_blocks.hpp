// Block layouts of llama.cpp's quantized types, byte-exact to ggml (ggml-common.h), and
// their scalar dequantization: the reference the integer kernels are tested against.
// Rows of these types are whole numbers of blocks; loaders check that before use.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/tensor/half.hpp"

namespace smallcoder {

constexpr int kQ0Block = 32;   // elements per Q8_0 / Q4_0 block
constexpr int kQKBlock = 256;  // elements per k-quant super-block (Q4_K, Q6_K, Q8_K)

// Q8_0: value j = qs[j] * d.
struct BlockQ8_0 {
  std::uint16_t d;  // f16 scale
  std::int8_t qs[kQ0Block];
};

// Q4_0: element j (< 16) is the low nibble of qs[j], element j + 16 the high nibble;
// value = (nibble - 8) * d.
struct BlockQ4_0 {
  std::uint16_t d;  // f16 scale
  std::uint8_t qs[kQ0Block / 2];
};

// Q4_K: eight 32-element sub-blocks, value = d * scale_s * q - dmin * min_s with 6-bit
// scale_s and min_s packed in `scales` (see q4k_scales_mins). Bytes qs[32c .. 32c+31] hold
// sub-block 2c in their low nibbles and sub-block 2c + 1 in their high nibbles.
struct BlockQ4K {
  std::uint16_t d;     // f16 scale of the scales
  std::uint16_t dmin;  // f16 scale of the mins
  std::uint8_t scales[12];
  std::uint8_t qs[kQKBlock / 2];
};

// Q6_K: sixteen 16-element groups, value = d * scales[g] * (q - 32) with 6-bit q whose low
// four bits are in ql and high two bits in qh (see dequantize_row_q6_k for the order).
struct BlockQ6K {
  std::uint8_t ql[kQKBlock / 2];
  std::uint8_t qh[kQKBlock / 4];
  std::int8_t scales[kQKBlock / 16];
  std::uint16_t d;  // f16 super-block scale
};

// Q8_K: the 8-bit activation block of the k-quant dot products, llama.cpp's block_q8_K
// except for its sums: sums[s] is the sum of qs over sub-block s of 32, which Q4_K's mins
// multiply. (llama.cpp keeps a sum per 16 and every product adds the pairs; this block
// lives only in memory, so it is summed the way its one reader needs, once per row.)
struct BlockQ8K {
  float d;
  std::int8_t qs[kQKBlock];
  std::int16_t sums[kQKBlock / 32];
};

static_assert(sizeof(BlockQ8_0) == 34, "BlockQ8_0 must match ggml's block_q8_0");
static_assert(sizeof(BlockQ4_0) == 18, "BlockQ4_0 must match ggml's block_q4_0");
static_assert(sizeof(BlockQ4K) == 144, "BlockQ4K must match ggml's block_q4_K");
static_assert(sizeof(BlockQ6K) == 210, "BlockQ6K must match ggml's block_q6_K");
static_assert(sizeof(BlockQ8K) == 276, "BlockQ8K: d, 256 quants and 8 sums, unpadded");

// Unpacks the eight 6-bit scales and mins of a Q4_K super-block. Bytes 0-3 hold scales
// 0-3 (low 6 bits), bytes 4-7 mins 0-3; bytes 8-11 hold the low nibbles of scales 4-7
// (low half) and mins 4-7 (high half), whose top two bits sit in bits 6-7 of bytes 0-7.
inline void q4k_scales_mins(const std::uint8_t* packed, std::uint8_t* scales, std::uint8_t* mins) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = packed[j] & 63;
    mins[j] = packed[j + 4] & 63;
    scales[j + 4] = static_cast<std::uint8_t>((packed[j + 8] & 0x0F) | ((packed[j] >> 6) << 4));
    mins[j + 4] = static_cast<std::uint8_t>((packed[j + 8] >> 4) | ((packed[j + 4] >> 6) << 4));
  }
}

// The 6-bit value (0..63) of element e (< 128) of one 128-element half of a Q6_K block,
// whose ql and qh pointers are already advanced to that half (by 64 and 32 bytes). For
// l < 32, elements l, l+32, l+64, l+96 take the low nibble of ql[l], the low nibble of
// ql[l+32], the high nibble of ql[l], the high nibble of ql[l+32], and bit pairs 0-1,
// 2-3, 4-5, 6-7 of qh[l] as their top two bits.
inline int q6k_value(const std::uint8_t* ql, const std::uint8_t* qh, int e) {
  const int quarter = e / 32, l = e % 32;
  const std::uint8_t low_byte = ql[l + 32 * (quarter % 2)];
  const int nibble = quarter < 2 ? (low_byte & 0x0F) : (low_byte >> 4);
  return nibble | (((qh[l] >> (2 * quarter)) & 3) << 4);
}

inline void dequantize_row_q8_0(const std::byte* src, std::int64_t n, float* dst) {
  const BlockQ8_0* blocks = reinterpret_cast<const BlockQ8_0*>(src);
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) {
    const float d = f16_to_f32(blocks[b].d);
    for (int j = 0; j < kQ0Block; ++j) dst[b * kQ0Block + j] = static_cast<float>(blocks[b].qs[j]) * d;
  }
}

inline void dequantize_row_q4_0(const std::byte* src, std::int64_t n, float* dst) {
  const BlockQ4_0* blocks = reinterpret_cast<const BlockQ4_0*>(src);
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) {
    const float d = f16_to_f32(blocks[b].d);
    float* out = dst + b * kQ0Block;
    for (int j = 0; j < kQ0Block / 2; ++j) {
      out[j] = static_cast<float>((blocks[b].qs[j] & 0x0F) - 8) * d;
      out[j + kQ0Block / 2] = static_cast<float>((blocks[b].qs[j] >> 4) - 8) * d;
    }
  }
}

inline void dequantize_row_q4_k(const std::byte* src, std::int64_t n, float* dst) {
  const BlockQ4K* blocks = reinterpret_cast<const BlockQ4K*>(src);
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    const BlockQ4K& blk = blocks[b];
    std::uint8_t scales[8], mins[8];
    q4k_scales_mins(blk.scales, scales, mins);
    const float d = f16_to_f32(blk.d), dmin = f16_to_f32(blk.dmin);
    float* out = dst + b * kQKBlock;
    for (int s = 0; s < 8; ++s) {
      const std::uint8_t* q = blk.qs + 32 * (s / 2);
      const int shift = 4 * (s % 2);
      const float scale = d * scales[s], offset = dmin * mins[s];
      for (int l = 0; l < 32; ++l) out[32 * s + l] = scale * static_cast<float>((q[l] >> shift) & 0x0F) - offset;
    }
  }
}

inline void dequantize_row_q6_k(const std::byte* src, std::int64_t n, float* dst) {
  const BlockQ6K* blocks = reinterpret_cast<const BlockQ6K*>(src);
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    const BlockQ6K& blk = blocks[b];
    const float d = f16_to_f32(blk.d);
    for (int half = 0; half < 2; ++half) {
      float* out = dst + b * kQKBlock + 128 * half;
      for (int e = 0; e < 128; ++e) {
        const int q = q6k_value(blk.ql + 64 * half, blk.qh + 32 * half, e);
        out[e] = d * static_cast<float>(blk.scales[8 * half + e / 16]) * static_cast<float>(q - 32);
      }
    }
  }
}

}  // namespace smallcoder
