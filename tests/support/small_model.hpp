// The small model the checkpoint tests write and read back: 2 layers of hidden size 32
// over the tokenizer's 32000 pieces (the loaders refuse fewer embeddings than pieces).
#pragma once

#include <string>

#include "support/model_shape.hpp"

namespace smallcoder::test {

inline ModelConfig small_config(bool tied, const std::string& name = "checkpoint-test") {
  ModelConfig c = shaped_config(name, {32, 72, 2, 4, 2, 8, 32000, 64});
  c.tie_word_embeddings = tied;
  return c;
}

}  // namespace smallcoder::test
