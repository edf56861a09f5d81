// Writes GGUF v3 files laid out as llama.cpp's gguf-py writer lays them out: metadata in the
// given order, tensor infos, then each tensor's data aligned to general.alignment (32 unless
// the metadata says otherwise) with zero padding after it. write_gguf_model writes a whole
// model with llama.cpp's LLaMA conventions, Q/K rows permuted for interleaved-pair RoPE.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/io/file_writer.hpp"
#include "smallcoder/io/gguf.hpp"
#include "smallcoder/io/gguf_llama.hpp"
#include "smallcoder/model/weights.hpp"
#include "smallcoder/text/sentencepiece.hpp"

namespace smallcoder {

struct GgufTensorToWrite {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::int64_t> dims;    // innermost first: a matrix is {cols, rows}
  const std::byte* data = nullptr;   // the rows (of dims[0] elements each) in stored order
  std::vector<std::int64_t> row_order;  // empty: rows as stored; else file row i is stored row row_order[i]

  std::int64_t rows() const {
    std::int64_t n = 1;
    for (std::size_t d = 1; d < dims.size(); ++d) n *= dims[d];
    return n;
  }
  std::size_t row_bytes() const { return dtype_bytes(dtype, dims.empty() ? 0 : dims[0]); }
  std::size_t nbytes() const { return row_bytes() * static_cast<std::size_t>(rows()); }
};

namespace detail {

inline std::size_t gguf_padding(std::size_t n, std::size_t alignment) {
  return (alignment - n % alignment) % alignment;
}

// Alignment from general.alignment (a uint32 power of two of at least 8), else the default.
inline std::uint32_t gguf_write_alignment(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                                          const std::string& path) {
  std::set<std::string> keys;
  std::uint32_t alignment = Gguf::default_alignment;
  for (const auto& [key, value] : metadata) {
    if (!keys.insert(key).second) fail(path, "duplicate metadata key '" + key + "'");
    if (key != "general.alignment") continue;
    if (value.type() != GgufType::uint32) fail(path, "general.alignment must be a uint32, got " + value.describe());
    alignment = static_cast<std::uint32_t>(value.to_int(path));
    if (alignment < 8 || (alignment & (alignment - 1)) != 0) {
      fail(path, "general.alignment " + std::to_string(alignment) + " is not a power of two of at least 8");
    }
  }
  return alignment;
}

inline void check_tensor_to_write(const GgufTensorToWrite& t, const std::string& path) {
  const std::string where = path + ": tensor '" + t.name + "'";
  if (t.dims.empty() || t.dims.size() > 4) {
    fail(where, "has " + std::to_string(t.dims.size()) + " dimensions (1 to 4 are allowed)");
  }
  for (std::int64_t d : t.dims) {
    if (d <= 0) fail(where, "dimension " + std::to_string(d) + " is not positive");
  }
  const int block = dtype_info(t.dtype).block_elems;
  if (t.dims[0] % block != 0) {
    fail(where, "row length " + std::to_string(t.dims[0]) + " is not a multiple of " + dtype_name(t.dtype) +
                    "'s " + std::to_string(block) + "-element blocks");
  }
  if (t.data == nullptr) fail(where, "data is null");
  if (!t.row_order.empty()) {
    std::vector<bool> seen(static_cast<std::size_t>(t.rows()), false);
    bool ok = t.row_order.size() == seen.size();
    for (std::size_t i = 0; ok && i < t.row_order.size(); ++i) {
      const std::int64_t r = t.row_order[i];
      ok = r >= 0 && r < t.rows() && !seen[static_cast<std::size_t>(r)];
      if (ok) seen[static_cast<std::size_t>(r)] = true;
    }
    if (!ok) fail(where, "row_order is not a permutation of its " + std::to_string(t.rows()) + " rows");
  }
}

}  // namespace detail

// Checks everything (unique keys and names, shapes, block multiples, row orders) before
// writing; the file is written beside `path` and renamed over it, so a failed write leaves
// no half file and processes that have the old file mapped keep it.
inline void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                       const std::vector<GgufTensorToWrite>& tensors) {
  const std::uint32_t alignment = detail::gguf_write_alignment(metadata, path);
  std::set<std::string> names;
  for (const GgufTensorToWrite& t : tensors) {
    detail::check_tensor_to_write(t, path);
    if (!names.insert(t.name).second) fail(path, "duplicate tensor name '" + t.name + "'");
  }

  std::string head = "GGUF";
  GgufValue::append_le(head, std::uint32_t{3});
  GgufValue::append_le(head, static_cast<std::uint64_t>(tensors.size()));
  GgufValue::append_le(head, static_cast<std::uint64_t>(metadata.size()));
  for (const auto& [key, value] : metadata) {
    GgufValue::append_string(head, key);
    GgufValue::append_le(head, static_cast<std::uint32_t>(value.type()));
    value.encode(head);
  }
  std::uint64_t offset = 0;
  for (const GgufTensorToWrite& t : tensors) {
    GgufValue::append_string(head, t.name);
    GgufValue::append_le(head, static_cast<std::uint32_t>(t.dims.size()));
    for (std::int64_t d : t.dims) GgufValue::append_le(head, static_cast<std::uint64_t>(d));
    GgufValue::append_le(head, dtype_info(t.dtype).ggml_type);
    GgufValue::append_le(head, offset);
    offset += t.nbytes() + detail::gguf_padding(t.nbytes(), alignment);
  }
  head.append(detail::gguf_padding(head.size(), alignment), '\0');

  write_file_atomically(path, [&](std::FILE* out) {
    const std::string zeros(alignment, '\0');
    bool ok = std::fwrite(head.data(), 1, head.size(), out) == head.size();
    for (std::size_t i = 0; ok && i < tensors.size(); ++i) {
      const GgufTensorToWrite& t = tensors[i];
      if (t.row_order.empty()) {
        ok = std::fwrite(t.data, 1, t.nbytes(), out) == t.nbytes();
      } else {
        const std::size_t row_bytes = t.row_bytes();
        for (std::size_t r = 0; ok && r < t.row_order.size(); ++r) {
          ok = std::fwrite(t.data + static_cast<std::size_t>(t.row_order[r]) * row_bytes, 1, row_bytes, out) == row_bytes;
        }
      }
      const std::size_t pad = detail::gguf_padding(t.nbytes(), alignment);
      if (ok && pad > 0) ok = std::fwrite(zeros.data(), 1, pad, out) == pad;
    }
    return ok;
  });
}

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
