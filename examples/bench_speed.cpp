// bench_speed: prompt-processing and decode speed of one model, in the style of llama-bench.
// Each test runs R times after a warm-up; the table on stdout gives tokens/s (mean ± standard
// deviation, median) and two rooflines measured in the same run: for decode, the bytes read
// per second beside the memory bandwidth; for prompts, the operations per second and their
// share of the CPU's compute peak (bench/compute.hpp). --cold flushes the weights from the CPU
// caches before each timed step (bench/cache_eviction.hpp), so that a model a server's L3 holds
// is read from DRAM, as on a laptop. Progress goes to stderr.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/bandwidth.hpp"
#include "bench/cache_eviction.hpp"
#include "bench/compute.hpp"
#include "bench/memory.hpp"
#include "bench/report_table.hpp"
#include "cli.hpp"
#include "model_source.hpp"

namespace {

namespace bench = smallcoder::bench;
using Clock = std::chrono::steady_clock;

// Streaming-read buffer of the bandwidth probe, as benchmark_variants reads (best of 5).
constexpr std::uint64_t kBandwidthBytes = std::uint64_t{1} << 30;

struct Flags : tools::ModelFlags {
  std::string kv_cache = "f32", prompt = "def fibonacci(n):";
  std::vector<std::string> prompt_lengths;  // -p values, each one number or a comma list
  long long generate = 128, repetitions = 5, threads = 0, seed = 0, context_fill = 0;
  bool cold = false;
};

struct Stats {
  double mean = 0, sd = 0, median = 0;
};

// Sample standard deviation (n - 1), as llama-bench reports it.
Stats statistics(std::vector<double> v) {
  Stats s;
  for (double x : v) s.mean += x / static_cast<double>(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / static_cast<double>(v.size() - 1)) : 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  s.median = v.size() % 2 == 1 ? v[h] : (v[h - 1] + v[h]) / 2;
  return s;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Token ids for timing only (as llama-bench feeds): a fixed pseudo-random draw past the
// control tokens, so every run of the tool feeds the same ones.
std::vector<std::int32_t> filler_tokens(int n, int vocab) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<std::int32_t> id(3, vocab - 1);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (std::int32_t& t : ids) t = id(rng);
  return ids;
}

std::int32_t greedy_token(const float* logits, int vocab) {
  return static_cast<std::int32_t>(std::max_element(logits, logits + vocab) - logits);
}

struct Row {
  std::string test;
  Stats tokens_per_s;
  double bytes_per_token = 0;  // decode only: weights + the KV cache at the mean context
  int prompt_tokens = 0;       // prompt only: its length, for the compute roofline
};

// -p values: numbers or comma lists (checked against the context once the model is loaded).
std::vector<int> prompt_lengths(const std::vector<std::string>& flags) {
  std::vector<int> out;
  for (const std::string& flag : flags) {
    std::size_t begin = 0;
    while (begin <= flag.size()) {
      const std::size_t comma = std::min(flag.find(',', begin), flag.size());
      out.push_back(static_cast<int>(cli::parse_integer("-p", flag.substr(begin, comma - begin), 1, 1 << 20)));
      begin = comma + 1;
    }
  }
  if (out.empty()) out.push_back(128);
  return out;
}

// The matrices' types, the layers' first: "q4_k+q6_k" for llama.cpp's Q4_K_M (whose
// embedding, the checkpoint's nominal type, is Q6_K), "bf16" when they are all one type.
std::string matrix_types(const smallcoder::ModelWeights& w) {
  std::vector<std::string> names;
  auto add = [&](const smallcoder::TensorView& t) {
    const std::string name = smallcoder::dtype_name(t.dtype);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  };
  for (const smallcoder::LayerWeights& l : w.layers) {
    for (const smallcoder::TensorView* t : l.matrices()) add(*t);
  }
  add(w.lm_head);
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : "+") + n;
  return out;
}

int run(int argc, char** argv) {
  Flags f;
  cli::Parser p("bench_speed",
                "Measures prompt processing (ppN) and decode (tgN) tokens/s of one model, as llama-bench does,\n"
                "decode's bytes read per second against the memory bandwidth, and the prompts' operations per\n"
                "second against the CPU's FMA and 8-bit dot-product peaks, both measured in the same run.\n"
                "Without --model it runs a random-weight variant (--variant).");
  tools::add_model_flags(p, f);
  tools::add_cpu_flags(p, f.threads, f.kv_cache);
  p.repeated("-p", &f.prompt_lengths, "N[,N...]", "prompt-processing test of N tokens (repeatable; default 128)");
  p.integer("-n", &f.generate, 0, 1 << 20, "decode test: tokens generated after the prompt (default 128; 0: none)");
  p.integer("-r", &f.repetitions, 1, 1000, "repetitions of each test (default 5)");
  p.text("--prompt", &f.prompt, "TEXT", "prompt the decode test follows (default \"def fibonacci(n):\")");
  p.integer("--context-fill", &f.context_fill, 0, 1 << 20,
            "decode after N filler tokens instead of --prompt (speed at the end of a long context)");
  p.integer("--seed", &f.seed, 0, (1ll << 62), "random-weight seed (default 0)");
  p.flag("--cold", &f.cold,
         "flush the weights from the CPU caches before each timed step (each decode token, each prompt run; "
         "the flush is not timed): DRAM speed on a CPU whose cache holds the model");
  if (!p.parse(argc, argv)) return 0;
  if (f.cold && !bench::can_evict_from_caches())
    throw cli::UsageError("--cold: this CPU architecture has no cache flush");
  f.variant = tools::resolve_variant_flag(f.model, f.variant);
  const std::optional<smallcoder::DType> dtype = tools::parse_dtype_flag(f.dtype);
  const std::vector<int> pp = prompt_lengths(f.prompt_lengths);
  smallcoder::BackendOptions backend;
  backend.threads = f.threads > 0 ? static_cast<int>(f.threads) : smallcoder::default_thread_count();
  backend.kv_cache = tools::parse_kv_cache_flag(f.kv_cache);

  const Clock::time_point load_start = Clock::now();
  smallcoder::Checkpoint checkpoint = tools::load_model_choice(
      {f.model, f.variant, dtype, f.tokenizer, static_cast<std::uint64_t>(f.seed), backend.threads});
  smallcoder::Model model(std::move(checkpoint), backend);
  smallcoder::Transformer<smallcoder::CpuBackend>& t = model.transformer();
  const int context = t.context(), vocab = model.config().vocab_size;
  for (int tokens : pp) {
    if (tokens > context) {
      throw cli::UsageError("-p " + std::to_string(tokens) + " exceeds the context of " + std::to_string(context));
    }
  }

  std::vector<std::int32_t> prompt;
  if (f.context_fill > 0) {
    prompt = filler_tokens(static_cast<int>(f.context_fill), vocab);
    prompt[0] = model.config().bos_id;
  } else {
    prompt.push_back(model.config().bos_id);
    for (std::int32_t id : model.tokenizer().encode(f.prompt)) prompt.push_back(id);
  }
  const int n = static_cast<int>(f.generate), depth = static_cast<int>(prompt.size());
  if (n > 0 && depth + n > context) {
    throw cli::UsageError("the decode test needs " + std::to_string(depth) + " prompt + " + std::to_string(n) +
                          " generated positions; the context has " + std::to_string(context));
  }

  // Progress starts only now: an error before this point is the tool's one line on stderr.
  std::fprintf(stderr, "loaded %s in %.1f s\n",
               f.model.empty() ? (f.variant + " with random weights").c_str() : f.model.c_str(),
               seconds_since(load_start));
  auto probe_bandwidth = [&](const char* when) {
    std::fprintf(stderr, "measuring memory bandwidth %s (%llu MiB, %d threads)...\n", when,
                 static_cast<unsigned long long>(kBandwidthBytes >> 20), t.backend().threads());
    const bench::BandwidthMeasurement b = bench::measure_read_bandwidth(kBandwidthBytes, t.backend().threads());
    std::fprintf(stderr, "memory bandwidth %s: %s\n", when, bench::describe_bandwidth(b).c_str());
    return b;
  };
  const bench::BandwidthMeasurement bandwidth_before = probe_bandwidth("before the tests");
  const bench::ComputePeak peak = bench::measure_compute_peak(t.backend().threads());
  std::fprintf(stderr,
               "compute peak at the %s level, %d threads: fp32 FMA %.0f GFLOP/s, 8-bit dot product %.0f GOP/s\n",
               peak.level.c_str(), peak.threads, peak.fma_gflops, peak.int8_gops);

  const int reps = static_cast<int>(f.repetitions);
  const smallcoder::ModelWeights& weights = model.checkpoint().weights;
  // The seconds one step takes: with --cold, after the untimed flush of the weights.
  auto timed = [&](auto&& step) {
    if (f.cold) bench::evict_weights(weights, t.backend().threads());
    const Clock::time_point start = Clock::now();
    step();
    return seconds_since(start);
  };
  const std::string suffix = f.cold ? " (cold)" : "";
  std::vector<Row> rows;
  for (int tokens : pp) {
    const std::vector<std::int32_t> ids = filler_tokens(tokens, vocab);
    std::vector<double> speeds;
    for (int r = -1; r < reps; ++r) {  // r = -1: the warm-up
      t.reset();
      const double s = timed([&] { t.forward(ids.data(), tokens); });
      if (r >= 0) speeds.push_back(tokens / s);
      std::fprintf(stderr, "pp%d %s: %.1f tok/s\n", tokens,
                   r < 0 ? "warm-up" : ("run " + std::to_string(r + 1)).c_str(), tokens / s);
    }
    rows.push_back(Row{"pp" + std::to_string(tokens) + suffix, statistics(speeds), 0, tokens});
  }
  if (n > 0) {
    // The prompt is processed once; every run rewinds to its end and decodes the same n
    // greedy tokens, so each run does the same work at the same positions.
    t.reset();
    std::fprintf(stderr, "tg%d: processing the %d-token prompt...\n", n, depth);
    const std::int32_t first = greedy_token(t.forward(prompt.data(), depth), vocab);
    std::vector<double> speeds;
    for (int r = -1; r < reps; ++r) {
      t.rewind(depth);
      std::int32_t next = first;
      double s = 0;
      for (int i = 0; i < n; ++i) s += timed([&] { next = greedy_token(t.forward(&next, 1), vocab); });
      if (r >= 0) speeds.push_back(n / s);
      std::fprintf(stderr, "tg%d %s: %.1f tok/s\n", n, r < 0 ? "warm-up" : ("run " + std::to_string(r + 1)).c_str(),
                   n / s);
    }
    // Step i (0-based) runs at position depth + i and reads depth + i + 1 cached positions.
    const double mean_context = depth + (n + 1) / 2.0;
    const double kv_per_position = static_cast<double>(t.backend().kv_cache_bytes()) / context;
    const double bytes = static_cast<double>(bench::decode_weight_bytes(weights)) + mean_context * kv_per_position;
    rows.push_back(Row{"tg" + std::to_string(n) + " @ d" + std::to_string(depth) + suffix, statistics(speeds), bytes});
  }

  // The decode rows' limit: the mean of the probes before and after the tests.
  const double bandwidth = bench::mean_gb_per_s(bandwidth_before, probe_bandwidth("after the tests"));
  std::fprintf(stderr, "memory bandwidth: %.1f GB/s (the mean of the two)\n", bandwidth);
  const std::string name = model.config().name.empty() ? f.model : model.config().name;
  const std::string types = matrix_types(model.checkpoint().weights);
  // A prompt's share of the compute peak: the least time its operations take at the peaks
  // (8-bit for quantized matrices, FMA for float ones and attention) over the time it took.
  std::printf(
      "| model | dtype | kv cache | threads | test | tok/s | median | GB/s | share of %.1f GB/s | GOP/s | share of %s "
      "peak (FMA %.0f GFLOP/s, 8-bit %.0f GOP/s) |\n",
      bandwidth, peak.level.c_str(), peak.fma_gflops, peak.int8_gops);
  std::printf("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    std::string gb = "-", share = "-", gops = "-", compute_share = "-";
    if (r.bytes_per_token > 0) {
      const double achieved = r.bytes_per_token * r.tokens_per_s.mean / 1e9;
      gb = bench::format_number("%.1f", achieved);
      share = bench::format_number("%.0f%%", 100 * achieved / bandwidth);
    }
    if (r.prompt_tokens > 0) {
      const bench::PromptOperations ops =
          bench::prompt_operations(model.config(), model.checkpoint().weights, r.prompt_tokens);
      const double seconds = r.prompt_tokens / r.tokens_per_s.mean;
      gops = bench::format_number("%.0f", ops.total() / seconds / 1e9);
      compute_share = bench::format_number("%.0f%%", 100 * ops.seconds_at(peak) / seconds);
    }
    std::printf("| %s%s | %s | %s | %d | %s | %.1f ± %.1f | %.1f | %s | %s | %s | %s |\n", name.c_str(),
                model.checkpoint().format == "random" ? " (random)" : "", types.c_str(),
                smallcoder::dtype_name(t.backend().kv_cache()), t.backend().threads(), r.test.c_str(),
                r.tokens_per_s.mean, r.tokens_per_s.sd, r.tokens_per_s.median, gb.c_str(), share.c_str(), gops.c_str(),
                compute_share.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return cli::run_tool("bench_speed", [&] { return run(argc, argv); });
}
