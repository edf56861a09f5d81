// Saves a model as a GGUF file with llama.cpp's LLaMA conventions (the quantize tool's
// output): metadata from io/gguf_llama.hpp, the tokenizer embedded, Q/K rows permuted for
// interleaved-pair RoPE.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/io/gguf_llama.hpp"
#include "smallcoder/io/gguf_writer.hpp"
#include "smallcoder/model/weights.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/text/sentencepiece.hpp"

namespace smallcoder {

// Writes a model as llama.cpp's convert_hf_to_gguf.py writes a LLaMA checkpoint: its
// metadata (gguf_llama.hpp) with the tokenizer embedded, tensors in the order the converter
// reads a safetensors file (by Hugging Face name), norms as F32, matrices in their stored
// types, and the Q/K rows of rotate-half weights permuted for interleaved-pair RoPE.
inline void write_gguf_model(const std::string& path, const ModelConfig& config, const ModelWeights& weights,
                             const Tokenizer& tokenizer) {
  config.validate(path);
  if (tokenizer.vocab_size() > config.vocab_size) {
    fail(path, "the tokenizer has " + std::to_string(tokenizer.vocab_size()) + " pieces but the model only " +
                   std::to_string(config.vocab_size) + " embeddings");
  }
  ModelWeights w = weights;  // views only; for_each_weight needs a mutable object
  std::vector<std::pair<std::string, WeightSlot>> slots;
  for_each_weight(config, w, [&](const WeightSlot& s) { slots.emplace_back(hf_tensor_name(s), s); });
  std::sort(slots.begin(), slots.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  std::vector<std::vector<float>> widened;  // norms stored in 16 bits, widened to F32
  widened.reserve(slots.size());
  std::vector<std::pair<DType, std::int64_t>> matrix_elements;
  std::vector<GgufTensorToWrite> tensors;
  for (const auto& [hf_name, slot] : slots) {
    const TensorView& v = *slot.view;
    if (v.data == nullptr || v.rows != slot.rows || v.cols != slot.cols) {
      fail(path, "weight '" + hf_name + "' is missing or has the wrong shape");
    }
    GgufTensorToWrite t;
    t.name = gguf_tensor_name(slot);
    t.dtype = v.dtype;
    t.data = v.data;
    if (slot.is_vector()) {
      t.dims = {slot.cols};
      if (v.dtype != DType::f32) {
        widened.emplace_back(static_cast<std::size_t>(slot.cols));
        row_to_f32(v.dtype, v.data, slot.cols, widened.back().data());
        t.dtype = DType::f32;
        t.data = reinterpret_cast<const std::byte*>(widened.back().data());
      }
    } else {
      t.dims = {slot.cols, slot.rows};
      auto it = std::find_if(matrix_elements.begin(), matrix_elements.end(),
                             [&](const auto& e) { return e.first == v.dtype; });
      if (it == matrix_elements.end()) it = matrix_elements.insert(matrix_elements.end(), {v.dtype, 0});
      it->second += slot.rows * slot.cols;
    }
    if (weights.rope_layout == RopeLayout::rotate_half && slot.role == WeightRole::wq) {
      t.row_order = rope_interleave_row_order(config.num_heads, config.head_dim);
    } else if (weights.rope_layout == RopeLayout::rotate_half && slot.role == WeightRole::wk) {
      t.row_order = rope_interleave_row_order(config.num_kv_heads, config.head_dim);
    }
    tensors.push_back(std::move(t));
  }
  const auto most = std::max_element(matrix_elements.begin(), matrix_elements.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
  const DType file_dtype = most == matrix_elements.end() ? DType::f32 : most->first;
  write_gguf(path, llama_gguf_metadata(config, tokenizer, file_dtype), tensors);
}

}  // namespace smallcoder
