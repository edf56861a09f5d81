// The LLaMA conventions of GGUF files as llama.cpp writes and reads them: the llama.* keys
// that hold the ModelConfig, the tokenizer.ggml.* keys that hold the SentencePiece tokenizer
// (llama.cpp's defaults where a key is absent), and the Q/K row order for interleaved RoPE.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/io/gguf.hpp"
#include "smallcoder/text/sentencepiece.hpp"

namespace smallcoder {

namespace detail {

// An integer key of any width, in [min_value, INT32_MAX]; `fallback` when absent (none: required).
inline int gguf_int_key(const Gguf& file, const std::string& key, std::optional<int> fallback, int min_value = 0) {
  const GgufValue* v = file.find(key);
  if (v == nullptr) {
    if (!fallback) fail(file.path(), "missing metadata key '" + key + "'");
    return *fallback;
  }
  const std::string where = file.path() + ": " + key;
  if (v->type() == GgufType::array) fail(where, "per-layer values (" + v->describe() + ") are not supported");
  const std::int64_t n = v->to_int(where);
  if (n < min_value || n > std::numeric_limits<int>::max()) {
    fail(where, "value " + std::to_string(n) + " is out of range");
  }
  return static_cast<int>(n);
}

inline float gguf_float_key(const Gguf& file, const std::string& key, std::optional<float> fallback) {
  const GgufValue* v = file.find(key);
  if (v == nullptr) {
    if (!fallback) fail(file.path(), "missing metadata key '" + key + "'");
    return *fallback;
  }
  return static_cast<float>(v->to_double(file.path() + ": " + key));
}

inline bool gguf_bool_key(const Gguf& file, const std::string& key, bool fallback) {
  const GgufValue* v = file.find(key);
  return v == nullptr ? fallback : v->to_bool(file.path() + ": " + key);
}

inline std::string gguf_string_key(const Gguf& file, const std::string& key) {
  return file.get(key).to_string(file.path() + ": " + key);
}

// An array key whose length must be `n`.
inline const GgufValue& gguf_array_key(const Gguf& file, const std::string& key, std::size_t n) {
  const GgufValue& v = file.get(key);
  const std::string where = file.path() + ": " + key;
  if (v.type() != GgufType::array) fail(where, "expected an array, got " + v.describe());
  if (v.size() != n) fail(where, "has " + std::to_string(v.size()) + " elements, expected " + std::to_string(n));
  return v;
}

}  // namespace detail

// The model shape from the llama.* keys (any integer width). head_dim is embedding_length /
// head_count unless attention.key_length says otherwise; the model is tied when the file has
// no output.weight. Features this runtime does not implement are refused, not ignored.
inline ModelConfig config_from_gguf(const Gguf& file) {
  const std::string& path = file.path();
  const std::string arch = detail::gguf_string_key(file, "general.architecture");
  if (arch != "llama") fail(path, "general.architecture is '" + arch + "'; only 'llama' models are supported");
  const auto key_int = [&](const char* key, std::optional<int> fallback) {
    return detail::gguf_int_key(file, std::string("llama.") + key, fallback);
  };
  ModelConfig c;
  c.num_layers = key_int("block_count", std::nullopt);
  c.max_context = key_int("context_length", std::nullopt);
  c.hidden_size = key_int("embedding_length", std::nullopt);
  c.intermediate_size = key_int("feed_forward_length", std::nullopt);
  c.num_heads = key_int("attention.head_count", std::nullopt);
  c.num_kv_heads = key_int("attention.head_count_kv", c.num_heads);
  c.head_dim = key_int("attention.key_length", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  if (key_int("attention.value_length", c.head_dim) != c.head_dim) {
    fail(path, "llama.attention.value_length differs from the key length " + std::to_string(c.head_dim) +
                   "; only equal key and value head sizes are supported");
  }
  if (key_int("rope.dimension_count", c.head_dim) != c.head_dim) {
    fail(path, "llama.rope.dimension_count differs from the head size " + std::to_string(c.head_dim) +
                   "; partial RoPE is not supported");
  }
  if (key_int("expert_count", 0) != 0) {
    fail(path, "llama.expert_count is set; mixture-of-experts models are not supported");
  }
  if (const GgufValue* scaling = file.find("llama.rope.scaling.type")) {
    const std::string& type = scaling->to_string(path + ": llama.rope.scaling.type");
    if (type != "none") fail(path, "llama.rope.scaling.type is '" + type + "'; RoPE scaling is not supported");
  }
  c.rope_theta = detail::gguf_float_key(file, "llama.rope.freq_base", 10000.0f);
  c.rms_norm_eps = detail::gguf_float_key(file, "llama.attention.layer_norm_rms_epsilon", std::nullopt);
  // Without llama.vocab_size: the token list's length, else the embedding's rows (as llama.cpp).
  const GgufValue* tokens = file.find("tokenizer.ggml.tokens");
  const GgufTensorInfo* embed = file.find_tensor("token_embd.weight");
  constexpr std::int64_t int_max = std::numeric_limits<int>::max();
  std::int64_t counted_vocab = 0;
  if (tokens != nullptr && tokens->type() == GgufType::array) {
    counted_vocab = static_cast<std::int64_t>(std::min<std::size_t>(tokens->size(), int_max));
  } else if (embed != nullptr && embed->dims.size() == 2) {
    counted_vocab = std::min(embed->dims[1], int_max);
  }
  c.vocab_size = key_int("vocab_size", static_cast<int>(counted_vocab));
  c.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  c.bos_id = detail::gguf_int_key(file, "tokenizer.ggml.bos_token_id", 1, -1);
  c.eos_id = detail::gguf_int_key(file, "tokenizer.ggml.eos_token_id", 2, -1);
  c.pad_id = detail::gguf_int_key(file, "tokenizer.ggml.padding_token_id", -1, -1);
  if (const GgufValue* name = file.find("general.name")) c.name = name->to_string(path + ": general.name");
  c.validate(path);
  return c;
}

// The SentencePiece tokenizer of a file whose tokenizer.ggml.model is "llama", with
// llama.cpp's defaults for absent keys: scores 0, types NORMAL, unk 0, bos 1, eos 2, no pad,
// a space prefix, no whitespace squeezing. BOS-less or EOS-appending prompts are refused:
// the generator always starts a prompt with BOS and adds nothing after it.
inline TokenizerSpec tokenizer_spec_from_gguf(const Gguf& file) {
  const std::string& path = file.path();
  const std::string model = detail::gguf_string_key(file, "tokenizer.ggml.model");
  if (model != "llama") {
    fail(path, "tokenizer.ggml.model is '" + model + "'; only 'llama' (SentencePiece BPE) tokenizers are supported");
  }
  const GgufValue& tokens = file.get("tokenizer.ggml.tokens");
  const std::string tokens_where = path + ": tokenizer.ggml.tokens";
  if (tokens.type() != GgufType::array || tokens.element_type() != GgufType::string) {
    fail(tokens_where, "expected an array of strings, got " + tokens.describe());
  }
  const std::size_t n = tokens.size();
  TokenizerSpec spec;
  spec.pieces.reserve(n);
  for (std::size_t i = 0; i < n; ++i) spec.pieces.push_back(tokens.element(i).to_string(tokens_where));

  spec.scores.assign(n, 0.0f);
  if (file.find("tokenizer.ggml.scores") != nullptr) {
    const GgufValue& scores = detail::gguf_array_key(file, "tokenizer.ggml.scores", n);
    const std::string where = path + ": tokenizer.ggml.scores";
    for (std::size_t i = 0; i < n; ++i) spec.scores[i] = static_cast<float>(scores.element(i).to_double(where));
  }
  spec.types.assign(n, PieceType::normal);
  if (file.find("tokenizer.ggml.token_type") != nullptr) {
    const GgufValue& types = detail::gguf_array_key(file, "tokenizer.ggml.token_type", n);
    const std::string where = path + ": tokenizer.ggml.token_type";
    for (std::size_t i = 0; i < n; ++i) {
      const std::int64_t t = types.element(i).to_int(where);
      if (t < 1 || t > 6) {
        fail(where, "element " + std::to_string(i) + " = " + std::to_string(t) + " is not a token type (1 to 6)");
      }
      spec.types[i] = static_cast<PieceType>(t);
    }
  }
  spec.unk_id = detail::gguf_int_key(file, "tokenizer.ggml.unknown_token_id", 0);
  spec.bos_id = detail::gguf_int_key(file, "tokenizer.ggml.bos_token_id", 1, -1);
  spec.eos_id = detail::gguf_int_key(file, "tokenizer.ggml.eos_token_id", 2, -1);
  spec.pad_id = detail::gguf_int_key(file, "tokenizer.ggml.padding_token_id", -1, -1);
  spec.add_dummy_prefix = detail::gguf_bool_key(file, "tokenizer.ggml.add_space_prefix", true);
  spec.remove_extra_whitespaces = detail::gguf_bool_key(file, "tokenizer.ggml.remove_extra_whitespaces", false);
  spec.escape_whitespaces = true;
  spec.byte_fallback = std::find(spec.types.begin(), spec.types.end(), PieceType::byte) != spec.types.end();
  if (!detail::gguf_bool_key(file, "tokenizer.ggml.add_bos_token", true)) {
    fail(path, "tokenizer.ggml.add_bos_token is false; smallcoder always starts a prompt with BOS");
  }
  if (detail::gguf_bool_key(file, "tokenizer.ggml.add_eos_token", false)) {
    fail(path, "tokenizer.ggml.add_eos_token is true; smallcoder never appends EOS to a prompt");
  }
  return spec;
}

// general.name as llama.cpp's converter derives it from a model id: '-' and '_' become
// spaces and all-lower-case words are capitalised ("smallcoder-nano" -> "Smallcoder Nano").
inline std::string gguf_model_name(const std::string& id) {
  std::string out;
  std::string word;
  const auto flush = [&] {
    if (word.empty()) return;
    bool lower = false;
    bool upper = false;
    for (char ch : word) {
      lower = lower || (ch >= 'a' && ch <= 'z');
      upper = upper || (ch >= 'A' && ch <= 'Z');
    }
    if (lower && !upper && !(word[0] >= '0' && word[0] <= '9')) word[0] = static_cast<char>(word[0] - 'a' + 'A');
    out += (out.empty() ? "" : " ") + word;
    word.clear();
  };
  for (char ch : id) {
    if (ch == '-' || ch == '_' || ch == ' ') {
      flush();
    } else {
      word += ch;
    }
  }
  flush();
  return out;
}

// general.size_label as the converter writes it: at least two significant digits and a
// K/M/B/T suffix (100,092,672 -> "100M", 11,100,000 -> "11M", 1,500,000 -> "1.5M").
inline std::string gguf_size_label(std::int64_t params) {
  const double n = static_cast<double>(params);
  double scaled = n * 1e-3;
  const char* suffix = "K";
  if (n > 1e12) {
    scaled = n * 1e-12;
    suffix = "T";
  } else if (n > 1e9) {
    scaled = n * 1e-9;
    suffix = "B";
  } else if (n > 1e6) {
    scaled = n * 1e-6;
    suffix = "M";
  }
  const std::string whole = std::to_string(static_cast<long long>(std::nearbyint(scaled)));
  const std::size_t digits = whole == "0" ? 0 : whole.size();
  const int decimals = digits >= 2 ? 0 : static_cast<int>(2 - digits);
  char text[64];
  std::snprintf(text, sizeof text, "%.*f%s", decimals, scaled, suffix);
  return text;
}

// The metadata llama.cpp's convert_hf_to_gguf.py writes for a LLaMA model, in its order.
// The vocabulary is padded to vocab_size with "[PADn]" UNUSED pieces as the converter does.
inline std::vector<std::pair<std::string, GgufValue>> llama_gguf_metadata(const ModelConfig& c,
                                                                           const Tokenizer& tokenizer, DType file_dtype) {
  const auto u32 = [](std::int64_t v) { return GgufValue::scalar(static_cast<std::uint32_t>(v)); };
  std::vector<std::pair<std::string, GgufValue>> m;
  m.emplace_back("general.architecture", GgufValue::string("llama"));
  m.emplace_back("general.type", GgufValue::string("model"));
  m.emplace_back("general.name", GgufValue::string(gguf_model_name(c.name)));
  m.emplace_back("general.size_label", GgufValue::string(gguf_size_label(c.parameter_count())));
  m.emplace_back("llama.block_count", u32(c.num_layers));
  m.emplace_back("llama.context_length", u32(c.max_context));
  m.emplace_back("llama.embedding_length", u32(c.hidden_size));
  m.emplace_back("llama.feed_forward_length", u32(c.intermediate_size));
  m.emplace_back("llama.attention.head_count", u32(c.num_heads));
  m.emplace_back("llama.attention.head_count_kv", u32(c.num_kv_heads));
  m.emplace_back("llama.rope.freq_base", GgufValue::scalar(c.rope_theta));
  m.emplace_back("llama.attention.layer_norm_rms_epsilon", GgufValue::scalar(c.rms_norm_eps));
  m.emplace_back("llama.attention.key_length", u32(c.head_dim));
  m.emplace_back("llama.attention.value_length", u32(c.head_dim));
  m.emplace_back("general.file_type", u32(dtype_info(file_dtype).llama_file_type));
  m.emplace_back("llama.vocab_size", u32(c.vocab_size));
  m.emplace_back("llama.rope.dimension_count", u32(c.head_dim));

  const TokenizerSpec& spec = tokenizer.spec();
  std::vector<std::string> pieces = spec.pieces;
  std::vector<float> scores = spec.scores;
  std::vector<std::int32_t> types;
  for (PieceType t : spec.types) types.push_back(static_cast<std::int32_t>(t));
  for (int i = 1; static_cast<int>(pieces.size()) < c.vocab_size; ++i) {
    pieces.push_back("[PAD" + std::to_string(i) + "]");
    scores.push_back(-1000.0f);
    types.push_back(static_cast<std::int32_t>(PieceType::unused));
  }
  m.emplace_back("tokenizer.ggml.model", GgufValue::string("llama"));
  m.emplace_back("tokenizer.ggml.pre", GgufValue::string("default"));
  m.emplace_back("tokenizer.ggml.tokens", GgufValue::array(pieces));
  m.emplace_back("tokenizer.ggml.scores", GgufValue::array(scores));
  m.emplace_back("tokenizer.ggml.token_type", GgufValue::array(types));
  m.emplace_back("tokenizer.ggml.bos_token_id", u32(c.bos_id));
  m.emplace_back("tokenizer.ggml.eos_token_id", u32(c.eos_id));
  m.emplace_back("tokenizer.ggml.unknown_token_id", u32(spec.unk_id));
  if (c.pad_id >= 0) m.emplace_back("tokenizer.ggml.padding_token_id", u32(c.pad_id));
  m.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::scalar(true));
  m.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::scalar(false));
  if (!spec.add_dummy_prefix) m.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::scalar(false));
  if (spec.remove_extra_whitespaces) m.emplace_back("tokenizer.ggml.remove_extra_whitespaces", GgufValue::scalar(true));
  m.emplace_back("general.quantization_version", u32(2));
  return m;
}

// llama.cpp's converter permutes the rows of each Q/K head so that RoPE pairs adjacent
// rows: GGUF row h*d + 2i + j holds Hugging Face row h*d + j*d/2 + i (j = 0, 1). Returns,
// for each GGUF row, the Hugging Face row it takes.
inline std::vector<std::int64_t> rope_interleave_row_order(int heads, int head_dim) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(heads) * head_dim);
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < half; ++i) {
      for (int j = 0; j < 2; ++j) {
        const std::int64_t head = static_cast<std::int64_t>(h) * head_dim;
        order[static_cast<std::size_t>(head + 2 * i + j)] = head + j * half + i;
      }
    }
  }
  return order;
}

}  // namespace smallcoder
