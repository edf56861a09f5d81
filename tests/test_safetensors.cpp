#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "smallcoder/io/json.hpp"
#include "smallcoder/io/safetensors.hpp"
#include "smallcoder/io/safetensors_writer.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using smallcoder::test::data_path;
using smallcoder::test::scratch_path;

namespace {

std::string le64(std::uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A safetensors file: length prefix, header as given, data bytes.
std::string file_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

// Header padded with spaces to a multiple of 8, as the reference writer does, so the data
// area starts 8-aligned.
std::string padded(std::string header) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

// Writes `bytes` to a scratch file and returns the Error message of opening it ("" if it opens).
std::string open_error(const std::string& name, const std::string& bytes) {
  const std::string path = scratch_path(name + ".safetensors");
  test::write_file(path, bytes);
  try {
    SafeTensors::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Every tensor lies inside the mapping, after the header, aligned, in offset order.
void check_views(const SafeTensors& st) {
  const std::byte* begin = st.file()->data();
  const std::byte* end = begin + st.file()->size();
  const std::byte* previous_end = nullptr;
  for (const SafeTensorInfo& t : st.tensors()) {
    CAPTURE(t.name);
    CHECK(t.data >= begin + 8);
    CHECK(t.data + t.nbytes <= end);
    const auto element_bytes = static_cast<std::uintptr_t>(dtype_info(t.dtype).block_bytes);
    if (t.nbytes > 0) CHECK(reinterpret_cast<std::uintptr_t>(t.data) % element_bytes == 0);
    if (previous_end != nullptr) CHECK(t.data == previous_end);
    previous_end = t.data + t.nbytes;
  }
  if (previous_end != nullptr) CHECK(previous_end == end);
}

}  // namespace

TEST_CASE("the nano checkpoint has the tensors its config describes") {
  const JsonValue config = parse_json(test::read_file(data_path("models/smallcoder-nano/config.json")), "config.json");
  const auto field = [&config](const char* name) {
    return config.at(name, "config.json").as_int(std::string("config.json: field '") + name + "'");
  };
  const std::int64_t hidden = field("hidden_size"), intermediate = field("intermediate_size");
  const std::int64_t layers = field("num_hidden_layers"), heads = field("num_attention_heads");
  const std::int64_t kv_heads = field("num_key_value_heads"), head_dim = field("head_dim");
  const std::int64_t vocab = field("vocab_size");
  REQUIRE(hidden == 256);
  REQUIRE(intermediate == 688);
  REQUIRE(layers == 4);
  REQUIRE(heads == 4);
  REQUIRE(kv_heads == 2);
  REQUIRE(head_dim == 64);
  REQUIRE(vocab == 32000);
  CHECK(config.at("tie_word_embeddings", "config.json").as_bool("tie_word_embeddings"));
  CHECK(config.at("rms_norm_eps", "config.json").as_double("rms_norm_eps") == 1e-6);

  const SafeTensors st = SafeTensors::open(data_path("models/smallcoder-nano/model.safetensors"));
  using Shape = std::vector<std::int64_t>;
  std::vector<std::pair<std::string, Shape>> expected = {
      {"model.embed_tokens.weight", {vocab, hidden}},
      {"model.norm.weight", {hidden}},
  };
  for (std::int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    expected.push_back({p + "self_attn.q_proj.weight", {heads * head_dim, hidden}});
    expected.push_back({p + "self_attn.k_proj.weight", {kv_heads * head_dim, hidden}});
    expected.push_back({p + "self_attn.v_proj.weight", {kv_heads * head_dim, hidden}});
    expected.push_back({p + "self_attn.o_proj.weight", {hidden, heads * head_dim}});
    expected.push_back({p + "mlp.gate_proj.weight", {intermediate, hidden}});
    expected.push_back({p + "mlp.up_proj.weight", {intermediate, hidden}});
    expected.push_back({p + "mlp.down_proj.weight", {hidden, intermediate}});
    expected.push_back({p + "input_layernorm.weight", {hidden}});
    expected.push_back({p + "post_attention_layernorm.weight", {hidden}});
  }
  CHECK(st.tensors().size() == expected.size());
  for (const auto& named_shape : expected) {
    const std::string& name = named_shape.first;
    const Shape& shape = named_shape.second;
    CAPTURE(name);
    const SafeTensorInfo& t = st.get(name);
    CHECK(t.name == name);
    CHECK(t.dtype == DType::bf16);
    CHECK(t.shape == shape);
    std::size_t elements = 1;
    for (std::int64_t d : shape) elements *= static_cast<std::size_t>(d);
    CHECK(t.nbytes == elements * 2);
  }
  CHECK(st.find("lm_head.weight") == nullptr);  // tied to the embedding
  CHECK_THROWS_WITH_AS(st.get("lm_head.weight"), doctest::Contains("model.safetensors: missing tensor 'lm_head.weight'"),
                       Error);
  REQUIRE(st.metadata().size() == 1);
  CHECK(st.metadata()[0] == std::make_pair(std::string("format"), std::string("pt")));

  // Norm weights are trained values near 1, so the bytes really are bf16 weights.
  const SafeTensorInfo& norm = st.get("model.norm.weight");
  std::uint16_t first = 0;
  std::memcpy(&first, norm.data, 2);
  CHECK(bf16_to_f32(first) > 0.01f);
  CHECK(bf16_to_f32(first) < 100.0f);
}

TEST_CASE("tensor data is zero-copy: every view points into the mapping") {
  const SafeTensors st = SafeTensors::open(data_path("models/smallcoder-nano/model.safetensors"));
  REQUIRE(!st.tensors().empty());
  for (const SafeTensorInfo& t : st.tensors()) CHECK(t.nbytes > 0);
  check_views(st);
  // The same pointer every time: nothing is copied on lookup either.
  CHECK(st.get("model.norm.weight").data == st.find("model.norm.weight")->data);
  // Views outlive the SafeTensors object through the shared mapping.
  std::shared_ptr<const MappedFile> file = st.file();
  CHECK(file.use_count() >= 2);
}

TEST_CASE("writing the nano checkpoint back gives the same bytes") {
  const std::string original_path = data_path("models/smallcoder-nano/model.safetensors");
  const SafeTensors st = SafeTensors::open(original_path);
  std::vector<TensorToWrite> tensors;
  for (const SafeTensorInfo& t : st.tensors()) tensors.push_back({t.name, t.dtype, t.shape, t.data, t.nbytes});
  const std::string copy = scratch_path("nano_copy.safetensors");
  write_safetensors(copy, tensors, st.metadata());
  CHECK(test::read_file(copy) == test::read_file(original_path));
}

TEST_CASE("round trip of F32, F16 and BF16 tensors with metadata") {
  const std::vector<float> f32 = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -7.0f};
  const std::vector<std::uint16_t> f16 = {f32_to_f16(1.0f), f32_to_f16(-0.5f), f32_to_f16(65504.0f)};
  const std::vector<std::uint16_t> bf16 = {f32_to_bf16(3.0f), f32_to_bf16(-1.0f), f32_to_bf16(0.125f),
                                           f32_to_bf16(2.0f), f32_to_bf16(1e20f)};
  const float scalar = 42.0f;
  // Names sort so that a name-only layout would put a 2-byte type before the F32 data;
  // the writer must still align everything.
  const std::vector<TensorToWrite> tensors = {
      {"a.half", DType::f16, {3}, f16.data(), f16.size() * 2},
      {"b.brain", DType::bf16, {5, 1}, bf16.data(), bf16.size() * 2},
      {"c.float", DType::f32, {2, 3}, f32.data(), f32.size() * 4},
      {"d.empty", DType::f32, {0, 3}, nullptr, 0},
      {"e.scalar", DType::f32, {}, &scalar, 4},
  };
  const std::vector<std::pair<std::string, std::string>> metadata = {{"format", "pt"},
                                                                     {"note", "quote \" newline \n caf\xc3\xa9"}};
  const std::string path = scratch_path("round_trip.safetensors");
  write_safetensors(path, tensors, metadata);

  const SafeTensors st = SafeTensors::open(path);
  check_views(st);
  CHECK(st.metadata() == metadata);
  REQUIRE(st.tensors().size() == tensors.size());
  // Layout: F32 first (by name), then BF16, then F16, as the reference writer orders them.
  const char* order[] = {"c.float", "d.empty", "e.scalar", "b.brain", "a.half"};
  for (std::size_t i = 0; i < 5; ++i) CHECK(st.tensors()[i].name == order[i]);
  for (const TensorToWrite& w : tensors) {
    CAPTURE(w.name);
    const SafeTensorInfo& r = st.get(w.name);
    CHECK(r.dtype == w.dtype);
    CHECK(r.shape == w.shape);
    REQUIRE(r.nbytes == w.nbytes);
    if (w.nbytes > 0) CHECK(std::memcmp(r.data, w.data, w.nbytes) == 0);
  }
  float read_scalar = 0;
  std::memcpy(&read_scalar, st.get("e.scalar").data, 4);
  CHECK(read_scalar == 42.0f);
}

TEST_CASE("the writer's bytes equal the reference implementation's") {
  // Expected files from the safetensors reference implementation's own serialization tests.
  std::string floats;
  for (float f : {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f}) floats.append(reinterpret_cast<const char*>(&f), 4);
  const std::string path = scratch_path("reference.safetensors");

  write_safetensors(path, {{"attn.0", DType::f32, {1, 2, 3}, floats.data(), 24}});
  CHECK(test::read_file(path) ==
        le64(64) + "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}" + floats);

  write_safetensors(path, {{"attn0", DType::f32, {1, 1, 2, 3}, floats.data(), 24}});
  CHECK(test::read_file(path) ==
        le64(72) + "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       " + floats);

  write_safetensors(path, {});
  CHECK(test::read_file(path) == le64(8) + "{}      ");
  CHECK(SafeTensors::open(path).tensors().empty());

  write_safetensors(path, {}, {{"framework", "pt"}});
  CHECK(test::read_file(path) == le64(40) + "{\"__metadata__\":{\"framework\":\"pt\"}}     ");
}

TEST_CASE("the writer rejects inconsistent tensors") {
  const float data[4] = {};
  const std::string path = scratch_path("bad_write.safetensors");
  CHECK_THROWS_WITH_AS((write_safetensors(path, {{"w", DType::f32, {2, 2}, data, 12}})),
                       doctest::Contains("tensor 'w': nbytes 12 does not match shape [2, 2] of F32 (16 bytes)"), Error);
  CHECK_THROWS_WITH_AS((write_safetensors(path, {{"w", DType::q8_0, {32}, data, 34}})),
                       doctest::Contains("tensor 'w': cannot store dtype q8_0"), Error);
  CHECK_THROWS_WITH_AS((write_safetensors(path, {{"w", DType::f32, {1}, data, 4}, {"w", DType::f32, {1}, data, 4}})),
                       doctest::Contains("duplicate tensor name 'w'"), Error);
  CHECK_THROWS_WITH_AS((write_safetensors(path, {{"__metadata__", DType::f32, {1}, data, 4}})),
                       doctest::Contains("reserved"), Error);
  CHECK_THROWS_WITH_AS((write_safetensors(path, {{"w", DType::f32, {-1}, data, 4}})),
                       doctest::Contains("negative dimension"), Error);
  CHECK_THROWS_WITH_AS((write_safetensors(path, {{"w", DType::f32, {1}, nullptr, 4}})), doctest::Contains("data is null"),
                       Error);
  CHECK_THROWS_WITH_AS((write_safetensors(path, {}, {{"k", "1"}, {"k", "2"}})), doctest::Contains("duplicate metadata key 'k'"),
                       Error);
  CHECK_THROWS_WITH_AS((write_safetensors("no_such_dir/x.safetensors", {})),
                       doctest::Contains("no_such_dir/x.safetensors.partial: cannot create: No such file or directory"),
                       Error);
}

TEST_CASE("MappedFile errors name the path") {
  CHECK_THROWS_WITH_AS(MappedFile::open("no_such_file.bin"), "no_such_file.bin: cannot open: No such file or directory",
                       Error);
  CHECK_THROWS_WITH_AS(MappedFile::open("."), ".: is a directory", Error);
  const std::string fifo = scratch_path("fifo");
  std::remove(fifo.c_str());
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH_AS(MappedFile::open(fifo), doctest::Contains("not a regular file"), Error);  // and no hang
  std::remove(fifo.c_str());
  const std::string empty = scratch_path("empty.bin");
  test::write_file(empty, "");
  const auto file = MappedFile::open(empty);
  CHECK(file->size() == 0);
  CHECK(file->data() == nullptr);
  CHECK(file->path() == empty);
}

TEST_CASE("short files and bad header lengths") {
  CHECK(open_error("empty", "") == "test_scratch_empty.safetensors: file is 0 bytes, too short for the 8-byte header length");
  CHECK_THROWS_WITH_AS(SafeTensors::open(scratch_path("empty.safetensors")), doctest::Contains("too short"), Error);
  CHECK(open_error("short", std::string("\x02\0\0\0\0", 5)) ==
        "test_scratch_short.safetensors: file is 5 bytes, too short for the 8-byte header length");
  CHECK(open_error("past_end", le64(100) + "{}") ==
        "test_scratch_past_end.safetensors: header length 100 runs past the end of the file (10 bytes)");
  CHECK(open_error("past_end_by_one", le64(3) + "{}") ==
        "test_scratch_past_end_by_one.safetensors: header length 3 runs past the end of the file (10 bytes)");
  CHECK(open_error("huge", le64(100000001) + "{}") ==
        "test_scratch_huge.safetensors: header length 100000001 exceeds the format's limit of 100000000 bytes");
  CHECK(open_error("max_u64", le64(UINT64_MAX) + "{}").find("header length 18446744073709551615 exceeds") != std::string::npos);
}

TEST_CASE("the header must be a JSON object") {
  CHECK(open_error("array", file_bytes("[]      ", "")) ==
        "test_scratch_array.safetensors: header is not a JSON object (it must start with '{')");
  CHECK(open_error("leading_space", file_bytes(" {}     ", "")).find("header is not a JSON object") != std::string::npos);
  CHECK(open_error("empty_header", file_bytes("", "")).find("header is not a JSON object") != std::string::npos);
  CHECK(open_error("bad_json", file_bytes("{\"x\":}", "")) ==
        "test_scratch_bad_json.safetensors: header: line 1 column 6: unexpected '}', expected a value");
  CHECK(open_error("truncated_json", file_bytes("{\"x\":{\"dtype\":\"F3", "")).find("header: line 1 column 15: unterminated string") !=
        std::string::npos);
  CHECK(open_error("nul_padding", file_bytes(std::string("{}\0\0\0\0\0\0", 8), "")).find("after the JSON value") !=
        std::string::npos);
  CHECK(open_error("entry_not_object", file_bytes("{\"x\":[1]}", "")) ==
        "test_scratch_entry_not_object.safetensors: tensor 'x': expected an object, got array");
}

TEST_CASE("tensor entries need dtype, shape and data_offsets") {
  CHECK(open_error("no_dtype", file_bytes(padded("{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}"), "abcd")) ==
        "test_scratch_no_dtype.safetensors: tensor 'x': missing field 'dtype'");
  CHECK(open_error("no_shape", file_bytes(padded("{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}"), "abcd")) ==
        "test_scratch_no_shape.safetensors: tensor 'x': missing field 'shape'");
  CHECK(open_error("no_offsets", file_bytes(padded("{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}"), "abcd")) ==
        "test_scratch_no_offsets.safetensors: tensor 'x': missing field 'data_offsets'");
  CHECK(open_error("dtype_number", file_bytes(padded("{\"x\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}"), "abcd"))
            .find("tensor 'x': field 'dtype': expected a string, got number") != std::string::npos);
}

TEST_CASE("unsupported dtypes name the tensor and the dtype") {
  CHECK(open_error("i64", file_bytes(padded("{" + entry("x", "I64", "[1]", "[0,8]") + "}"), "abcdefgh")) ==
        "test_scratch_i64.safetensors: unsupported dtype 'I64' for tensor 'x' (supported: F32, F16, BF16)");
  CHECK(open_error("lower", file_bytes(padded("{" + entry("x", "f32", "[1]", "[0,4]") + "}"), "abcd"))
            .find("unsupported dtype 'f32' for tensor 'x'") != std::string::npos);
}

TEST_CASE("negative and absurd shapes") {
  CHECK(open_error("negative", file_bytes(padded("{" + entry("x", "F32", "[2,-1]", "[0,8]") + "}"), "abcdefgh")) ==
        "test_scratch_negative.safetensors: tensor 'x': shape [2, -1] has a negative dimension");
  CHECK(open_error("overflow", file_bytes(padded("{" + entry("x", "F32", "[4294967296,4294967296]", "[0,8]") + "}"),
                                          "abcdefgh")) ==
        "test_scratch_overflow.safetensors: tensor 'x': shape [4294967296, 4294967296] has too many elements (its byte "
        "count overflows 64 bits)");
  CHECK(open_error("overflow_bytes", file_bytes(padded("{" + entry("x", "F32", "[9223372036854775807]", "[0,8]") + "}"),
                                                "abcdefgh"))
            .find("has too many elements") != std::string::npos);
  CHECK(open_error("too_big_for_int64", file_bytes(padded("{" + entry("x", "F32", "[99999999999999999999]", "[0,8]") + "}"),
                                                   "abcdefgh"))
            .find("tensor 'x': field 'shape': integer 1e+20 does not fit in 64 bits") != std::string::npos);
  CHECK(open_error("fraction", file_bytes(padded("{" + entry("x", "F32", "[2.5]", "[0,8]") + "}"), "abcdefgh"))
            .find("tensor 'x': field 'shape': expected an integer, got 2.5") != std::string::npos);
  CHECK(open_error("shape_string", file_bytes(padded("{" + entry("x", "F32", "\"[2]\"", "[0,8]") + "}"), "abcdefgh"))
            .find("tensor 'x': field 'shape': expected an array, got string") != std::string::npos);
  // A zero dimension makes an empty tensor whatever the other dimensions are.
  const std::string zero = file_bytes(padded("{" + entry("x", "F32", "[0,9223372036854775807]", "[0,0]") + "}"), "");
  CHECK(open_error("zero_dim", zero) == "");
}

TEST_CASE("data_offsets must be two ordered integers inside the data area") {
  const std::string data(8, 'd');
  const auto header = [](const std::string& offsets) { return padded("{" + entry("x", "F32", "[2]", offsets) + "}"); };
  CHECK(open_error("three", file_bytes(header("[0,4,8]"), data)) ==
        "test_scratch_three.safetensors: tensor 'x': field 'data_offsets': expected [begin, end], got 3 values");
  CHECK(open_error("one", file_bytes(header("[8]"), data)).find("expected [begin, end], got 1 values") != std::string::npos);
  CHECK(open_error("string", file_bytes(header("\"0,8\""), data))
            .find("tensor 'x': field 'data_offsets': expected an array, got string") != std::string::npos);
  CHECK(open_error("string_end", file_bytes(header("[0,\"8\"]"), data))
            .find("tensor 'x': field 'data_offsets': expected a number, got string") != std::string::npos);
  CHECK(open_error("float_end", file_bytes(header("[0,8.0]"), data))
            .find("tensor 'x': field 'data_offsets': expected an integer, got 8") != std::string::npos);
  CHECK(open_error("negative", file_bytes(header("[-8,0]"), data)) ==
        "test_scratch_negative.safetensors: tensor 'x': data_offsets [-8, 0] are negative");
  CHECK(open_error("reversed", file_bytes(header("[8,0]"), data)) ==
        "test_scratch_reversed.safetensors: tensor 'x': data_offsets [8, 0] begin after they end");
  CHECK(open_error("past_data", file_bytes(header("[8,16]"), data)) ==
        "test_scratch_past_data.safetensors: tensor 'x': data_offsets [8, 16] run past the end of the data area (8 bytes)");
  CHECK(open_error("huge_end", file_bytes(header("[0,9223372036854775807]"), data))
            .find("run past the end of the data area") != std::string::npos);
}

TEST_CASE("byte count must match shape times element size") {
  // The example from the project conventions.
  CHECK(open_error("mismatch", file_bytes(padded("{" + entry("x", "BF16", "[2,2]", "[0,9]") + "}"), "123456789")) ==
        "test_scratch_mismatch.safetensors: tensor 'x': data_offsets [0, 9] do not match shape [2, 2] of BF16 (8 bytes)");
  CHECK(open_error("scalar_mismatch", file_bytes(padded("{" + entry("x", "F32", "[]", "[0,8]") + "}"), "12345678"))
            .find("do not match shape [] of F32 (4 bytes)") != std::string::npos);
}

TEST_CASE("tensors must tile the data area: no overlap, no holes, nothing left over") {
  const std::string a = entry("a", "F32", "[2]", "[0,8]");
  CHECK(open_error("overlap", file_bytes(padded("{" + a + "," + entry("b", "F32", "[2]", "[4,12]") + "}"),
                                         std::string(12, 'd'))) ==
        "test_scratch_overlap.safetensors: tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' (data_offsets [0, 8])");
  CHECK(open_error("same_range", file_bytes(padded("{" + a + "," + entry("b", "F32", "[2]", "[0,8]") + "}"),
                                            std::string(8, 'd')))
            .find("overlaps") != std::string::npos);
  CHECK(open_error("empty_inside", file_bytes(padded("{" + a + "," + entry("b", "F32", "[0]", "[4,4]") + "}"),
                                              std::string(8, 'd')))
            .find("tensor 'b' (data_offsets [4, 4]) overlaps tensor 'a'") != std::string::npos);
  CHECK(open_error("hole", file_bytes(padded("{" + a + "," + entry("b", "F32", "[2]", "[12,20]") + "}"),
                                      std::string(20, 'd'))) ==
        "test_scratch_hole.safetensors: bytes [8, 12) of the data area belong to no tensor (the format forbids holes), "
        "before tensor 'b' (data_offsets [12, 20])");
  CHECK(open_error("hole_first", file_bytes(padded("{" + entry("b", "F32", "[2]", "[4,12]") + "}"), std::string(12, 'd')))
            .find("bytes [0, 4) of the data area belong to no tensor") != std::string::npos);
  CHECK(open_error("trailing", file_bytes(padded("{" + a + "}"), std::string(12, 'd'))) ==
        "test_scratch_trailing.safetensors: bytes [8, 12) at the end of the data area belong to no tensor (the format "
        "forbids holes)");
  CHECK(open_error("no_tensors_but_data", file_bytes(padded("{}"), "x")).find("bytes [0, 1) at the end") != std::string::npos);
  // Header order does not matter: tensors are checked (and listed) in offset order.
  const std::string reversed =
      file_bytes(padded("{" + entry("b", "F32", "[1]", "[8,12]") + "," + a + "}"), std::string(12, 'd'));
  CHECK(open_error("reversed_order", reversed) == "");
  const SafeTensors st = SafeTensors::open(scratch_path("reversed_order.safetensors"));
  REQUIRE(st.tensors().size() == 2);
  CHECK(st.tensors()[0].name == "a");
  CHECK(st.tensors()[1].name == "b");
}

TEST_CASE("duplicate tensor names are rejected") {
  const std::string header = padded("{" + entry("x", "F32", "[1]", "[0,4]") + "," + entry("x", "F32", "[1]", "[4,8]") + "}");
  const std::string message = open_error("duplicate", file_bytes(header, std::string(8, 'd')));
  CHECK(message.find("test_scratch_duplicate.safetensors: header: line 1 column") == 0);
  CHECK(message.find("duplicate key 'x'") != std::string::npos);
}

TEST_CASE("tensor data must be aligned to its element size") {
  // A header of 8k + 3 bytes puts the data area at an odd file offset.
  std::string odd_header = padded("{" + entry("x", "F32", "[1]", "[0,4]") + "}") + "   ";
  CHECK(open_error("unaligned_header", file_bytes(odd_header, "abcd")) ==
        "test_scratch_unaligned_header.safetensors: tensor 'x': data at file offset " +
            std::to_string(8 + odd_header.size()) + " is not aligned to its 4-byte F32 elements");
  const std::string header =
      padded("{" + entry("h", "BF16", "[1]", "[0,2]") + "," + entry("f", "F32", "[1]", "[2,6]") + "}");
  CHECK(open_error("unaligned_f32", file_bytes(header, "abcdef")).find("tensor 'f': data at file offset") !=
        std::string::npos);
  CHECK(open_error("unaligned_f32", file_bytes(header, "abcdef")).find("is not aligned to its 4-byte F32 elements") !=
        std::string::npos);
  // An empty tensor is never read, so its offset need not be aligned.
  const std::string empty_ok =
      padded("{" + entry("h", "BF16", "[1]", "[0,2]") + "," + entry("f", "F32", "[0]", "[2,2]") + "}");
  CHECK(open_error("empty_unaligned", file_bytes(empty_ok, "ab")) == "");
}

TEST_CASE("__metadata__ holds strings only") {
  CHECK(open_error("meta_number", file_bytes(padded("{\"__metadata__\":{\"format\":1}}"), "")) ==
        "test_scratch_meta_number.safetensors: __metadata__: field 'format': expected a string, got number");
  CHECK(open_error("meta_array", file_bytes(padded("{\"__metadata__\":[\"pt\"]}"), "")) ==
        "test_scratch_meta_array.safetensors: __metadata__: expected an object, got array");
  CHECK(open_error("meta_ok", file_bytes(padded("{\"__metadata__\":{\"b\":\"2\",\"a\":\"1\"}}"), "")) == "");
  const SafeTensors st = SafeTensors::open(scratch_path("meta_ok.safetensors"));
  REQUIRE(st.metadata().size() == 2);
  CHECK(st.metadata()[0].first == "b");  // file order
  CHECK(st.metadata()[1].second == "1");
}

TEST_CASE("corrupted files give an Error or a valid result, never a crash") {
  // A small valid file with three dtypes and metadata; every byte is replaced by a few
  // values and every prefix is tried. ASan/UBSan builds turn any stray read into a failure.
  const float f[2] = {1.0f, 2.0f};
  const std::uint16_t h[3] = {1, 2, 3};
  const std::string valid_path = scratch_path("fuzz_base.safetensors");
  write_safetensors(valid_path,
                    {{"w", DType::f32, {2}, f, 8}, {"b", DType::bf16, {3}, h, 6}, {"h", DType::f16, {1, 1}, h, 2}},
                    {{"format", "pt"}});
  const std::string valid = test::read_file(valid_path);
  REQUIRE(open_error("fuzz_valid", valid) == "");
  const std::string path = scratch_path("fuzz.safetensors");
  int opened = 0, rejected = 0;
  const auto attempt = [&](const std::string& bytes) {
    test::write_file(path, bytes);
    try {
      const SafeTensors st = SafeTensors::open(path);
      check_views(st);
      ++opened;
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find(path) == 0);
      ++rejected;
    }
  };
  for (std::size_t i = 0; i < valid.size(); ++i) {
    for (char c : {'\0', '\xff', '"', '[', '9', ' ', '-', '{'}) {
      std::string bytes = valid;
      bytes[i] = c;
      attempt(bytes);
    }
  }
  for (std::size_t n = 0; n < valid.size(); ++n) attempt(valid.substr(0, n));
  CHECK(rejected > 0);
  CHECK(opened > 0);  // e.g. a space replacing padding, or changed tensor bytes
}
