// The tests' small LLaMA-shaped models, described by their numbers alone.
#pragma once

#include <string>

#include "smallcoder/config.hpp"

namespace smallcoder::test {

struct ModelShape {
  int hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, context;
};

// A config of that shape, everything else at ModelConfig's defaults (tied embeddings).
inline ModelConfig shaped_config(const std::string& name, const ModelShape& s) {
  ModelConfig c;
  c.name = name;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.intermediate;
  c.num_layers = s.layers;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.vocab_size = s.vocab;
  c.max_context = s.context;
  return c;
}

}  // namespace smallcoder::test
