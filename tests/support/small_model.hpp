// The small model the checkpoint tests write and read back: 2 layers of hidden size 32
// over the tokenizer's 32000 pieces (the loaders refuse fewer embeddings than pieces).
#pragma once

#include <string>

#include "smallcoder/config.hpp"

namespace smallcoder::test {

inline ModelConfig small_config(bool tied, const std::string& name = "checkpoint-test") {
  ModelConfig c;
  c.name = name;
  c.hidden_size = 32;
  c.intermediate_size = 72;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 32000;
  c.max_context = 64;
  c.tie_word_embeddings = tied;
  return c;
}

}  // namespace smallcoder::test
