// Quantized GGUF models end to end: llama.cpp's SmallCoder-Tiny Q8_0 and Q4_K_M files against
// llama.cpp's own greedy text and the PyTorch golden logits, our Q8_0 GGUF of smallcoder-nano,
// and the memory a mapped Q8_0 model takes (no fp32 copies).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/memory.hpp"
#include "smallcoder/model/save_gguf.hpp"
#include "smallcoder/smallcoder.hpp"
#include "support/golden.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using smallcoder::test::data_path;

namespace {

const std::string kTiny = "models/smallcoder-tiny/";

// llama.cpp's greedy texts: llama-simple's output after the prompt, its trailing newline and
// the first piece's leading space removed, which is what Tokenizer::decode of the ids gives.
std::vector<std::string> llamacpp_texts(const std::string& file) {
  const JsonValue doc = parse_json(test::read_file(data_path(kTiny + file)), file);
  std::vector<std::string> texts;
  for (const JsonValue& c : doc.at("cases", file).as_array(file)) {
    texts.push_back(c.at("greedy_text_32", file).as_string(file));
  }
  return texts;
}

struct TinyResult {
  int greedy_matches = 0;
  double worst_logits = 0;
  int top1_checked = 0;  // cases whose golden top-1/top-2 gap exceeds 0.5
  int top1_equal = 0;
};

// Last-position logits against the golden and 32-token greedy continuations against llama.cpp's.
TinyResult run_tiny(const std::string& gguf, const std::string& llamacpp_json, const BackendOptions& backend = {}) {
  Model model = Model::load(data_path(kTiny + gguf), {}, backend);
  const std::vector<test::GoldenCase> golden = test::load_golden("smallcoder-tiny");
  const std::vector<std::string> texts = llamacpp_texts(llamacpp_json);
  REQUIRE(texts.size() == golden.size());
  TinyResult r;
  GenerateOptions greedy;
  greedy.max_tokens = 32;
  greedy.sampling.greedy = true;
  for (std::size_t i = 0; i < golden.size(); ++i) {
    const test::GoldenCase& g = golden[i];
    CAPTURE(g.text);
    model.transformer().reset();
    const float* logits = model.transformer().forward(g.ids.data(), static_cast<int>(g.ids.size()));
    const double err = test::relative_l2(logits, g.last_logits.data(), g.last_logits.size());
    r.worst_logits = std::max(r.worst_logits, err);
    std::vector<float> sorted = g.last_logits;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    const auto golden_top = std::max_element(g.last_logits.begin(), g.last_logits.end()) - g.last_logits.begin();
    const auto top = std::max_element(logits, logits + g.last_logits.size()) - logits;
    if (sorted[0] - sorted[1] > 0.5f) {
      ++r.top1_checked;
      r.top1_equal += top == golden_top;
    }
    const GenerationResult out = generate_from_ids(model.transformer(), model.tokenizer(), g.ids, greedy);
    const std::string text = model.tokenizer().decode(out.ids);
    const bool match = text == texts[i];
    r.greedy_matches += match;
    MESSAGE("case " << i << ": logits rel L2 " << err << ", greedy " << std::string(match ? "equals" : "differs from")
                    << " llama.cpp's");
  }
  return r;
}

}  // namespace

TEST_CASE("Tiny Q8_0 (llama.cpp's file): llama.cpp's greedy text on >= 8 of 9, logits within 3e-2 of PyTorch") {
  const TinyResult r = run_tiny("smallcoder-tiny-Q8_0.gguf", "llamacpp_greedy_q8_0.json");
  MESSAGE("Q8_0: greedy matches " << r.greedy_matches << "/9, worst logits rel L2 " << r.worst_logits << ", top-1 "
                                  << r.top1_equal << "/" << r.top1_checked);
  CHECK(r.greedy_matches >= 8);
  CHECK(r.worst_logits < 3e-2);
  CHECK(r.top1_checked >= 7);
  CHECK(r.top1_equal == r.top1_checked);
}

// llama.cpp made its texts with an f16 cache, yet ours matches fewer of them with one (7 of 9
// measured, cases 2 and 5 differ; 8 with the f32 cache): llama.cpp also rounds the queries and
// the attention weights to f16 and sums in another order, and a greedy text near a tie follows
// the smallest change. So this guards against regressions, as the Q4_K_M case does.
TEST_CASE("Tiny Q8_0 with an f16 KV cache: llama.cpp's greedy text on >= 7 of 9, logits within 3e-2 of PyTorch") {
  BackendOptions f16_cache;
  f16_cache.kv_cache = DType::f16;
  const TinyResult r = run_tiny("smallcoder-tiny-Q8_0.gguf", "llamacpp_greedy_q8_0.json", f16_cache);
  MESSAGE("Q8_0, f16 KV cache: greedy matches " << r.greedy_matches << "/9, worst logits rel L2 " << r.worst_logits);
  CHECK(r.greedy_matches >= 7);
  CHECK(r.worst_logits < 3e-2);
}

TEST_CASE("Tiny Q4_K_M (llama.cpp's file): llama.cpp's greedy text on >= 7 of 9, logits within 6e-2 of PyTorch") {
  const TinyResult r = run_tiny("smallcoder-tiny-Q4_K_M.gguf", "llamacpp_greedy_q4_k_m.json");
  MESSAGE("Q4_K_M: greedy matches " << r.greedy_matches << "/9, worst logits rel L2 " << r.worst_logits);
  CHECK(r.greedy_matches >= 7);
  CHECK(r.worst_logits < 6e-2);
}

TEST_CASE("nano: our Q8_0 GGUF loads, equals quantize-on-load, and its logits are within 3e-2 of PyTorch") {
  LoadOptions q8;
  q8.dtype = DType::q8_0;
  Model on_load = Model::load(data_path("models/smallcoder-nano"), q8);
  const std::string path = test::scratch_path("nano_q8_0.gguf");
  write_gguf_model(path, on_load.config(), on_load.checkpoint().weights, on_load.tokenizer());
  Model from_gguf = Model::load(path);
  const ModelWeights& w = from_gguf.checkpoint().weights;
  CHECK(w.embed.dtype == DType::q8_0);
  CHECK(w.layers[0].wq.dtype == DType::q8_0);
  CHECK(w.layers[0].w_down.dtype == DType::bf16);  // 688-wide rows are not whole Q8_0 blocks
  CHECK(w.layers[0].attn_norm.dtype == DType::f32);
  CHECK(Gguf::open(path).get("general.file_type").to_int("") == 7);
  double worst = 0, worst_layouts = 0;
  for (const test::GoldenCase& g : test::load_golden("smallcoder-nano")) {
    CAPTURE(g.text);
    const int n = static_cast<int>(g.ids.size());
    const float* a = on_load.transformer().forward(g.ids.data(), n);
    const std::vector<float> quantized_on_load(a, a + g.last_logits.size());
    on_load.transformer().reset();
    const float* b = from_gguf.transformer().forward(g.ids.data(), n);
    from_gguf.transformer().reset();
    // The same bytes through the other RoPE layout: equal up to float rounding, which can move
    // an activation across a rounding boundary of its 8-bit quantization now and then.
    const double layouts = test::relative_l2(b, quantized_on_load.data(), quantized_on_load.size());
    worst_layouts = std::max(worst_layouts, layouts);
    CHECK(layouts < 5e-3);
    const double err = test::relative_l2(b, g.last_logits.data(), g.last_logits.size());
    worst = std::max(worst, err);
    CHECK(err < 3e-2);
  }
  MESSAGE("nano Q8_0 GGUF: worst logits rel L2 against PyTorch " << worst << ", against quantize-on-load "
                                                                  << worst_layouts);
}

TEST_CASE("Tiny Q8_0 memory: mapped file pages plus anonymous weight buffers within 1.05 x its tensor data") {
  constexpr double kTensorData = 106404864;
  const std::string path = data_path(kTiny + "smallcoder-tiny-Q8_0.gguf");
  Model model = Model::load(path);
  const std::int32_t ids[] = {1, 822, 18755};
  model.transformer().forward(ids, 3);  // every weight is read at least once (the tied head in full)
  const ModelWeights& w = model.checkpoint().weights;
  CHECK(w.bytes() == static_cast<std::size_t>(kTensorData));
  // Mapped file pages plus weight buffers of their own (views that do not point into the file).
  const bench::WeightResidency r = bench::weight_residency(model.config(), w, path);
  const double mapped = static_cast<double>(r.mapped_resident), anonymous = static_cast<double>(r.anonymous);
  MESSAGE("mapped file pages " << mapped << " bytes, anonymous weight buffers " << anonymous << " bytes, tensor data "
                               << kTensorData << " bytes: " << (mapped + anonymous) / kTensorData << " x");
  CHECK(anonymous == 0);
  CHECK(mapped > 0.9 * kTensorData);  // the measurement found the mapping, and the weights are in it
  CHECK(mapped + anonymous <= 1.05 * kTensorData);
}
