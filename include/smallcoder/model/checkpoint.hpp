// Reads a model from disk into a Checkpoint: config, tokenizer and views of the weights
// where the file maps them (nothing is copied or converted here; model/load.hpp adds that).
// A path is a Hugging Face folder (config.json, model.safetensors, tokenizer.model),
// a .safetensors file with those two files beside it, or a self-contained .gguf file.
#pragma once

#include <memory>
#include <string>
#include <sys/stat.h>

#include "smallcoder/config.hpp"
#include "smallcoder/io/gguf.hpp"
#include "smallcoder/io/gguf_llama.hpp"
#include "smallcoder/io/hf_config.hpp"
#include "smallcoder/io/safetensors.hpp"
#include "smallcoder/model/weights.hpp"
#include "smallcoder/text/sentencepiece.hpp"

namespace smallcoder {

struct Checkpoint {
  ModelConfig config;
  std::shared_ptr<const Tokenizer> tokenizer;
  ModelWeights weights;
  std::string source;  // the path it came from, or "random init (seed N)"
  std::string format;  // "safetensors", "gguf" or "random"
  DType dtype = DType::f32;  // the type of the weight matrices (of the embedding, when mixed)
};

namespace detail {

inline bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

inline std::string parent_folder(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash == 0 ? 1 : slash);
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Binds every tensor of the model to the file's tensors, checking names and shapes.
inline ModelWeights bind_safetensors(const ModelConfig& config, const SafeTensors& file) {
  ModelWeights w;
  for_each_weight(config, w, [&](const WeightSlot& slot) {
    const std::string name = hf_tensor_name(slot);
    const SafeTensorInfo& t = file.get(name);
    const std::vector<std::int64_t> expected =
        slot.is_vector() ? std::vector<std::int64_t>{slot.cols} : std::vector<std::int64_t>{slot.rows, slot.cols};
    if (t.shape != expected) {
      fail(file.file()->path(), "tensor '" + name + "' has shape " + format_shape(t.shape) + " but the config needs " +
                                    format_shape(expected));
    }
    *slot.view = TensorView{t.dtype, slot.rows, slot.cols, t.data};
  });
  tie_output_if_needed(config, w);
  w.owners.push_back(file.file());
  return w;
}

// Binds every tensor of the model to the GGUF file's tensors (llama.cpp's names, dimensions
// innermost first). The file's Q/K rows are already permuted for interleaved-pair RoPE, so
// the views use them as they are.
inline ModelWeights bind_gguf(const ModelConfig& config, const Gguf& file) {
  ModelWeights w;
  for_each_weight(config, w, [&](const WeightSlot& slot) {
    const std::string name = gguf_tensor_name(slot);
    const GgufTensorInfo& t = file.tensor(name);
    const std::vector<std::int64_t> expected =
        slot.is_vector() ? std::vector<std::int64_t>{slot.cols} : std::vector<std::int64_t>{slot.cols, slot.rows};
    if (t.dims != expected) {
      fail(file.path(), "tensor '" + name + "' has dimensions " + format_shape(t.dims) +
                            " (innermost first) but the config needs " + format_shape(expected));
    }
    if (slot.is_vector() && !is_float_dtype(t.dtype)) {
      fail(file.path(),
           "tensor '" + name + "' is " + ggml_type_name(t.ggml_type) + "; norm weights must be F32, F16 or BF16");
    }
    *slot.view = TensorView{t.dtype, slot.rows, slot.cols, t.data};
  });
  tie_output_if_needed(config, w);
  w.rope_layout = RopeLayout::interleaved;
  w.owners.push_back(file.file());
  return w;
}

inline void check_vocab(const Checkpoint& c, const std::string& path) {
  if (c.tokenizer->vocab_size() > c.config.vocab_size) {
    fail(path, "the tokenizer has " + std::to_string(c.tokenizer->vocab_size()) + " pieces but the model only " +
                   std::to_string(c.config.vocab_size) + " embeddings");
  }
}

// A .gguf file holds everything: config (llama.*), tokenizer (tokenizer.ggml.*) and tensors.
inline Checkpoint read_gguf(const std::string& path, const std::string& tokenizer_path) {
  const Gguf file = Gguf::open(path);
  Checkpoint c;
  c.config = config_from_gguf(file);
  if (c.config.name.empty()) {
    const std::string file_name = path.substr(path.find_last_of('/') + 1);
    c.config.name = file_name.substr(0, file_name.size() - 5);
  }
  c.weights = bind_gguf(c.config, file);
  c.tokenizer = std::make_shared<const Tokenizer>(tokenizer_path.empty()
                                                      ? Tokenizer(tokenizer_spec_from_gguf(file), path)
                                                      : Tokenizer::from_file(tokenizer_path));
  check_vocab(c, path);
  c.source = path;
  c.format = "gguf";
  c.dtype = c.weights.embed.dtype;
  return c;
}

}  // namespace detail

// The tokenizer comes from tokenizer_path where given, else from the model (beside a
// safetensors file, inside a GGUF file).
inline Checkpoint read_checkpoint(const std::string& path, const std::string& tokenizer_path = {}) {
  std::string folder, weights_path;
  if (!detail::is_directory(path) && detail::ends_with(path, ".gguf")) return detail::read_gguf(path, tokenizer_path);
  if (detail::is_directory(path)) {
    folder = path;
    weights_path = path + "/model.safetensors";
  } else if (detail::ends_with(path, ".safetensors")) {
    folder = detail::parent_folder(path);
    weights_path = path;
  } else {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail(path, "no such file or folder");
    fail(path, "not a model: expected a folder with config.json and model.safetensors, a .safetensors file, or a "
               ".gguf file");
  }
  Checkpoint c;
  c.config = load_hf_config(folder + "/config.json");
  const std::size_t slash = folder.find_last_of('/');
  c.config.name = slash == std::string::npos ? folder : folder.substr(slash + 1);
  const SafeTensors file = SafeTensors::open(weights_path);
  c.weights = detail::bind_safetensors(c.config, file);
  c.tokenizer = std::make_shared<const Tokenizer>(
      Tokenizer::from_file(tokenizer_path.empty() ? folder + "/tokenizer.model" : tokenizer_path));
  detail::check_vocab(c, path);
  c.source = path;
  c.format = "safetensors";
  c.dtype = c.weights.embed.dtype;
  return c;
}

}  // namespace smallcoder
