// ModelConfig: the six variant presets against ../shared/README.md's table, validation
// errors naming their field, and Hugging Face config.json parsing (io/hf_config.hpp):
// nano's config, defaults, refused features and wrong types.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "smallcoder/config.hpp"
#include "smallcoder/io/hf_config.hpp"
#include "support/expect_error.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using smallcoder::test::check_error;

namespace {

// smallcoder-nano's config.json, verbatim (this test runs without ../shared).
const char* const nano_config_json = R"({
  "architectures": [
    "LlamaForCausalLM"
  ],
  "model_type": "llama",
  "hidden_act": "silu",
  "torch_dtype": "bfloat16",
  "attention_bias": false,
  "mlp_bias": false,
  "rope_scaling": null,
  "initializer_range": 0.02,
  "vocab_size": 32000,
  "rms_norm_eps": 1e-06,
  "rope_theta": 10000.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "pad_token_id": 0,
  "tie_word_embeddings": true,
  "hidden_size": 256,
  "intermediate_size": 688,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "max_position_embeddings": 2048,
  "head_dim": 64
})";

// The fields every config must have, with `extra` members appended (a JSON fragment
// starting with a comma, or empty).
std::string minimal_json(const std::string& extra = "") {
  return R"({"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4,
             "vocab_size": 32000, "max_position_embeddings": 2048)" +
         extra + "}";
}

ModelConfig parse(const std::string& json) { return config_from_hf_json(parse_json(json, "config.json"), "config.json"); }

}  // namespace

TEST_CASE("config: the six presets have the README's parameter counts and head dims") {
  struct Row {
    const char* name;
    int hidden, inter, layers, heads, kv, context, head_dim;
    std::int64_t parameters;
  };
  const Row table[] = {
      {"SmallCoder-Tiny", 768, 2048, 12, 12, 4, 2048, 64, 100092672},
      {"SmallCoder-Small", 960, 2688, 16, 12, 4, 4096, 80, 193936320},
      {"SmallCoder-Medium", 1152, 3328, 18, 16, 4, 4096, 72, 303654528},
      {"SmallCoder-Tiny-LC", 768, 2048, 12, 12, 4, 8192, 64, 100092672},
      {"SmallCoder-Small-LC", 960, 2688, 16, 12, 4, 8192, 80, 193936320},
      {"SmallCoder-Medium-LC", 1152, 3328, 18, 16, 4, 8192, 72, 303654528},
  };
  REQUIRE(variant_presets().size() == 6);
  for (const Row& row : table) {
    CAPTURE(row.name);
    const ModelConfig& c = variant_preset(row.name);
    CHECK(c.name == row.name);
    CHECK(c.hidden_size == row.hidden);
    CHECK(c.intermediate_size == row.inter);
    CHECK(c.num_layers == row.layers);
    CHECK(c.num_heads == row.heads);
    CHECK(c.num_kv_heads == row.kv);
    CHECK(c.max_context == row.context);
    CHECK(c.head_dim == row.head_dim);
    CHECK(c.parameter_count() == row.parameters);
    // The shared definition: vocab 32000, eps 1e-6, theta 10000, tied, BOS 1, EOS 2, PAD 0.
    CHECK(c.vocab_size == 32000);
    CHECK(c.rms_norm_eps == 1e-6f);
    CHECK(c.rope_theta == 10000.0f);
    CHECK(c.tie_word_embeddings);
    CHECK(c.bos_id == 1);
    CHECK(c.eos_id == 2);
    CHECK(c.pad_id == 0);
    CHECK(c.q_dim() == c.hidden_size);
    CHECK(c.kv_dim() == row.kv * row.head_dim);
    CHECK(c.kv_group() == row.heads / row.kv);
    CHECK_NOTHROW(c.validate(row.name));
  }
  // Untying adds one more vocab x hidden matrix.
  ModelConfig untied = variant_preset("SmallCoder-Tiny");
  untied.tie_word_embeddings = false;
  CHECK(untied.parameter_count() == 100092672 + 32000ll * 768);
}

TEST_CASE("config: variants are found by name, ignoring case; unknown names list the known ones") {
  REQUIRE(find_variant("smallcoder-medium-lc") != nullptr);
  CHECK(find_variant("smallcoder-medium-lc")->name == "SmallCoder-Medium-LC");
  CHECK(find_variant("SmallCoder-Huge") == nullptr);
  check_error([] { variant_preset("SmallCoder-Huge"); }, {"SmallCoder-Huge", "SmallCoder-Tiny", "SmallCoder-Medium-LC"});
}

TEST_CASE("config: validation names the offending field") {
  const ModelConfig good = variant_preset("SmallCoder-Small");
  auto with = [&](auto&& change) {
    ModelConfig c = good;
    change(c);
    return c;
  };
  SUBCASE("zero and negative sizes") {
    check_error([&] { with([](ModelConfig& c) { c.hidden_size = 0; }).validate("cfg"); }, {"cfg", "hidden_size", "got 0"});
    check_error([&] { with([](ModelConfig& c) { c.hidden_size = -960; }).validate("cfg"); }, {"hidden_size", "-960"});
    check_error([&] { with([](ModelConfig& c) { c.intermediate_size = 0; }).validate("cfg"); }, {"intermediate_size"});
    check_error([&] { with([](ModelConfig& c) { c.intermediate_size = -1; }).validate("cfg"); }, {"intermediate_size"});
    check_error([&] { with([](ModelConfig& c) { c.num_layers = 0; }).validate("cfg"); }, {"num_hidden_layers"});
    check_error([&] { with([](ModelConfig& c) { c.num_heads = -12; }).validate("cfg"); }, {"num_attention_heads"});
    check_error([&] { with([](ModelConfig& c) { c.num_kv_heads = 0; }).validate("cfg"); }, {"num_key_value_heads"});
    check_error([&] { with([](ModelConfig& c) { c.head_dim = 0; }).validate("cfg"); }, {"head_dim"});
    check_error([&] { with([](ModelConfig& c) { c.vocab_size = 0; }).validate("cfg"); }, {"vocab_size"});
    check_error([&] { with([](ModelConfig& c) { c.max_context = -4096; }).validate("cfg"); }, {"max_position_embeddings"});
  }
  SUBCASE("heads not a multiple of kv heads") {
    check_error([&] { with([](ModelConfig& c) { c.num_kv_heads = 5; }).validate("cfg"); },
                {"cfg", "num_attention_heads (12)", "num_key_value_heads (5)"});
  }
  SUBCASE("odd head_dim") {
    check_error([&] { with([](ModelConfig& c) { c.head_dim = 79; }).validate("cfg"); }, {"head_dim", "even", "79"});
  }
  SUBCASE("token ids outside the vocabulary") {
    check_error([&] { with([](ModelConfig& c) { c.bos_id = 32000; }).validate("cfg"); }, {"bos_token_id", "32000"});
    check_error([&] { with([](ModelConfig& c) { c.bos_id = -1; }).validate("cfg"); }, {"bos_token_id"});
    check_error([&] { with([](ModelConfig& c) { c.eos_id = 40000; }).validate("cfg"); }, {"eos_token_id"});
    check_error([&] { with([](ModelConfig& c) { c.pad_id = -2; }).validate("cfg"); }, {"pad_token_id"});
    CHECK_NOTHROW(with([](ModelConfig& c) { c.pad_id = -1; }).validate("cfg"));  // no PAD token
  }
  SUBCASE("non-positive eps and theta") {
    check_error([&] { with([](ModelConfig& c) { c.rms_norm_eps = 0.0f; }).validate("cfg"); }, {"rms_norm_eps"});
    check_error([&] { with([](ModelConfig& c) { c.rms_norm_eps = std::nanf(""); }).validate("cfg"); }, {"rms_norm_eps"});
    check_error([&] { with([](ModelConfig& c) { c.rope_theta = -1.0f; }).validate("cfg"); }, {"rope_theta"});
  }
}

TEST_CASE("hf config: smallcoder-nano's config.json") {
  const ModelConfig c = parse(nano_config_json);
  CHECK(c.hidden_size == 256);
  CHECK(c.intermediate_size == 688);
  CHECK(c.num_layers == 4);
  CHECK(c.num_heads == 4);
  CHECK(c.num_kv_heads == 2);
  CHECK(c.head_dim == 64);
  CHECK(c.vocab_size == 32000);
  CHECK(c.max_context == 2048);
  CHECK(c.rms_norm_eps == 1e-6f);
  CHECK(c.rope_theta == 10000.0f);
  CHECK(c.tie_word_embeddings);
  CHECK(c.bos_id == 1);
  CHECK(c.eos_id == 2);
  CHECK(c.pad_id == 0);
  CHECK(c.parameter_count() == 11094272);  // the README's "11.1M parameters"

  // The same through the file reader.
  const std::string path = test::scratch_path("nano_config.json");
  test::write_file(path, nano_config_json);
  const ModelConfig loaded = load_hf_config(path);
  CHECK(loaded.parameter_count() == c.parameter_count());
  CHECK(loaded.num_kv_heads == 2);
  check_error([] { load_hf_config(test::scratch_path("no_such_config.json")); }, {"no_such_config.json", "cannot open"});
}

TEST_CASE("hf config: defaults for absent fields") {
  const ModelConfig c = parse(minimal_json());
  CHECK(c.num_kv_heads == 4);  // no num_key_value_heads: plain multi-head attention
  CHECK(c.head_dim == 64);     // no head_dim: hidden / heads
  CHECK(c.rms_norm_eps == 1e-6f);
  CHECK(c.rope_theta == 10000.0f);
  CHECK_FALSE(c.tie_word_embeddings);  // Hugging Face's LlamaConfig default
  CHECK(c.bos_id == 1);
  CHECK(c.eos_id == 2);
  CHECK(c.pad_id == -1);
  // Explicit values win over the defaults; null token ids keep them; a list gives its first id.
  const ModelConfig d = parse(minimal_json(
      R"(, "head_dim": 128, "num_key_value_heads": 1, "rope_theta": 500000, "rms_norm_eps": 1e-5, "pad_token_id": null,
        "eos_token_id": [7, 2], "rope_scaling": null, "attention_bias": false, "tie_word_embeddings": true)"));
  CHECK(d.head_dim == 128);
  CHECK(d.q_dim() == 512);
  CHECK(d.num_kv_heads == 1);
  CHECK(d.rope_theta == 500000.0f);
  CHECK(d.rms_norm_eps == 1e-5f);
  CHECK(d.pad_id == -1);
  CHECK(d.eos_id == 7);
  CHECK(d.tie_word_embeddings);
}

TEST_CASE("hf config: features this runtime does not implement are refused, naming the field") {
  check_error([] { parse(minimal_json(R"(, "model_type": "mistral")")); }, {"config.json", "model_type", "mistral"});
  check_error([] { parse(minimal_json(R"(, "rope_scaling": {"type": "linear", "factor": 2.0})")); },
              {"config.json", "rope_scaling"});
  check_error([] { parse(minimal_json(R"(, "attention_bias": true)")); }, {"config.json", "attention_bias"});
  check_error([] { parse(minimal_json(R"(, "mlp_bias": true)")); }, {"config.json", "mlp_bias"});
  check_error([] { parse(minimal_json(R"(, "hidden_act": "gelu")")); }, {"config.json", "hidden_act", "gelu"});
  CHECK_NOTHROW(parse(minimal_json(R"(, "model_type": "llama", "hidden_act": "silu", "mlp_bias": false)")));
}

TEST_CASE("hf config: wrong types, missing fields and bad values are Errors naming the field") {
  const std::string wrong_hidden = R"({"hidden_size": "256", "intermediate_size": 688, "num_hidden_layers": 4,
      "num_attention_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048})";
  check_error([&] { parse(wrong_hidden); }, {"config.json", "hidden_size"});
  check_error([] { parse(minimal_json(R"(, "num_key_value_heads": 2.5)")); }, {"num_key_value_heads"});
  check_error([] { parse(minimal_json(R"(, "tie_word_embeddings": "true")")); }, {"tie_word_embeddings"});
  check_error([] { parse(minimal_json(R"(, "rms_norm_eps": "1e-6")")); }, {"rms_norm_eps"});
  check_error([] { parse(minimal_json(R"(, "model_type": 7)")); }, {"model_type"});
  check_error([] { parse(minimal_json(R"(, "eos_token_id": [])")); }, {"eos_token_id"});
  check_error([] { parse(minimal_json(R"(, "head_dim": 4000000000000)")); }, {"head_dim"});
  check_error([] { parse(R"({"hidden_size": 256})"); }, {"config.json", "intermediate_size"});
  check_error([] { parse("[1, 2]"); }, {"config.json"});
  check_error([] { parse(minimal_json(R"(, "num_key_value_heads": 3)")); }, {"num_key_value_heads (3)"});
  check_error([] { parse(minimal_json(R"(, "head_dim": 63)")); }, {"head_dim"});
  check_error([] { parse(minimal_json(R"(, "bos_token_id": 32000)")); }, {"bos_token_id"});
  check_error([] { parse(R"({"hidden_size": -256, "intermediate_size": 688, "num_hidden_layers": 4,
      "num_attention_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048})"); }, {"hidden_size"});
  check_error([] { parse_json(R"({"hidden_size": 256,)", "config.json"); }, {"config.json"});
}
