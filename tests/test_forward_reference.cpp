// Transformer<CpuBackend> against an independent double-precision forward pass
// (support/reference_forward.hpp) on small random models shaped like the variants
// (head_dim 72 and 80, GQA, an untied lm_head), for every prefix of a prompt, through
// batched prefill, the KV cache and chunked prefill, on 1 and 2 threads.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "smallcoder/cpu/backend.hpp"
#include "smallcoder/model/make_weights.hpp"
#include "smallcoder/model/transformer.hpp"
#include "smallcoder/random.hpp"
#include "support/model_shape.hpp"
#include "support/reference_forward.hpp"

using namespace smallcoder;

namespace {

// The acceptance bound: float32 kernels against the double reference.
constexpr double kMaxRelativeL2 = 1e-5;

ModelConfig small_config(const char* name, int hidden, int heads, int kv_heads, int inter, bool tied) {
  ModelConfig c = test::shaped_config(name, {hidden, inter, 2, heads, kv_heads, hidden / heads, 300, 64});
  c.tie_word_embeddings = tied;
  c.validate(name);
  return c;
}

std::vector<ModelConfig> reference_configs() {
  return {
      small_config("head_dim 72 (like Medium), MQA", 144, 2, 1, 200, true),
      small_config("head_dim 80 (like Small)", 160, 2, 2, 216, true),
      small_config("GQA group 4", 128, 8, 2, 176, true),
      small_config("untied lm_head", 96, 4, 2, 136, false),
  };
}

// 10 ids spread over the vocabulary, PAD (0, a zero embedding row) among them.
std::vector<std::int32_t> prompt_ids(int vocab, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(static_cast<std::int32_t>(rng.next() % static_cast<std::uint64_t>(vocab)));
  ids[4] = 0;
  return ids;
}

struct Worst {
  double relative_l2 = 0, max_abs = 0;
  void add(const test::LogitError& e) {
    relative_l2 = std::max(relative_l2, e.relative_l2);
    max_abs = std::max(max_abs, e.max_abs);
  }
};

}  // namespace

TEST_CASE("forward: every prefix matches the double reference (batched, cached, chunked; 1 and 2 threads)") {
  for (const ModelConfig& config : reference_configs()) {
    for (DType dtype : {DType::f32, DType::bf16}) {
      const ModelWeights weights = random_weights(config, 7, dtype, 1);
      if (!config.tie_word_embeddings) REQUIRE(weights.lm_head.data != weights.embed.data);
      const std::vector<std::int32_t> ids = prompt_ids(config.vocab_size, 11);
      const std::vector<std::vector<double>> expected = test::ReferenceForward(config, weights).logits(ids);
      const int n = static_cast<int>(ids.size());
      const std::string type = dtype_name(dtype);
      for (int threads : {1, 2}) {
        CAPTURE(config.name);
        CAPTURE(type);
        CAPTURE(threads);
        Worst batched, cached, chunked;

        // (a) one batched prefill of each prefix
        Transformer<CpuBackend> model(config, weights, BackendOptions{threads, 512, 0});
        for (int len = 1; len <= n; ++len) {
          CAPTURE(len);
          model.reset();
          const test::LogitError e = test::compare_logits(model.forward(ids.data(), len), expected[len - 1]);
          CHECK(e.relative_l2 < kMaxRelativeL2);
          batched.add(e);
          CHECK(model.position() == len);
        }
        // (b) token by token through the KV cache
        model.reset();
        for (int t = 0; t < n; ++t) {
          CAPTURE(t);
          const test::LogitError e = test::compare_logits(model.forward(&ids[static_cast<std::size_t>(t)], 1), expected[t]);
          CHECK(e.relative_l2 < kMaxRelativeL2);
          cached.add(e);
        }
        // (c) chunked prefill: at most 3 tokens per pass, so a 10-token prompt takes 4 passes
        Transformer<CpuBackend> chunks(config, weights, BackendOptions{threads, 3, 0});
        REQUIRE(chunks.backend().max_batch() == 3);
        for (int len = 1; len <= n; ++len) {
          CAPTURE(len);
          chunks.reset();
          const test::LogitError e = test::compare_logits(chunks.forward(ids.data(), len), expected[len - 1]);
          CHECK(e.relative_l2 < kMaxRelativeL2);
          chunked.add(e);
        }
        // A prefill pass followed by cached steps continues the same sequence.
        chunks.reset();
        chunks.forward(ids.data(), 4);
        for (int t = 4; t < n; ++t) {
          const test::LogitError e = test::compare_logits(chunks.forward(&ids[static_cast<std::size_t>(t)], 1), expected[t]);
          CHECK(e.relative_l2 < kMaxRelativeL2);
          chunked.add(e);
        }
        MESSAGE(config.name << ", " << type << ", " << threads << " thread(s): worst rel L2 / max abs: batched "
                            << batched.relative_l2 << " / " << batched.max_abs << ", cached " << cached.relative_l2
                            << " / " << cached.max_abs << ", chunked " << chunked.relative_l2 << " / "
                            << chunked.max_abs);
      }
    }
  }
}

TEST_CASE("forward: the reference is not trivially satisfied") {
  // Guards the comparison itself: a different model (another seed) must be far off, and
  // the last position's logits must differ from the first's (attention and RoPE matter).
  const ModelConfig config = reference_configs()[2];
  const std::vector<std::int32_t> ids = prompt_ids(config.vocab_size, 11);
  const ModelWeights weights = random_weights(config, 7, DType::f32, 1);
  const ModelWeights other = random_weights(config, 8, DType::f32, 1);
  const auto expected = test::ReferenceForward(config, weights).logits(ids);
  Transformer<CpuBackend> model(config, other, BackendOptions{1, 512, 0});
  CHECK(test::compare_logits(model.forward(ids.data(), 10), expected[9]).relative_l2 > 0.1);
  std::vector<float> first(expected[0].begin(), expected[0].end());
  CHECK(test::compare_logits(first.data(), expected[9]).relative_l2 > 0.1);
  // Swapping two earlier tokens changes the last logits: positions are encoded.
  std::vector<std::int32_t> swapped = ids;
  std::swap(swapped[1], swapped[2]);
  const auto expected_swapped = test::ReferenceForward(config, weights).logits(swapped);
  std::vector<float> last(expected[9].begin(), expected[9].end());
  CHECK(test::compare_logits(last.data(), expected_swapped[9]).relative_l2 > 1e-3);
}

TEST_CASE("forward: the context is a hard limit, and reset() restarts the sequence") {
  ModelConfig config = small_config("tiny context", 32, 4, 2, 48, true);
  config.max_context = 16;
  const ModelWeights weights = random_weights(config, 3, DType::f32, 1);
  Transformer<CpuBackend> model(config, weights, BackendOptions{1, 512, 0});
  REQUIRE(model.context() == 16);
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 17; ++i) ids.push_back(static_cast<std::int32_t>(5 + 7 * i));

  SUBCASE("a prompt longer than the context is refused before anything runs") {
    CHECK_THROWS_AS(model.forward(ids.data(), 17), Error);
    CHECK(model.position() == 0);
    CHECK_THROWS_WITH(model.forward(ids.data(), 17), doctest::Contains("17 tokens do not fit"));
  }
  SUBCASE("filling the context exactly works; one more token throws; reset restarts") {
    const float* l0 = model.forward(ids.data(), 1);
    const std::vector<float> first(l0, l0 + config.vocab_size);
    for (int t = 1; t < 16; ++t) model.forward(&ids[static_cast<std::size_t>(t)], 1);
    CHECK(model.position() == 16);
    CHECK_THROWS_AS(model.forward(&ids[16], 1), Error);
    CHECK_THROWS_WITH(model.forward(&ids[16], 1),
                      doctest::Contains("1 tokens do not fit: 16 of 16 context positions are used"));
    CHECK(model.position() == 16);
    model.reset();
    CHECK(model.position() == 0);
    const float* again = model.forward(ids.data(), 1);
    CHECK(std::vector<float>(again, again + config.vocab_size) == first);
    // A whole-context prefill after reset equals the reference at its last position.
    model.reset();
    const std::vector<std::int32_t> sixteen(ids.begin(), ids.begin() + 16);
    const auto expected = test::ReferenceForward(config, weights).logits(sixteen);
    CHECK(test::compare_logits(model.forward(sixteen.data(), 16), expected[15]).relative_l2 < kMaxRelativeL2);
    CHECK_THROWS_AS(model.forward(&ids[16], 1), Error);
  }
  SUBCASE("BackendOptions.context overrides the model's context") {
    Transformer<CpuBackend> shorter(config, weights, BackendOptions{1, 512, 8});
    CHECK(shorter.context() == 8);
    shorter.forward(ids.data(), 8);
    CHECK_THROWS_AS(shorter.forward(&ids[8], 1), Error);
  }
  SUBCASE("no tokens, or ids outside the vocabulary, are refused") {
    CHECK_THROWS_AS(model.forward(ids.data(), 0), Error);
    const std::int32_t bad[2] = {1, config.vocab_size};
    CHECK_THROWS_WITH(model.forward(bad, 2), doctest::Contains("token id 300 is outside the vocabulary of 300"));
    const std::int32_t negative = -1;
    CHECK_THROWS_AS(model.forward(&negative, 1), Error);
    CHECK(model.position() == 0);
  }
}
