// Reads a model from disk into a Checkpoint: config, tokenizer and views of the weights
// where the file maps them (nothing is copied or converted here; model/load.hpp adds that).
// A path is a Hugging Face folder (config.json, model.safetensors, tokenizer.model),
// a .safetensors file with those two files beside it, a self-contained .gguf file, or a
// PyTorch .pt/.pth checkpoint (torch.save of a training dict or of a bare state_dict).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <unordered_set>

#include "smallcoder/config.hpp"
#include "smallcoder/io/gguf.hpp"
#include "smallcoder/io/gguf_llama.hpp"
#include "smallcoder/io/hf_config.hpp"
#include "smallcoder/io/safetensors.hpp"
#include "smallcoder/io/torch_checkpoint.hpp"
#include "smallcoder/model/weights.hpp"
#include "smallcoder/text/sentencepiece.hpp"

namespace smallcoder {

struct Checkpoint {
  ModelConfig config;
  std::shared_ptr<const Tokenizer> tokenizer;
  ModelWeights weights;
  std::string source;  // the path it came from, or "random init (seed N)"
  std::string format;  // "safetensors", "gguf", "pt" or "random"
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

inline bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A Hugging Face-named tensor (outermost dimension first) must have the slot's shape.
inline void check_hf_shape(const std::string& path, const std::string& name, const std::vector<std::int64_t>& shape,
                           const WeightSlot& slot) {
  const std::vector<std::int64_t> expected =
      slot.is_vector() ? std::vector<std::int64_t>{slot.cols} : std::vector<std::int64_t>{slot.rows, slot.cols};
  if (shape != expected) {
    fail(path,
         "tensor '" + name + "' has shape " + format_shape(shape) + " but the config needs " + format_shape(expected));
  }
}

// Binds every tensor of the model to the file's tensors, checking names and shapes.
inline ModelWeights bind_safetensors(const ModelConfig& config, const SafeTensors& file) {
  ModelWeights w;
  for_each_weight(config, w, [&](const WeightSlot& slot) {
    const std::string name = hf_tensor_name(slot);
    const SafeTensorInfo& t = file.get(name);
    check_hf_shape(file.file()->path(), name, t.shape, slot);
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

// Binds every tensor of the model to the state_dict's tensors, each mapped from the
// archive as stored. The state_dict may hold nothing else: a tensor the config does not
// use means another architecture or a config that does not fit it. Allowed besides: the
// tied head under its own name (torch saves tied parameters under both) and RoPE's
// inverse-frequency buffers, which are derived from the config.
inline ModelWeights bind_torch(const ModelConfig& config, const TorchCheckpoint& file) {
  ModelWeights w;
  std::unordered_set<std::string> used;
  for_each_weight(config, w, [&](const WeightSlot& slot) {
    const std::string name = hf_tensor_name(slot);
    TorchTensorData t = file.map_tensor(name);
    check_hf_shape(file.path(), name, t.shape, slot);
    *slot.view = TensorView{t.dtype, slot.rows, slot.cols, t.data};
    w.owners.push_back(std::move(t.mapping));
    used.insert(name);
  });
  for (const auto& entry : file.state_dict()) {
    const std::string& name = entry.first;
    if (used.count(name) != 0 || ends_with(name, "rotary_emb.inv_freq")) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings && file.same_tensor(name, "model.embed_tokens.weight")) {
      continue;
    }
    fail(file.path(), "the state_dict holds " + quote_untrusted(name) + ", which a " +
                          std::to_string(config.num_layers) + "-layer model of hidden size " +
                          std::to_string(config.hidden_size) +
                          " does not have: it belongs to another architecture or config");
  }
  tie_output_if_needed(config, w);
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

// A .pt file: the config from the training checkpoint's pickled 'config', else the preset
// `variant` names, else config.json beside the file; no tokenizer is inside (the original
// project loaded CodeLlama's), so it comes from tokenizer_path or tokenizer.model beside it.
inline Checkpoint read_pt(const std::string& path, const std::string& tokenizer_path, const std::string& variant) {
  const TorchCheckpoint file = TorchCheckpoint::open(path);
  const std::string folder = parent_folder(path);
  const std::string file_name = path.substr(path.find_last_of('/') + 1);
  Checkpoint c;
  if (std::optional<ModelConfig> config = file.model_config()) {
    c.config = *config;
    if (c.config.name.empty()) c.config.name = file_name.substr(0, file_name.find_last_of('.'));
  } else if (!variant.empty()) {
    c.config = variant_preset(variant);
  } else if (is_file(folder + "/config.json")) {
    c.config = load_hf_config(folder + "/config.json");
    c.config.name = file_name.substr(0, file_name.find_last_of('.'));
  } else {
    fail(path,
         "holds no config (a bare state_dict): put its config.json beside it, or name its variant (--variant, "
         "LoadOptions::variant)");
  }
  c.weights = bind_torch(c.config, file);
  const std::string tokenizer = tokenizer_path.empty() ? folder + "/tokenizer.model" : tokenizer_path;
  if (tokenizer_path.empty() && !is_file(tokenizer)) {
    fail(path,
         "a .pt checkpoint holds no tokenizer and there is no tokenizer.model beside it: pass --tokenizer "
         "(LoadOptions::tokenizer_path); the original project used CodeLlama's, the Llama 2 vocabulary");
  }
  c.tokenizer = std::make_shared<const Tokenizer>(Tokenizer::from_file(tokenizer));
  check_vocab(c, path);
  c.source = path;
  c.format = "pt";
  c.dtype = c.weights.embed.dtype;
  return c;
}

}  // namespace detail

// The tokenizer comes from tokenizer_path where given, else from the model (beside a
// safetensors or .pt file, inside a GGUF file). `variant` names the preset whose shape a
// checkpoint without a config has (a .pt state_dict); checkpoints with a config ignore it.
inline Checkpoint read_checkpoint(const std::string& path, const std::string& tokenizer_path = {},
                                  const std::string& variant = {}) {
  std::string folder, weights_path;
  if (!detail::is_directory(path) && detail::ends_with(path, ".gguf")) return detail::read_gguf(path, tokenizer_path);
  if (!detail::is_directory(path) && (detail::ends_with(path, ".pt") || detail::ends_with(path, ".pth"))) {
    return detail::read_pt(path, tokenizer_path, variant);
  }
  if (detail::is_directory(path)) {
    folder = path;
    weights_path = path + "/model.safetensors";
  } else if (detail::ends_with(path, ".safetensors")) {
    folder = detail::parent_folder(path);
    weights_path = path;
  } else {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail(path, "no such file or folder");
    fail(path,
         "not a model: expected a folder with config.json and model.safetensors, a .safetensors file, a "
         ".gguf file, or a PyTorch .pt/.pth checkpoint");
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
