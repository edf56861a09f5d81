// How the example tools obtain a model: a checkpoint path, or a SmallCoder variant
// with deterministic random weights (the benchmark's default) plus a tokenizer.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <sys/stat.h>

#include "cli.hpp"
#include "smallcoder/smallcoder.hpp"

#ifndef SMALLCODER_DEFAULT_DATA_DIR
#define SMALLCODER_DEFAULT_DATA_DIR "../shared"
#endif

namespace tools {

inline bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The tokenizer for random-weight models: --tokenizer, then $SMALLCODER_TOKENIZER,
// then tokenizer/tokenizer.model under $SMALLCODER_DATA or the data folder the build
// was configured with. Empty when none exists.
inline std::string find_default_tokenizer(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("SMALLCODER_TOKENIZER"); env != nullptr && *env != '\0') return env;
  const char* data = std::getenv("SMALLCODER_DATA");
  const std::string dir = data != nullptr && *data != '\0' ? data : SMALLCODER_DEFAULT_DATA_DIR;
  const std::string path = dir + "/tokenizer/tokenizer.model";
  return file_exists(path) ? path : std::string();
}

// The value of --kv-cache (f32, f16 or bf16) as BackendOptions::kv_cache; anything else is a
// usage error.
inline smallcoder::DType parse_kv_cache_flag(const std::string& text) {
  for (smallcoder::DType type : {smallcoder::DType::f32, smallcoder::DType::f16, smallcoder::DType::bf16}) {
    if (text == smallcoder::dtype_name(type)) return type;
  }
  throw cli::UsageError("--kv-cache must be f32, f16 or bf16, got '" + text + "'");
}

// The value of --dtype (nullopt when the flag is absent: weights keep their stored type);
// a name the library does not know, or cannot store weights in, is a usage error.
inline std::optional<smallcoder::DType> parse_dtype_flag(const std::string& text) {
  if (text.empty()) return std::nullopt;
  try {
    const smallcoder::DType type = smallcoder::parse_dtype(text, "--dtype");
    smallcoder::check_storable(type, "--dtype");
    return type;
  } catch (const smallcoder::Error& e) {
    throw cli::UsageError(e.what());
  }
}

// --variant must name one of the six variants.
inline void check_variant_flag(const std::string& variant) {
  if (smallcoder::find_variant(variant) == nullptr) {
    throw cli::UsageError("unknown variant '" + variant + "' (see the README's variant table)");
  }
}

struct RandomModelSpec {
  std::string variant;
  std::uint64_t seed = 0;
  smallcoder::DType dtype = smallcoder::DType::bf16;
  std::string tokenizer_flag;
  int threads = 0;
};

inline smallcoder::Checkpoint random_model(const RandomModelSpec& spec) {
  const std::string tokenizer_path = find_default_tokenizer(spec.tokenizer_flag);
  if (tokenizer_path.empty()) {
    throw smallcoder::Error(
        "no tokenizer.model found for the random-weight model: pass --tokenizer PATH or set SMALLCODER_DATA to the "
        "shared data folder");
  }
  auto tokenizer = std::make_shared<const smallcoder::Tokenizer>(smallcoder::Tokenizer::from_file(tokenizer_path));
  return smallcoder::random_checkpoint(smallcoder::variant_preset(spec.variant), spec.seed, spec.dtype,
                                       std::move(tokenizer), spec.threads);
}

// What --model / --variant / --dtype / --tokenizer / --seed ask a tool to run: the
// checkpoint at `model` when given (converted to `dtype` when set), else the variant's
// random weights (in `dtype`, bf16 by default).
struct ModelChoice {
  std::string model;
  std::string variant;
  std::optional<smallcoder::DType> dtype;
  std::string tokenizer_flag;
  std::uint64_t seed = 0;
  int threads = 0;
};

inline smallcoder::Checkpoint load_model_choice(const ModelChoice& choice) {
  if (!choice.model.empty()) {
    smallcoder::LoadOptions load;
    load.tokenizer_path = choice.tokenizer_flag;
    load.dtype = choice.dtype;
    load.threads = choice.threads;
    return smallcoder::load_checkpoint(choice.model, load);
  }
  RandomModelSpec spec;
  spec.variant = choice.variant;
  spec.seed = choice.seed;
  spec.dtype = choice.dtype.value_or(smallcoder::DType::bf16);
  spec.tokenizer_flag = choice.tokenizer_flag;
  spec.threads = choice.threads;
  return random_model(spec);
}

}  // namespace tools
