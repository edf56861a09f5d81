// ModelConfig: the shape of a LLaMA-style SmallCoder model, the six published
// variants as presets, validation, and the parameter count the variant table quotes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smallcoder/error.hpp"

namespace smallcoder {

struct ModelConfig {
  std::string name;  // variant name, or the checkpoint it was read from
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // hidden_size / num_heads unless a checkpoint says otherwise
  int vocab_size = 32000;
  int max_context = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  bool tie_word_embeddings = true;
  int bos_id = 1;
  int eos_id = 2;
  int pad_id = 0;

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  int kv_group() const { return num_heads / num_kv_heads; }  // query heads per kv head

  // Weights and norms, counting a tied embedding once (as the variant table does).
  std::int64_t parameter_count() const {
    const std::int64_t h = hidden_size;
    const std::int64_t attention = h * q_dim() * 2 + h * kv_dim() * 2;
    const std::int64_t mlp = 3 * h * intermediate_size;
    const std::int64_t per_layer = attention + mlp + 2 * h;
    const std::int64_t embed = static_cast<std::int64_t>(vocab_size) * h;
    return embed * (tie_word_embeddings ? 1 : 2) + num_layers * per_layer + h;
  }

  // Throws naming `where` and the offending field; call after filling a config from any source.
  void validate(const std::string& where) const {
    auto positive = [&](const char* field, long long v, long long limit) {
      if (v <= 0 || v > limit) {
        fail(where, std::string("field '") + field + "' must be in 1.." + std::to_string(limit) + ", got " +
                        std::to_string(v));
      }
    };
    positive("hidden_size", hidden_size, 1 << 16);
    positive("intermediate_size", intermediate_size, 1 << 18);
    positive("num_hidden_layers", num_layers, 1024);
    positive("num_attention_heads", num_heads, 1024);
    positive("num_key_value_heads", num_kv_heads, 1024);
    positive("head_dim", head_dim, 1024);
    positive("vocab_size", vocab_size, 1 << 22);
    positive("max_position_embeddings", max_context, 1 << 20);
    if (num_heads % num_kv_heads != 0) {
      fail(where, "num_attention_heads (" + std::to_string(num_heads) + ") is not a multiple of num_key_value_heads (" +
                      std::to_string(num_kv_heads) + ")");
    }
    if (head_dim % 2 != 0) fail(where, "head_dim must be even for RoPE, got " + std::to_string(head_dim));
    if (!(rms_norm_eps > 0.0f)) fail(where, "field 'rms_norm_eps' must be positive");
    if (!(rope_theta > 0.0f)) fail(where, "field 'rope_theta' must be positive");
    auto token = [&](const char* field, int id, bool optional) {
      if ((optional && id == -1) || (id >= 0 && id < vocab_size)) return;
      fail(where, std::string("field '") + field + "' = " + std::to_string(id) + " is outside the vocabulary of " +
                      std::to_string(vocab_size));
    };
    token("bos_token_id", bos_id, false);
    token("eos_token_id", eos_id, false);
    token("pad_token_id", pad_id, true);
  }
};

// The six SmallCoder variants of the original model_variants.py.
inline const std::vector<ModelConfig>& variant_presets() {
  static const std::vector<ModelConfig> presets = [] {
    auto make = [](const char* name, int hidden, int inter, int layers, int heads, int kv, int context) {
      ModelConfig c;
      c.name = name;
      c.hidden_size = hidden;
      c.intermediate_size = inter;
      c.num_layers = layers;
      c.num_heads = heads;
      c.num_kv_heads = kv;
      c.head_dim = hidden / heads;
      c.max_context = context;
      return c;
    };
    return std::vector<ModelConfig>{
        make("SmallCoder-Tiny", 768, 2048, 12, 12, 4, 2048),
        make("SmallCoder-Small", 960, 2688, 16, 12, 4, 4096),
        make("SmallCoder-Medium", 1152, 3328, 18, 16, 4, 4096),
        make("SmallCoder-Tiny-LC", 768, 2048, 12, 12, 4, 8192),
        make("SmallCoder-Small-LC", 960, 2688, 16, 12, 4, 8192),
        make("SmallCoder-Medium-LC", 1152, 3328, 18, 16, 4, 8192),
    };
  }();
  return presets;
}

// Looks a variant up by its exact name, ignoring case ("smallcoder-tiny" works too).
inline const ModelConfig* find_variant(std::string_view name) {
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return out;
  };
  for (const ModelConfig& c : variant_presets()) {
    if (lower(c.name) == lower(name)) return &c;
  }
  return nullptr;
}

inline const ModelConfig& variant_preset(std::string_view name) {
  if (const ModelConfig* c = find_variant(name)) return *c;
  std::string known;
  for (const ModelConfig& c : variant_presets()) known += (known.empty() ? "" : ", ") + c.name;
  fail("variant", "unknown variant '" + std::string(name) + "' (known: " + known + ")");
}

}  // namespace smallcoder
