// Runs one model through a prompt suite: loads it (timed), builds it on a backend with its
// full context, generates every prompt, measures speed, quality and memory, and probes the
// memory bandwidth right before the first prompt and right after the last. Written once for
// every backend; a GPU backend adds overloads of device_memory / measure_bandwidth (below).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bench/execution.hpp"
#include "bench/keywords.hpp"
#include "bench/memory.hpp"
#include "bench/results.hpp"
#include "bench/suites.hpp"
#include "bench/syntax.hpp"
#include "smallcoder/cpu/backend.hpp"
#include "smallcoder/model.hpp"

namespace smallcoder {

// What the benchmark asks of a backend beyond the Backend concept. A GPU backend
// declares its own overloads of these in namespace smallcoder.

// Device memory: the CPU has none beyond the process's resident set; a GPU returns
// allocated / reserved / peak and the device name.
inline std::optional<bench::DeviceMemory> device_memory(const CpuBackend&) { return std::nullopt; }

// The memory bandwidth the decode speed is bounded by (the backend is named by a null
// pointer of its type): for the CPU, a streaming read of `bytes` with `threads` threads.
inline bench::BandwidthMeasurement measure_bandwidth(const CpuBackend*, std::uint64_t bytes, int threads) {
  return bench::measure_read_bandwidth(bytes, threads);
}

namespace bench {

struct RunOptions {
  int max_tokens = 150;
  SamplingOptions sampling;  // the original's default: T 0.7, top-k 50, top-p 0.9
  std::uint64_t seed = 0;    // prompt i samples with seed + i
  bool check_syntax = true;
  bool check_code = true;  // run the test and measure logic flow and pyflakes (bench/execution.hpp)
};

// Sent before each prompt (finished == nullptr) and after it (with its result).
struct ProgressEvent {
  const std::string& variant;
  int prompt_index;  // 0-based
  int prompt_count;
  const PromptResult* finished;
};
using ProgressCallback = std::function<void(const ProgressEvent&)>;

// Measures the memory bandwidth the decode is bounded by (measure_bandwidth, above, with the
// caller's buffer size and threads).
using BandwidthProbe = std::function<BandwidthMeasurement()>;

// Runs `probe` without its buffer counting in the variant's peak resident set: the peak so
// far goes into m.peak_rss first, and the OS's peak restarts after the probe. Where the OS
// refuses that restart the peak is the process's anyway (see MemoryStats).
inline BandwidthMeasurement probe_outside_peak(const BandwidthProbe& probe, MemoryStats& m) {
  m.peak_rss = std::max(m.peak_rss, rss_peak_bytes());
  BandwidthMeasurement b = probe();
  return_free_memory();  // a buffer under glibc's mmap threshold would stay in the heap, resident
  m.peak_is_per_variant = m.peak_is_per_variant && reset_peak_rss();
  return b;
}

// The file whose mapping holds a checkpoint's weights ("" for random weights).
inline std::string mapped_model_file(const Checkpoint& c) {
  if (c.format == "random") return "";
  return smallcoder::detail::is_directory(c.source) ? c.source + "/model.safetensors" : c.source;
}

template <class Backend>
PromptResult run_prompt(BasicModel<Backend>& model, const BenchPrompt& prompt, const RunOptions& options,
                        std::uint64_t seed) {
  GenerateOptions generate;
  generate.max_tokens = options.max_tokens;
  generate.sampling = options.sampling;
  generate.seed = seed;
  generate.stop = prompt.stop;
  const GenerationResult g = model.generate(prompt.prompt, generate);
  PromptResult r;
  r.name = prompt.name;
  r.category = prompt.category;
  r.prompt = prompt.prompt;
  r.expected_keywords = prompt.keywords;
  r.text = g.text;
  r.stop_reason = stop_reason_name(g.stop_reason);
  r.seed = seed;
  r.prompt_tokens = g.timings.prompt_tokens;
  r.tokens_generated = g.timings.generated_tokens;
  r.generation_time_s = g.timings.total_s;
  r.first_token_latency_s = g.timings.time_to_first_token_s;
  r.prefill_s = g.timings.prefill_s;
  r.decode_s = g.timings.decode_s;
  r.keywords = score_keywords(g.text, prompt.keywords);
  const bool ended_by_itself = g.stop_reason == StopReason::eos || g.stop_reason == StopReason::stop_string;
  if (options.check_syntax) r.syntax = check_python_syntax(syntax_check_source(prompt.prompt, g.text, ended_by_itself));
  if (options.check_code) r.code = assess_code(code_job(prompt, g.text, !ended_by_itself));
  return r;
}

// Benchmarks the checkpoint that `load` returns under `name`. The peak resident set is
// reset before loading, so the figures are this variant's own (see MemoryStats). `probe`
// runs twice: once the model is loaded and warmed up, and after the last prompt.
template <class Backend>
VariantResult benchmark_model(const std::string& name, const std::function<Checkpoint()>& load,
                              const std::vector<BenchPrompt>& prompts, const RunOptions& options,
                              const BackendOptions& backend_options, const BandwidthProbe& probe,
                              const ProgressCallback& progress = {}) {
  using Clock = std::chrono::steady_clock;
  return_free_memory();
  VariantResult v;
  v.memory.peak_is_per_variant = reset_peak_rss();
  const Clock::time_point load_start = Clock::now();
  BasicModel<Backend> model(load(), backend_options);
  model.warm_up();  // part of loading, as in llama.cpp
  v.load_time_s = std::chrono::duration<double>(Clock::now() - load_start).count();
  Backend& backend = model.transformer().backend();

  const Checkpoint& c = model.checkpoint();
  v.name = name;
  v.config = c.config;
  v.source = c.source;
  v.format = c.format;
  v.dtype = dtype_name(c.dtype);
  v.device = Backend::name();
  v.threads = backend.threads();
  v.context = backend.context();
  v.kv_cache = dtype_name(backend.kv_cache());
  v.decode_weight_bytes = decode_weight_bytes(c.weights);
  v.kv_bytes_per_position =
      backend.context() > 0 ? backend.kv_cache_bytes() / static_cast<std::uint64_t>(backend.context()) : 0;
  v.memory.weight_bytes = c.weights.bytes();
  v.memory.kv_cache_bytes = backend.kv_cache_bytes();
  v.memory.rss_after_load = rss_now_bytes();
  v.memory.peak_rss_after_load = rss_peak_bytes();
  v.bandwidth_before = probe_outside_peak(probe, v.memory);

  const int count = static_cast<int>(prompts.size());
  for (int i = 0; i < count; ++i) {
    if (progress) progress(ProgressEvent{name, i, count, nullptr});
    v.prompts.push_back(
        run_prompt(model, prompts[static_cast<std::size_t>(i)], options, options.seed + static_cast<std::uint64_t>(i)));
    if (progress) progress(ProgressEvent{name, i, count, &v.prompts.back()});
  }
  // Residency first: the probe's streaming read could evict mapped weights under pressure.
  const WeightResidency residency = weight_residency(c.config, c.weights, mapped_model_file(c));
  v.memory.weights_mapped_resident = residency.mapped_resident;
  v.memory.weights_anonymous = residency.anonymous;
  v.memory.rss_after_generation = rss_now_bytes();
  v.bandwidth_after = probe_outside_peak(probe, v.memory);
  v.memory.peak_rss = std::max(v.memory.peak_rss, rss_peak_bytes());
  v.memory.device = device_memory(backend);
  return v;
}

}  // namespace bench
}  // namespace smallcoder
