// Writes the committed seed corpora of the fuzz targets (tools/fuzz/corpus/<target>/):
// small valid files that reach deep into each parser. Run by `tools/fuzz/run.sh --seeds`.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "../../tests/support/pt_writer.hpp"
#include "smallcoder/io/gguf_writer.hpp"
#include "smallcoder/io/safetensors_writer.hpp"
#include "smallcoder/model/save_gguf.hpp"
#include "smallcoder/smallcoder.hpp"

using namespace smallcoder;

namespace {

// ---- a minimal sentencepiece model (protobuf wire format) ----

void varint(std::string& out, std::uint64_t v) {
  for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7f) | 0x80);
  out += static_cast<char>(v);
}
void field_varint(std::string& out, int number, std::uint64_t v) {
  varint(out, static_cast<std::uint64_t>(number) << 3);
  varint(out, v);
}
void field_bytes(std::string& out, int number, const std::string& bytes) {
  varint(out, static_cast<std::uint64_t>(number) << 3 | 2);
  varint(out, bytes.size());
  out += bytes;
}
void field_float(std::string& out, int number, float f) {
  varint(out, static_cast<std::uint64_t>(number) << 3 | 5);
  out.append(reinterpret_cast<const char*>(&f), 4);
}

// Pieces: <unk> <s> </s>, a few merges with scores, one user-defined piece, and with
// byte_fallback the 256 byte pieces.
std::string tokenizer_model(bool byte_fallback) {
  struct Piece {
    std::string text;
    float score;
    int type;
  };
  std::vector<Piece> pieces = {{"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}, {"<tab>", 0, 4}};
  if (byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      pieces.push_back({name, 0, 6});
    }
  }
  const std::vector<std::string> normal = {"\xE2\x96\x81", "d", "e", "f", "x", "(", ")", ":", "de", "\xE2\x96\x81" "d",
                                           "\xE2\x96\x81" "def", "ef", "r", "t", "u", "n", "re", "ret", "return"};
  for (std::size_t i = 0; i < normal.size(); ++i) pieces.push_back({normal[i], -static_cast<float>(i), 1});
  pieces.push_back({"unused", -100, 5});
  std::string model;
  for (const Piece& p : pieces) {
    std::string piece;
    field_bytes(piece, 1, p.text);
    field_float(piece, 2, p.score);
    field_varint(piece, 3, static_cast<std::uint64_t>(p.type));
    field_bytes(model, 1, piece);
  }
  std::string trainer;
  field_varint(trainer, 3, 2);  // BPE
  field_varint(trainer, 35, byte_fallback ? 1 : 0);
  field_varint(trainer, 40, 0);
  field_varint(trainer, 41, 1);
  field_varint(trainer, 42, 2);
  field_bytes(model, 2, trainer);
  std::string normalizer;
  field_bytes(normalizer, 1, "identity");
  field_varint(normalizer, 3, 1);
  field_varint(normalizer, 4, byte_fallback ? 0 : 1);
  field_bytes(model, 3, normalizer);
  return model;
}

void write(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    throw Error(path + ": cannot write");
  }
}

ModelConfig micro(int hidden, int heads, int ffn, int vocab) {
  ModelConfig c;
  c.name = "fuzz-seed";
  c.hidden_size = hidden;
  c.intermediate_size = ffn;
  c.num_layers = 1;
  c.num_heads = heads;
  c.num_kv_heads = 1;
  c.head_dim = hidden / heads;
  c.vocab_size = vocab;
  c.max_context = 16;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "tools/fuzz/corpus";
  try {
    const std::string small_model = tokenizer_model(false);
    write(dir + "/tokenizer_model/merges.model", small_model);
    write(dir + "/tokenizer_model/byte_fallback.model", tokenizer_model(true));

    const Tokenizer tokenizer = Tokenizer::from_proto(small_model, "seed");
    const ModelConfig f32 = micro(8, 2, 16, tokenizer.vocab_size());
    const ModelWeights w32 = random_weights(f32, 1, DType::f32, 1);
    write_gguf_model(dir + "/gguf/micro_f32.gguf", f32, w32, tokenizer);
    const ModelConfig q8 = micro(32, 2, 32, tokenizer.vocab_size());
    write_gguf_model(dir + "/gguf/micro_q8_0.gguf", q8, random_weights(q8, 2, DType::q8_0, 1), tokenizer);
    write_gguf_model(dir + "/gguf/micro_q4_0.gguf", q8, random_weights(q8, 3, DType::q4_0, 1), tokenizer);

    const std::vector<float> values = {1, -2, 3.5f, 0, 1e-3f, 7, 8, 9};
    const auto* bytes = reinterpret_cast<const std::byte*>(values.data());
    write_gguf(dir + "/gguf/all_types.gguf",
               {{"general.alignment", GgufValue::scalar(std::uint32_t{64})},
                {"u8", GgufValue::scalar(std::uint8_t{1})}, {"i8", GgufValue::scalar(std::int8_t{-1})},
                {"u16", GgufValue::scalar(std::uint16_t{2})}, {"i16", GgufValue::scalar(std::int16_t{-2})},
                {"i32", GgufValue::scalar(std::int32_t{-3})}, {"f32", GgufValue::scalar(0.5f)},
                {"bool", GgufValue::scalar(true)}, {"string", GgufValue::string("text")},
                {"u64", GgufValue::scalar(std::uint64_t{4})}, {"i64", GgufValue::scalar(std::int64_t{-4})},
                {"f64", GgufValue::scalar(0.25)}, {"bools", GgufValue::array(std::vector<bool>{true, false})},
                {"strings", GgufValue::array(std::vector<std::string>{"a", "b"})},
                {"nested", GgufValue::array_of_arrays({GgufValue::array(std::vector<std::int32_t>{1, 2})})}},
               {{"a", DType::f32, {8}, bytes, {}}, {"b", DType::f16, {2, 2}, bytes, {}}});

    const std::vector<TensorToWrite> tensors = {{"model.norm.weight", DType::f32, {8}, values.data(), 32},
                                                {"w.bf16", DType::bf16, {2, 2}, values.data(), 8},
                                                {"w.f16", DType::f16, {1, 3}, values.data(), 6}};
    write_safetensors(dir + "/safetensors/three.safetensors", tensors, {{"format", "pt"}});
    write_safetensors(dir + "/safetensors/empty.safetensors", {});

    // .pt: a training checkpoint with AdamW state (as best_model.pt), a bare state_dict in a
    // zip64 archive, and pickles alone (the target unpickles inputs that are no zip).
    const ModelConfig pt = micro(8, 2, 16, 32);
    const std::vector<test::PtTensor> pt_tensors = test::pt_tensors(pt, random_weights(pt, 4, DType::f32, 1));
    const std::string best_model = test::training_checkpoint("best_model", pt, pt_tensors, true);
    write(dir + "/pt/best_model.pt", best_model);
    write(dir + "/pt/state_dict_zip64.pt",
          test::bare_state_dict("archive", test::pt_tensors(pt, random_weights(pt, 5, DType::bf16, 1)), true));
    const ZipArchive zip = ZipArchive::open(dir + "/pt/best_model.pt");
    write(dir + "/pt/best_model.pkl", zip.read(zip.get("best_model/data.pkl")));
    // Memo opcodes, protocol 4's framing, short strings and STACK_GLOBAL, as newer picklers write:
    // {'a': (OrderedDict(), <the same>, (32767, 0))}.
    const std::string zeros(7, '\0');
    write(dir + "/pt/protocol4.pkl", "\x80\x04\x95\x30" + zeros +
                                         "}\x94(\x8c\x01"
                                         "a\x94\x8c\x0b"
                                         "collections\x94"
                                         "\x8c\x0b"
                                         "OrderedDict\x94\x93)R\x94q\x05r\x06" +
                                         zeros.substr(0, 3) +
                                         "h\x05"
                                         "\x8a\x02\xff\x7f\x8a" +
                                         zeros.substr(0, 1) + "\x86\x87u.");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
