// Reads a Hugging Face LLaMA-style config.json into a ModelConfig, refusing the
// features this runtime does not implement instead of silently computing something else.
#pragma once

#include <string>

#include "smallcoder/config.hpp"
#include "smallcoder/io/json.hpp"
#include "smallcoder/io/mapped_file.hpp"

namespace smallcoder {

inline ModelConfig config_from_hf_json(const JsonValue& json, const std::string& where) {
  json.as_object(where);
  auto field = [&](const char* key) { return where + ": field '" + key + "'"; };
  auto get_int = [&](const char* key) {
    const std::int64_t v = json.at(key, where).as_int(field(key));
    if (v < -1 || v > (1ll << 30)) fail(field(key), "value " + std::to_string(v) + " is out of range");
    return static_cast<int>(v);
  };
  auto get_int_or = [&](const char* key, int fallback) {
    const JsonValue* v = json.find(key);
    return v == nullptr || v->is_null() ? fallback : get_int(key);
  };
  // Token ids may be lists (several EOS ids); the first one is used.
  auto get_token_or = [&](const char* key, int fallback) {
    const JsonValue* v = json.find(key);
    if (v == nullptr || v->is_null()) return fallback;
    if (v->is_array()) {
      const auto& items = v->as_array(field(key));
      if (items.empty()) fail(field(key), "empty list");
      return static_cast<int>(items.front().as_int(field(key)));
    }
    return get_int(key);
  };
  auto get_float_or = [&](const char* key, double fallback) {
    const JsonValue* v = json.find(key);
    return static_cast<float>(v == nullptr ? fallback : v->as_double(field(key)));
  };
  auto refuse_true = [&](const char* key) {
    const JsonValue* v = json.find(key);
    if (v != nullptr && v->as_bool(field(key))) fail(field(key), "is true; biases are not supported");
  };

  if (const JsonValue* type = json.find("model_type")) {
    const std::string& t = type->as_string(field("model_type"));
    if (t != "llama") fail(field("model_type"), "'" + t + "' is not supported (only 'llama')");
  }
  if (const JsonValue* act = json.find("hidden_act")) {
    const std::string& a = act->as_string(field("hidden_act"));
    if (a != "silu") fail(field("hidden_act"), "'" + a + "' is not supported (only 'silu')");
  }
  if (const JsonValue* scaling = json.find("rope_scaling")) {
    if (!scaling->is_null()) fail(field("rope_scaling"), "RoPE scaling is not supported");
  }
  refuse_true("attention_bias");
  refuse_true("mlp_bias");

  ModelConfig c;
  c.hidden_size = get_int("hidden_size");
  c.intermediate_size = get_int("intermediate_size");
  c.num_layers = get_int("num_hidden_layers");
  c.num_heads = get_int("num_attention_heads");
  c.num_kv_heads = get_int_or("num_key_value_heads", c.num_heads);
  c.head_dim = get_int_or("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.vocab_size = get_int("vocab_size");
  c.max_context = get_int("max_position_embeddings");
  c.rms_norm_eps = get_float_or("rms_norm_eps", 1e-6);
  c.rope_theta = get_float_or("rope_theta", 10000.0);
  const JsonValue* tie = json.find("tie_word_embeddings");
  c.tie_word_embeddings = tie != nullptr && tie->as_bool(field("tie_word_embeddings"));  // Hugging Face's default: false
  c.bos_id = get_token_or("bos_token_id", 1);
  c.eos_id = get_token_or("eos_token_id", 2);
  c.pad_id = get_token_or("pad_token_id", -1);
  c.validate(where);
  return c;
}

inline ModelConfig load_hf_config(const std::string& path) {
  const auto file = MappedFile::open(path);
  const std::string_view text(reinterpret_cast<const char*>(file->data()), file->size());
  return config_from_hf_json(parse_json(text, path), path);
}

}  // namespace smallcoder
