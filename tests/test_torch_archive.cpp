// The readers under the .pt loader, on archives and pickles built here: the strict zip
// reader (folders, zip64, compressed entries, truncation, offsets past the end), the
// restricted unpickler (plain data, OrderedDict, tensors; every other global and opcode
// refused by name, nothing run) and the torch checkpoint's checks of storages and tensors.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "smallcoder/io/pickle.hpp"
#include "smallcoder/io/torch_checkpoint.hpp"
#include "smallcoder/io/zip.hpp"
#include "support/expect_error.hpp"
#include "support/pt_writer.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using smallcoder::test::check_error;
using smallcoder::test::PickleWriter;
namespace fs = std::filesystem;

namespace {

// Writes `bytes` to a scratch file named `name` and returns its path.
std::string scratch_file(const std::string& name, const std::string& bytes) {
  const std::string path = fs::absolute(test::scratch_path(name)).string();
  test::write_file(path, bytes);
  return path;
}

std::string floats(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

Pickle unpickle_bytes(const std::string& bytes) { return unpickle(bytes, "test.pkl"); }

// A state_dict of one tensor: the pickle and its storage '0'.
std::string one_tensor_archive(const std::string& folder, std::int64_t numel, std::int64_t offset,
                               const std::vector<std::int64_t>& shape, const std::vector<std::int64_t>& stride,
                               const std::string& storage_bytes, const std::string& type = "FloatStorage") {
  PickleWriter p;
  p.ordered_dict().mark().str("w").tensor(type, "0", numel, offset, shape, stride).op('u');
  return test::pt_archive(folder, p.finish(), {{"0", storage_bytes}});
}

}  // namespace

TEST_CASE("zip: stored entries are found under the archive's own folder name, zip64 too") {
  for (bool zip64 : {false, true}) {
    CAPTURE(zip64);
    const std::string path =
        scratch_file("zip_ok.zip", test::zip_bytes({{"my_model/a", "hello"}, {"my_model/b", ""}}, zip64));
    const ZipArchive zip = ZipArchive::open(path);
    REQUIRE(zip.entries().size() == 2);
    CHECK(zip.read(zip.get("my_model/a")) == "hello");
    CHECK(zip.read(zip.get("my_model/b")).empty());
    CHECK(zip.data_offset(zip.get("my_model/a")) % 64 == 0);  // torch's alignment, kept by the writer
    const auto mapped = zip.map(zip.get("my_model/a"), 1, 3);
    CHECK(std::string(reinterpret_cast<const char*>(mapped->data()), 3) == "ell");
    check_error([&] { zip.get("my_model/c"); }, {path, "no entry 'my_model/c'"});
    check_error([&] { zip.map(zip.get("my_model/a"), 3, 3); }, {"'my_model/a'", "past its end"});
  }
}

TEST_CASE("zip: compressed, truncated and out-of-bounds archives are refused with the reason") {
  const std::string good = test::zip_bytes({{"ckpt/data.pkl", std::string(100, 'x')}, {"ckpt/data/0", "abcd"}});

  SUBCASE("a deflated entry") {
    const std::string path =
        scratch_file("zip_deflated.zip", test::zip_bytes({{"ckpt/data.pkl", "x"}, {"ckpt/data/0", "abcd", 8}}));
    check_error([&] { ZipArchive::open(path); }, {path, "'ckpt/data/0'", "compressed (method 8, deflate)"});
  }
  SUBCASE("truncated anywhere") {
    for (std::size_t keep : {std::size_t{0}, std::size_t{10}, good.size() / 2, good.size() - 30, good.size() - 1}) {
      CAPTURE(keep);
      const std::string path = scratch_file("zip_truncated.zip", good.substr(0, keep));
      check_error([&] { ZipArchive::open(path); }, {path, "not a zip archive"});
    }
  }
  SUBCASE("the central directory past the end of the file") {
    std::string bytes = good;
    bytes[bytes.size() - 3] = '\x7f';  // the top byte of the directory's offset
    const std::string path = scratch_file("zip_directory.zip", bytes);
    check_error([&] { ZipArchive::open(path); }, {path, "central directory", "runs past"});
  }
  SUBCASE("an entry's offset past the directory") {
    std::string bytes = good;
    const std::size_t directory = bytes.find("PK\x01\x02");
    bytes[directory + 42 + 3] = '\x10';  // local header offset of the first entry
    const std::string path = scratch_file("zip_offset.zip", bytes);
    check_error([&] { ZipArchive::open(path); },
                {path, "'ckpt/data.pkl'", "run past the start of the central directory"});
  }
  SUBCASE("an entry's size past the directory") {
    std::string bytes = good;
    const std::size_t directory = bytes.find("PK\x01\x02");
    for (int field : {20, 24}) bytes[directory + static_cast<std::size_t>(field) + 2] = '\x01';  // 65636 bytes
    const std::string path = scratch_file("zip_size.zip", bytes);
    check_error([&] { ZipArchive::open(path); }, {path, "'ckpt/data.pkl'", "65636 bytes"});
  }
  SUBCASE("a local header that does not match the directory") {
    std::string bytes = good;
    bytes[30] = 'X';  // the first entry's name in its local header
    const std::string path = scratch_file("zip_local.zip", bytes);
    const ZipArchive zip = ZipArchive::open(path);
    check_error([&] { zip.read(zip.get("ckpt/data.pkl")); }, {path, "'ckpt/data.pkl'", "names another entry"});
  }
  SUBCASE("the same name twice") {
    const std::string path = scratch_file("zip_twice.zip", test::zip_bytes({{"ckpt/a", "1"}, {"ckpt/a", "2"}}));
    check_error([&] { ZipArchive::open(path); }, {path, "'ckpt/a'", "twice"});
  }
}

TEST_CASE("pickle: the plain data a checkpoint holds reads back as written") {
  PickleWriter p;
  p.op('}').mark();
  p.str("ints").op(']').mark().integer(7).integer(-3).integer(70000).integer(-(std::int64_t{1} << 40)).op('e');
  p.str("float").number(0.25).str("flags").mark().boolean(true).boolean(false).none().op('t');
  p.str("text").str("h\xC3\xA9llo").op('q').op('\x01');  // memoized as 1
  p.str("again").op('h').op('\x01');
  p.str("od").ordered_dict().mark().integer(5).str("five").op('u');
  p.op('u');
  const Pickle pk = unpickle_bytes(p.finish());
  const PickleValue& root = pk.root();
  REQUIRE(root.kind == PickleValue::Kind::dict);
  const PickleValue* ints = root.find("ints");
  REQUIRE(ints != nullptr);
  REQUIRE(ints->items.size() == 4);
  CHECK(ints->items[0]->integer == 7);
  CHECK(ints->items[1]->integer == -3);
  CHECK(ints->items[2]->integer == 70000);
  CHECK(ints->items[3]->integer == -(std::int64_t{1} << 40));
  CHECK(root.find("float")->floating == 0.25);
  const PickleValue* flags = root.find("flags");
  CHECK(flags->kind == PickleValue::Kind::tuple);
  CHECK(flags->items[0]->boolean);
  CHECK(flags->items[2]->kind == PickleValue::Kind::none);
  CHECK(root.find("again")->text == "h\xC3\xA9llo");
  const PickleValue* od = root.find("od");
  REQUIRE(od->kind == PickleValue::Kind::dict);
  CHECK(od->keys[0]->integer == 5);
  CHECK(od->items[0]->text == "five");
  CHECK(root.find("missing") == nullptr);
}

TEST_CASE("pickle: tensors and storages are descriptions, shared storages named once") {
  PickleWriter p;
  p.op('}').mark();
  p.str("a").tensor("BFloat16Storage", "0", 12, 0, {3, 4}, {4, 1});
  p.str("b").tensor("BFloat16Storage", "0", 12, 4, {4}, {1});
  p.str("c").tensor("FloatStorage", "1", 1, 0, {}, {});
  p.op('u');
  const Pickle pk = unpickle_bytes(p.finish());
  REQUIRE(pk.storages().size() == 2);
  CHECK(pk.storages()[0].type == "BFloat16Storage");
  CHECK(pk.storages()[0].dtype == DType::bf16);
  CHECK(pk.storages()[0].element_bytes == 2);
  CHECK(pk.storages()[0].location == "cpu");
  REQUIRE(pk.tensors().size() == 3);
  CHECK(pk.tensors()[1].storage == 0);
  CHECK(pk.tensors()[1].offset == 4);
  CHECK(pk.tensors()[0].stride == std::vector<std::int64_t>{4, 1});
  CHECK(pk.tensors()[2].shape.empty());
}

TEST_CASE("pickle: globals other than OrderedDict, the tensor rebuild and storages are refused; nothing runs") {
  const std::string marker = fs::absolute(test::scratch_path("pickle_ran_marker")).string();
  fs::remove(marker);
  SUBCASE("os.system") {
    PickleWriter p;
    p.global("os", "system").str("touch " + marker).op('\x85').op('R');
    check_error([&] { unpickle_bytes(p.finish()); },
                {"test.pkl", "byte 2", "global 'os.system' is not allowed", "nothing was imported or run"});
  }
  SUBCASE("builtins.eval") {
    PickleWriter p;
    p.global("builtins", "eval").str("open('" + marker + "', 'w')").op('\x85').op('R');
    check_error([&] { unpickle_bytes(p.finish()); }, {"global 'builtins.eval' is not allowed"});
  }
  SUBCASE("builtins.eval through STACK_GLOBAL (protocol 4)") {
    PickleWriter p;
    p.str("builtins").str("eval").op('\x93');
    check_error([&] { unpickle_bytes(p.finish()); }, {"global 'builtins.eval' is not allowed"});
  }
  SUBCASE("a look-alike of an allowed name") {
    PickleWriter p;
    p.global("torch._utils", "_rebuild_parameter");
    check_error([&] { unpickle_bytes(p.finish()); }, {"global 'torch._utils._rebuild_parameter' is not allowed"});
  }
  SUBCASE("calling a storage type") {
    PickleWriter p;
    p.global("torch", "FloatStorage").op(')').op('R');
    check_error([&] { unpickle_bytes(p.finish()); }, {"REDUCE calls 'torch.FloatStorage'", "not callable"});
  }
  SUBCASE("OrderedDict called with items") {
    PickleWriter p;
    p.global("collections", "OrderedDict").op(']').op('\x85').op('R');
    check_error([&] { unpickle_bytes(p.finish()); }, {"OrderedDict is called with arguments"});
  }
  CHECK_FALSE(fs::exists(marker));
}

TEST_CASE("pickle: unknown and refused opcodes are named; malformed pickles give the byte and reason") {
  struct Case {
    std::string bytes;
    std::vector<std::string> parts;
  };
  const std::string proto = "\x80\x02";
  const std::vector<Case> cases = {
      {proto + "\xff.", {"byte 2", "unknown opcode 0xff"}},
      {proto + "\x99.", {"unknown opcode 0x99"}},
      {proto + "(i os\nsystem\n.", {"opcode INST (0x69) is not allowed"}},
      {proto + "N)\x81.", {"opcode NEWOBJ (0x81) is not allowed"}},
      {proto + "\x82\x01.", {"opcode EXT1 (0x82) is not allowed"}},
      {proto + "C\x01x.", {"opcode SHORT_BINBYTES (0x43) is not allowed"}},
      {proto + "I1\n.", {"opcode INT (0x49) is not allowed"}},
      {proto + "N", {"ends without a STOP opcode"}},
      {proto + "X\x10" + std::string(3, '\0') + "abc", {"runs past the end of the pickle"}},
      {proto + "cos\nsys", {"GLOBAL's name has no end of line"}},
      {proto + "h\x05.", {"memo entry 5 was never stored"}},
      {proto + "a.", {"the stack is empty"}},
      {proto + "NN.", {"STOP leaves a malformed stack"}},
      {proto + "N.junk", {"4 bytes follow the STOP opcode"}},
      {proto + "X\x02" + std::string(3, '\0') + "\xc3(.", {"not valid UTF-8"}},
      {proto + "}]Ns.", {"a dict key is a list"}},
      {proto + "N]a.", {"APPEND to a None"}},
      {proto + "\x8a\x09\x01\x01\x01\x01\x01\x01\x01\x01\x01.", {"does not fit in 64 bits"}},
      {"\x80\x07N.", {"pickle protocol 7"}},
      {proto + "NNR.", {"REDUCE calls a None"}},
      {proto + "}Nb.", {"BUILD of a dict with a None state"}},
      {proto + "N}b.", {"BUILD of a None"}},
      {PickleWriter().mark().str("storage").none().str("0").str("cpu").integer(1).op('t').op('Q').finish(),
       {"a persistent id without a storage type"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.bytes);
    std::string message;
    try {
      unpickle_bytes(c.bytes);
    } catch (const Error& e) {
      message = e.what();
    }
    CAPTURE(message);
    CHECK(message.rfind("test.pkl: ", 0) == 0);
    for (const std::string& part : c.parts) CHECK(message.find(part) != std::string::npos);
  }
}

TEST_CASE("torch checkpoint: storages and tensors are checked against the archive at open") {
  const std::string data = floats({1, 2, 3, 4, 5, 6});

  SUBCASE("a tensor larger than its storage") {
    const std::string path = scratch_file("pt_large.pt", one_tensor_archive("pt_large", 6, 0, {3, 3}, {3, 1}, data));
    check_error([&] { TorchCheckpoint::open(path); },
                {path, "tensor 'w'", "size [3, 3]", "reaches past the end of its storage '0' of 6 elements"});
  }
  SUBCASE("an offset that pushes a tensor past its storage") {
    const std::string path = scratch_file("pt_offset.pt", one_tensor_archive("pt_offset", 6, 4, {3}, {1}, data));
    check_error([&] { TorchCheckpoint::open(path); }, {"storage offset 4", "reaches past the end"});
  }
  SUBCASE("strides whose extent overflows") {
    const std::string path = scratch_file(
        "pt_overflow.pt", one_tensor_archive("pt_overflow", 6, 0, {3, 2}, {std::int64_t{1} << 62, 1}, data));
    check_error([&] { TorchCheckpoint::open(path); }, {"reaches past the end"});
  }
  SUBCASE("a storage whose entry has another size") {
    const std::string path = scratch_file("pt_size.pt", one_tensor_archive("pt_size", 8, 0, {6}, {1}, data));
    check_error([&] { TorchCheckpoint::open(path); }, {"storage '0' (torch.FloatStorage) has 8 elements", "24 bytes"});
  }
  SUBCASE("a storage without its entry") {
    PickleWriter p;
    p.ordered_dict().mark().str("w").tensor("FloatStorage", "9", 6, 0, {6}, {1}).op('u');
    const std::string path =
        scratch_file("pt_nostorage.pt", test::pt_archive("pt_nostorage", p.finish(), {{"0", data}}));
    check_error([&] { TorchCheckpoint::open(path); }, {"storage '9'", "no entry 'data/9'"});
  }
  SUBCASE("the legacy (pre-1.6) format") {
    PickleWriter p;
    const std::string path = scratch_file("pt_legacy.pt", p.none().finish());
    check_error([&] { TorchCheckpoint::open(path); }, {path, "legacy format"});
  }
  SUBCASE("a big-endian archive") {
    const std::string path = scratch_file(
        "pt_big.pt", test::zip_bytes({{"big/data.pkl", PickleWriter().none().finish()}, {"big/byteorder", "big"}}));
    check_error([&] { TorchCheckpoint::open(path); }, {path, "big-endian"});
  }
  SUBCASE("an entry outside the archive's folder") {
    const std::string path = scratch_file(
        "pt_outside.pt", test::zip_bytes({{"a/data.pkl", PickleWriter().none().finish()}, {"b/data/0", data}}));
    check_error([&] { TorchCheckpoint::open(path); }, {path, "'b/data/0' lies outside the archive's folder 'a'"});
  }
  SUBCASE("a pickle that is no state_dict") {
    PickleWriter p;
    p.op('}').mark().str("epoch").integer(3).op('u');
    const std::string path = scratch_file("pt_nodict.pt", test::pt_archive("pt_nodict", p.finish(), {}));
    check_error([&] { TorchCheckpoint::open(path); }, {"neither a state_dict", "its keys: 'epoch'"});
  }
}

TEST_CASE("torch checkpoint: tensors map in place, at their storage offset; others are refused when asked for") {
  const std::vector<float> values = {1, 2, 3, 4, 5, 6, 7, 8};
  PickleWriter p;
  p.ordered_dict().mark();
  p.str("whole").tensor("FloatStorage", "0", 8, 0, {2, 4}, {4, 1});
  p.str("tail").tensor("FloatStorage", "0", 8, 5, {3}, {1});
  p.str("transposed").tensor("FloatStorage", "0", 8, 0, {4, 2}, {1, 4});
  p.str("ints").tensor("LongStorage", "1", 1, 0, {1}, {1});
  p.op('u');
  const std::string path = scratch_file(
      "pt_views.pt", test::pt_archive("views", p.finish(), {{"0", floats(values)}, {"1", std::string(8, '\0')}}));
  const TorchCheckpoint pt = TorchCheckpoint::open(path);
  CHECK_FALSE(pt.is_training_checkpoint());
  CHECK_FALSE(pt.model_config().has_value());
  REQUIRE(pt.state_dict().size() == 4);

  const TorchTensorData whole = pt.map_tensor("whole");
  CHECK(whole.dtype == DType::f32);
  CHECK(whole.shape == std::vector<std::int64_t>{2, 4});
  REQUIRE(whole.bytes == 32);
  CHECK(std::memcmp(whole.data, values.data(), 32) == 0);
  const TorchTensorData tail = pt.map_tensor("tail");
  REQUIRE(tail.bytes == 12);
  CHECK(std::memcmp(tail.data, values.data() + 5, 12) == 0);
  check_error([&] { pt.map_tensor("transposed"); },
              {path, "'transposed'", "not contiguous", "stride [1, 4]", ".contiguous()"});
  check_error([&] { pt.map_tensor("ints"); }, {"'ints'", "torch.LongStorage", "float32, bfloat16 or float16"});
  check_error([&] { pt.map_tensor("nope"); }, {"missing tensor 'nope'", "4 entries: 'whole', 'tail'"});
}
