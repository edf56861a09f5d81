// Loading a model: read_checkpoint (checkpoint.hpp) maps the file's weights as they are
// stored; LoadOptions::dtype then re-stores the matrices in another type (make_weights.hpp,
// which copies them). random_checkpoint makes a model without a file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "smallcoder/config.hpp"
#include "smallcoder/model/checkpoint.hpp"
#include "smallcoder/model/make_weights.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/text/sentencepiece.hpp"

namespace smallcoder {

struct LoadOptions {
  std::string tokenizer_path;  // empty: tokenizer.model beside the weights
  std::string variant;         // the preset a checkpoint without a config is (a bare state_dict .pt)
  std::optional<DType> dtype;  // re-store the weight matrices in this type (copies them)
  int threads = 0;             // for conversions; 0: one per physical core
};

// Reads the model at `path` and re-stores its matrices in options.dtype where given (each
// tensor already in that type is kept as it is).
inline Checkpoint load_checkpoint(const std::string& path, const LoadOptions& options = {}) {
  Checkpoint c = read_checkpoint(path, options.tokenizer_path, options.variant);
  if (options.dtype) {
    convert_weights(c.config, c.weights, *options.dtype, options.threads);
    c.dtype = c.weights.embed.dtype;
  }
  return c;
}

// A checkpoint of random weights (see random_init.hpp) with the given tokenizer.
inline Checkpoint random_checkpoint(const ModelConfig& config, std::uint64_t seed, DType dtype,
                                    std::shared_ptr<const Tokenizer> tokenizer, int threads = 0) {
  config.validate(config.name);
  Checkpoint c;
  c.config = config;
  c.weights = random_weights(config, seed, dtype, threads);
  c.tokenizer = std::move(tokenizer);
  c.source = "random init (seed " + std::to_string(seed) + ")";
  c.format = "random";
  c.dtype = dtype;
  return c;
}

}  // namespace smallcoder
