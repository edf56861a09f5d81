// Re-storing weights at load time (model/make_weights.hpp: convert_weights) and random weights drawn straight into a
// type (random_weights): quantize-on-load to q8_0 / q4_0 keeps rows that are not whole
// blocks and norms in their float types, gives the quantizer's exact bytes, and lets the
// file mapping go.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "smallcoder/smallcoder.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "support/emulated.hpp"
#include "support/model_shape.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using smallcoder::test::data_path;

namespace {

// Whether any mapping of this process is of a file whose name ends in `suffix`.
bool mapped(const std::string& suffix) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() >= suffix.size() && line.compare(line.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return true;
    }
  }
  return false;
}

// The down projection's 80 columns are not a multiple of 32: it keeps its float type.
ModelConfig small_config() { return test::shaped_config("small", {64, 80, 2, 4, 2, 16, 100, 32}); }

}  // namespace

TEST_CASE("quantize-on-load: nano in q8_0 and q4_0; the 688-wide down projection and norms stay bf16") {
  for (DType target : {DType::q8_0, DType::q4_0}) {
    CAPTURE(dtype_name(target));
    const Checkpoint bf16 = load_checkpoint(data_path("models/smallcoder-nano"));
    LoadOptions options;
    options.dtype = target;
    const Checkpoint c = load_checkpoint(data_path("models/smallcoder-nano"), options);
    CHECK(c.dtype == target);
    const LayerWeights& l = c.weights.layers[1];
    for (const TensorView* t : {&c.weights.embed, &l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up}) {
      CHECK(t->dtype == target);
    }
    CHECK(l.w_down.dtype == DType::bf16);
    CHECK(l.attn_norm.dtype == DType::bf16);
    CHECK(c.weights.final_norm.dtype == DType::bf16);
    CHECK(c.weights.lm_head.data == c.weights.embed.data);
    // Each row holds exactly the quantizer's bytes for the bf16 row widened to fp32.
    const TensorView& source = bf16.weights.layers[1].w_up;
    std::vector<float> row(static_cast<std::size_t>(source.cols));
    std::vector<std::byte> expected(l.w_up.row_bytes());
    for (std::int64_t r : {std::int64_t{0}, source.rows / 2, source.rows - 1}) {
      row_to_f32(source.dtype, source.row(r), source.cols, row.data());
      quantize_row(target, row.data(), source.cols, expected.data(), "test");
      CHECK(std::memcmp(expected.data(), l.w_up.row(r), expected.size()) == 0);
    }
    CHECK(std::memcmp(l.w_down.data, bf16.weights.layers[1].w_down.data, l.w_down.bytes()) == 0);
  }
}

TEST_CASE("quantize-on-load lets the mapped safetensors file go") {
  {
    LoadOptions options;
    options.dtype = DType::q8_0;
    const Checkpoint c = load_checkpoint(data_path("models/smallcoder-nano"), options);
    CHECK_FALSE(mapped("smallcoder-nano/model.safetensors"));
    const Checkpoint plain = load_checkpoint(data_path("models/smallcoder-nano"));
    CHECK(mapped("smallcoder-nano/model.safetensors"));  // zero copy when nothing is converted
  }
  CHECK_FALSE(mapped("smallcoder-nano/model.safetensors"));
}

TEST_CASE("random weights drawn in q8_0 / q4_0 equal f32 random weights quantized row by row") {
  const ModelConfig config = small_config();
  const ModelWeights f32 = random_weights(config, 5, DType::f32, 2);
  for (DType target : {DType::q8_0, DType::q4_0}) {
    CAPTURE(dtype_name(target));
    const ModelWeights drawn = random_weights(config, 5, target, 2);
    ModelWeights converted = random_weights(config, 5, DType::f32, 1);
    convert_weights(config, converted, target, 1);
    const LayerWeights& l = drawn.layers[0];
    CHECK(l.wq.dtype == target);
    CHECK(l.w_up.dtype == target);
    CHECK(l.w_down.dtype == DType::bf16);  // rows of 80 are not whole blocks: bf16 for random weights
    CHECK(l.attn_norm.dtype == DType::f32);
    CHECK(converted.layers[0].w_down.dtype == DType::f32);  // convert keeps a non-block row's stored type
    CHECK(std::memcmp(l.wq.data, converted.layers[0].wq.data, l.wq.bytes()) == 0);
    CHECK(std::memcmp(drawn.embed.data, converted.embed.data, drawn.embed.bytes()) == 0);
    // The PAD row (0) is zero: a zero block has scale 0.
    std::vector<float> row(64);
    row_to_f32(target, drawn.embed.row(0), 64, row.data());
    CHECK(std::all_of(row.begin(), row.end(), [](float v) { return v == 0.0f; }));
  }
  CHECK(std::memcmp(random_weights(config, 9, DType::q8_0, 1).layers[1].wv.data,
                    random_weights(config, 9, DType::q8_0, 2).layers[1].wv.data,
                    random_weights(config, 9, DType::q8_0, 1).layers[1].wv.bytes()) == 0);
}

TEST_CASE("converting quantized weights back to f32 dequantizes them exactly") {
  const ModelConfig config = small_config();
  ModelWeights w = random_weights(config, 3, DType::q8_0, 1);
  const ModelWeights q8 = w;
  convert_weights(config, w, DType::f32, 1);
  CHECK(w.layers[0].wk.dtype == DType::f32);
  std::vector<float> expected(64);
  dequantize_row_q8_0(q8.layers[0].wk.row(3), 64, expected.data());
  CHECK(std::memcmp(expected.data(), w.layers[0].wk.row(3), 64 * sizeof(float)) == 0);
}

TEST_CASE("types weights cannot be stored in are refused with a clear message") {
  const ModelConfig config = small_config();
  const std::string storable = "(supported: " + quantizable_dtype_names() + ")";
  CHECK(quantizable_dtype_names().find("q4_k") == std::string::npos);
  CHECK_THROWS_WITH_AS(random_weights(config, 1, DType::q4_k, 1),
                       ("random init: cannot store weights as q4_k " + storable).c_str(), Error);
  ModelWeights w = random_weights(config, 1, DType::f32, 1);
  CHECK_THROWS_WITH_AS(convert_weights(config, w, DType::q6_k, 1), doctest::Contains("cannot store weights as q6_k"),
                       Error);
  ModelWeights unchanged = random_weights(config, 1, DType::q8_0, 1);
  const std::byte* before = unchanged.layers[0].wq.data;
  convert_weights(config, unchanged, DType::q8_0, 1);  // nothing to do: no copy
  CHECK(unchanged.layers[0].wq.data == before);
}

TEST_CASE("random checkpoints in a quantized type: the variant presets" * test::kNoKernels) {
  auto tokenizer = std::make_shared<const Tokenizer>(Tokenizer::from_file(data_path("tokenizer/tokenizer.model")));
  const Checkpoint c = random_checkpoint(variant_preset("SmallCoder-Tiny"), 0, DType::q8_0, tokenizer, 2);
  CHECK(c.dtype == DType::q8_0);
  CHECK(c.weights.layers[11].w_down.dtype == DType::q8_0);
  CHECK(c.weights.final_norm.dtype == DType::f32);
  // 100,092,672 parameters: the matrices at 34/32 bytes per weight, the 25 norms of 768 in f32.
  const std::size_t norms = 25 * 768;
  CHECK(c.weights.bytes() == (100092672 - norms) / 32 * 34 + norms * 4);
}
