// How the kernels hold activation rows: fp32 as they are for float weights, quantized to 8
// bits once per row for the integer kernels of block-quantized weights, or split into bf16
// parts and packed in groups of tokens for the AMX tiles of batched bf16 products.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"

namespace smallcoder::cpu {

// f32: the buffer's fp32 row. q8_0: for Q8_0 and Q4_0 weights, 32-element blocks (layout
// below). q8_k: for Q4_K and Q6_K weights, BlockQ8K super-blocks. bf16_split and
// q8_0_tiles: for batches on bf16 and Q8_0 weights at the amx level, whole groups of
// kGroupTokens tokens (layouts below; the last group is padded with zero tokens).
enum class ActFormat { f32, q8_0, q8_k, bf16_split, q8_0_tiles };

constexpr int kGroupTokens = 16;

// A q8_0 activation row of n elements (n a multiple of 32): the n int8 values first, so one
// SIMD load spans several blocks, then one fp32 scale per 32-element block, then the int32
// sum of each block's values (the kernels subtract offset * sum when they treat the weights
// as unsigned). value i = qs[i] * d[i / 32].
struct Q8Acts {
  const std::int8_t* qs;
  const float* d;
  const std::int32_t* sums;
};

inline Q8Acts q8_acts(const std::byte* row, std::int64_t n) {
  const std::int64_t blocks = n / kQ0Block;
  return {reinterpret_cast<const std::int8_t*>(row), reinterpret_cast<const float*>(row + n),
          reinterpret_cast<const std::int32_t*>(row + n + 4 * blocks)};
}

// bf16_split: each fp32 value x is split into kSplitParts bf16 values, hi = bf16(x), then
// bf16 of what is left, and so on; three parts hold all 24 bits of x's significand, so the
// bf16 x bf16 products the AMX tiles sum in fp32 are those of x itself. A group's rows are
// stored per 32-column chunk c and part p as one AMX tile of 16 rows x 64 bytes at
// (c * kSplitParts + p) * kSplitTileBytes: row kk holds, for each token j, the part's
// values of columns 32c + 2kk and 32c + 2kk + 1 (4 bytes at kk * 64 + 4 * j), the pair
// layout in which tdpbf16ps takes its second operand. cols must be a multiple of 32.
constexpr int kSplitParts = 3, kSplitCols = 32;
constexpr std::size_t kSplitTileBytes = 1024;

// q8_0_tiles: a group's rows quantized as q8_0 rows (the bytes of ActFormat::q8_0, which
// the block sums of every level take), kGroupTokens of them act_row_bytes(q8_0, cols)
// apart, then per block b at q8_0_tiles_at(cols) + b * kQ8TileBytes: the block's quants as
// one AMX tile of 8 rows x 64 bytes, row kq holding token j's quants 4kq .. 4kq + 3 at
// kq * 64 + 4 * j (the quad layout in which tdpbssd takes its second operand), followed by
// the kGroupTokens tokens' fp32 scales of the block.
constexpr std::size_t kQ8QuadBytes = 512, kQ8TileBytes = kQ8QuadBytes + 4 * kGroupTokens;

// Bytes of one prepared activation row of `cols` elements, a multiple of 64 so rows stay
// cache-line aligned in a 64-byte aligned buffer; 0 for f32 (the buffer row is used as is).
// For the grouped formats, one token's share of its group: a group is kGroupTokens times that.
inline std::size_t act_row_bytes(ActFormat format, std::int64_t cols) {
  const std::size_t q8_0_row = static_cast<std::size_t>(cols + 8 * (cols / kQ0Block));
  std::size_t bytes = 0;
  if (format == ActFormat::q8_0) bytes = q8_0_row;
  if (format == ActFormat::q8_k) bytes = static_cast<std::size_t>(cols / kQKBlock) * sizeof(BlockQ8K);
  if (format == ActFormat::bf16_split) bytes = static_cast<std::size_t>(cols) * kSplitParts * 2;
  if (format == ActFormat::q8_0_tiles) {
    bytes = (q8_0_row + 63) / 64 * 64 + static_cast<std::size_t>(cols / kQ0Block) * kQ8TileBytes / kGroupTokens;
  }
  return (bytes + 63) / 64 * 64;
}

// Where a q8_0_tiles group's tiles start.
inline std::size_t q8_0_tiles_at(std::int64_t cols) { return kGroupTokens * act_row_bytes(ActFormat::q8_0, cols); }

// The rules of llama.cpp's x86 activation quantizers, so the 8-bit activations are the
// bytes llama.cpp computes and near ties in a model's output resolve as they do there:
// q = x * (127 / max|x|) rounded to nearest, ties to even; a q8_0 block's scale is
// max|x| / 127 rounded to f16, a q8_k block's 1 / (127 / max|x|) in fp32.
struct ActScale {
  float inv;  // multiplies x before rounding
  float d;    // the block's scale: value = q * d
};

inline ActScale q8_0_scale(float amax) {
  return {amax != 0.0f ? 127.0f / amax : 0.0f, f16_to_f32(f32_to_f16(amax / 127.0f))};
}

inline ActScale q8_k_scale(float amax) {
  const float inv = amax != 0.0f ? 127.0f / amax : 0.0f;
  return {inv, inv != 0.0f ? 1.0f / inv : 0.0f};
}

// Nearest integer (ties to even) of v limited to [-127, 127], NaN giving -127; the scalar
// twin of SIMD max/min/cvtps, so every level quantizes activations to the same bytes.
inline int quantize_act_value(float v) {
  const float limited = v > -127.0f ? (v < 127.0f ? v : 127.0f) : -127.0f;
  return static_cast<int>(__builtin_rintf(limited));
}

// Writes the q8_0 or q8_k activation row of n values at out, a block at a time, through a
// level's Values: abs_max(x, n), the largest |x| of n values (NaNs skipped), and
// quantize32(x, inv, q), which stores quantize_act_value(x * inv) of 32 values at q and
// returns their sum.
template <class Values>
inline void write_q8_0_row(const float* x, std::int64_t n, std::byte* out) {
  const std::int64_t blocks = n / kQ0Block;
  std::int8_t* qs = reinterpret_cast<std::int8_t*>(out);
  float* d = reinterpret_cast<float*>(out + n);
  std::int32_t* sums = reinterpret_cast<std::int32_t*>(out + n + 4 * blocks);
  for (std::int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * kQ0Block;
    const ActScale scale = q8_0_scale(Values::abs_max(xb, kQ0Block));
    d[b] = scale.d;
    sums[b] = Values::quantize32(xb, scale.inv, qs + b * kQ0Block);
  }
}

template <class Values>
inline void write_q8_k_row(const float* x, std::int64_t n, std::byte* out) {
  BlockQ8K* blocks = reinterpret_cast<BlockQ8K*>(out);
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    const float* xb = x + b * kQKBlock;
    const ActScale scale = q8_k_scale(Values::abs_max(xb, kQKBlock));
    BlockQ8K& blk = blocks[b];
    for (int s = 0; s < kQKBlock / 32; ++s) {
      blk.sums[s] = static_cast<std::int16_t>(Values::quantize32(xb + 32 * s, scale.inv, blk.qs + 32 * s));
    }
    blk.d = scale.d;
  }
}

}  // namespace smallcoder::cpu
