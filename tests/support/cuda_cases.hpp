// The CUDA backend's test cases, compiled twice: by nvcc for the GPU (test_cuda.cu) and by
// the host compiler over the CPU emulation (test_cuda_emulated.cpp), where the same kernels
// run, slowly, on fibers: there the cases shrink (kEmulated) but check the same things.
// smallcoder-nano against PyTorch (fp32 and bf16 activations, batched and token by token,
// greedy continuations), the CPU backend on small random models (float and Q8_0 / Q4_0
// weights), every speed knob against the defaults, device sampling against host sampling,
// graph replay against plain launches, the top-logits kernel, errors, memory.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "smallcoder/cpu/backend.hpp"
#include "smallcoder/model/make_weights.hpp"
#include "smallcoder/smallcoder.hpp"
#include "support/golden.hpp"
#include "support/test_data.hpp"

namespace smallcoder::test {

#if defined(SMALLCODER_CUDA_EMULATION)
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

inline const Checkpoint& nano_checkpoint() {
  static const Checkpoint c = load_checkpoint(data_path("models/smallcoder-nano"));
  return c;
}

// The golden cases to run: all 9 on a GPU, the first under emulation.
inline std::vector<GoldenCase> nano_cases() {
  std::vector<GoldenCase> cases = load_golden("smallcoder-nano");
  if (kEmulated) cases.resize(1);
  return cases;
}

inline ModelConfig small_config(const char* name, int hidden, int heads, int kv_heads, int inter, bool tied,
                                int context = 96) {
  ModelConfig c;
  c.name = name;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = 2;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.vocab_size = 300;
  c.max_context = context;
  c.tie_word_embeddings = tied;
  c.validate(name);
  return c;
}

// Shapes like the variants' and the kernels' edge cases: head sizes that do not fill a
// warp's lanes evenly, every query-group size the attention kernel unrolls for, rows too
// short for 16-byte loads (20 and 24 floats), an untied head.
inline std::vector<ModelConfig> small_configs() {
  return {
      small_config("head_dim 72 (like Medium), MQA", 144, 2, 1, 200, true),
      small_config("head_dim 80 (like Small)", 160, 2, 2, 216, true),
      small_config("GQA group 4", 128, 8, 2, 176, true),
      small_config("group 8, head_dim 16", 128, 8, 1, 96, true),
      small_config("head_dim 128, untied", 256, 2, 2, 344, false),
      small_config("head_dim 256, group 3", 768, 3, 1, 520, true),
      small_config("odd widths, head_dim 10", 20, 2, 2, 36, false),
  };
}

inline std::vector<std::int32_t> random_ids(int n, int vocab, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (std::int32_t& id : ids) id = static_cast<std::int32_t>(rng.next() % static_cast<std::uint64_t>(vocab));
  return ids;
}

inline double rel_l2(const float* a, const float* b, int n) { return relative_l2(a, b, static_cast<std::size_t>(n)); }

inline std::vector<float> copy_logits(const float* logits, int vocab) {
  return std::vector<float>(logits, logits + vocab);
}

}  // namespace smallcoder::test

using smallcoder::test::kEmulated;

TEST_CASE("cuda: nano's last-position logits match PyTorch with fp32 activations, batched and token by token") {
  using namespace smallcoder;
  const Checkpoint& c = test::nano_checkpoint();
  Transformer<CudaBackend> model(c.config, c.weights, BackendOptions{});
  for (const test::GoldenCase& g : test::nano_cases()) {
    CAPTURE(g.text);
    model.reset();
    const double batched =
        test::rel_l2(model.forward(g.ids.data(), static_cast<int>(g.ids.size())), g.last_logits.data(), 32000);
    CHECK(batched < 1e-4);
    model.reset();
    const float* stepped = nullptr;
    for (std::int32_t id : g.ids) stepped = model.forward(&id, 1);
    const double cached = test::rel_l2(stepped, g.last_logits.data(), 32000);
    CHECK(cached < 1e-4);
    MESSAGE("fp32 rel L2 batched " << batched << ", token by token " << cached << " (bound 1e-3)");
  }
}

TEST_CASE("cuda: nano's logits with bf16 activations stay within 2e-2 of PyTorch's fp32") {
  using namespace smallcoder;
  const Checkpoint& c = test::nano_checkpoint();
  BackendOptions options;
  options.activations = Activations::bf16;
  Transformer<CudaBackend> model(c.config, c.weights, options);
  REQUIRE(model.backend().bf16_activations());
  for (const test::GoldenCase& g : test::nano_cases()) {
    CAPTURE(g.text);
    model.reset();
    const double batched =
        test::rel_l2(model.forward(g.ids.data(), static_cast<int>(g.ids.size())), g.last_logits.data(), 32000);
    CHECK(batched < 2e-2);
    CHECK(batched > 1e-6);  // it really computed in bf16
    model.reset();
    const float* stepped = nullptr;
    for (std::int32_t id : g.ids) stepped = model.forward(&id, 1);
    const double cached = test::rel_l2(stepped, g.last_logits.data(), 32000);
    CHECK(cached < 2e-2);
    MESSAGE("bf16 rel L2 batched " << batched << ", token by token " << cached);
  }
}

TEST_CASE("cuda: nano's greedy continuations equal PyTorch's (fp32, device top logits, graph replay)") {
  using namespace smallcoder;
  CudaModel model(test::nano_checkpoint());
  GenerateOptions options;
  options.max_tokens = kEmulated ? 6 : 48;
  options.sampling.greedy = true;
  for (const test::GoldenCase& g : test::nano_cases()) {
    CAPTURE(g.text);
    const GenerationResult r = generate_from_ids(model.transformer(), model.tokenizer(), g.ids, options);
    const std::vector<std::int32_t> expected(
        g.greedy_ids.begin(), g.greedy_ids.begin() + std::min<std::size_t>(g.greedy_ids.size(), options.max_tokens));
    CHECK(r.ids == expected);
  }
}

TEST_CASE("cuda: matches the CPU backend on small random models (batched, cached, chunked; f32, f16, bf16 weights)") {
  using namespace smallcoder;
  const std::vector<ModelConfig> configs = test::small_configs();
  const DType dtypes[] = {DType::f32, DType::f16, DType::bf16};
  for (std::size_t c = 0; c < configs.size(); ++c) {
    const ModelConfig& config = configs[c];
    for (std::size_t d = 0; d < 3; ++d) {
      if (kEmulated && d != c % 3) continue;  // emulated: one weight type per shape, each type on some shapes
      const DType dtype = dtypes[d];
      CAPTURE(config.name);
      const std::string type = dtype_name(dtype);
      CAPTURE(type);
      const ModelWeights weights = random_weights(config, 5, dtype, 1);
      const int n = kEmulated ? 36 : 90;  // prompts past 32 tokens take the GEMM kernel, shorter ones the multi-row one
      const std::vector<std::int32_t> ids = test::random_ids(n, config.vocab_size, 9);
      Transformer<CpuBackend> cpu(config, weights, BackendOptions{1, 512, 0});
      Transformer<CudaBackend> gpu(config, weights, BackendOptions{});
      Transformer<CudaBackend> chunked(config, weights, BackendOptions{0, 3, 0});
      double worst_batched = 0, worst_cached = 0, worst_chunked = 0;
      for (int len : {1, 2, 5, 9, 33, n}) {
        CAPTURE(len);
        cpu.reset();
        const std::vector<float> expected = test::copy_logits(cpu.forward(ids.data(), len), config.vocab_size);
        gpu.reset();
        const double batched = test::rel_l2(gpu.forward(ids.data(), len), expected.data(), config.vocab_size);
        CHECK(batched < 1e-5);
        worst_batched = std::max(worst_batched, batched);
        chunked.reset();
        const double in_chunks = test::rel_l2(chunked.forward(ids.data(), len), expected.data(), config.vocab_size);
        CHECK(in_chunks < 1e-5);
        worst_chunked = std::max(worst_chunked, in_chunks);
      }
      cpu.reset();
      gpu.reset();
      for (int t = 0; t < n; ++t) {
        CAPTURE(t);
        const std::vector<float> expected =
            test::copy_logits(cpu.forward(&ids[static_cast<std::size_t>(t)], 1), config.vocab_size);
        const double cached =
            test::rel_l2(gpu.forward(&ids[static_cast<std::size_t>(t)], 1), expected.data(), config.vocab_size);
        CHECK(cached < 1e-5);
        worst_cached = std::max(worst_cached, cached);
      }
      MESSAGE(config.name << ", " << dtype_name(dtype) << ": worst rel L2 vs CPU: batched " << worst_batched
                          << ", cached " << worst_cached << ", chunked " << worst_chunked);
    }
  }
}

TEST_CASE("cuda: long sequences split attention across blocks and still match the CPU") {
  using namespace smallcoder;
  const ModelConfig config = test::small_config("long context", 128, 4, 2, 176, true, 1024);
  const ModelWeights weights = random_weights(config, 3, DType::bf16, 1);
  const int n = kEmulated ? 200 : 700;
  const std::vector<std::int32_t> ids = test::random_ids(n, config.vocab_size, 4);
  Transformer<CpuBackend> cpu(config, weights, BackendOptions{1, 512, 0});
  Transformer<CudaBackend> gpu(config, weights, BackendOptions{});
  // A prompt pass, then token by token: positions past 64, 128, ... use 2, 3, ... splits.
  const int prompt = n / 2;
  const double first =
      test::rel_l2(gpu.forward(ids.data(), prompt),
                   test::copy_logits(cpu.forward(ids.data(), prompt), config.vocab_size).data(), config.vocab_size);
  CHECK(first < 1e-5);
  double worst = 0;
  for (int t = prompt; t < n; ++t) {
    const std::vector<float> expected =
        test::copy_logits(cpu.forward(&ids[static_cast<std::size_t>(t)], 1), config.vocab_size);
    worst = std::max(
        worst, test::rel_l2(gpu.forward(&ids[static_cast<std::size_t>(t)], 1), expected.data(), config.vocab_size));
  }
  CHECK(worst < 1e-5);
  MESSAGE("worst rel L2 over positions " << prompt << ".." << n - 1 << ": " << worst);
}

TEST_CASE("cuda: Q8_0 and Q4_0 weights give what their dequantized values give on the CPU") {
  using namespace smallcoder;
  // Widths of whole blocks, with odd block counts (160 = 5 blocks, 224 = 7: rows start at
  // every even offset), beside widths that are not (the matrix stays bf16: mixed types).
  const std::vector<ModelConfig> configs = {
      test::small_config("q: hidden 160, inter 224", 160, 2, 2, 224, true),
      test::small_config("q: GQA 4, inter 200 (down stays bf16), untied", 128, 8, 2, 200, false),
  };
  for (const ModelConfig& config : configs) {
    for (DType dtype : {DType::q8_0, DType::q4_0}) {
      CAPTURE(config.name);
      const std::string type = dtype_name(dtype);
      CAPTURE(type);
      const ModelWeights weights = random_weights(config, 13, dtype, 1);
      REQUIRE(weights.layers[0].wq.dtype == dtype);
      ModelWeights widened = weights;
      convert_weights(config, widened, DType::f32, 1);  // exact: every quantized value is a float
      const int n = kEmulated ? 36 : 60;
      const std::vector<std::int32_t> ids = test::random_ids(n, config.vocab_size, 3);
      Transformer<CpuBackend> reference(config, widened, BackendOptions{1, 512, 0});
      Transformer<CpuBackend> cpu_quantized(config, weights, BackendOptions{1, 512, 0});
      Transformer<CudaBackend> gpu(config, weights, BackendOptions{});
      double worst = 0, worst_vs_int8 = 0;
      for (int len : {1, 5, 17, n}) {  // decode-sized, multi-row, two blocks of rows, GEMM
        CAPTURE(len);
        reference.reset();
        const std::vector<float> expected = test::copy_logits(reference.forward(ids.data(), len), config.vocab_size);
        cpu_quantized.reset();
        const std::vector<float> int8 = test::copy_logits(cpu_quantized.forward(ids.data(), len), config.vocab_size);
        gpu.reset();
        const std::vector<float> got = test::copy_logits(gpu.forward(ids.data(), len), config.vocab_size);
        const double err = test::rel_l2(got.data(), expected.data(), config.vocab_size);
        CHECK(err < 1e-5);
        worst = std::max(worst, err);
        // The CPU's own kernels round the activations to 8 bits: close (about 2e-2 here),
        // not equal; a misread block would be off by the logits' whole size.
        const double vs_int8 = test::rel_l2(got.data(), int8.data(), config.vocab_size);
        CHECK(vs_int8 < 1e-1);
        worst_vs_int8 = std::max(worst_vs_int8, vs_int8);
      }
      reference.reset();
      gpu.reset();
      for (int t = 0; t < (kEmulated ? 12 : n); ++t) {
        CAPTURE(t);
        const std::int32_t id = ids[static_cast<std::size_t>(t)];
        const std::vector<float> expected = test::copy_logits(reference.forward(&id, 1), config.vocab_size);
        const double err = test::rel_l2(gpu.forward(&id, 1), expected.data(), config.vocab_size);
        CHECK(err < 1e-5);
        worst = std::max(worst, err);
      }
      MESSAGE(config.name << ", " << type << ": worst rel L2 vs dequantized weights on the CPU " << worst
                          << "; vs the CPU's 8-bit-activation kernels " << worst_vs_int8);
    }
  }
}

TEST_CASE("cuda: every speed knob gives the default's logits") {
  using namespace smallcoder;
  const ModelConfig config = test::small_config("knobs", 128, 4, 2, 192, true, 400);
  const ModelWeights weights = random_weights(config, 31, DType::bf16, 1);
  const int prompt = 20, steps = kEmulated ? 45 : 120;  // decode past a few splits of 16..64 positions
  const std::vector<std::int32_t> ids = test::random_ids(prompt + steps, config.vocab_size, 12);
  // Logits after the prompt, then after each decode step (graphs, device top logits too).
  auto run = [&](const cuda::Tuning& tuning) {
    Transformer<CudaBackend> model(config, weights, BackendOptions{});
    model.backend().set_tuning(tuning);
    std::vector<std::vector<float>> out;
    out.push_back(test::copy_logits(model.forward(ids.data(), prompt), config.vocab_size));
    for (int t = prompt; t < prompt + steps; ++t) {
      out.push_back(test::copy_logits(model.forward(&ids[static_cast<std::size_t>(t)], 1), config.vocab_size));
    }
    model.backend().keep_logits_on_device(true);
    model.forward(&ids[0], 1);
    const DeviceTopLogits top = model.backend().top_logits();
    std::vector<float> top_ids(top.ids, top.ids + top.count);
    out.push_back(top_ids);
    CHECK(model.backend().graph_error() == "");
    return out;
  };
  const std::vector<std::vector<float>> base = run(cuda::Tuning{});
  // Knobs that change where and when work runs, not the order of any sum: bit for bit.
  for (const char* exact : {"pdl=0", "pdl=1", "prefetch=0", "prefetch=2", "rows=1", "rows=4", "blocks_per_sm=1",
                            "blocks_per_sm=0", "zerocopy=0", "topk=0", "prefill_rows=1", "prefill_rows=7"}) {
    CAPTURE(exact);
    CHECK(run(cuda::parse_tuning(exact)) == base);
  }
  // Knobs that regroup sums (attention splits, the tiled GEMM): to rounding.
  for (const char* close : {"split=16", "split=64,pdl=1", "gemm_from=2"}) {
    CAPTURE(close);
    const std::vector<std::vector<float>> got = run(cuda::parse_tuning(close));
    REQUIRE(got.size() == base.size());
    for (std::size_t i = 0; i + 1 < got.size(); ++i) {
      CHECK(test::rel_l2(got[i].data(), base[i].data(), config.vocab_size) < 1e-5);
    }
  }
  CHECK_THROWS_AS(cuda::parse_tuning("rows=3"), Error);
  CHECK_THROWS_AS(cuda::parse_tuning("warp_size=64"), Error);
  CHECK_THROWS_AS(cuda::parse_tuning("pdl"), Error);
  CHECK(cuda::parse_tuning(" pdl=0, rows=4 ").rows == 4);
}

TEST_CASE("cuda: bf16 activations stay close to the CPU's fp32 on random models") {
  using namespace smallcoder;
  const ModelConfig config = test::small_configs()[2];
  const ModelWeights weights = random_weights(config, 5, DType::bf16, 1);
  const std::vector<std::int32_t> ids = test::random_ids(20, config.vocab_size, 9);
  Transformer<CpuBackend> cpu(config, weights, BackendOptions{1, 512, 0});
  BackendOptions options;
  options.activations = Activations::bf16;
  Transformer<CudaBackend> gpu(config, weights, options);
  const std::vector<float> expected = test::copy_logits(cpu.forward(ids.data(), 20), config.vocab_size);
  const double batched = test::rel_l2(gpu.forward(ids.data(), 20), expected.data(), config.vocab_size);
  CHECK(batched < 2e-2);
  gpu.reset();
  const float* stepped = nullptr;
  for (std::int32_t id : ids) stepped = gpu.forward(&id, 1);
  CHECK(test::rel_l2(stepped, expected.data(), config.vocab_size) < 2e-2);
}

TEST_CASE("cuda: sampling from the device's top logits draws exactly what the host sampler draws from all logits") {
  using namespace smallcoder;
  const auto tokenizer = test::nano_checkpoint().tokenizer;
  ModelConfig config = test::small_configs()[2];
  config.eos_id = 299;
  const ModelWeights weights = random_weights(config, 21, DType::bf16, 1);
  Transformer<CudaBackend> model(config, weights, BackendOptions{});
  const std::vector<std::int32_t> prompt = test::random_ids(7, config.vocab_size, 2);
  struct Setting {
    float temperature;
    int top_k;
    float top_p;
  };
  // top-k 50 and 5 decide from the 64 candidates; top-k 0 and 100 need all logits.
  for (const Setting s :
       {Setting{0.7f, 50, 0.9f}, Setting{1.5f, 5, 1.0f}, Setting{1.0f, 0, 0.95f}, Setting{0.8f, 100, 1.0f}}) {
    for (std::uint64_t seed : {1ull, 2ull}) {
      CAPTURE(s.top_k);
      CAPTURE(seed);
      GenerateOptions options;
      options.max_tokens = kEmulated ? 8 : 40;
      options.sampling.temperature = s.temperature;
      options.sampling.top_k = s.top_k;
      options.sampling.top_p = s.top_p;
      options.seed = seed;
      const GenerationResult r = generate_from_ids(model, *tokenizer, prompt, options);
      // The same loop on the host: all logits copied, the plain sampler.
      Sampler sampler(options.sampling, options.seed);
      model.reset();
      const float* logits = model.forward(prompt.data(), static_cast<int>(prompt.size()));
      REQUIRE(logits != nullptr);  // after a generation the logits come back to the host again
      std::vector<std::int32_t> expected;
      for (int i = 0; i < options.max_tokens; ++i) {
        const std::int32_t id = sampler.sample(logits, config.vocab_size);
        expected.push_back(id);
        if (id == config.eos_id || i + 1 == options.max_tokens) break;
        logits = model.forward(&id, 1);
      }
      CHECK(r.ids == expected);
    }
  }
}

TEST_CASE("cuda: replaying the captured decode graph gives the same logits as launching kernel by kernel") {
  using namespace smallcoder;
  const ModelConfig config = test::small_configs()[0];
  const ModelWeights weights = random_weights(config, 8, DType::bf16, 1);
  const std::vector<std::int32_t> ids = test::random_ids(kEmulated ? 12 : 40, config.vocab_size, 6);
  Transformer<CudaBackend> graphs(config, weights, BackendOptions{});
  Transformer<CudaBackend> plain(config, weights, BackendOptions{});
  plain.backend().use_graphs(false);
  for (std::int32_t id : ids) {
    const std::vector<float> a = test::copy_logits(graphs.forward(&id, 1), config.vocab_size);
    const std::vector<float> b = test::copy_logits(plain.forward(&id, 1), config.vocab_size);
    CHECK(a == b);
  }
  CHECK(graphs.backend().graph_error() == "");
  CHECK(graphs.backend().graph_replays() >= static_cast<long long>(ids.size()) - 2);  // all but the first two steps
  CHECK(plain.backend().graph_replays() == 0);
}

TEST_CASE("cuda: the top-logits kernel returns the largest logits in sampling order, or says it cannot") {
  using namespace smallcoder;
  using cuda::TopLogitsResult;
  // Both orderings (rank, bitonic sort) must give the same answer; it is returned once.
  auto run = [](const std::vector<float>& logits) {
    cuda::DeviceMemory in = cuda::device_alloc(sizeof(float) * logits.size(), "test logits");
    cuda::DeviceMemory out = cuda::device_alloc(sizeof(TopLogitsResult), "test result");
    cuda::check(cudaMemcpy(in.get(), logits.data(), sizeof(float) * logits.size(), cudaMemcpyHostToDevice), "upload");
    TopLogitsResult results[2] = {};
    for (int rank = 0; rank < 2; ++rank) {
      cuda::TopLogitsArgs a;
      a.logits = static_cast<const float*>(in.get());
      a.n = static_cast<int>(logits.size());
      a.result = static_cast<TopLogitsResult*>(out.get());
      a.rank = rank == 1;
      cuda::check(cudaMemset(out.get(), 0xff, sizeof(TopLogitsResult)), "poison");
      cuda::launch_top_logits(a, nullptr, false);
      cuda::check(cudaMemcpy(&results[rank], out.get(), sizeof(TopLogitsResult), cudaMemcpyDeviceToHost), "download");
    }
    CHECK(results[0].count == results[1].count);
    for (int i = 0; i < std::min(results[0].count, cuda::kTopLogits); ++i) {
      CHECK(results[0].ids[i] == results[1].ids[i]);
      CHECK(results[0].values[i] == results[1].values[i]);
    }
    return results[1];
  };
  // What it must return: ids sorted by (logit descending, id ascending).
  auto expected_order = [](const std::vector<float>& logits) {
    std::vector<int> order(logits.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    return order;
  };
  Rng rng(17);
  for (int n : {32000, 5000, 1000, 300, 64, 50, 1}) {
    CAPTURE(n);
    std::vector<float> logits(static_cast<std::size_t>(n));
    for (float& v : logits) v = static_cast<float>(rng.normal() * 3.0);
    for (int i = 0; i + 7 < n; i += 7)
      logits[static_cast<std::size_t>(i)] = logits[static_cast<std::size_t>(i + 3)];  // ties
    const TopLogitsResult r = run(logits);
    const std::vector<int> order = expected_order(logits);
    REQUIRE(r.count == std::min(n, cuda::kTopLogits));
    for (int i = 0; i < r.count; ++i) {
      CHECK(r.ids[i] == order[static_cast<std::size_t>(i)]);
      CHECK(r.values[i] == logits[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])]);
    }
  }
  // Quantised logits (bf16 activations): long runs of equal values; still exact.
  std::vector<float> steps(32000);
  for (float& v : steps) v = std::round(static_cast<float>(rng.normal()) * 4.0f) / 4.0f;
  const TopLogitsResult stepped = run(steps);
  if (stepped.count > 0) {
    const std::vector<int> order = expected_order(steps);
    for (int i = 0; i < stepped.count; ++i) CHECK(stepped.ids[i] == order[static_cast<std::size_t>(i)]);
  }
  // Everything tied: more candidates than the kernel sorts, so it reports none.
  CHECK(run(std::vector<float>(32000, 1.5f)).count == 0);
  // NaNs are never candidates.
  std::vector<float> with_nan(3000);
  for (float& v : with_nan) v = static_cast<float>(rng.normal());
  with_nan[10] = std::numeric_limits<float>::quiet_NaN();
  const TopLogitsResult nan_result = run(with_nan);
  for (int i = 0; i < nan_result.count; ++i) CHECK(nan_result.ids[i] != 10);
}

TEST_CASE("cuda: errors are smallcoder::Error with a reason, and leave the model usable") {
  using namespace smallcoder;
  const ModelConfig config = test::small_configs()[1];
  const ModelWeights weights = random_weights(config, 2, DType::bf16, 1);
  Transformer<CudaBackend> model(config, weights, BackendOptions{0, 512, 16});
  CHECK(model.context() == 16);
  const std::vector<std::int32_t> ids = test::random_ids(17, config.vocab_size, 1);
  CHECK_THROWS_AS(model.forward(ids.data(), 17), Error);  // more than the context: refused before any kernel
  CHECK(model.position() == 0);
  const std::int32_t bad = config.vocab_size;
  CHECK_THROWS_AS(model.forward(&bad, 1), Error);
  const float* logits = model.forward(ids.data(), 16);  // still works, up to the last position
  REQUIRE(logits != nullptr);
  CHECK(std::isfinite(logits[0]));
  CHECK_THROWS_AS(model.forward(ids.data(), 1), Error);  // full

  ModelWeights quantized = weights;
  quantized.layers[0].wq.dtype = DType::q6_k;  // a type the CUDA kernels do not read
  try {
    Transformer<CudaBackend> q(config, quantized, BackendOptions{});
    FAIL("a q6_k tensor was accepted");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("model.layers.0.self_attn.q_proj.weight") != std::string::npos);
  }
  ModelConfig wide = config;
  wide.head_dim = 512;
  CHECK_THROWS_AS(CudaBackend(wide, BackendOptions{}), Error);
  CHECK_THROWS_AS(CudaBackend(config, BackendOptions{0, 0, 0}), Error);
  BackendOptions f16_cache;
  f16_cache.kv_cache = DType::f16;  // the CPU backend's option
  CHECK_THROWS_WITH_AS(CudaBackend(config, f16_cache), doctest::Contains("kv_cache f16 is CPU-only"), Error);
}

TEST_CASE("cuda: device memory statistics follow the model's allocations") {
  using namespace smallcoder;
  const ModelConfig config = test::small_configs()[4];
  const ModelWeights weights = random_weights(config, 2, DType::bf16, 1);
  const cuda::DeviceMemoryStats before = cuda::device_memory_stats();
  CHECK(!before.device_name.empty());
  CHECK(before.multiprocessors > 0);
  CHECK(before.device_total > 0);
  std::size_t held = 0;
  {
    Transformer<CudaBackend> model(config, weights, BackendOptions{});
    const cuda::DeviceMemoryStats during = cuda::device_memory_stats();
    held = during.allocated - before.allocated;
    CHECK(held >= weights.bytes() + model.backend().kv_cache_bytes());
    CHECK(during.peak_allocated >= during.allocated);
    CHECK(during.reserved == during.allocated);
    CHECK(during.device_used >= during.allocated - before.allocated);
  }
  CHECK(cuda::device_memory_stats().allocated == before.allocated);
  MESSAGE(before.device_name << ": the model held " << held << " bytes");
}
