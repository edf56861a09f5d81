// Writes GGUF v3 files laid out as llama.cpp's gguf-py writer lays them out: metadata in the
// given order, tensor infos, then each tensor's data aligned to general.alignment (32 unless
// the metadata says otherwise) with zero padding after it. model/save_gguf.hpp writes a
// whole model through it.
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

#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/io/file_writer.hpp"
#include "smallcoder/io/gguf.hpp"

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

}  // namespace smallcoder
