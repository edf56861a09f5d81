// Writes safetensors files laid out as the reference implementation lays them out (header
// padded with spaces to a multiple of 8, widest dtypes first, then by name), so every
// tensor is aligned to its element size and SafeTensors can map it back without copying.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "smallcoder/error.hpp"
#include "smallcoder/io/file_writer.hpp"
#include "smallcoder/io/json.hpp"
#include "smallcoder/io/safetensors.hpp"
#include "smallcoder/tensor/dtype.hpp"

namespace smallcoder {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  const void* data = nullptr;  // nbytes little-endian bytes, row-major
  std::size_t nbytes = 0;
};

namespace detail {

// The reference writer sorts by its dtype enum, largest first (F32 > BF16 > F16), then
// by name; following it gives byte-identical files and keeps every tensor aligned.
inline int safetensors_layout_rank(DType dtype) {
  return dtype == DType::f32 ? 0 : dtype == DType::bf16 ? 1 : 2;
}

inline std::string safetensors_header(const std::vector<const TensorToWrite*>& layout,
                                      const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (std::size_t i = 0; i < metadata.size(); ++i) {
      if (i > 0) header += ',';
      header += json_quote(metadata[i].first) + ':' + json_quote(metadata[i].second);
    }
    header += '}';
  }
  std::size_t offset = 0;
  for (const TensorToWrite* t : layout) {
    if (header.size() > 1) header += ',';
    header += json_quote(t->name) + ":{\"dtype\":\"" + safetensors_dtype_name(t->dtype) + "\",\"shape\":[";
    for (std::size_t d = 0; d < t->shape.size(); ++d) {
      if (d > 0) header += ',';
      header += std::to_string(t->shape[d]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + ',' + std::to_string(offset + t->nbytes) + "]}";
    offset += t->nbytes;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

}  // namespace detail

// Checks every tensor (F32/F16/BF16 only, nbytes == product(shape) x element size, unique
// names) before writing. The file is written beside `path` and renamed over it, so a
// failed write leaves no half file and processes that have the old file mapped keep it.
inline void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  std::vector<const TensorToWrite*> layout;
  for (const TensorToWrite& t : tensors) {
    const std::string where = path + ": tensor '" + t.name + "'";
    if (t.name == "__metadata__") fail(where, "the name is reserved for the metadata");
    if (detail::safetensors_dtype_name(t.dtype) == nullptr) {
      fail(where, std::string("cannot store dtype ") + dtype_name(t.dtype) + " (supported: " + detail::safetensors_dtype_names(false) + ")");
    }
    const std::uint64_t expected = detail::safetensors_tensor_bytes(t.dtype, t.shape, where);
    if (t.nbytes != expected) {
      fail(where, "nbytes " + std::to_string(t.nbytes) + " does not match shape " + detail::format_shape(t.shape) +
                      " of " + detail::safetensors_dtype_name(t.dtype) + " (" + std::to_string(expected) + " bytes)");
    }
    if (t.nbytes > 0 && t.data == nullptr) fail(where, "data is null");
    layout.push_back(&t);
  }
  std::sort(layout.begin(), layout.end(), [](const TensorToWrite* a, const TensorToWrite* b) {
    const int rank_a = detail::safetensors_layout_rank(a->dtype), rank_b = detail::safetensors_layout_rank(b->dtype);
    return rank_a != rank_b ? rank_a < rank_b : a->name < b->name;
  });
  for (std::size_t i = 1; i < layout.size(); ++i) {
    if (layout[i]->name == layout[i - 1]->name) fail(path, "duplicate tensor name '" + layout[i]->name + "'");
  }
  for (std::size_t i = 0; i < metadata.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (metadata[i].first == metadata[j].first) fail(path, "duplicate metadata key '" + metadata[i].first + "'");
    }
  }

  const std::string header = detail::safetensors_header(layout, metadata);
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((static_cast<std::uint64_t>(header.size()) >> (8 * i)) & 0xff);

  write_file_atomically(path, [&](std::FILE* out) {
    bool ok = std::fwrite(length, 1, 8, out) == 8 && std::fwrite(header.data(), 1, header.size(), out) == header.size();
    for (std::size_t i = 0; ok && i < layout.size(); ++i) {
      if (layout[i]->nbytes > 0) ok = std::fwrite(layout[i]->data, 1, layout[i]->nbytes, out) == layout[i]->nbytes;
    }
    return ok;
  });
}

}  // namespace smallcoder
