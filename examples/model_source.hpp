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

// The flags that name the one model generate, server and bench_speed load, with one
// wording: --model, --variant, --dtype (stored as), --tokenizer. The benchmark takes several
// models and quantize a required --dtype: they word theirs.
struct ModelFlags {
  std::string model, variant, dtype, tokenizer;
};

inline void add_model_flags(cli::Parser& p, ModelFlags& f) {
  p.text("--model", &f.model, "PATH",
         "model folder (config.json, model.safetensors, tokenizer.model), .safetensors, .gguf or PyTorch .pt");
  p.text("--variant", &f.variant, "NAME",
         "random-weight variant without --model (default SmallCoder-Tiny); with a bare state_dict .pt, its shape");
  p.text("--dtype", &f.dtype, "TYPE", "store weights as f32|f16|bf16|q8_0|q4_0 (default: as stored; bf16 for random weights)");
  p.text("--tokenizer", &f.tokenizer, "PATH", "tokenizer.model to use (default: the model's own; for random weights, the shared data's)");
}

// --threads and --kv-cache, as every tool that runs a model on the CPU takes them.
inline void add_cpu_flags(cli::Parser& p, long long& threads, std::string& kv_cache) {
  p.integer("--threads", &threads, 0, 1024, "CPU threads (default: physical cores)");
  p.text("--kv-cache", &kv_cache, "f32|f16|bf16", "KV-cache element type on the CPU (default f32; 16 bits halve it)");
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

// --variant names the random-weight model when there is no --model (SmallCoder-Tiny by
// default), and the architecture of a .pt that holds a bare state_dict when there is.
inline std::string resolve_variant_flag(const std::string& model, const std::string& variant) {
  if (!variant.empty()) check_variant_flag(variant);
  return variant.empty() && model.empty() ? "SmallCoder-Tiny" : variant;
}

inline bool is_torch_checkpoint(const std::string& path) {
  const std::size_t dot = path.find_last_of("./");
  const std::string extension = dot == std::string::npos ? "" : path.substr(dot);
  return extension == ".pt" || extension == ".pth";
}

// How a tool loads --model: a .pt holds no tokenizer, so without --tokenizer or a
// tokenizer.model beside it the shared one is taken (the vocabulary the original project
// used), as for random weights; `variant` is the architecture of a bare state_dict.
inline smallcoder::LoadOptions checkpoint_load_options(const std::string& model, const std::string& tokenizer_flag,
                                                       const std::string& variant) {
  smallcoder::LoadOptions load;
  load.tokenizer_path = tokenizer_flag;
  load.variant = variant;
  const std::size_t slash = model.find_last_of('/');
  const std::string beside =
      (slash == std::string::npos ? std::string(".") : model.substr(0, slash)) + "/tokenizer.model";
  if (tokenizer_flag.empty() && is_torch_checkpoint(model) && !file_exists(beside)) {
    load.tokenizer_path = find_default_tokenizer("");
  }
  return load;
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
// checkpoint at `model` when given (converted to `dtype` when set; `variant` is the shape of
// a bare state_dict .pt), else the variant's random weights (in `dtype`, bf16 by default).
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
    smallcoder::LoadOptions load = checkpoint_load_options(choice.model, choice.tokenizer_flag, choice.variant);
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
