// Quantized block formats: sizes equal to llama.cpp's, the Q8_0 / Q4_0 quantizers (exact
// bytes on hand-made blocks, round-trip error bounds on random rows), and Q4_K / Q6_K
// dequantization of hand-built blocks whose values are known.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "smallcoder/tensor/dtype.hpp"

using namespace smallcoder;

namespace {

std::vector<float> random_row(std::mt19937& rng, std::int64_t n, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (float& v : x) v = normal(rng);
  return x;
}

std::vector<float> dequantize(DType t, const std::vector<std::byte>& q, std::int64_t n) {
  std::vector<float> out(static_cast<std::size_t>(n));
  if (t == DType::q8_0) dequantize_row_q8_0(q.data(), n, out.data());
  if (t == DType::q4_0) dequantize_row_q4_0(q.data(), n, out.data());
  if (t == DType::q4_k) dequantize_row_q4_k(q.data(), n, out.data());
  if (t == DType::q6_k) dequantize_row_q6_k(q.data(), n, out.data());
  return out;
}

std::vector<std::byte> quantize(DType t, const std::vector<float>& x) {
  std::vector<std::byte> q(dtype_bytes(t, static_cast<std::int64_t>(x.size())));
  quantize_row(t, x.data(), static_cast<std::int64_t>(x.size()), q.data(), "test");
  return q;
}

}  // namespace

TEST_CASE("block sizes agree with the dtype table and llama.cpp") {
  CHECK(dtype_info(DType::q8_0).block_bytes == static_cast<int>(sizeof(BlockQ8_0)));
  CHECK(dtype_info(DType::q4_0).block_bytes == static_cast<int>(sizeof(BlockQ4_0)));
  CHECK(dtype_info(DType::q4_k).block_bytes == static_cast<int>(sizeof(BlockQ4K)));
  CHECK(dtype_info(DType::q6_k).block_bytes == static_cast<int>(sizeof(BlockQ6K)));
  CHECK(dtype_info(DType::q8_0).block_elems == kQ0Block);
  CHECK(dtype_info(DType::q4_k).block_elems == kQKBlock);
  CHECK(sizeof(BlockQ8K) == 4 + 256 + 16);
}

TEST_CASE("Q8_0 quantizer: d = max|x| / 127 as f16, halves rounded away from zero") {
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;  // d = 1 exactly, so x * id is x
  x[1] = 2.5f;    // roundf: 3 (ties to even would give 2)
  x[2] = -2.5f;
  x[3] = 63.5f;
  x[4] = 0.49f;
  x[5] = -126.6f;
  const std::vector<std::byte> q = quantize(DType::q8_0, x);
  const BlockQ8_0& b = *reinterpret_cast<const BlockQ8_0*>(q.data());
  CHECK(b.d == 0x3C00);  // 1.0 in f16
  CHECK(b.qs[0] == 127);
  CHECK(b.qs[1] == 3);
  CHECK(b.qs[2] == -3);
  CHECK(b.qs[3] == 64);
  CHECK(b.qs[4] == 0);
  CHECK(b.qs[5] == -127);
  CHECK(b.qs[31] == 0);

  const std::vector<float> zeros(64, 0.0f);
  const std::vector<std::byte> qz = quantize(DType::q8_0, zeros);
  for (std::byte v : qz) CHECK(v == std::byte{0});  // d = 0 and all quants 0
}

TEST_CASE("Q4_0 quantizer: d = -max / 8, nibble = min(15, trunc(x / d + 8.5)), j and j + 16 share a byte") {
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f;   // largest magnitude, negative: d = 1, so nibble = trunc(x + 8.5)
  x[1] = 7.0f;    // 15
  x[2] = 7.9f;    // 16 clamps to 15
  x[3] = -0.5f;   // 8
  x[4] = 0.49f;   // 8
  x[16] = 0.5f;   // 9, high nibble of byte 0
  x[17] = -7.6f;  // trunc(0.9) = 0
  x[31] = -3.0f;  // 5
  const std::vector<std::byte> q = quantize(DType::q4_0, x);
  const BlockQ4_0& b = *reinterpret_cast<const BlockQ4_0*>(q.data());
  CHECK(b.d == 0x3C00);
  CHECK(b.qs[0] == (0 | 9 << 4));
  CHECK(b.qs[1] == (15 | 0 << 4));
  CHECK(b.qs[2] == (15 | 8 << 4));
  CHECK(b.qs[3] == (8 | 8 << 4));
  CHECK(b.qs[4] == (8 | 8 << 4));
  CHECK(b.qs[15] == (8 | 5 << 4));

  // A positive extreme gives a negative d: nibble 0 is then +8 |d|.
  std::vector<float> y(32, 0.0f);
  y[5] = 8.0f;
  const std::vector<std::byte> qy = quantize(DType::q4_0, y);
  CHECK(reinterpret_cast<const BlockQ4_0*>(qy.data())->d == 0xBC00);  // -1.0
  const std::vector<float> back = dequantize(DType::q4_0, qy, 32);
  CHECK(back[5] == 8.0f);
  CHECK(back[0] == 0.0f);
}

// Round trips of random rows of 1, 2 and 3 blocks at several magnitudes. With D the f32
// scale the quantizer used and d its f16 rounding (what dequantization uses):
//   Q8_0: |x - x'| <= D / 2 + 127 |D - d|  (the rounding, plus the scale's f16 rounding);
//   Q4_0: the same with 8 |D - d|, except elements of the side opposite the extreme that
//         clamp at nibble 15, which may be off by up to one full step |D|.
TEST_CASE("Q8_0 and Q4_0 round trips stay within half a quantization step") {
  std::mt19937 rng(7);
  for (std::int64_t blocks = 1; blocks <= 3; ++blocks) {
    for (float scale : {1e-3f, 0.05f, 1.0f, 300.0f}) {
      const std::int64_t n = blocks * kQ0Block;
      const std::vector<float> x = random_row(rng, n, scale);
      CAPTURE(blocks);
      CAPTURE(scale);
      const std::vector<float> q8 = dequantize(DType::q8_0, quantize(DType::q8_0, x), n);
      const std::vector<float> q4 = dequantize(DType::q4_0, quantize(DType::q4_0, x), n);
      for (std::int64_t b = 0; b < blocks; ++b) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < kQ0Block; ++j) {
          const float v = x[static_cast<std::size_t>(b * kQ0Block + j)];
          if (std::fabs(v) > amax) {
            amax = std::fabs(v);
            max = v;
          }
        }
        const float d8 = amax / 127.0f, d8h = f16_to_f32(f32_to_f16(d8));
        const float d4 = max / -8.0f, d4h = f16_to_f32(f32_to_f16(d4));
        for (int j = 0; j < kQ0Block; ++j) {
          const std::size_t i = static_cast<std::size_t>(b * kQ0Block + j);
          CHECK(std::fabs(x[i] - q8[i]) <= d8 / 2 + 127 * std::fabs(d8 - d8h) + 1e-6f * amax);
          const bool clamps = x[i] / d4 + 8.5f >= 16.0f;
          const float step = clamps ? std::fabs(d4) : std::fabs(d4) / 2;
          CHECK(std::fabs(x[i] - q4[i]) <= step + 8 * std::fabs(d4 - d4h) + 1e-6f * amax);
        }
      }
    }
  }
}

TEST_CASE("quantize_row: float types round as dtype.hpp does; k-quants and partial blocks are refused") {
  const std::vector<float> x = {1.0f, -2.5f, 3.14159f, 65504.0f};
  const std::vector<std::byte> h = quantize(DType::f16, x);
  const std::vector<std::byte> b = quantize(DType::bf16, x);
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::uint16_t hv, bv;
    std::memcpy(&hv, h.data() + 2 * i, 2);
    std::memcpy(&bv, b.data() + 2 * i, 2);
    CHECK(hv == f32_to_f16(x[i]));
    CHECK(bv == f32_to_bf16(x[i]));
  }
  std::vector<std::byte> out(1024);
  const std::vector<float> row(256, 1.0f);
  CHECK_THROWS_WITH_AS(quantize_row(DType::q4_k, row.data(), 256, out.data(), "blk.0.ffn_up.weight"),
                       doctest::Contains("blk.0.ffn_up.weight: cannot quantize to q4_k"), Error);
  CHECK_THROWS_WITH_AS(quantize_row(DType::q8_0, row.data(), 48, out.data(), "w"),
                       doctest::Contains("48 elements is not a whole number of q8_0 blocks of 32"), Error);
  CHECK(can_quantize_to(DType::q4_0));
  CHECK_FALSE(can_quantize_to(DType::q6_k));
}

namespace {

// Packs eight 6-bit scales and mins the way Q4_K stores them (the inverse of q4k_scales_mins).
void pack_q4k_scales(const int* sc, const int* m, std::uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<std::uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<std::uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
  }
}

}  // namespace

TEST_CASE("Q4_K: scales and mins unpack, values are d * scale * q - dmin * min") {
  const int sc[8] = {1, 17, 33, 63, 0, 16, 47, 5};  // exercise the high bits of 4-7
  const int m[8] = {63, 2, 31, 40, 9, 59, 0, 32};
  BlockQ4K blk{};
  blk.d = 0x3800;     // 0.5
  blk.dmin = 0x3400;  // 0.25
  pack_q4k_scales(sc, m, blk.scales);
  std::uint8_t got_sc[8], got_m[8];
  q4k_scales_mins(blk.scales, got_sc, got_m);
  for (int s = 0; s < 8; ++s) {
    CHECK(got_sc[s] == sc[s]);
    CHECK(got_m[s] == m[s]);
  }
  // Element e of sub-block s gets nibble (e * 5 + s) % 16: sub-block 2c in the low nibbles of
  // bytes 32c.., sub-block 2c + 1 in the high nibbles.
  auto nibble = [](int s, int e) { return (e * 5 + s) % 16; };
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l)
      blk.qs[32 * c + l] = static_cast<std::uint8_t>(nibble(2 * c, l) | nibble(2 * c + 1, l) << 4);
  }
  std::vector<float> out(256);
  dequantize_row_q4_k(reinterpret_cast<const std::byte*>(&blk), 256, out.data());
  for (int s = 0; s < 8; ++s) {
    for (int e = 0; e < 32; ++e) {
      CAPTURE(s);
      CAPTURE(e);
      CHECK(out[static_cast<std::size_t>(32 * s + e)] ==
            0.5f * static_cast<float>(sc[s] * nibble(s, e)) - 0.25f * static_cast<float>(m[s]));
    }
  }
}

TEST_CASE("Q6_K: values are d * scale_g * (q - 32) with q split over ql and qh") {
  std::vector<BlockQ6K> blocks(2);
  auto value = [](int b, int e) { return (e * 7 + 3 + 11 * b) % 64; };
  for (int b = 0; b < 2; ++b) {
    BlockQ6K& blk = blocks[static_cast<std::size_t>(b)];
    blk.d = b == 0 ? 0x3400 : 0xC000;  // 0.25, -2
    for (int g = 0; g < 16; ++g) blk.scales[g] = static_cast<std::int8_t>(g * 17 - 128);
    // ggml's layout: for each half and l < 32, elements l, l+32, l+64, l+96.
    for (int half = 0; half < 2; ++half) {
      for (int l = 0; l < 32; ++l) {
        const int base = 128 * half;
        const int q0 = value(b, base + l), q1 = value(b, base + l + 32), q2 = value(b, base + l + 64),
                  q3 = value(b, base + l + 96);
        blk.ql[64 * half + l] = static_cast<std::uint8_t>((q0 & 0x0F) | (q2 & 0x0F) << 4);
        blk.ql[64 * half + l + 32] = static_cast<std::uint8_t>((q1 & 0x0F) | (q3 & 0x0F) << 4);
        blk.qh[32 * half + l] = static_cast<std::uint8_t>((q0 >> 4) | (q1 >> 4) << 2 | (q2 >> 4) << 4 | (q3 >> 4) << 6);
      }
    }
  }
  std::vector<float> out(512);
  dequantize_row_q6_k(reinterpret_cast<const std::byte*>(blocks.data()), 512, out.data());
  for (int b = 0; b < 2; ++b) {
    const float d = b == 0 ? 0.25f : -2.0f;
    for (int e = 0; e < 256; ++e) {
      CAPTURE(b);
      CAPTURE(e);
      const float expected = d * static_cast<float>((e / 16) * 17 - 128) * static_cast<float>(value(b, e) - 32);
      CHECK(out[static_cast<std::size_t>(256 * b + e)] == expected);
    }
  }
}

TEST_CASE("Q8_0 and Q4_0 dequantization read llama.cpp's layout") {
  BlockQ8_0 q8{};
  q8.d = 0x4000;  // 2
  for (int j = 0; j < 32; ++j) q8.qs[j] = static_cast<std::int8_t>(j * 8 - 128);
  BlockQ4_0 q4{};
  q4.d = 0xB800;  // -0.5
  for (int j = 0; j < 16; ++j) q4.qs[j] = static_cast<std::uint8_t>(j | (15 - j) << 4);
  std::vector<float> a(32), b(32);
  dequantize_row_q8_0(reinterpret_cast<const std::byte*>(&q8), 32, a.data());
  dequantize_row_q4_0(reinterpret_cast<const std::byte*>(&q4), 32, b.data());
  for (int j = 0; j < 32; ++j) CHECK(a[static_cast<std::size_t>(j)] == 2.0f * static_cast<float>(j * 8 - 128));
  for (int j = 0; j < 16; ++j) {
    CHECK(b[static_cast<std::size_t>(j)] == -0.5f * static_cast<float>(j - 8));
    CHECK(b[static_cast<std::size_t>(j + 16)] == -0.5f * static_cast<float>(15 - j - 8));
  }
}
