// Reader for GGUF files (llama.cpp's model format, versions 2 and 3): header, typed
// metadata of every value type, tensor infos. Every count and length is checked against
// the bytes left before anything is allocated; tensors are zero-copy views into the mapping.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "smallcoder/error.hpp"
#include "smallcoder/io/mapped_file.hpp"
#include "smallcoder/tensor/dtype.hpp"

// GGUF v3 may be big-endian; this reader (like the writer) handles little-endian files only.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "smallcoder's GGUF reader and writer assume a little-endian host"
#endif

namespace smallcoder {

// The metadata value types of the GGUF specification (gguf_type), with their numbers.
enum class GgufType : std::uint32_t {
  uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6,
  boolean = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12,
};

inline const char* gguf_type_name(GgufType t) {
  static const char* const names[] = {"uint8", "int8",   "uint16", "int16", "uint32", "int32", "float32",
                                      "bool",  "string", "array",  "uint64", "int64", "float64"};
  const auto i = static_cast<std::uint32_t>(t);
  return i < sizeof names / sizeof names[0] ? names[i] : "unknown";
}

// ggml's name of a type number, for messages about types smallcoder does not support.
inline std::string ggml_type_name(std::uint32_t id) {
  static const char* const names[] = {
      "F32",   "F16",    "Q4_0",    "Q4_1",   "",       "",        "Q5_0",  "Q5_1",  "Q8_0", "Q8_1",
      "Q2_K",  "Q3_K",   "Q4_K",    "Q5_K",   "Q6_K",   "Q8_K",    "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
      "IQ4_NL", "IQ3_S", "IQ2_S",   "IQ4_XS", "I8",     "I16",     "I32",   "I64",   "F64",  "IQ1_M",
      "BF16",  "",       "",        "",       "TQ1_0",  "TQ2_0"};
  const char* name = id < sizeof names / sizeof names[0] ? names[id] : "";
  return *name != '\0' ? name : "unknown";
}

namespace detail {

inline bool gguf_type_known(std::uint32_t t) { return t <= static_cast<std::uint32_t>(GgufType::float64); }

// Bytes of one scalar of this type; 0 for string and array.
inline std::size_t gguf_scalar_bytes(GgufType t) {
  switch (t) {
    case GgufType::uint8: case GgufType::int8: case GgufType::boolean: return 1;
    case GgufType::uint16: case GgufType::int16: return 2;
    case GgufType::uint32: case GgufType::int32: case GgufType::float32: return 4;
    case GgufType::uint64: case GgufType::int64: case GgufType::float64: return 8;
    default: return 0;
  }
}

// The fewest bytes one value of this type takes in a file: a string has its 8-byte
// length, an array its element type and 8-byte count. Bounds element counts by the bytes left.
inline std::size_t gguf_min_value_bytes(GgufType t) {
  if (t == GgufType::string) return 8;
  if (t == GgufType::array) return 12;
  return gguf_scalar_bytes(t);
}

// Names from a file, quoted and cut short, with control bytes escaped, so that a hostile
// file cannot make a huge or multi-line message.
inline std::string gguf_quote(const std::string& s) {
  constexpr std::size_t max_shown = 96;
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < max_shown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max_shown) out += "...";
  return out + "'";
}

}  // namespace detail

// One metadata value. Owns its data (numeric arrays packed as in the file), so the
// writer builds values with the same type.
class GgufValue {
 public:
  GgufValue() = default;

  // A scalar of the GGUF type matching T (uint8_t -> uint8, ..., float -> float32, bool -> bool).
  template <class T>
  static GgufValue scalar(T v) {
    GgufValue out;
    out.type_ = type_of<T>();
    std::memcpy(&out.bits_, &v, sizeof v);
    return out;
  }
  static GgufValue string(std::string text) {
    GgufValue out;
    out.type_ = GgufType::string;
    out.text_ = std::move(text);
    return out;
  }
  // An array of numbers, bools or strings (T = std::string).
  template <class T>
  static GgufValue array(const std::vector<T>& items) {
    GgufValue out;
    out.type_ = GgufType::array;
    out.count_ = items.size();
    if constexpr (std::is_same_v<T, std::string>) {
      out.element_type_ = GgufType::string;
      out.strings_ = items;
    } else if constexpr (std::is_same_v<T, bool>) {  // std::vector<bool> has no addressable elements
      out.element_type_ = GgufType::boolean;
      for (const bool b : items) out.raw_.push_back(std::byte{b});
    } else {
      out.element_type_ = type_of<T>();
      out.raw_.resize(items.size() * sizeof(T));
      for (std::size_t i = 0; i < items.size(); ++i) std::memcpy(out.raw_.data() + i * sizeof(T), &items[i], sizeof(T));
    }
    return out;
  }
  // An array of arrays (GGUF allows nesting).
  static GgufValue array_of_arrays(std::vector<GgufValue> items) {
    for (const GgufValue& v : items) {
      if (v.type_ != GgufType::array) {
        fail("gguf", std::string("array_of_arrays: an element is a ") + gguf_type_name(v.type_));
      }
    }
    GgufValue out;
    out.type_ = GgufType::array;
    out.element_type_ = GgufType::array;
    out.count_ = items.size();
    out.items_ = std::move(items);
    return out;
  }

  GgufType type() const { return type_; }
  bool is_integer() const { return is_integer_type(type_); }

  // Any integer type as int64; a uint64 above INT64_MAX is an error. `where` names the value in errors.
  std::int64_t to_int(const std::string& where) const {
    switch (type_) {
      case GgufType::uint8: return static_cast<std::uint8_t>(bits_);
      case GgufType::int8: return static_cast<std::int8_t>(static_cast<std::uint8_t>(bits_));
      case GgufType::uint16: return static_cast<std::uint16_t>(bits_);
      case GgufType::int16: return static_cast<std::int16_t>(static_cast<std::uint16_t>(bits_));
      case GgufType::uint32: return static_cast<std::uint32_t>(bits_);
      case GgufType::int32: return static_cast<std::int32_t>(static_cast<std::uint32_t>(bits_));
      case GgufType::int64: return static_cast<std::int64_t>(bits_);
      case GgufType::uint64:
        if (bits_ > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          fail(where, "value " + std::to_string(bits_) + " is out of range");
        }
        return static_cast<std::int64_t>(bits_);
      default: fail(where, std::string("expected an integer, got ") + describe());
    }
  }
  double to_double(const std::string& where) const {
    if (type_ == GgufType::float32) {
      float f;
      const auto bits = static_cast<std::uint32_t>(bits_);
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    if (type_ == GgufType::float64) {
      double d;
      std::memcpy(&d, &bits_, sizeof d);
      return d;
    }
    fail(where, std::string("expected a float32 or float64, got ") + describe());
  }
  bool to_bool(const std::string& where) const {
    if (type_ != GgufType::boolean) fail(where, std::string("expected a bool, got ") + describe());
    return bits_ != 0;
  }
  const std::string& to_string(const std::string& where) const {
    if (type_ != GgufType::string) fail(where, std::string("expected a string, got ") + describe());
    return text_;
  }

  // Arrays: element type, length, and element i as a value of its own.
  GgufType element_type() const { return element_type_; }
  std::size_t size() const { return static_cast<std::size_t>(count_); }
  GgufValue element(std::size_t i) const {
    if (type_ != GgufType::array || i >= count_) fail("gguf", "element " + std::to_string(i) + " of " + describe());
    if (element_type_ == GgufType::string) return string(strings_[i]);
    if (element_type_ == GgufType::array) return items_[i];
    GgufValue out;
    out.type_ = element_type_;
    const std::size_t width = detail::gguf_scalar_bytes(element_type_);
    std::memcpy(&out.bits_, raw_.data() + i * width, width);
    return out;
  }

  // "uint32 2048", "string 'llama'", "array of 32000 string": for messages and dumps.
  std::string describe() const {
    switch (type_) {
      case GgufType::string: return "string " + detail::gguf_quote(text_);
      case GgufType::array:
        return "array of " + std::to_string(count_) + " " + gguf_type_name(element_type_);
      case GgufType::boolean: return bits_ != 0 ? "bool true" : "bool false";
      case GgufType::float32: case GgufType::float64: {
        char text[64];
        std::snprintf(text, sizeof text, "%.9g", to_double(""));
        return std::string(gguf_type_name(type_)) + " " + text;
      }
      default: return std::string(gguf_type_name(type_)) + " " + std::to_string(to_int(""));
    }
  }

  // Appends the value as a file stores it after its type: a scalar's bytes, a string's
  // length and bytes, or an array's element type, length and elements.
  void encode(std::string& out) const {
    if (type_ == GgufType::string) {
      append_string(out, text_);
    } else if (type_ == GgufType::array) {
      append_le(out, static_cast<std::uint32_t>(element_type_));
      append_le(out, count_);
      if (element_type_ == GgufType::string) {
        for (const std::string& s : strings_) append_string(out, s);
      } else if (element_type_ == GgufType::array) {
        for (const GgufValue& item : items_) item.encode(out);
      } else {
        out.append(reinterpret_cast<const char*>(raw_.data()), raw_.size());
      }
    } else {
      out.append(reinterpret_cast<const char*>(&bits_), detail::gguf_scalar_bytes(type_));
    }
  }

  template <class T>
  static void append_le(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  static void append_string(std::string& out, const std::string& s) {
    append_le(out, static_cast<std::uint64_t>(s.size()));
    out += s;
  }

  bool operator==(const GgufValue& o) const {
    return type_ == o.type_ && bits_ == o.bits_ && text_ == o.text_ && element_type_ == o.element_type_ &&
           count_ == o.count_ && raw_ == o.raw_ && strings_ == o.strings_ && items_ == o.items_;
  }
  bool operator!=(const GgufValue& o) const { return !(*this == o); }

 private:
  friend class Gguf;

  static bool is_integer_type(GgufType t) {
    return t == GgufType::uint8 || t == GgufType::int8 || t == GgufType::uint16 || t == GgufType::int16 ||
           t == GgufType::uint32 || t == GgufType::int32 || t == GgufType::uint64 || t == GgufType::int64;
  }

  template <class T>
  static constexpr GgufType type_of() {
    if constexpr (std::is_same_v<T, bool>) return GgufType::boolean;
    else if constexpr (std::is_same_v<T, float>) return GgufType::float32;
    else if constexpr (std::is_same_v<T, double>) return GgufType::float64;
    else if constexpr (std::is_same_v<T, std::uint8_t>) return GgufType::uint8;
    else if constexpr (std::is_same_v<T, std::int8_t>) return GgufType::int8;
    else if constexpr (std::is_same_v<T, std::uint16_t>) return GgufType::uint16;
    else if constexpr (std::is_same_v<T, std::int16_t>) return GgufType::int16;
    else if constexpr (std::is_same_v<T, std::uint32_t>) return GgufType::uint32;
    else if constexpr (std::is_same_v<T, std::int32_t>) return GgufType::int32;
    else if constexpr (std::is_same_v<T, std::uint64_t>) return GgufType::uint64;
    else {
      static_assert(std::is_same_v<T, std::int64_t>, "not a GGUF scalar type");
      return GgufType::int64;
    }
  }

  GgufType type_ = GgufType::uint8;
  std::uint64_t bits_ = 0;          // a scalar's little-endian bytes, zero-extended
  std::string text_;                // a string
  GgufType element_type_ = GgufType::uint8;
  std::uint64_t count_ = 0;         // array length
  std::vector<std::byte> raw_;      // numeric or bool elements, packed as in the file
  std::vector<std::string> strings_;  // string elements
  std::vector<GgufValue> items_;    // array elements
};

struct GgufTensorInfo {
  std::string name;
  std::vector<std::int64_t> dims;  // innermost (contiguous) first, as ggml's ne[]: a matrix is {cols, rows}
  std::uint32_t ggml_type = 0;
  DType dtype = DType::f32;
  std::uint64_t offset = 0;         // from the start of the data section
  const std::byte* data = nullptr;  // into the mapping
  std::size_t nbytes = 0;
};

class Gguf {
 public:
  static constexpr std::uint32_t default_alignment = 32;  // when general.alignment is absent
  static constexpr int max_array_depth = 8;               // arrays of arrays nest at most this deep

  static Gguf open(const std::string& path) { return Gguf(MappedFile::open(path)); }

  explicit Gguf(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) {
    Cursor in{file_->data(), file_->size(), 0, file_->path(), "header"};
    if (file_->size() < 24) {
      if (file_->size() >= 4 && !has_magic()) fail(path(), "not a GGUF file (wrong magic " + magic_text() + ")");
      fail(path(), "truncated header: the file is " + std::to_string(file_->size()) + " bytes, a GGUF header needs 24");
    }
    if (!has_magic()) fail(path(), "not a GGUF file (wrong magic " + magic_text() + ", expected 'GGUF')");
    in.pos = 4;
    version_ = in.u32("version");
    if (version_ != 2 && version_ != 3) {
      const bool swapped = version_ == 0x02000000u || version_ == 0x03000000u;
      fail(path(), "unsupported GGUF version " + std::to_string(version_) +
                       (swapped ? " (a big-endian file; only little-endian files are supported)"
                                : " (only versions 2 and 3 are supported)"));
    }
    const std::uint64_t tensor_count = in.u64("tensor count");
    const std::uint64_t kv_count = in.u64("metadata count");
    // Every entry takes at least 13 bytes (key length, type, one byte), every tensor info 32.
    in.check_count(kv_count, 13, "metadata count");
    in.check_count(tensor_count, 32, "tensor count");

    read_metadata(in, kv_count);
    read_alignment();
    read_tensor_infos(in, tensor_count);
    data_offset_ = align_up(in.pos, alignment_);
    check_tensor_data();
  }

  std::uint32_t version() const { return version_; }
  std::uint32_t alignment() const { return alignment_; }
  std::size_t data_offset() const { return data_offset_; }  // file offset of the data section
  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<const MappedFile>& file() const { return file_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const {
    const auto it = key_index_.find(key);
    return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
  }
  const GgufValue& get(const std::string& key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) fail(path(), "missing metadata key " + detail::gguf_quote(key));
    return *v;
  }

  // Tensors in file order (of their infos).
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }
  const GgufTensorInfo& tensor(const std::string& name) const {
    const GgufTensorInfo* t = find_tensor(name);
    if (t == nullptr) fail(path(), "missing tensor " + detail::gguf_quote(name));
    return *t;
  }

 private:
  // Bounds-checked little-endian reads; `section` names the part being read for messages.
  struct Cursor {
    const std::byte* base;
    std::size_t size;
    std::size_t pos;
    const std::string& path;
    std::string section;

    std::size_t left() const { return size - pos; }
    void need(std::size_t n, const std::string& what) const {
      if (n > left()) {
        fail(path, "truncated " + section + ": " + what + " needs " + std::to_string(n) + " bytes at offset " +
                       std::to_string(pos) + " but the file ends at " + std::to_string(size));
      }
    }
    // A count of items that take at least `min_bytes` each must fit in the bytes left.
    void check_count(std::uint64_t count, std::size_t min_bytes, const std::string& what) const {
      if (count > left() / min_bytes) {
        fail(path, section + ": " + what + " " + std::to_string(count) + " is impossible: " + std::to_string(count) +
                       " items of at least " + std::to_string(min_bytes) + " bytes each do not fit in the " +
                       std::to_string(left()) + " bytes left");
      }
    }
    template <class T>
    T read(const std::string& what) {
      need(sizeof(T), what);
      T v;
      std::memcpy(&v, base + pos, sizeof v);
      pos += sizeof v;
      return v;
    }
    std::uint32_t u32(const std::string& what) { return read<std::uint32_t>(what); }
    std::uint64_t u64(const std::string& what) { return read<std::uint64_t>(what); }
    std::string str(const std::string& what) {
      const std::uint64_t n = u64(what + " length");
      if (n > left()) {
        fail(path, "truncated " + section + ": " + what + " of " + std::to_string(n) + " bytes at offset " +
                       std::to_string(pos) + " runs past the end of the file (" + std::to_string(size) + " bytes)");
      }
      std::string s(reinterpret_cast<const char*>(base + pos), static_cast<std::size_t>(n));
      pos += static_cast<std::size_t>(n);
      return s;
    }
  };

  bool has_magic() const { return std::memcmp(file_->data(), "GGUF", 4) == 0; }
  std::string magic_text() const {
    std::string m(reinterpret_cast<const char*>(file_->data()), 4);
    return detail::gguf_quote(m);
  }

  static std::size_t align_up(std::size_t n, std::size_t alignment) {
    return (n + alignment - 1) / alignment * alignment;
  }

  GgufType read_type(Cursor& in, const std::string& what) {
    const std::uint32_t t = in.u32(what);
    if (!detail::gguf_type_known(t)) {
      fail(path(), in.section + ": " + what + " " + std::to_string(t) + " is not a GGUF value type (0 to 12)");
    }
    return static_cast<GgufType>(t);
  }

  GgufValue read_value(Cursor& in, GgufType type, int depth) {
    GgufValue v;
    v.type_ = type;
    if (type == GgufType::string) {
      v.text_ = in.str("string");
    } else if (type == GgufType::array) {
      if (depth >= max_array_depth) {
        fail(path(), in.section + ": arrays nest deeper than " + std::to_string(max_array_depth) + " levels");
      }
      v.element_type_ = read_type(in, "array element type");
      v.count_ = in.u64("array length");
      in.check_count(v.count_, detail::gguf_min_value_bytes(v.element_type_),
                     std::string("array of ") + gguf_type_name(v.element_type_) + " with length");
      const auto n = static_cast<std::size_t>(v.count_);
      if (v.element_type_ == GgufType::string) {
        v.strings_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) v.strings_.push_back(in.str("string " + std::to_string(i)));
      } else if (v.element_type_ == GgufType::array) {
        v.items_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) v.items_.push_back(read_value(in, GgufType::array, depth + 1));
      } else {
        const std::size_t width = detail::gguf_scalar_bytes(v.element_type_);
        const auto* begin = in.base + in.pos;
        v.raw_.assign(begin, begin + n * width);
        in.pos += n * width;
        if (v.element_type_ == GgufType::boolean) {
          for (std::size_t i = 0; i < n; ++i) check_bool(in, static_cast<std::uint8_t>(v.raw_[i]));
        }
      }
    } else {
      const std::size_t width = detail::gguf_scalar_bytes(type);
      in.need(width, std::string(gguf_type_name(type)) + " value");
      std::memcpy(&v.bits_, in.base + in.pos, width);
      in.pos += width;
      if (type == GgufType::boolean) check_bool(in, static_cast<std::uint8_t>(v.bits_));
    }
    return v;
  }

  void check_bool(const Cursor& in, std::uint8_t b) const {
    if (b > 1) fail(path(), in.section + ": bool value " + std::to_string(b) + " is neither 0 nor 1");
  }

  void read_metadata(Cursor& in, std::uint64_t count) {
    metadata_.reserve(static_cast<std::size_t>(count));
    for (std::uint64_t i = 0; i < count; ++i) {
      in.section = "metadata: entry " + std::to_string(i);
      std::string key = in.str("key");
      in.section += " (" + detail::gguf_quote(key) + ")";
      const GgufType type = read_type(in, "value type");
      GgufValue value = read_value(in, type, 0);
      if (!key_index_.emplace(key, metadata_.size()).second) {
        fail(path(), "duplicate metadata key " + detail::gguf_quote(key) + " (entry " + std::to_string(i) + ")");
      }
      metadata_.emplace_back(std::move(key), std::move(value));
    }
  }

  // general.alignment: a uint32 power of two that is a multiple of 8, as the specification asks
  // (so every tensor, f32 included, starts suitably aligned in the page-aligned mapping).
  void read_alignment() {
    const GgufValue* v = find("general.alignment");
    if (v == nullptr) return;
    const std::string where = path() + ": general.alignment";
    if (v->type() != GgufType::uint32) fail(where, std::string("must be a uint32, got ") + v->describe());
    const auto a = static_cast<std::uint32_t>(v->to_int(where));
    if (a < 8 || (a & (a - 1)) != 0) fail(where, std::to_string(a) + " is not a power of two of at least 8");
    alignment_ = a;
  }

  void read_tensor_infos(Cursor& in, std::uint64_t count) {
    tensors_.reserve(static_cast<std::size_t>(count));
    for (std::uint64_t i = 0; i < count; ++i) {
      in.section = "tensor infos: tensor " + std::to_string(i);
      GgufTensorInfo t;
      t.name = in.str("name");
      in.section += " (" + detail::gguf_quote(t.name) + ")";
      const std::string where = path() + ": tensor " + detail::gguf_quote(t.name);
      const std::uint32_t n_dims = in.u32("dimension count");
      if (n_dims < 1 || n_dims > 4) fail(where, std::to_string(n_dims) + " dimensions (1 to 4 are allowed)");
      std::uint64_t elements = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        const std::uint64_t dim = in.u64("dimension " + std::to_string(d));
        if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
            (dim != 0 && elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / dim)) {
          fail(where,
               "dimension " + std::to_string(d) + " = " + std::to_string(dim) + " makes the element count overflow");
        }
        elements *= dim;
        t.dims.push_back(static_cast<std::int64_t>(dim));
      }
      t.ggml_type = in.u32("type");
      if (!dtype_from_ggml_type(t.ggml_type, t.dtype)) {
        fail(where, "ggml type " + std::to_string(t.ggml_type) + " (" + ggml_type_name(t.ggml_type) +
                        ") is not supported (supported: " + all_dtype_names(true) + ")");
      }
      t.offset = in.u64("data offset");
      const DTypeInfo& info = dtype_info(t.dtype);
      if (t.dims[0] % info.block_elems != 0) {
        fail(where, "row length " + std::to_string(t.dims[0]) + " is not a multiple of the " +
                        std::to_string(info.block_elems) + "-element blocks of " + ggml_type_name(t.ggml_type));
      }
      const std::uint64_t blocks = elements / static_cast<std::uint64_t>(info.block_elems);
      if (blocks > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(info.block_bytes)) {
        fail(where, "byte size overflows 64 bits");
      }
      const std::uint64_t nbytes = blocks * static_cast<std::uint64_t>(info.block_bytes);
      if (nbytes > file_->size()) {
        fail(where, "its " + std::to_string(nbytes) + " bytes of data exceed the whole file (" +
                        std::to_string(file_->size()) + " bytes)");
      }
      t.nbytes = static_cast<std::size_t>(nbytes);
      if (!tensor_index_.emplace(t.name, tensors_.size()).second) {
        fail(path(), "duplicate tensor name " + detail::gguf_quote(t.name) + " (tensor " + std::to_string(i) + ")");
      }
      tensors_.push_back(std::move(t));
    }
  }

  // Each tensor's data must be aligned, inside the file, and overlap no other tensor's.
  void check_tensor_data() {
    const std::size_t size = file_->size();
    const std::size_t data_size = data_offset_ <= size ? size - data_offset_ : 0;
    const auto range = [](const GgufTensorInfo& t) {
      return "[" + std::to_string(t.offset) + ", " + std::to_string(t.offset + t.nbytes) + ")";
    };
    for (GgufTensorInfo& t : tensors_) {
      const std::string where = path() + ": tensor " + detail::gguf_quote(t.name);
      if (t.offset % alignment_ != 0) {
        fail(where, "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                        std::to_string(alignment_));
      }
      if (t.offset > data_size || t.nbytes > data_size - t.offset) {
        fail(where, "truncated tensor data: bytes " + range(t) + " of the data section run past the end of the file (" +
                        "the data section starts at offset " + std::to_string(data_offset_) + " and holds " +
                        std::to_string(data_size) + " bytes)");
      }
      t.data = file_->data() + data_offset_ + t.offset;
    }
    std::vector<const GgufTensorInfo*> by_offset;
    for (const GgufTensorInfo& t : tensors_) {
      if (t.nbytes > 0) by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensorInfo& a = *by_offset[i - 1];
      const GgufTensorInfo& b = *by_offset[i];
      if (b.offset < a.offset + a.nbytes) {
        fail(path(), "tensor " + detail::gguf_quote(b.name) + " (data " + range(b) + ") overlaps tensor " +
                         detail::gguf_quote(a.name) + " (data " + range(a) + ")");
      }
    }
  }

  std::shared_ptr<const MappedFile> file_;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = default_alignment;
  std::size_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, std::size_t> key_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t> tensor_index_;
};

}  // namespace smallcoder
