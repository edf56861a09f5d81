// load_checkpoint: smallcoder-nano from its folder and its .safetensors path, conversion
// to f32, checkpoints written here (tied and untied) matching the double reference forward,
// and every kind of broken checkpoint giving an Error that names the file and the problem.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "smallcoder/smallcoder.hpp"
#include "smallcoder/io/safetensors_writer.hpp"
#include "support/emulated.hpp"
#include "support/expect_error.hpp"
#include "support/golden.hpp"
#include "support/reference_forward.hpp"
#include "support/small_model.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using smallcoder::test::check_error;
using smallcoder::test::small_config;
namespace fs = std::filesystem;

namespace {

const std::string& nano_dir() {
  static const std::string dir = test::data_path("models/smallcoder-nano");
  return dir;
}

std::string config_json(const ModelConfig& c, const std::string& extra = "") {
  auto field = [](const char* key, const std::string& value) { return std::string("\"") + key + "\": " + value + ",\n"; };
  std::string s = "{\n";
  s += field("model_type", "\"llama\"");
  s += field("hidden_act", "\"silu\"");
  s += field("hidden_size", std::to_string(c.hidden_size));
  s += field("intermediate_size", std::to_string(c.intermediate_size));
  s += field("num_hidden_layers", std::to_string(c.num_layers));
  s += field("num_attention_heads", std::to_string(c.num_heads));
  s += field("num_key_value_heads", std::to_string(c.num_kv_heads));
  s += field("head_dim", std::to_string(c.head_dim));
  s += field("vocab_size", std::to_string(c.vocab_size));
  s += field("max_position_embeddings", std::to_string(c.max_context));
  s += field("rms_norm_eps", "1e-06");
  s += field("rope_theta", "10000.0");
  s += field("bos_token_id", "1");
  s += field("eos_token_id", "2");
  s += field("pad_token_id", "0");
  s += extra;
  s += "\"tie_word_embeddings\": " + std::string(c.tie_word_embeddings ? "true" : "false") + "\n}\n";
  return s;
}

// Every tensor of `w` under its Hugging Face name (lm_head only when untied).
std::vector<TensorToWrite> tensors_of(const ModelConfig& c, ModelWeights w) {
  std::vector<TensorToWrite> out;
  for_each_weight(c, w, [&](const WeightSlot& slot) {
    const TensorView& v = *slot.view;
    std::vector<std::int64_t> shape = slot.is_vector() ? std::vector<std::int64_t>{slot.cols}
                                                       : std::vector<std::int64_t>{slot.rows, slot.cols};
    out.push_back(TensorToWrite{hf_tensor_name(slot), v.dtype, shape, v.data, v.bytes()});
  });
  return out;
}

// A scratch checkpoint folder (config.json, model.safetensors, tokenizer.model), removed afterwards.
struct ScratchCheckpoint {
  std::string dir;
  ModelConfig config;
  ModelWeights weights;

  ScratchCheckpoint(const std::string& name, const ModelConfig& c, DType dtype = DType::bf16)
      : dir(fs::absolute(test::scratch_path("ckpt_" + name)).string()), config(c), weights(random_weights(c, 17, dtype, 1)) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    write_config(config_json(config));
    write_weights(tensors_of(config, weights));
    // Written, not copied: a copy would keep the shared file's read-only mode, and the
    // tests that corrupt it must be able to overwrite it.
    test::write_file(dir + "/tokenizer.model", test::read_file(test::data_path("tokenizer/tokenizer.model")));
  }
  ~ScratchCheckpoint() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }

  std::string path(const char* file) const { return dir + "/" + file; }
  void write_config(const std::string& text) const { test::write_file(path("config.json"), text); }
  void write_weights(const std::vector<TensorToWrite>& tensors) const { write_safetensors(path("model.safetensors"), tensors); }
  std::string safetensors_bytes() const { return test::read_file(path("model.safetensors")); }
  void set_safetensors_bytes(const std::string& bytes) const { test::write_file(path("model.safetensors"), bytes); }
};

// One header entry of a safetensors file, for writing files that the writer would refuse.
struct RawEntry {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  std::int64_t begin, end;
};

// The entries of a valid file and its data area, read with the library's reader.
std::vector<RawEntry> raw_entries(const std::string& path, std::string& data) {
  const SafeTensors st = SafeTensors::open(path);
  const std::byte* data_start = st.tensors().front().data;  // tensors() is in offset order; the first is at 0
  std::vector<RawEntry> out;
  for (const SafeTensorInfo& t : st.tensors()) {
    const std::int64_t begin = t.data - data_start;
    out.push_back(RawEntry{t.name, detail::safetensors_dtype_name(t.dtype), t.shape, begin,
                           begin + static_cast<std::int64_t>(t.nbytes)});
  }
  const std::size_t offset = static_cast<std::size_t>(data_start - st.file()->data());
  data.assign(reinterpret_cast<const char*>(st.file()->data()) + offset, st.file()->size() - offset);
  return out;
}

std::string raw_safetensors(const std::vector<RawEntry>& entries, const std::string& data) {
  std::string header = "{";
  for (const RawEntry& e : entries) {
    if (header.size() > 1) header += ',';
    header += "\"" + e.name + "\":{\"dtype\":\"" + e.dtype + "\",\"shape\":[";
    for (std::size_t i = 0; i < e.shape.size(); ++i) header += (i ? "," : "") + std::to_string(e.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(e.begin) + "," + std::to_string(e.end) + "]}";
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

RawEntry& entry_named(std::vector<RawEntry>& entries, const std::string& name) {
  for (RawEntry& e : entries) {
    if (e.name == name) return e;
  }
  throw std::runtime_error("test: no entry " + name);
}

std::vector<std::int32_t> some_ids() { return {1, 822, 5, 31999, 0, 13, 2048, 29871}; }

// The loaded checkpoint's logits (batched and token by token) against the double reference.
void check_against_reference(const Checkpoint& c) {
  const std::vector<std::int32_t> ids = some_ids();
  const auto expected = test::ReferenceForward(c.config, c.weights).logits(ids);
  Transformer<CpuBackend> model(c.config, c.weights, BackendOptions{2, 512, 0});
  const test::LogitError batched = test::compare_logits(model.forward(ids.data(), static_cast<int>(ids.size())), expected.back());
  CHECK(batched.relative_l2 < 1e-5);
  model.reset();
  test::LogitError worst;
  for (std::size_t t = 0; t < ids.size(); ++t) {
    const test::LogitError e = test::compare_logits(model.forward(&ids[t], 1), expected[t]);
    CHECK(e.relative_l2 < 1e-5);
    worst.relative_l2 = std::max(worst.relative_l2, e.relative_l2);
    worst.max_abs = std::max(worst.max_abs, e.max_abs);
  }
  MESSAGE(c.source << ": rel L2 batched " << batched.relative_l2 << " (max abs " << batched.max_abs
                   << "), every cached position <= " << worst.relative_l2 << " (max abs " << worst.max_abs << ")");
}

}  // namespace

TEST_CASE("checkpoint: smallcoder-nano loads from its folder and from its .safetensors path") {
  const Checkpoint by_dir = load_checkpoint(nano_dir());
  const Checkpoint by_file = load_checkpoint(nano_dir() + "/model.safetensors");
  for (const Checkpoint* c : {&by_dir, &by_file}) {
    CAPTURE(c->source);
    CHECK(c->config.hidden_size == 256);
    CHECK(c->config.intermediate_size == 688);
    CHECK(c->config.num_layers == 4);
    CHECK(c->config.num_heads == 4);
    CHECK(c->config.num_kv_heads == 2);
    CHECK(c->config.head_dim == 64);
    CHECK(c->config.max_context == 2048);
    CHECK(c->config.tie_word_embeddings);
    CHECK(c->config.name == "smallcoder-nano");
    CHECK(c->format == "safetensors");
    CHECK(c->dtype == DType::bf16);
    REQUIRE(c->tokenizer != nullptr);
    CHECK(c->tokenizer->vocab_size() == 32000);
    CHECK(c->weights.layers.size() == 4);
    CHECK(c->weights.embed.dtype == DType::bf16);
    CHECK(c->weights.embed.rows == 32000);
    CHECK(c->weights.embed.cols == 256);
    CHECK(c->weights.layers[3].w_down.rows == 256);
    CHECK(c->weights.layers[3].w_down.cols == 688);
    CHECK(c->weights.lm_head.data == c->weights.embed.data);  // tied
    CHECK(c->weights.bytes() == static_cast<std::size_t>(c->config.parameter_count()) * 2);
  }
  CHECK(by_dir.source == nano_dir());
  // Same weights either way: the same logits, bit for bit.
  const std::vector<std::int32_t> ids = some_ids();
  Transformer<CpuBackend> a(by_dir.config, by_dir.weights, BackendOptions{1, 512, 64});
  Transformer<CpuBackend> b(by_file.config, by_file.weights, BackendOptions{1, 512, 64});
  const float* la = a.forward(ids.data(), 8);
  const float* lb = b.forward(ids.data(), 8);
  CHECK(std::memcmp(la, lb, 32000 * sizeof(float)) == 0);
}

TEST_CASE("checkpoint: LoadOptions.dtype = f32 re-stores the matrices exactly and computes the same") {
  const Checkpoint bf16 = load_checkpoint(nano_dir());
  LoadOptions options;
  options.dtype = DType::f32;
  const Checkpoint f32 = load_checkpoint(nano_dir(), options);
  CHECK(f32.dtype == DType::f32);
  CHECK(f32.weights.embed.dtype == DType::f32);
  CHECK(f32.weights.lm_head.data == f32.weights.embed.data);  // still tied after the conversion
  CHECK(f32.weights.layers[1].wq.dtype == DType::f32);
  CHECK(f32.weights.layers[1].w_down.dtype == DType::f32);
  // Every bf16 value widens exactly; compare a few whole matrices value by value.
  auto same_values = [](const TensorView& narrow, const TensorView& wide) {
    REQUIRE(narrow.rows == wide.rows);
    REQUIRE(narrow.cols == wide.cols);
    for (std::int64_t i = 0; i < narrow.rows * narrow.cols; ++i) {
      std::uint16_t h;
      float f;
      std::memcpy(&h, narrow.data + 2 * i, 2);
      std::memcpy(&f, wide.data + 4 * i, 4);
      if (bf16_to_f32(h) != f) {
        FAIL("value " << i << " differs: " << bf16_to_f32(h) << " vs " << f);
        return;
      }
    }
  };
  same_values(bf16.weights.embed, f32.weights.embed);
  same_values(bf16.weights.layers[2].wk, f32.weights.layers[2].wk);
  same_values(bf16.weights.layers[3].w_gate, f32.weights.layers[3].w_gate);
  // And against PyTorch's logits for the first golden prompt (the acceptance bound 1e-4).
  const test::GoldenCase g = test::load_golden("smallcoder-nano").front();
  Transformer<CpuBackend> model(f32.config, f32.weights, BackendOptions{0, 512, 256});
  const double err = test::relative_l2(model.forward(g.ids.data(), static_cast<int>(g.ids.size())), g.last_logits.data(), 32000);
  CHECK(err < 1e-4);
  MESSAGE("nano converted to f32: rel L2 against PyTorch " << err);
}

TEST_CASE("checkpoint: written checkpoints (tied and untied, bf16 and f32) load and match the reference forward") {
  SUBCASE("untied, bf16") {
    const ScratchCheckpoint s("untied", small_config(false));
    const Checkpoint c = load_checkpoint(s.dir);
    CHECK_FALSE(c.config.tie_word_embeddings);
    CHECK(c.weights.lm_head.data != c.weights.embed.data);
    CHECK(c.weights.lm_head.rows == 32000);
    // The loaded lm_head holds the written one, not the embedding.
    CHECK(std::memcmp(c.weights.lm_head.data, s.weights.lm_head.data, s.weights.lm_head.bytes()) == 0);
    CHECK(std::memcmp(c.weights.lm_head.data, c.weights.embed.data, c.weights.embed.bytes()) != 0);
    CHECK(c.weights.bytes() == static_cast<std::size_t>(c.config.parameter_count()) * 2);
    check_against_reference(c);
    // The reference on the loaded views equals the reference on the weights that were written.
    const std::vector<std::int32_t> ids = some_ids();
    CHECK(test::ReferenceForward(c.config, c.weights).logits(ids).back() ==
          test::ReferenceForward(s.config, s.weights).logits(ids).back());
  }
  SUBCASE("tied, f32") {
    const ScratchCheckpoint s("tied_f32", small_config(true), DType::f32);
    const Checkpoint c = load_checkpoint(s.dir + "/model.safetensors");
    CHECK(c.dtype == DType::f32);
    CHECK(c.weights.lm_head.data == c.weights.embed.data);
    check_against_reference(c);
  }
  SUBCASE("an explicit tokenizer_path replaces tokenizer.model") {
    const ScratchCheckpoint s("explicit_tokenizer", small_config(true));
    fs::remove(s.path("tokenizer.model"));
    LoadOptions options;
    options.tokenizer_path = test::data_path("tokenizer/tokenizer.model");
    CHECK(load_checkpoint(s.dir, options).tokenizer->vocab_size() == 32000);
  }
}

TEST_CASE("checkpoint: missing pieces are Errors naming the path" * test::kNoKernels) {
  SUBCASE("missing folder") {
    const std::string missing = test::scratch_path("no_such_model_folder");
    check_error([&] { load_checkpoint(missing); }, {missing, "no such file or folder"});
    check_error([&] { load_checkpoint(missing + "/model.safetensors"); }, {"config.json"});
  }
  SUBCASE("a path that is neither a folder nor a .safetensors file") {
    check_error([&] { load_checkpoint(nano_dir() + "/config.json"); }, {"config.json", "not a model"});
  }
  const ScratchCheckpoint s("missing", small_config(true));
  SUBCASE("missing config.json") {
    fs::remove(s.path("config.json"));
    check_error([&] { load_checkpoint(s.dir); }, {s.path("config.json"), "cannot open"});
  }
  SUBCASE("missing model.safetensors") {
    fs::remove(s.path("model.safetensors"));
    check_error([&] { load_checkpoint(s.dir); }, {s.path("model.safetensors"), "cannot open"});
  }
  SUBCASE("missing tokenizer.model") {
    fs::remove(s.path("tokenizer.model"));
    check_error([&] { load_checkpoint(s.dir); }, {s.path("tokenizer.model"), "cannot open"});
  }
  SUBCASE("the scratch checkpoint itself is fine") { CHECK_NOTHROW(load_checkpoint(s.dir)); }
}

TEST_CASE("checkpoint: corrupt safetensors files are Errors naming the file and the problem" * test::kNoKernels) {
  const ScratchCheckpoint s("corrupt", small_config(true));
  const std::string st_path = s.path("model.safetensors");
  const std::string valid = s.safetensors_bytes();
  std::string data;
  const std::vector<RawEntry> entries = raw_entries(st_path, data);
  REQUIRE(entries.size() == 2 + 9 * 2);  // embed, final norm, 9 per layer

  SUBCASE("truncated inside the data") {
    s.set_safetensors_bytes(valid.substr(0, valid.size() * 6 / 10));
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "run past the end of the data area"});
  }
  SUBCASE("truncated inside the header") {
    s.set_safetensors_bytes(valid.substr(0, 100));
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "runs past the end of the file"});
  }
  SUBCASE("truncated inside the length") {
    s.set_safetensors_bytes(valid.substr(0, 5));
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "too short"});
  }
  SUBCASE("empty file") {
    s.set_safetensors_bytes("");
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "too short"});
  }
  SUBCASE("header length past the end of the file") {
    std::string bytes = valid;
    const std::uint64_t length = bytes.size();  // 8 more than what is left after the length
    for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xff);
    s.set_safetensors_bytes(bytes);
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "header length", "runs past the end of the file"});
  }
  SUBCASE("absurd header length") {
    std::string bytes = valid;
    for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>(0xff);
    s.set_safetensors_bytes(bytes);
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "header length"});
  }
  SUBCASE("overlapping offsets") {
    std::vector<RawEntry> e = entries;
    RawEntry& post = entry_named(e, "model.layers.0.post_attention_layernorm.weight");
    const RawEntry& pre = entry_named(e, "model.layers.0.input_layernorm.weight");
    post.begin = pre.begin;
    post.end = pre.end;
    s.set_safetensors_bytes(raw_safetensors(e, data));
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "overlaps"});
  }
  SUBCASE("out-of-range offsets") {
    std::vector<RawEntry> e = entries;
    RawEntry& norm = entry_named(e, "model.norm.weight");
    norm.begin = static_cast<std::int64_t>(data.size());
    norm.end = norm.begin + 64;
    s.set_safetensors_bytes(raw_safetensors(e, data));
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "model.norm.weight", "run past the end of the data area"});
  }
  SUBCASE("offsets that do not match the shape") {
    std::vector<RawEntry> e = entries;
    entry_named(e, "model.norm.weight").end -= 2;
    s.set_safetensors_bytes(raw_safetensors(e, data));
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "model.norm.weight", "do not match shape"});
  }
  SUBCASE("unknown dtype") {
    std::vector<RawEntry> e = entries;
    entry_named(e, "model.layers.1.mlp.up_proj.weight").dtype = "F8_E4M3";
    s.set_safetensors_bytes(raw_safetensors(e, data));
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "F8_E4M3", "model.layers.1.mlp.up_proj.weight"});
  }
  SUBCASE("the rewritten file without changes loads (the harness itself is sound)") {
    s.set_safetensors_bytes(raw_safetensors(entries, data));
    CHECK_NOTHROW(load_checkpoint(s.dir));
  }
}

TEST_CASE("checkpoint: tensors that do not fit the config are Errors naming the tensor" * test::kNoKernels) {
  const ModelConfig config = small_config(true);
  const ScratchCheckpoint s("mismatch", config);
  const std::string st_path = s.path("model.safetensors");
  const std::vector<TensorToWrite> tensors = tensors_of(config, s.weights);

  SUBCASE("a q_proj of the wrong size") {
    std::vector<TensorToWrite> t = tensors;
    std::vector<std::uint16_t> bigger(static_cast<std::size_t>((config.q_dim() + 8) * config.hidden_size), 0);
    for (TensorToWrite& w : t) {
      if (w.name == "model.layers.1.self_attn.q_proj.weight") {
        w.shape = {config.q_dim() + 8, config.hidden_size};
        w.data = bigger.data();
        w.nbytes = bigger.size() * 2;
      }
    }
    s.write_weights(t);
    check_error([&] { load_checkpoint(s.dir); },
                {st_path, "model.layers.1.self_attn.q_proj.weight", "[40, 32]", "config needs [32, 32]"});
  }
  SUBCASE("a transposed down_proj") {
    std::vector<TensorToWrite> t = tensors;
    for (TensorToWrite& w : t) {
      if (w.name == "model.layers.0.mlp.down_proj.weight") w.shape = {config.intermediate_size, config.hidden_size};
    }
    s.write_weights(t);
    check_error([&] { load_checkpoint(s.dir); }, {"model.layers.0.mlp.down_proj.weight", "[72, 32]", "[32, 72]"});
  }
  SUBCASE("a norm stored as a matrix") {
    std::vector<TensorToWrite> t = tensors;
    for (TensorToWrite& w : t) {
      if (w.name == "model.norm.weight") w.shape = {1, config.hidden_size};
    }
    s.write_weights(t);
    check_error([&] { load_checkpoint(s.dir); }, {"model.norm.weight", "[1, 32]", "[32]"});
  }
  SUBCASE("a missing tensor") {
    std::vector<TensorToWrite> t;
    for (const TensorToWrite& w : tensors) {
      if (w.name != "model.layers.1.mlp.up_proj.weight") t.push_back(w);
    }
    s.write_weights(t);
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "missing tensor 'model.layers.1.mlp.up_proj.weight'"});
  }
  SUBCASE("an untied config without lm_head.weight") {
    ModelConfig untied = config;
    untied.tie_word_embeddings = false;
    s.write_config(config_json(untied));
    check_error([&] { load_checkpoint(s.dir); }, {st_path, "missing tensor 'lm_head.weight'"});
  }
  SUBCASE("a vocabulary smaller than the tokenizer's") {
    ModelConfig small_vocab = config;
    small_vocab.vocab_size = 300;
    s.write_weights(tensors_of(small_vocab, random_weights(small_vocab, 1, DType::bf16, 1)));
    s.write_config(config_json(small_vocab));
    check_error([&] { load_checkpoint(s.dir); }, {"32000 pieces", "300 embeddings"});
  }
}

TEST_CASE("checkpoint: an invalid config.json or tokenizer.model is an Error naming the file" * test::kNoKernels) {
  const ScratchCheckpoint s("bad_parts", small_config(true));
  SUBCASE("heads not a multiple of kv heads") {
    ModelConfig c = small_config(true);
    c.num_kv_heads = 3;
    s.write_config(config_json(c));
    check_error([&] { load_checkpoint(s.dir); }, {s.path("config.json"), "num_key_value_heads (3)"});
  }
  SUBCASE("not JSON") {
    s.write_config("{\"hidden_size\": 32,");
    check_error([&] { load_checkpoint(s.dir); }, {s.path("config.json")});
  }
  SUBCASE("a refused feature") {
    s.write_config(config_json(small_config(true), "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0},\n"));
    check_error([&] { load_checkpoint(s.dir); }, {s.path("config.json"), "rope_scaling"});
  }
  SUBCASE("corrupt tokenizer.model: random bytes") {
    std::string junk;
    Rng rng(5);
    for (int i = 0; i < 4096; ++i) junk += static_cast<char>(rng.next() & 0xff);
    test::write_file(s.path("tokenizer.model"), junk);
    check_error([&] { load_checkpoint(s.dir); }, {s.path("tokenizer.model")});
  }
  SUBCASE("corrupt tokenizer.model: truncated") {
    const std::string real = test::read_file(test::data_path("tokenizer/tokenizer.model"));
    test::write_file(s.path("tokenizer.model"), real.substr(0, real.size() / 2));
    check_error([&] { load_checkpoint(s.dir); }, {s.path("tokenizer.model")});
  }
  SUBCASE("empty tokenizer.model") {
    test::write_file(s.path("tokenizer.model"), "");
    check_error([&] { load_checkpoint(s.dir); }, {s.path("tokenizer.model")});
  }
}
