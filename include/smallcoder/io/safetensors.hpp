// Reader for safetensors files (Hugging Face checkpoints). The whole header is checked
// against the file before any tensor is handed out; tensors are zero-copy views into
// the memory-mapped file.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smallcoder/error.hpp"
#include "smallcoder/io/json.hpp"
#include "smallcoder/io/mapped_file.hpp"
#include "smallcoder/tensor/dtype.hpp"

// The format stores tensors little-endian, and the reader hands out the bytes as they are.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "smallcoder's safetensors reader and writer assume a little-endian host"
#endif

namespace smallcoder {

struct SafeTensorInfo {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;  // row-major, outermost first; [] is a scalar
  const std::byte* data = nullptr;  // into the mapping, aligned to the element size
  std::size_t nbytes = 0;
};

namespace detail {

// The reference implementation's limit (MAX_HEADER_SIZE = 100_000_000 bytes): larger
// headers are refused before any of their JSON is parsed.
constexpr std::uint64_t safetensors_max_header_bytes = 100000000;

// The format's dtype name of a type this library stores unquantized, else null.
inline const char* safetensors_dtype_name(DType dtype) {
  return is_float_dtype(dtype) ? dtype_info(dtype).file_name : nullptr;
}

inline bool parse_safetensors_dtype(std::string_view name, DType& out) {
  for (const DTypeInfo& r : kDTypes) {
    if (r.is_float && name == r.file_name) {
      out = r.type;
      return true;
    }
  }
  return false;
}

// "F32, F16, BF16" (or the lower-case names): the types a safetensors file holds here.
inline std::string safetensors_dtype_names(bool file_names) {
  return dtype_names([](const DTypeInfo& r) { return r.is_float; }, file_names);
}

// "[2, 2]"; long shapes are cut short so that a hostile header cannot make a huge message.
inline std::string format_shape(const std::vector<std::int64_t>& shape) {
  constexpr std::size_t max_shown = 16;
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size() && i < max_shown; ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() > max_shown) out += ", ... (" + std::to_string(shape.size()) + " dimensions)";
  return out + "]";
}

// Bytes of a dense tensor of this shape; Error (naming `where`) for a negative dimension
// or a byte count that does not fit in 64 bits. A zero dimension gives 0 bytes.
inline std::uint64_t safetensors_tensor_bytes(DType dtype, const std::vector<std::int64_t>& shape,
                                              const std::string& where) {
  for (std::int64_t dim : shape) {
    if (dim < 0) fail(where, "shape " + format_shape(shape) + " has a negative dimension");
  }
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  std::uint64_t bytes = static_cast<std::uint64_t>(dtype_info(dtype).block_bytes);
  for (std::int64_t dim : shape) {
    if (bytes > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(dim)) {
      fail(where, "shape " + format_shape(shape) + " has too many elements (its byte count overflows 64 bits)");
    }
    bytes *= static_cast<std::uint64_t>(dim);
  }
  return bytes;
}

}  // namespace detail

class SafeTensors {
 public:
  static SafeTensors open(const std::string& path) { return SafeTensors(MappedFile::open(path)); }

  explicit SafeTensors(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) {
    const std::string& path = file_->path();
    const std::size_t file_size = file_->size();
    if (file_size < 8) {
      fail(path, "file is " + std::to_string(file_size) + " bytes, too short for the 8-byte header length");
    }
    const std::byte* base = file_->data();
    std::uint64_t header_bytes = 0;
    for (int i = 7; i >= 0; --i) header_bytes = header_bytes << 8 | static_cast<std::uint8_t>(base[i]);
    if (header_bytes > detail::safetensors_max_header_bytes) {
      fail(path, "header length " + std::to_string(header_bytes) + " exceeds the format's limit of " +
                     std::to_string(detail::safetensors_max_header_bytes) + " bytes");
    }
    if (header_bytes > file_size - 8) {
      fail(path, "header length " + std::to_string(header_bytes) + " runs past the end of the file (" +
                     std::to_string(file_size) + " bytes)");
    }
    const std::string_view header_text(reinterpret_cast<const char*>(base + 8), static_cast<std::size_t>(header_bytes));
    // The format says the header MUST begin with '{' (and MAY be padded with spaces).
    if (header_text.empty() || header_text[0] != '{') fail(path, "header is not a JSON object (it must start with '{')");
    const JsonValue header = parse_json(header_text, path + ": header");

    const std::size_t data_start = 8 + static_cast<std::size_t>(header_bytes);
    const std::size_t data_size = file_size - data_start;
    for (const auto& [name, entry] : header.as_object(path + ": header")) {
      if (name == "__metadata__") {
        read_metadata(entry);
      } else {
        tensors_.push_back(read_entry(name, entry, data_start, data_size));
      }
    }
    check_layout(base + data_start, data_size);

    name_order_.resize(tensors_.size());
    for (std::size_t i = 0; i < tensors_.size(); ++i) name_order_[i] = i;
    std::sort(name_order_.begin(), name_order_.end(),
              [this](std::size_t a, std::size_t b) { return tensors_[a].name < tensors_[b].name; });
  }

  const std::vector<SafeTensorInfo>& tensors() const { return tensors_; }  // in data-offset order

  const SafeTensorInfo* find(std::string_view name) const {
    const auto it = std::lower_bound(name_order_.begin(), name_order_.end(), name,
                                     [this](std::size_t i, std::string_view key) { return tensors_[i].name < key; });
    if (it == name_order_.end() || tensors_[*it].name != name) return nullptr;
    return &tensors_[*it];
  }

  const SafeTensorInfo& get(std::string_view name) const {
    const SafeTensorInfo* info = find(name);
    if (info == nullptr) fail(file_->path(), "missing tensor '" + std::string(name) + "'");
    return *info;
  }

  // "__metadata__" in file order; the format allows only string values there.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  const std::shared_ptr<const MappedFile>& file() const { return file_; }

 private:
  void read_metadata(const JsonValue& entry) {
    const std::string where = file_->path() + ": __metadata__";
    for (const auto& [key, value] : entry.as_object(where)) {
      metadata_.emplace_back(key, value.as_string(where + ": field '" + key + "'"));
    }
  }

  SafeTensorInfo read_entry(const std::string& name, const JsonValue& entry, std::size_t data_start,
                            std::size_t data_size) const {
    const std::string& path = file_->path();
    const std::string where = path + ": tensor '" + name + "'";
    SafeTensorInfo info;
    info.name = name;

    const std::string& dtype = entry.at("dtype", where).as_string(where + ": field 'dtype'");
    if (!detail::parse_safetensors_dtype(dtype, info.dtype)) {
      fail(path, "unsupported dtype '" + dtype + "' for tensor '" + name + "' (supported: " + detail::safetensors_dtype_names(true) + ")");
    }
    const std::string shape_where = where + ": field 'shape'";
    for (const JsonValue& dim : entry.at("shape", where).as_array(shape_where)) {
      info.shape.push_back(dim.as_int(shape_where));
    }
    const std::uint64_t expected_bytes = detail::safetensors_tensor_bytes(info.dtype, info.shape, where);

    const std::string offsets_where = where + ": field 'data_offsets'";
    const JsonValue::Array& offsets = entry.at("data_offsets", where).as_array(offsets_where);
    if (offsets.size() != 2) {
      fail(offsets_where, "expected [begin, end], got " + std::to_string(offsets.size()) + " values");
    }
    const std::int64_t begin = offsets[0].as_int(offsets_where);
    const std::int64_t end = offsets[1].as_int(offsets_where);
    const std::string range = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
    if (begin < 0 || end < 0) fail(where, range + " are negative");
    if (begin > end) fail(where, range + " begin after they end");
    if (static_cast<std::uint64_t>(end) > data_size) {
      fail(where, range + " run past the end of the data area (" + std::to_string(data_size) + " bytes)");
    }
    const auto nbytes = static_cast<std::uint64_t>(end - begin);
    if (nbytes != expected_bytes) {
      fail(where, range + " do not match shape " + detail::format_shape(info.shape) + " of " + dtype + " (" +
                      std::to_string(expected_bytes) + " bytes)");
    }
    // The mapping starts on a page boundary, so the file offset decides the alignment.
    // The reference writer pads the header to a multiple of 8 and stores the widest
    // types first, so its files always pass; an empty tensor is never read.
    const std::size_t element_bytes = static_cast<std::size_t>(dtype_info(info.dtype).block_bytes);
    const std::size_t file_offset = data_start + static_cast<std::size_t>(begin);
    if (nbytes > 0 && file_offset % element_bytes != 0) {
      fail(where, "data at file offset " + std::to_string(file_offset) + " is not aligned to its " +
                      std::to_string(element_bytes) + "-byte " + dtype + " elements");
    }
    info.data = file_->data() + file_offset;
    info.nbytes = static_cast<std::size_t>(nbytes);
    return info;
  }

  // Sorts by data offset and requires the tensors to tile the data area exactly: no
  // overlaps, no holes, nothing after the last tensor. The format's notes say "the byte
  // buffer needs to be entirely indexed, and cannot contain holes" (against polyglot
  // files), and the reference reader rejects anything else, so this reader does too.
  void check_layout(const std::byte* data_area, std::size_t data_size) {
    const auto offset = [data_area](const SafeTensorInfo& t) { return static_cast<std::size_t>(t.data - data_area); };
    std::sort(tensors_.begin(), tensors_.end(), [&offset](const SafeTensorInfo& a, const SafeTensorInfo& b) {
      return std::make_pair(offset(a), a.nbytes) < std::make_pair(offset(b), b.nbytes);
    });
    const std::string& path = file_->path();
    const auto describe = [&offset](const SafeTensorInfo& t) {
      return "tensor '" + t.name + "' (data_offsets [" + std::to_string(offset(t)) + ", " +
             std::to_string(offset(t) + t.nbytes) + "])";
    };
    std::size_t covered = 0;  // the data area [0, covered) is tiled so far
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const std::size_t begin = offset(tensors_[i]);
      if (begin < covered) fail(path, describe(tensors_[i]) + " overlaps " + describe(tensors_[i - 1]));
      if (begin > covered) {
        fail(path, "bytes [" + std::to_string(covered) + ", " + std::to_string(begin) +
                       ") of the data area belong to no tensor (the format forbids holes), before " +
                       describe(tensors_[i]));
      }
      covered = begin + tensors_[i].nbytes;
    }
    if (covered != data_size) {
      fail(path, "bytes [" + std::to_string(covered) + ", " + std::to_string(data_size) +
                     ") at the end of the data area belong to no tensor (the format forbids holes)");
    }
  }

  std::shared_ptr<const MappedFile> file_;
  std::vector<SafeTensorInfo> tensors_;
  std::vector<std::size_t> name_order_;  // indices into tensors_, sorted by name, for find()
  std::vector<std::pair<std::string, std::string>> metadata_;
};

}  // namespace smallcoder
