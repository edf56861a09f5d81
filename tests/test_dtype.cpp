#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

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

TEST_CASE(
    "the type records: names, GGUF numbers and row functions agree with "
    "each other") {
  // The GGUF numbers and file types are llama.cpp's (ggml.h ggml_type, llama.h
  // LLAMA_FTYPE_*).
  CHECK(dtype_info(DType::q8_0).ggml_type == 8);
  CHECK(dtype_info(DType::bf16).ggml_type == 30);
  CHECK(dtype_info(DType::q8_0).llama_file_type == 7);
  CHECK(dtype_info(DType::q4_k).llama_file_type == 15);
  CHECK(all_dtype_names() == "f32, f16, bf16, q8_0, q4_0, q4_k, q6_k");
  CHECK(all_dtype_names(true) == "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K");
  CHECK(quantizable_dtype_names() == "f32, f16, bf16, q8_0, q4_0");
  for (const DTypeInfo &r : kDTypes) {
    CAPTURE(std::string(r.name));
    CHECK(parse_dtype(r.name, "test") == r.type);
    CHECK(parse_dtype(r.file_name, "test") == r.type);
    DType back = DType::f32;
    REQUIRE(dtype_from_ggml_type(r.ggml_type, back));
    CHECK(back == r.type);
    CHECK(r.is_float == (r.block_elems == 1));
    // A row stored by the record's quantizer widens back within the type's
    // precision.
    if (r.from_f32 == nullptr) {
      CHECK_THROWS_WITH_AS(quantize_row(r.type, nullptr, r.block_elems, nullptr, "w"),
                           doctest::Contains("cannot quantize to"), Error);
      continue;
    }
    std::vector<float> x(static_cast<std::size_t>(2 * r.block_elems * (r.is_float ? 32 : 1)));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
    const auto n = static_cast<std::int64_t>(x.size());
    std::vector<std::byte> stored(dtype_bytes(r.type, n));
    quantize_row(r.type, x.data(), n, stored.data(), "test");
    std::vector<float> out(x.size());
    row_to_f32(r.type, stored.data(), n, out.data());
    const float bound = r.type == DType::f32 ? 0.0f : r.is_float ? 4e-3f : r.type == DType::q8_0 ? 1e-2f : 0.15f;
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(std::fabs(out[i] - x[i]) <= bound);
  }
  DType none = DType::f32;
  CHECK_FALSE(dtype_from_ggml_type(3, none));  // Q4_1: not one of ours
}
