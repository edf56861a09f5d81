#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "smallcoder/tensor/dtype.hpp"

using namespace smallcoder;

TEST_CASE("bf16 round trip and rounding") {
  CHECK(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f);
  CHECK(bf16_to_f32(f32_to_bf16(-2.5f)) == -2.5f);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0).
  CHECK(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)) == 1.0f);
  CHECK(bf16_to_f32(f32_to_bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("f16 conversions cover normals, subnormals, overflow") {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) continue;
    REQUIRE(f32_to_f16(f) == h);  // every finite half and infinity round-trips exactly
  }
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(f16_to_f32(0x3c00) == 1.0f);
  CHECK(f32_to_f16(70000.0f) == 0x7c00);
  CHECK(f32_to_f16(std::ldexp(1.0f, -26)) == 0);  // below half the smallest subnormal
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie to even
}

TEST_CASE("dtype names parse and unknown names fail") {
  CHECK(parse_dtype("BF16", "test") == DType::bf16);
  CHECK(parse_dtype("q8_0", "test") == DType::q8_0);
  CHECK_THROWS_WITH_AS(parse_dtype("int3", "flag --dtype"), doctest::Contains("unknown dtype 'int3'"), Error);
  CHECK(dtype_bytes(DType::q8_0, 64) == 68);
}
