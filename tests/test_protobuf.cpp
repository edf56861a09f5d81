#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "smallcoder/text/protobuf.hpp"

using namespace smallcoder;
using protobuf::Field;
using protobuf::Reader;
using protobuf::WireType;

namespace {

std::vector<Field> read_all(const std::string& bytes) {
  Reader reader(bytes, "test.bin: Msg");
  std::vector<Field> fields;
  Field f;
  while (reader.next(f)) fields.push_back(f);
  return fields;
}

}  // namespace

TEST_CASE("fields of every supported wire type are read in order") {
  // field 1 varint 150; field 2 "hi"; field 3 float 1.5; field 4 fixed64 0x0102030405060708;
  // field 5 int32 -1 as a 10-byte varint; field 1000 varint 1.
  const std::string bytes =
      std::string("\x08\x96\x01", 3) + std::string("\x12\x02hi", 4) + std::string("\x1d\x00\x00\xc0\x3f", 5) +
      std::string("\x21\x08\x07\x06\x05\x04\x03\x02\x01", 9) +
      std::string("\x28\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11) + std::string("\xc0\x3e\x01", 3);
  const std::vector<Field> f = read_all(bytes);
  REQUIRE(f.size() == 6);
  CHECK(f[0].number == 1);
  CHECK(protobuf::as_uint64(f[0], "m", "a") == 150);
  CHECK(f[1].wire == WireType::length_delimited);
  CHECK(protobuf::as_bytes(f[1], "m", "b") == "hi");
  CHECK(f[1].payload_offset == 5);
  CHECK(protobuf::as_float(f[2], "m", "c") == 1.5f);
  CHECK(f[3].wire == WireType::fixed64);
  CHECK(f[3].value == 0x0102030405060708ull);
  CHECK(protobuf::as_int32(f[4], "m", "e") == -1);
  CHECK(f[5].number == 1000);
  CHECK(protobuf::as_bool(f[5], "m", "g"));
  CHECK(f[5].offset == bytes.size() - 3);
}

TEST_CASE("an empty message has no fields") { CHECK(read_all("").empty()); }

TEST_CASE("malformed wire data is an Error naming the message, the field and the offset") {
  const auto error_of = [](const std::string& bytes) {
    try {
      read_all(bytes);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of("\x08") == "test.bin: Msg: field 1: varint cut off by the end of the message (at byte 1)");
  CHECK(error_of("\x08\x80") == "test.bin: Msg: field 1: varint cut off by the end of the message (at byte 1)");
  CHECK(error_of("\x12\x05hi") ==
        "test.bin: Msg: field 2: length 5 runs past the end of the message (2 bytes left) (at byte 0)");
  CHECK(error_of(std::string("\x1d\x00\x00", 3)) ==
        "test.bin: Msg: field 3: 32-bit value cut off by the end of the message (2 bytes left) (at byte 1)");
  CHECK(error_of(std::string("\x21\x00", 2)) ==
        "test.bin: Msg: field 4: 64-bit value cut off by the end of the message (1 bytes left) (at byte 1)");
  CHECK(error_of("\x0b") == "test.bin: Msg: field 1: wire type 3 (group) is not supported (at byte 0)");
  CHECK(error_of("\x0c") == "test.bin: Msg: field 1: wire type 4 (group) is not supported (at byte 0)");
  CHECK(error_of("\x0e\x00") == "test.bin: Msg: field 1: invalid wire type 6 (at byte 0)");
  CHECK(error_of("\x0f") == "test.bin: Msg: field 1: invalid wire type 7 (at byte 0)");
  CHECK(error_of(std::string("\x00\x00", 2)) == "test.bin: Msg: invalid field number 0 (at byte 0)");
  CHECK(error_of("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02") ==
        "test.bin: Msg: field 1: varint overflows 64 bits (at byte 1)");
  CHECK(error_of("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01") ==
        "test.bin: Msg: field 1: varint overflows 64 bits (at byte 1)");
  CHECK(error_of("\x80\x80\x80\x80\x10") == "test.bin: Msg: invalid field number 536870912 (at byte 0)");
  CHECK(read_all(std::string("\xf8\xff\xff\xff\x0f\x00", 6)).at(0).number == 536870911);  // the largest field number
  // A huge declared length must not allocate or read: it is checked against what is left.
  CHECK(error_of("\x12\xff\xff\xff\xff\xff\xff\xff\xff\x7f") ==
        "test.bin: Msg: field 2: length 9223372036854775807 runs past the end of the message (0 bytes left) (at byte 0)");
}

TEST_CASE("typed access rejects a wrong wire type or an out-of-range value") {
  const std::vector<Field> f = read_all(std::string("\x08\x02\x12\x01x\x18\x80\x80\x80\x80\x08", 11));
  CHECK_THROWS_WITH_AS(protobuf::as_float(f[0], "file: M", "score"),
                       "file: M.score: expected wire type 32-bit (5), found varint (0) (at byte 0)", Error);
  CHECK_THROWS_WITH_AS(protobuf::as_bytes(f[0], "file: M", "piece"),
                       "file: M.piece: expected wire type length-delimited (2), found varint (0) (at byte 0)", Error);
  CHECK_THROWS_WITH_AS(protobuf::as_int32(f[1], "file: M", "type"),
                       "file: M.type: expected wire type varint (0), found length-delimited (2) (at byte 2)", Error);
  CHECK_THROWS_WITH_AS(protobuf::as_bool(f[0], "file: M", "flag"), "file: M.flag: bool value 2 is not 0 or 1 (at byte 0)",
                       Error);
  CHECK_THROWS_WITH_AS(protobuf::as_int32(f[2], "file: M", "id"),
                       "file: M.id: value 2147483648 does not fit int32 (at byte 5)", Error);
}

TEST_CASE("nested readers report absolute offsets") {
  // field 1 = message { field 2 = varint cut off }
  const std::string bytes("\x0a\x02\x10\x80", 4);
  const std::vector<Field> f = read_all(bytes);
  Reader inner(f[0].bytes, "test.bin: Msg.sub", f[0].payload_offset);
  Field g;
  CHECK_THROWS_WITH_AS(inner.next(g), "test.bin: Msg.sub: field 2: varint cut off by the end of the message (at byte 3)",
                       Error);
}
