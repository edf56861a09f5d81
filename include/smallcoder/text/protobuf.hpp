// A small, strict reader of the protobuf wire format, enough to load a sentencepiece
// tokenizer.model without linking libprotobuf. Every read is bounds-checked and every
// error names the file, the message path and the field, and says why.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "smallcoder/error.hpp"

namespace smallcoder::protobuf {

enum class WireType : std::uint8_t { varint = 0, fixed64 = 1, length_delimited = 2, fixed32 = 5 };

inline const char* wire_type_name(WireType wire) {
  switch (wire) {
    case WireType::varint: return "varint (0)";
    case WireType::fixed64: return "64-bit (1)";
    case WireType::length_delimited: return "length-delimited (2)";
    case WireType::fixed32: return "32-bit (5)";
  }
  return "?";
}

// One field as read from the wire. `value` holds a varint or fixed-width payload,
// `bytes` a length-delimited one (a view into the reader's data).
struct Field {
  std::uint32_t number = 0;
  WireType wire = WireType::varint;
  std::uint64_t value = 0;
  std::string_view bytes;
  std::size_t offset = 0;          // where the field's tag starts, from the start of the file
  std::size_t payload_offset = 0;  // where its payload starts (for nested messages)
};

// Reads the fields of one message in wire order; unknown fields are returned like any
// other and the caller simply ignores them. `where` names the message for errors
// ("tokenizer.model: ModelProto.pieces[3]"); `base_offset` is where `data` starts in
// the file, so errors can give absolute byte offsets.
class Reader {
 public:
  Reader(std::string_view data, std::string where, std::size_t base_offset = 0)
      : data_(data), where_(std::move(where)), base_(base_offset) {}

  // Reads the next field into `field`; false at the end of the message.
  bool next(Field& field) {
    if (pos_ == data_.size()) return false;
    field.offset = base_ + pos_;
    const std::uint64_t tag = read_varint("field tag");
    const std::uint64_t number = tag >> 3;
    if (number == 0 || number > 0x1FFFFFFF) {
      fail_at(field.offset, "invalid field number " + std::to_string(number));
    }
    field.number = static_cast<std::uint32_t>(number);
    const auto wire = static_cast<unsigned>(tag & 7);
    const std::string what = "field " + std::to_string(number);
    switch (wire) {
      case 0:
        field.wire = WireType::varint;
        field.value = read_varint(what);
        break;
      case 1:
        field.wire = WireType::fixed64;
        field.value = read_fixed(8, what);
        break;
      case 2: {
        field.wire = WireType::length_delimited;
        const std::uint64_t length = read_varint(what + " length");
        if (length > data_.size() - pos_) {
          fail_at(field.offset, what + ": length " + std::to_string(length) + " runs past the end of the message (" +
                                    std::to_string(data_.size() - pos_) + " bytes left)");
        }
        field.payload_offset = base_ + pos_;
        field.bytes = data_.substr(pos_, static_cast<std::size_t>(length));
        pos_ += static_cast<std::size_t>(length);
        break;
      }
      case 5:
        field.wire = WireType::fixed32;
        field.value = read_fixed(4, what);
        break;
      case 3:
      case 4: fail_at(field.offset, what + ": wire type " + std::to_string(wire) + " (group) is not supported");
      default: fail_at(field.offset, what + ": invalid wire type " + std::to_string(wire));
    }
    return true;
  }

  const std::string& where() const { return where_; }

 private:
  std::uint64_t read_varint(const std::string& what) {
    const std::size_t start = base_ + pos_;
    std::uint64_t result = 0;
    for (int shift = 0;; shift += 7) {
      if (pos_ == data_.size()) fail_at(start, what + ": varint cut off by the end of the message");
      const auto byte = static_cast<unsigned char>(data_[pos_++]);
      // The tenth byte holds bit 63 only; anything more does not fit 64 bits.
      if (shift == 63 && byte > 1) fail_at(start, what + ": varint overflows 64 bits");
      result |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
      if (byte < 0x80) return result;
    }
  }

  std::uint64_t read_fixed(std::size_t width, const std::string& what) {
    if (data_.size() - pos_ < width) {
      fail_at(base_ + pos_, what + ": " + std::to_string(width * 8) + "-bit value cut off by the end of the message (" +
                                std::to_string(data_.size() - pos_) + " bytes left)");
    }
    std::uint64_t result = 0;  // little-endian on the wire, whatever the host
    for (std::size_t i = 0; i < width; ++i) {
      result |= static_cast<std::uint64_t>(static_cast<unsigned char>(data_[pos_ + i])) << (8 * i);
    }
    pos_ += width;
    return result;
  }

  [[noreturn]] void fail_at(std::size_t offset, const std::string& what) const {
    fail(where_, what + " (at byte " + std::to_string(offset) + ")");
  }

  std::string_view data_;
  std::string where_;
  std::size_t base_ = 0;
  std::size_t pos_ = 0;
};

// Typed access to a field's value. Errors name `message` + "." + `name`
// ("tokenizer.model: ModelProto.trainer_spec" + "model_type"), built only on failure
// since these run once per vocabulary piece. A wrong wire type or a value out of the
// declared type's range is an Error, not a silent truncation.
inline std::string field_name(const std::string& message, const char* name) { return message + "." + name; }

inline void expect_wire(const Field& field, WireType wire, const std::string& message, const char* name) {
  if (field.wire != wire) {
    fail(field_name(message, name), std::string("expected wire type ") + wire_type_name(wire) + ", found " +
                                        wire_type_name(field.wire) + " (at byte " + std::to_string(field.offset) + ")");
  }
}

inline std::uint64_t as_uint64(const Field& field, const std::string& message, const char* name) {
  expect_wire(field, WireType::varint, message, name);
  return field.value;
}

// int32 and enums: negative values travel as 10-byte sign-extended varints.
inline std::int32_t as_int32(const Field& field, const std::string& message, const char* name) {
  const auto wide = static_cast<std::int64_t>(as_uint64(field, message, name));
  if (wide < std::numeric_limits<std::int32_t>::min() || wide > std::numeric_limits<std::int32_t>::max()) {
    fail(field_name(message, name),
         "value " + std::to_string(wide) + " does not fit int32 (at byte " + std::to_string(field.offset) + ")");
  }
  return static_cast<std::int32_t>(wide);
}

inline bool as_bool(const Field& field, const std::string& message, const char* name) {
  const std::uint64_t v = as_uint64(field, message, name);
  if (v > 1) {
    fail(field_name(message, name),
         "bool value " + std::to_string(v) + " is not 0 or 1 (at byte " + std::to_string(field.offset) + ")");
  }
  return v == 1;
}

inline float as_float(const Field& field, const std::string& message, const char* name) {
  expect_wire(field, WireType::fixed32, message, name);
  const auto bits = static_cast<std::uint32_t>(field.value);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// string, bytes and nested messages.
inline std::string_view as_bytes(const Field& field, const std::string& message, const char* name) {
  expect_wire(field, WireType::length_delimited, message, name);
  return field.bytes;
}

}  // namespace smallcoder::protobuf
