// GGUF reader and writer: llama.cpp's shared files, every metadata type through a round
// trip, the LLaMA conventions (keys, tokenizer, Q/K permutation), and one test per kind of
// corrupt input, each checking the message names the problem.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "smallcoder/io/gguf.hpp"
#include "smallcoder/io/gguf_writer.hpp"
#include "smallcoder/model/save_gguf.hpp"
#include "smallcoder/smallcoder.hpp"
#include "support/emulated.hpp"
#include "support/golden.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using smallcoder::test::data_path;
using smallcoder::test::scratch_path;

namespace {

const std::string kTinyQ8 = "models/smallcoder-tiny/smallcoder-tiny-Q8_0.gguf";
const std::string kTinyQ4KM = "models/smallcoder-tiny/smallcoder-tiny-Q4_K_M.gguf";

// Little-endian byte building for hand-made (often broken) files.
struct Bytes {
  std::string b;
  Bytes& u32(std::uint32_t v) { return raw(&v, 4); }
  Bytes& u64(std::uint64_t v) { return raw(&v, 8); }
  Bytes& str(const std::string& s) { return u64(s.size()).text(s); }
  Bytes& text(const std::string& s) {
    b += s;
    return *this;
  }
  Bytes& raw(const void* p, std::size_t n) {
    b.append(static_cast<const char*>(p), n);
    return *this;
  }
  Bytes& pad_to(std::size_t alignment) {
    b.append((alignment - b.size() % alignment) % alignment, '\0');
    return *this;
  }
};

Bytes header(std::uint64_t tensors, std::uint64_t kvs, std::uint32_t version = 3) {
  Bytes out;
  out.text("GGUF").u32(version).u64(tensors).u64(kvs);
  return out;
}

// A string metadata entry.
Bytes& kv_string(Bytes& out, const std::string& key, const std::string& value) {
  return out.str(key).u32(8).str(value);
}

// A tensor info: name, dims (innermost first), ggml type, offset.
Bytes& tensor_info(Bytes& out, const std::string& name, const std::vector<std::uint64_t>& dims, std::uint32_t type,
                   std::uint64_t offset) {
  out.str(name).u32(static_cast<std::uint32_t>(dims.size()));
  for (std::uint64_t d : dims) out.u64(d);
  return out.u32(type).u64(offset);
}

// A valid file: one string entry, tensor "t" (8 F32 values) at offset 0, `data` bytes of data.
std::string minimal_file(std::size_t data = 32) {
  Bytes f = header(1, 1);
  kv_string(f, "general.architecture", "llama");
  tensor_info(f, "t", {8}, 0, 0).pad_to(32);
  f.b.append(data, '\0');
  return f.b;
}

// Writes `bytes` to a scratch file and returns the Error message of opening it ("" if it opens).
std::string open_error(const std::string& name, const std::string& bytes) {
  const std::string path = scratch_path(name + ".gguf");
  test::write_file(path, bytes);
  try {
    Gguf::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The smallest model the GGUF conventions cover: a 2-layer LLaMA with the real tokenizer.
ModelConfig micro_config() {
  ModelConfig c;
  c.name = "micro-model";
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_context = 64;
  return c;
}

std::shared_ptr<const Tokenizer> shared_tokenizer() {
  static const auto tok =
      std::make_shared<const Tokenizer>(Tokenizer::from_file(data_path("tokenizer/tokenizer.model")));
  return tok;
}

}  // namespace

// ---- llama.cpp's files ----

TEST_CASE("llama.cpp's Q8_0 file: header, metadata, tensors") {
  const Gguf g = Gguf::open(data_path(kTinyQ8));
  CHECK(g.version() == 3);
  CHECK(g.alignment() == 32);  // no general.alignment key: the default
  CHECK(g.find("general.alignment") == nullptr);
  CHECK(g.metadata().size() == 26);
  CHECK(g.metadata().front().first == "general.architecture");
  CHECK(g.get("general.file_type").to_int("") == 7);  // LLAMA_FTYPE_MOSTLY_Q8_0
  CHECK(g.get("llama.attention.layer_norm_rms_epsilon").type() == GgufType::float32);
  CHECK(g.get("tokenizer.ggml.tokens").element_type() == GgufType::string);
  CHECK(g.get("tokenizer.ggml.tokens").size() == 32000);
  REQUIRE(g.tensors().size() == 110);
  int q8 = 0, f32 = 0;
  std::size_t bytes = 0;
  for (const GgufTensorInfo& t : g.tensors()) {
    q8 += t.dtype == DType::q8_0;
    f32 += t.dtype == DType::f32;
    bytes += t.nbytes;
    CHECK(t.offset % 32 == 0);
    CHECK(t.data == g.file()->data() + g.data_offset() + t.offset);  // zero copy
  }
  CHECK(q8 == 85);
  CHECK(f32 == 25);
  CHECK(bytes == 106404864);
  CHECK(g.data_offset() + bytes == g.file()->size());
  const GgufTensorInfo& embed = g.tensor("token_embd.weight");
  CHECK(embed.dims == std::vector<std::int64_t>{768, 32000});  // innermost first
  CHECK(embed.nbytes == 32000u * 24 * 34);
  CHECK(g.tensor("blk.0.attn_k.weight").dims == std::vector<std::int64_t>{768, 256});
  CHECK(g.find_tensor("output.weight") == nullptr);  // tied
}

TEST_CASE("llama.cpp's Q4_K_M file: 72 Q4_K, 13 Q6_K (token_embd among them), 25 F32") {
  const Gguf g = Gguf::open(data_path(kTinyQ4KM));
  int q4k = 0, q6k = 0, f32 = 0;
  for (const GgufTensorInfo& t : g.tensors()) {
    q4k += t.dtype == DType::q4_k;
    q6k += t.dtype == DType::q6_k;
    f32 += t.dtype == DType::f32;
  }
  CHECK(q4k == 72);
  CHECK(q6k == 13);
  CHECK(f32 == 25);
  CHECK(g.tensor("token_embd.weight").dtype == DType::q6_k);
  CHECK(g.tensor("token_embd.weight").ggml_type == 14);
  CHECK(g.tensor("blk.0.attn_q.weight").ggml_type == 12);
  CHECK(g.get("general.file_type").to_int("") == 15);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
}

TEST_CASE("config and tokenizer from llama.cpp's file equal SmallCoder-Tiny and tokenizer.model" * test::kNoKernels) {
  const Gguf g = Gguf::open(data_path(kTinyQ8));
  const ModelConfig c = config_from_gguf(g);
  const ModelConfig& tiny = variant_preset("SmallCoder-Tiny");
  CHECK(c.name == "Smallcoder Tiny");
  CHECK(c.hidden_size == tiny.hidden_size);
  CHECK(c.intermediate_size == tiny.intermediate_size);
  CHECK(c.num_layers == tiny.num_layers);
  CHECK(c.num_heads == tiny.num_heads);
  CHECK(c.num_kv_heads == tiny.num_kv_heads);
  CHECK(c.head_dim == 64);
  CHECK(c.max_context == 2048);
  CHECK(c.vocab_size == 32000);
  CHECK(c.rms_norm_eps == 1e-6f);
  CHECK(c.rope_theta == 10000.0f);
  CHECK(c.tie_word_embeddings);
  CHECK(c.bos_id == 1);
  CHECK(c.eos_id == 2);
  CHECK(c.pad_id == 0);

  const Tokenizer from_gguf(tokenizer_spec_from_gguf(g), g.path());
  const Tokenizer& reference = *shared_tokenizer();
  REQUIRE(from_gguf.vocab_size() == reference.vocab_size());
  int differences = 0;
  for (std::int32_t i = 0; i < reference.vocab_size(); ++i) {
    differences += from_gguf.piece(i) != reference.piece(i) || from_gguf.score(i) != reference.score(i) ||
                   from_gguf.type(i) != reference.type(i);
  }
  CHECK(differences == 0);
  CHECK(from_gguf.unk_id() == 0);  // absent from the file: llama.cpp's default
  const std::string text = "def f(x):\n\treturn x  # \xC3\xA9\xF0\x9F\x9A\x80";
  CHECK(from_gguf.encode(text) == reference.encode(text));
}

// ---- metadata values and the writer ----

TEST_CASE("every metadata type survives writer -> reader, nested arrays included, in order") {
  std::vector<std::pair<std::string, GgufValue>> m = {
      {"u8", GgufValue::scalar(std::uint8_t{250})},
      {"i8", GgufValue::scalar(std::int8_t{-7})},
      {"u16", GgufValue::scalar(std::uint16_t{65535})},
      {"i16", GgufValue::scalar(std::int16_t{-30000})},
      {"u32", GgufValue::scalar(std::uint32_t{4000000000u})},
      {"i32", GgufValue::scalar(std::int32_t{-2000000000})},
      {"f32", GgufValue::scalar(1.5f)},
      {"bool", GgufValue::scalar(true)},
      {"string", GgufValue::string("h\xC3\xA9llo\nworld")},
      {"empty string", GgufValue::string("")},
      {"u64", GgufValue::scalar(std::uint64_t{18000000000000000000ull})},
      {"i64", GgufValue::scalar(std::int64_t{-9000000000000000000ll})},
      {"f64", GgufValue::scalar(-2.25e300)},
      {"array u8", GgufValue::array(std::vector<std::uint8_t>{1, 2, 255})},
      {"array i16", GgufValue::array(std::vector<std::int16_t>{-1, 2})},
      {"array f32", GgufValue::array(std::vector<float>{0.5f, -1.0f})},
      {"array f64", GgufValue::array(std::vector<double>{1e-300})},
      {"array bool", GgufValue::array(std::vector<bool>{})},
      {"array i64", GgufValue::array(std::vector<std::int64_t>{-1, 1})},
      {"array string", GgufValue::array(std::vector<std::string>{"a", "", "\xE2\x96\x81" "b"})},
      {"array empty", GgufValue::array(std::vector<std::uint32_t>{})},
      {"array of arrays", GgufValue::array_of_arrays({GgufValue::array(std::vector<std::int32_t>{1, -2}),
                                                      GgufValue::array(std::vector<std::string>{"x"}),
                                                      GgufValue::array_of_arrays({})})},
  };
  const std::vector<float> values = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::string path = scratch_path("all_types.gguf");
  write_gguf(path, m, {{"t", DType::f32, {8}, reinterpret_cast<const std::byte*>(values.data()), {}}});
  const Gguf g = Gguf::open(path);
  REQUIRE(g.metadata().size() == m.size());
  for (std::size_t i = 0; i < m.size(); ++i) {
    CAPTURE(m[i].first);
    CHECK(g.metadata()[i].first == m[i].first);
    CHECK(g.metadata()[i].second == m[i].second);
  }
  CHECK(g.get("i8").to_int("") == -7);
  CHECK(g.get("u32").to_int("") == 4000000000ll);
  CHECK(g.get("i64").to_int("") == -9000000000000000000ll);
  CHECK_THROWS_WITH_AS(g.get("u64").to_int("u64"), doctest::Contains("u64: value 18000000000000000000 is out of range"),
                       Error);
  CHECK(g.get("f32").to_double("") == 1.5);
  CHECK(g.get("f64").to_double("") == -2.25e300);
  CHECK(g.get("bool").to_bool(""));
  CHECK(g.get("string").to_string("") == "h\xC3\xA9llo\nworld");
  CHECK(g.get("array i16").element(0).to_int("") == -1);
  CHECK(g.get("array string").element(2).to_string("") == "\xE2\x96\x81" "b");
  CHECK(g.get("array of arrays").element(1).element(0).to_string("") == "x");
  CHECK(g.get("array of arrays").element(2).size() == 0);
  CHECK_THROWS_WITH_AS(g.get("string").to_int("k"), doctest::Contains("k: expected an integer, got string"), Error);
  const std::vector<float> back(reinterpret_cast<const float*>(g.tensor("t").data),
                                reinterpret_cast<const float*>(g.tensor("t").data) + 8);
  CHECK(back == values);
}

TEST_CASE("the writer's layout: 32-byte aligned tensors with zero padding, general.alignment honoured") {
  const std::vector<std::uint16_t> half(3 * 32, 0x3c00);  // 1.0 in f16
  const std::vector<std::byte> q8(2 * 34, std::byte{7});  // two Q8_0 rows of one block
  const std::vector<GgufTensorToWrite> tensors = {
      {"a", DType::f16, {32, 3}, reinterpret_cast<const std::byte*>(half.data()), {}},
      {"b", DType::q8_0, {32, 2}, q8.data(), {1, 0}},
  };
  for (std::uint32_t alignment : {32u, 64u}) {
    CAPTURE(alignment);
    std::vector<std::pair<std::string, GgufValue>> m = {{"general.architecture", GgufValue::string("llama")}};
    if (alignment != 32) m.emplace_back("general.alignment", GgufValue::scalar(alignment));
    const std::string path = scratch_path("layout.gguf");
    write_gguf(path, m, tensors);
    const Gguf g = Gguf::open(path);
    CHECK(g.alignment() == alignment);
    CHECK(g.data_offset() % alignment == 0);
    const GgufTensorInfo& a = g.tensor("a");
    const GgufTensorInfo& b = g.tensor("b");
    CHECK(a.offset == 0);
    CHECK(a.nbytes == 192);
    CHECK(b.offset == (192 + alignment - 1) / alignment * alignment);
    CHECK(b.nbytes == 68);
    CHECK(g.file()->size() == g.data_offset() + b.offset + (68 + alignment - 1) / alignment * alignment);
    for (const std::byte* p = a.data + a.nbytes; p < b.data; ++p) CHECK(*p == std::byte{0});
    const std::byte* end = g.file()->data() + g.file()->size();
    for (const std::byte* p = b.data + b.nbytes; p < end; ++p) CHECK(*p == std::byte{0});
    CHECK(std::memcmp(a.data, half.data(), 192) == 0);
  }
}

TEST_CASE("a version 2 file reads like a version 3 one") {
  std::string bytes = minimal_file();
  bytes[4] = 2;
  const std::string path = scratch_path("v2.gguf");
  test::write_file(path, bytes);
  const Gguf g = Gguf::open(path);
  CHECK(g.version() == 2);
  CHECK(g.get("general.architecture").to_string("") == "llama");
  CHECK(g.tensor("t").nbytes == 32);
}

TEST_CASE("the writer refuses inconsistent input before writing anything") {
  const std::vector<float> data(64, 0.0f);
  const auto* p = reinterpret_cast<const std::byte*>(data.data());
  const std::string path = scratch_path("refused.gguf");
  const std::vector<std::pair<std::string, GgufValue>> none;
  CHECK_THROWS_WITH_AS(write_gguf(path, none, {{"w", DType::f32, {4}, p, {}}, {"w", DType::f32, {4}, p, {}}}),
                       doctest::Contains("duplicate tensor name 'w'"), Error);
  CHECK_THROWS_WITH_AS(write_gguf(path, {{"k", GgufValue::scalar(1.0f)}, {"k", GgufValue::scalar(2.0f)}}, {}),
                       doctest::Contains("duplicate metadata key 'k'"), Error);
  CHECK_THROWS_WITH_AS(write_gguf(path, none, {{"w", DType::q8_0, {40}, p, {}}}),
                       doctest::Contains("tensor 'w': row length 40 is not a multiple of q8_0's 32-element blocks"),
                       Error);
  CHECK_THROWS_WITH_AS(write_gguf(path, none, {{"w", DType::f32, {4, 2}, p, {0, 0}}}),
                       doctest::Contains("row_order is not a permutation of its 2 rows"), Error);
  CHECK_THROWS_WITH_AS(write_gguf(path, none, {{"w", DType::f32, {4, 0}, p, {}}}),
                       doctest::Contains("dimension 0 is not positive"), Error);
  CHECK_THROWS_WITH_AS(write_gguf(path, {{"general.alignment", GgufValue::scalar(std::uint32_t{12})}}, {}),
                       doctest::Contains("general.alignment 12 is not a power of two"), Error);
  CHECK_THROWS_WITH_AS(write_gguf("no_such_dir/x.gguf", none, {}), doctest::Contains("cannot create"), Error);
}

// ---- the LLaMA conventions ----

TEST_CASE("Q/K rows are permuted as llama.cpp's converter permutes them") {
  // One head of 8: GGUF rows take HF rows 0 4 1 5 2 6 3 7 (pairs (i, i + 4) become adjacent).
  CHECK(rope_interleave_row_order(1, 8) == std::vector<std::int64_t>{0, 4, 1, 5, 2, 6, 3, 7});
  CHECK(rope_interleave_row_order(2, 4) == std::vector<std::int64_t>{0, 2, 1, 3, 4, 6, 5, 7});
}

TEST_CASE("names and size labels as the converter derives them") {
  CHECK(gguf_model_name("smallcoder-tiny") == "Smallcoder Tiny");
  CHECK(gguf_model_name("SmallCoder-Medium-LC") == "SmallCoder Medium LC");
  CHECK(gguf_model_name("my_model-v2") == "My Model V2");
  CHECK(gguf_size_label(100092672) == "100M");
  CHECK(gguf_size_label(11100000) == "11M");
  CHECK(gguf_size_label(1500000) == "1.5M");
  CHECK(gguf_size_label(303654528) == "304M");
  CHECK(gguf_size_label(7240000000) == "7.2B");
  CHECK(gguf_size_label(480000) == "480K");
}

TEST_CASE("our writer's metadata: convert_hf_to_gguf.py's keys in its order; tokenizer arrays equal llama.cpp's" *
          test::kNoKernels) {
  const Checkpoint nano = load_checkpoint(data_path("models/smallcoder-nano"));
  const std::string path = scratch_path("nano_bf16.gguf");
  write_gguf_model(path, nano.config, nano.weights, *nano.tokenizer);
  const Gguf g = Gguf::open(path);
  std::vector<std::string> keys;
  for (const auto& kv : g.metadata()) keys.push_back(kv.first);
  const std::vector<std::string> expected = {
      "general.architecture", "general.type", "general.name", "general.size_label", "llama.block_count",
      "llama.context_length", "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
      "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon",
      "llama.attention.key_length", "llama.attention.value_length", "general.file_type", "llama.vocab_size",
      "llama.rope.dimension_count", "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
      "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
      "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
      "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token", "general.quantization_version"};
  CHECK(keys == expected);
  CHECK(g.get("general.name").to_string("") == "Smallcoder Nano");
  CHECK(g.get("general.size_label").to_string("") == "11M");
  CHECK(g.get("general.file_type").to_int("") == 32);  // LLAMA_FTYPE_MOSTLY_BF16

  // Keys llama.cpp also wrote carry the same types and (model-independent) values as its file.
  const Gguf llama = Gguf::open(data_path(kTinyQ8));
  for (const char* key : {"general.architecture", "general.type", "llama.rope.freq_base",
                          "llama.attention.layer_norm_rms_epsilon", "llama.vocab_size", "tokenizer.ggml.model",
                          "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                          "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.padding_token_id", "general.quantization_version"}) {
    CAPTURE(key);
    CHECK(g.get(key) == llama.get(key));
  }
  for (const auto& kv : llama.metadata()) {
    CAPTURE(kv.first);
    CHECK(g.get(kv.first).type() == kv.second.type());
  }

  // Tensors: the converter's order (sorted Hugging Face names), norms F32, matrices BF16.
  std::vector<std::string> names;
  for (const GgufTensorInfo& t : g.tensors()) names.push_back(t.name);
  CHECK(names.front() == "token_embd.weight");
  CHECK(names[1] == "blk.0.attn_norm.weight");  // model.layers.0.input_layernorm
  CHECK(names[2] == "blk.0.ffn_down.weight");   // model.layers.0.mlp.down_proj
  CHECK(names.back() == "output_norm.weight");  // model.norm
  CHECK(g.tensor("blk.0.attn_norm.weight").dtype == DType::f32);
  CHECK(g.tensor("blk.3.ffn_down.weight").dims == std::vector<std::int64_t>{688, 256});
  CHECK(g.tensor("blk.3.attn_q.weight").dtype == DType::bf16);
}

TEST_CASE("llama.cpp's Q8_0 file through our loader and writer: every tensor byte and metadata value kept" *
          test::kNoKernels) {
  const Checkpoint c = load_checkpoint(data_path(kTinyQ8));
  CHECK(c.weights.rope_layout == RopeLayout::interleaved);  // already permuted: written back as it is
  const std::string path = scratch_path("tiny_again.gguf");
  write_gguf_model(path, c.config, c.weights, *c.tokenizer);
  const Gguf ours = Gguf::open(path);
  const Gguf llama = Gguf::open(data_path(kTinyQ8));
  REQUIRE(ours.tensors().size() == llama.tensors().size());
  int different = 0;
  for (const GgufTensorInfo& t : llama.tensors()) {
    const GgufTensorInfo& u = ours.tensor(t.name);
    different += u.dims != t.dims || u.ggml_type != t.ggml_type || u.nbytes != t.nbytes ||
                 std::memcmp(u.data, t.data, t.nbytes) != 0;
  }
  CHECK(different == 0);
  for (const auto& [key, value] : llama.metadata()) {
    CAPTURE(key);
    REQUIRE(ours.find(key) != nullptr);
    CHECK(*ours.find(key) == value);
  }
  CHECK(ours.metadata().size() == llama.metadata().size() + 3);  // + unknown_token_id, add_bos_token, add_eos_token
}

TEST_CASE("nano from safetensors (bf16) and from our bf16 GGUF: the same logits on the 9 golden prompts") {
  const std::string path = scratch_path("nano_same.gguf");
  Model from_safetensors = Model::load(data_path("models/smallcoder-nano"));
  write_gguf_model(path, from_safetensors.config(), from_safetensors.checkpoint().weights,
                   from_safetensors.tokenizer());
  Model from_gguf = Model::load(path);
  CHECK(from_gguf.checkpoint().format == "gguf");
  CHECK(from_gguf.checkpoint().weights.rope_layout == RopeLayout::interleaved);
  CHECK(from_gguf.checkpoint().dtype == DType::bf16);
  double worst = 0;
  for (const test::GoldenCase& g : test::load_golden("smallcoder-nano")) {
    CAPTURE(g.text);
    const int n = static_cast<int>(g.ids.size());
    const float* a = from_safetensors.transformer().forward(g.ids.data(), n);
    const std::vector<float> reference(a, a + 32000);
    from_safetensors.transformer().reset();
    const float* b = from_gguf.transformer().forward(g.ids.data(), n);
    from_gguf.transformer().reset();
    const double err = test::relative_l2(b, reference.data(), reference.size());
    worst = std::max(worst, err);
    CHECK(err < 1e-5);
    CHECK(test::relative_l2(b, g.last_logits.data(), g.last_logits.size()) < 1e-4);
  }
  MESSAGE("worst relative L2, safetensors vs GGUF: " << worst);
}

TEST_CASE("a GGUF holds the whole model: loading needs no other file, and a tokenizer can be overridden" *
          test::kNoKernels) {
  const Checkpoint random = random_checkpoint(micro_config(), 7, DType::f16, shared_tokenizer());
  const std::string path = scratch_path("micro.gguf");
  write_gguf_model(path, random.config, random.weights, *random.tokenizer);
  const Checkpoint c = load_checkpoint(path);
  CHECK(c.config.name == "Micro Model");
  CHECK(c.config.hidden_size == 64);
  CHECK(c.config.head_dim == 16);
  CHECK(c.tokenizer->vocab_size() == 32000);
  CHECK(c.weights.layers[1].w_up.dtype == DType::f16);
  CHECK(c.weights.layers[1].ffn_norm.dtype == DType::f32);  // norms are written as F32
  CHECK(c.weights.lm_head.data == c.weights.embed.data);
  LoadOptions options;
  options.tokenizer_path = data_path("tokenizer/tokenizer.model");
  CHECK(load_checkpoint(path, options).tokenizer->vocab_size() == 32000);
  // The Q/K permutation is undone by the interleaved layout: GGUF row 1 of wq is stored row 8.
  const Gguf g = Gguf::open(path);
  const TensorView& wq = random.weights.layers[0].wq;
  CHECK(std::memcmp(g.tensor("blk.0.attn_q.weight").data + wq.row_bytes(), wq.row(8), wq.row_bytes()) == 0);
  CHECK(std::memcmp(g.tensor("blk.0.attn_v.weight").data + wq.row_bytes(), random.weights.layers[0].wv.row(1),
                    wq.row_bytes()) == 0);
}

// ---- corrupt input: one case each ----

TEST_CASE("bad input: empty file") {
  CHECK(contains(open_error("empty", ""), "truncated header: the file is 0 bytes"));
}

TEST_CASE("bad input: wrong magic") {
  std::string bytes = minimal_file();
  bytes[0] = 'X';
  const std::string e = open_error("magic", bytes);
  CHECK(contains(e, "test_scratch_magic.gguf: not a GGUF file (wrong magic 'XGUF', expected 'GGUF')"));
  CHECK(contains(open_error("magic_short", "ABCDEFGH"), "not a GGUF file"));
}

TEST_CASE("bad input: unsupported versions") {
  std::string bytes = minimal_file();
  bytes[4] = 1;
  CHECK(contains(open_error("v1", bytes), "unsupported GGUF version 1 (only versions 2 and 3 are supported)"));
  bytes[4] = 4;
  CHECK(contains(open_error("v4", bytes), "unsupported GGUF version 4"));
  bytes[4] = 0;
  bytes[7] = 3;  // 3 stored big-endian
  CHECK(contains(open_error("big_endian", bytes), "a big-endian file"));
}

TEST_CASE("bad input: truncated header") {
  CHECK(contains(open_error("short_header", minimal_file().substr(0, 20)),
                 "truncated header: the file is 20 bytes, a GGUF header needs 24"));
}

TEST_CASE("bad input: truncated metadata") {
  const std::string bytes = minimal_file();
  // Cut inside the value string "llama" of the one entry.
  const std::string e = open_error("short_metadata", bytes.substr(0, 24 + 8 + 20 + 4 + 8 + 2));
  CHECK(contains(e, "truncated metadata: entry 0 ('general.architecture'): string of 5 bytes at offset 64 runs past "
                    "the end of the file (66 bytes)"));
  Bytes f = header(0, 1);
  f.str("k").u32(4).u32(7).b.resize(f.b.size() - 1);  // a uint32 missing its last byte
  CHECK(contains(open_error("short_u32", f.b), "truncated metadata: entry 0 ('k'): uint32 value needs 4 bytes"));
}

TEST_CASE("bad input: truncated tensor infos") {
  const std::string bytes = minimal_file();
  const std::size_t infos = 24 + 8 + 20 + 4 + 8 + 5;
  const std::string e = open_error("short_infos", bytes.substr(0, infos + 8 + 1 + 4 + 3));
  CHECK(contains(e, "truncated tensor infos: tensor 0 ('t'): dimension 0 needs 8 bytes"));
}

TEST_CASE("bad input: truncated tensor data") {
  const std::string e = open_error("short_data", minimal_file(31));
  CHECK(contains(e, "tensor 't': truncated tensor data: bytes [0, 32) of the data section run past the end"));
  CHECK(contains(e, "holds 31 bytes"));
}

TEST_CASE("bad input: string length past the end") {
  Bytes f = header(0, 1);
  f.u64(1000).text("general.name");  // key length 1000, 12 bytes follow
  CHECK(contains(open_error("long_key", f.b),
                 "truncated metadata: entry 0: key of 1000 bytes at offset 32 runs past the end of the file "
                 "(44 bytes)"));
  Bytes g = header(0, 1);
  g.str("k").u32(8).u64(std::numeric_limits<std::uint64_t>::max()).text("xy");
  CHECK(contains(open_error("long_value", g.b), "string of 18446744073709551615 bytes"));
  Bytes t = header(1, 0);
  t.u64(std::uint64_t{1} << 62).text("name").b.append(40, '\0');
  CHECK(contains(open_error("long_tensor_name", t.b),
                 "truncated tensor infos: tensor 0: name of 4611686018427387904 bytes"));
}

TEST_CASE("bad input: absurd counts are refused before anything is allocated") {
  Bytes a = header(0, 1);
  a.str("tokens").u32(9).u32(8).u64(std::uint64_t{1} << 60);  // 2^60 strings
  CHECK(contains(open_error("huge_array", a.b),
                 "array of string with length 1152921504606846976 is impossible: 1152921504606846976 items of at least "
                 "8 bytes each do not fit"));
  Bytes b = header(0, 1);
  b.str("x").u32(9).u32(0).u64(std::uint64_t{1} << 60);  // 2^60 uint8
  CHECK(contains(open_error("huge_bytes", b.b), "array of uint8 with length 1152921504606846976 is impossible"));
  CHECK(contains(open_error("huge_tensors", header(std::uint64_t{1} << 60, 0).b),
                 "header: tensor count 1152921504606846976 is impossible"));
  CHECK(contains(open_error("huge_kv", header(0, std::uint64_t{1} << 60).b),
                 "header: metadata count 1152921504606846976 is impossible"));
  Bytes n = header(0, 1);
  n.str("nested").u32(9).u32(9).u64(std::uint64_t{1} << 60);  // 2^60 arrays
  CHECK(contains(open_error("huge_nested", n.b), "array of array with length 1152921504606846976 is impossible"));
}

TEST_CASE("bad input: arrays nested too deep") {
  Bytes f = header(0, 1);
  f.str("deep").u32(9);
  for (int i = 0; i < 20; ++i) f.u32(9).u64(1);
  CHECK(contains(open_error("deep", f.b), "arrays nest deeper than 8 levels"));
}

TEST_CASE("bad input: tensor offset out of range") {
  Bytes f = header(1, 0);
  tensor_info(f, "w", {8}, 0, 4096).pad_to(32);
  f.b.append(64, '\0');
  CHECK(contains(open_error("offset_range", f.b),
                 "tensor 'w': truncated tensor data: bytes [4096, 4128) of the data section run past the end"));
  Bytes g = header(1, 0);
  tensor_info(g, "w", {8}, 0, std::numeric_limits<std::uint64_t>::max() - 31).pad_to(32);
  CHECK(contains(open_error("offset_wrap", g.b), "tensor 'w': truncated tensor data"));
}

TEST_CASE("bad input: misaligned tensor offset") {
  Bytes f = header(1, 0);
  tensor_info(f, "w", {8}, 0, 4).pad_to(32);
  f.b.append(64, '\0');
  CHECK(contains(open_error("misaligned", f.b), "tensor 'w': data offset 4 is not a multiple of the alignment 32"));
}

TEST_CASE("bad input: overlapping tensor data") {
  Bytes f = header(2, 0);
  tensor_info(f, "a", {16}, 0, 0);
  tensor_info(f, "b", {8}, 0, 32).pad_to(32);
  f.b.append(96, '\0');
  CHECK(contains(open_error("overlap", f.b),
                 "tensor 'b' (data [32, 64)) overlaps tensor 'a' (data [0, 64))"));
}

TEST_CASE("bad input: unknown or unsupported tensor types name the tensor and the type") {
  Bytes f = header(1, 0);
  tensor_info(f, "blk.0.attn_q.weight", {32, 2}, 3, 0).pad_to(32);
  f.b.append(64, '\0');
  // The list of supported types comes from the type records (test_dtype pins the records).
  CHECK(contains(open_error("q4_1", f.b), "tensor 'blk.0.attn_q.weight': ggml type 3 (Q4_1) is not supported "
                                          "(supported: " + all_dtype_names(true) + ")"));
  Bytes g = header(1, 0);
  tensor_info(g, "w", {8}, 99, 0).pad_to(32);
  CHECK(contains(open_error("type99", g.b), "tensor 'w': ggml type 99 (unknown) is not supported"));
}

TEST_CASE("bad input: duplicate keys and duplicate tensors") {
  Bytes f = header(0, 2);
  kv_string(f, "general.name", "a");
  kv_string(f, "general.name", "b");
  CHECK(contains(open_error("dup_key", f.b), "duplicate metadata key 'general.name' (entry 1)"));
  Bytes g = header(2, 0);
  tensor_info(g, "w", {8}, 0, 0);
  tensor_info(g, "w", {8}, 0, 32).pad_to(32);
  g.b.append(64, '\0');
  CHECK(contains(open_error("dup_tensor", g.b), "duplicate tensor name 'w' (tensor 1)"));
}

TEST_CASE("bad input: unknown value types and bad bools") {
  Bytes f = header(0, 1);
  f.str("k").u32(13).u32(0);
  CHECK(contains(open_error("type13", f.b), "metadata: entry 0 ('k'): value type 13 is not a GGUF value type"));
  Bytes g = header(0, 1);
  g.str("k").u32(9).u32(77).u64(0);
  CHECK(contains(open_error("elem77", g.b), "array element type 77 is not a GGUF value type"));
  Bytes b = header(0, 1);
  b.str("flag").u32(7).text("\x02");
  CHECK(contains(open_error("bool2", b.b), "metadata: entry 0 ('flag'): bool value 2 is neither 0 nor 1"));
}

TEST_CASE("bad input: general.alignment of the wrong type or value") {
  Bytes f = header(0, 1);
  f.str("general.alignment").u32(5).u32(32);  // int32, the spec says uint32
  CHECK(contains(open_error("align_type", f.b), "general.alignment: must be a uint32, got int32 32"));
  Bytes g = header(0, 1);
  g.str("general.alignment").u32(4).u32(48);
  CHECK(contains(open_error("align_48", g.b), "general.alignment: 48 is not a power of two of at least 8"));
  Bytes z = header(0, 1);
  z.str("general.alignment").u32(4).u32(0);
  CHECK(contains(open_error("align_0", z.b), "0 is not a power of two"));
}

TEST_CASE("bad input: tensor dimensions") {
  Bytes f = header(1, 0);
  tensor_info(f, "w", {}, 0, 0).b.append(64, '\0');
  CHECK(contains(open_error("dims0", f.b), "tensor 'w': 0 dimensions (1 to 4 are allowed)"));
  Bytes g = header(1, 0);
  tensor_info(g, "w", {1, 1, 1, 1, 1}, 0, 0).b.append(64, '\0');
  CHECK(contains(open_error("dims5", g.b), "tensor 'w': 5 dimensions"));
  Bytes h = header(1, 0);
  tensor_info(h, "w", {std::uint64_t{1} << 40, std::uint64_t{1} << 40}, 0, 0);
  CHECK(contains(open_error("dims_overflow", h.b),
                 "tensor 'w': dimension 1 = 1099511627776 makes the element count overflow"));
  Bytes q = header(1, 0);
  tensor_info(q, "w", {40, 2}, 8, 0);  // Q8_0 rows of 40
  CHECK(contains(open_error("q8_rows", q.b),
                 "tensor 'w': row length 40 is not a multiple of the 32-element blocks of Q8_0"));
  Bytes big = header(1, 0);
  tensor_info(big, "w", {std::uint64_t{1} << 40}, 0, 0);
  CHECK(contains(open_error("too_big", big.b), "tensor 'w': its 4398046511104 bytes of data exceed the whole file"));
}

// ---- model-level problems: missing tensors, shapes, keys ----

namespace {

// Writes the micro model as GGUF with `edit` applied to its metadata and tensors first.
template <class Edit>
std::string micro_gguf_error(const std::string& name, Edit&& edit) {
  const Checkpoint random = random_checkpoint(micro_config(), 1, DType::f32, shared_tokenizer());
  const std::string clean = scratch_path("micro_clean.gguf");
  write_gguf_model(clean, random.config, random.weights, *random.tokenizer);
  const Gguf g = Gguf::open(clean);
  std::vector<std::pair<std::string, GgufValue>> metadata = g.metadata();
  std::vector<GgufTensorToWrite> tensors;
  for (const GgufTensorInfo& t : g.tensors()) tensors.push_back({t.name, t.dtype, t.dims, t.data, {}});
  edit(metadata, tensors);
  const std::string path = scratch_path(name + ".gguf");
  write_gguf(path, metadata, tensors);
  try {
    load_checkpoint(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void set_key(std::vector<std::pair<std::string, GgufValue>>& m, const std::string& key, GgufValue v) {
  for (auto& kv : m) {
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  }
  m.emplace_back(key, std::move(v));
}

void erase_key(std::vector<std::pair<std::string, GgufValue>>& m, const std::string& key) {
  m.erase(std::remove_if(m.begin(), m.end(), [&](const auto& kv) { return kv.first == key; }), m.end());
}

}  // namespace

TEST_CASE("model: the unedited micro model loads" * test::kNoKernels) {
  CHECK(micro_gguf_error("micro_ok", [](auto&, auto&) {}) == "");
}

TEST_CASE("model: missing tensors" * test::kNoKernels) {
  const std::string e = micro_gguf_error("no_attn_q", [](auto&, std::vector<GgufTensorToWrite>& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](const auto& x) { return x.name == "blk.1.attn_q.weight"; }), t.end());
  });
  CHECK(contains(e, "test_scratch_no_attn_q.gguf: missing tensor 'blk.1.attn_q.weight'"));
}

TEST_CASE("model: shape mismatches" * test::kNoKernels) {
  const std::string e = micro_gguf_error("short_ffn", [](auto&, std::vector<GgufTensorToWrite>& t) {
    for (auto& x : t) {
      if (x.name == "blk.0.ffn_up.weight") x.dims = {64, 64};
    }
  });
  CHECK(contains(e, "tensor 'blk.0.ffn_up.weight' has dimensions [64, 64] (innermost first) but the config "
                    "needs [64, 96]"));
  const std::string n = micro_gguf_error("quant_norm", [](auto&, std::vector<GgufTensorToWrite>& t) {
    static const std::vector<std::byte> q8(68);
    for (auto& x : t) {
      if (x.name == "output_norm.weight") x = {x.name, DType::q8_0, {64}, q8.data(), {}};
    }
  });
  CHECK(contains(n, "tensor 'output_norm.weight' is Q8_0; norm weights must be F32, F16 or BF16"));
}

TEST_CASE("model: missing or unsupported keys" * test::kNoKernels) {
  CHECK(contains(micro_gguf_error("no_blocks", [](auto& m, auto&) { erase_key(m, "llama.block_count"); }),
                 "missing metadata key 'llama.block_count'"));
  CHECK(contains(micro_gguf_error("gpt2", [](auto& m, auto&) {
                   set_key(m, "general.architecture", GgufValue::string("gpt2"));
                 }),
                 "general.architecture is 'gpt2'; only 'llama' models are supported"));
  CHECK(contains(micro_gguf_error("bpe", [](auto& m, auto&) {
                   set_key(m, "tokenizer.ggml.model", GgufValue::string("gpt2"));
                 }),
                 "tokenizer.ggml.model is 'gpt2'; only 'llama' (SentencePiece BPE) tokenizers are supported"));
  CHECK(contains(micro_gguf_error("eps_int", [](auto& m, auto&) {
                   set_key(m, "llama.attention.layer_norm_rms_epsilon", GgufValue::scalar(std::uint32_t{1}));
                 }),
                 "llama.attention.layer_norm_rms_epsilon: expected a float32 or float64, got uint32 1"));
  CHECK(contains(micro_gguf_error("heads_huge", [](auto& m, auto&) {
                   set_key(m, "llama.attention.head_count", GgufValue::scalar(std::uint64_t{1} << 40));
                 }),
                 "llama.attention.head_count: value 1099511627776 is out of range"));
  CHECK(contains(micro_gguf_error("scores_short", [](auto& m, auto&) {
                   set_key(m, "tokenizer.ggml.scores", GgufValue::array(std::vector<float>{0.0f}));
                 }),
                 "tokenizer.ggml.scores: has 1 elements, expected 32000"));
  CHECK(contains(micro_gguf_error("type_bad", [](auto& m, auto&) {
                   std::vector<std::int32_t> types(32000, 1);
                   types[5] = 257;
                   set_key(m, "tokenizer.ggml.token_type", GgufValue::array(types));
                 }),
                 "tokenizer.ggml.token_type: element 5 = 257 is not a token type (1 to 6)"));
  CHECK(contains(micro_gguf_error("partial_rope", [](auto& m, auto&) {
                   set_key(m, "llama.rope.dimension_count", GgufValue::scalar(std::uint32_t{8}));
                 }),
                 "partial RoPE is not supported"));
  CHECK(contains(micro_gguf_error("no_bos", [](auto& m, auto&) {
                   set_key(m, "tokenizer.ggml.add_bos_token", GgufValue::scalar(false));
                 }),
                 "tokenizer.ggml.add_bos_token is false"));
}

TEST_CASE("model: keys of any integer width, and llama.cpp's defaults for absent tokenizer keys" * test::kNoKernels) {
  const std::string e = micro_gguf_error("widths", [](auto& m, auto&) {
    set_key(m, "llama.block_count", GgufValue::scalar(std::uint8_t{2}));
    set_key(m, "llama.embedding_length", GgufValue::scalar(std::int16_t{64}));
    set_key(m, "llama.context_length", GgufValue::scalar(std::int64_t{64}));
    set_key(m, "llama.attention.head_count", GgufValue::scalar(std::uint64_t{4}));
    set_key(m, "llama.rope.freq_base", GgufValue::scalar(10000.0));  // float64 works too
    for (const char* key : {"tokenizer.ggml.scores", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.bos_token_id",
                            "llama.attention.key_length", "llama.attention.value_length", "llama.vocab_size",
                            "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"}) {
      erase_key(m, key);
    }
  });
  CHECK(e == "");
}
