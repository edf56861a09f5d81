// What a benchmark run measured: per prompt, per variant (its bandwidth included), and for
// the whole run (settings, machine), plus the per-variant summary every report prints,
// computed in one place so the table, the JSON and the markdown always agree.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/bandwidth.hpp"
#include "bench/execution.hpp"
#include "bench/keywords.hpp"
#include "bench/machine.hpp"
#include "bench/syntax.hpp"
#include "smallcoder/config.hpp"
#include "smallcoder/generate/sampler.hpp"

namespace smallcoder::bench {

constexpr double kMiB = 1024.0 * 1024.0;  // the original's "MB" is 2^20 bytes (torch's memory_allocated / 1024**2)

struct PromptResult {
  std::string name, category, prompt;
  std::vector<std::string> expected_keywords;
  std::string text;         // the whole completion (the JSON keeps its first 200 characters)
  std::string stop_reason;  // eos | max_tokens | stop_string | context_full
  std::uint64_t seed = 0;   // sampling seed of this prompt
  int prompt_tokens = 0;    // BOS included
  int tokens_generated = 0;
  double generation_time_s = 0;      // prompt submitted -> last token out (tokenizing included)
  double first_token_latency_s = 0;  // prompt submitted -> first token out
  double prefill_s = 0;              // the prompt's forward passes
  double decode_s = 0;               // first token out -> last token out
  KeywordScore keywords;
  SyntaxVerdict syntax = SyntaxVerdict::not_measured;
  CodeQuality code;  // the test's verdict, logic flow and pyflakes findings

  // The original's per-prompt speed: generated tokens / generation time.
  double tokens_per_second() const { return generation_time_s > 0 ? tokens_generated / generation_time_s : 0.0; }
  // One forward pass per token after the first (the prefill yields the first).
  int decode_steps() const { return tokens_generated > 1 ? tokens_generated - 1 : 0; }
  double decode_tokens_per_second() const { return decode_s > 0 ? decode_steps() / decode_s : 0.0; }
  double prompt_tokens_per_second() const { return prefill_s > 0 ? prompt_tokens / prefill_s : 0.0; }
  // Sum over the decode steps of the positions each attends to: step k (1-based) runs at
  // position prompt_tokens + k - 1 and reads prompt_tokens + k cached positions.
  double decode_context_sum() const {
    const double steps = decode_steps();
    return steps * prompt_tokens + steps * (steps + 1) / 2;
  }
};

// Device memory as torch.cuda reports it (allocated / reserved / peak), for GPU backends.
struct DeviceMemory {
  std::string device;  // the GPU's name
  double allocated_mb = 0, reserved_mb = 0, peak_mb = 0;
};

struct MemoryStats {
  std::uint64_t weight_bytes = 0;    // all weight data held (a tied embedding once)
  std::uint64_t kv_cache_bytes = 0;  // the whole cache, sized to the context
  // Where the weights live after generation (/proc/self/smaps): resident pages of the
  // mapped model file, and weight buffers of their own (converted, quantized, random).
  std::uint64_t weights_mapped_resident = 0;
  std::uint64_t weights_anonymous = 0;
  std::uint64_t rss_after_load = 0;  // process resident set once weights and cache exist
  std::uint64_t peak_rss_after_load = 0;
  std::uint64_t rss_after_generation = 0;
  // Highest resident set while this variant was loaded and ran, its bandwidth probes left out.
  std::uint64_t peak_rss = 0;
  bool peak_is_per_variant = false;    // false: the OS could not reset the peak, so it is the process's
  std::optional<DeviceMemory> device;  // GPU backends only

  // The "Memory (MB)" of the table: device peak on a GPU, peak resident set on the CPU.
  double peak_mb() const { return device ? device->peak_mb : static_cast<double>(peak_rss) / kMiB; }
};

struct VariantResult {
  std::string name;  // the variant, or the checkpoint's own name for --model PATH
  ModelConfig config;
  std::string source;  // path, or "random init (seed N)"
  std::string format;  // random | safetensors | gguf
  std::string dtype;   // of the weight matrices
  std::string device;  // the backend: cpu | cuda
  int threads = 0;
  int context = 0;                          // KV-cache positions (the model's full context)
  std::string kv_cache = "f32";             // the cache's element type
  double load_time_s = 0;                   // weights ready + model built (cache allocated)
  std::uint64_t decode_weight_bytes = 0;    // weight bytes one decode step reads
  std::uint64_t kv_bytes_per_position = 0;  // K and V of one position, all layers
  MemoryStats memory;
  // The memory bandwidth probed right before the first prompt and right after the last.
  BandwidthMeasurement bandwidth_before, bandwidth_after;
  std::vector<PromptResult> prompts;
};

// The bandwidth a variant's limit divides by: the mean of the probes around its prompts.
inline double variant_bandwidth_gb_per_s(const VariantResult& v) {
  return mean_gb_per_s(v.bandwidth_before, v.bandwidth_after);
}

struct BenchmarkSettings {
  std::string suite = "seed8";
  int num_prompts = 0;
  int max_tokens = 150;
  SamplingOptions sampling;  // greedy, temperature, top-k, top-p
  std::uint64_t seed = 0;    // random-init seed; prompt i samples with seed + i
  std::string device = "cpu";
  std::string dtype;  // --dtype, empty for each checkpoint's own
  bool quick = false;
  std::string started_at;  // UTC, ISO 8601
};

struct BenchmarkReport {
  BenchmarkSettings settings;
  MachineInfo machine;
  std::vector<VariantResult> variants;
};

// How many prompts had a figure measured, how many of those were good, and their share
// (absent when none was measured).
struct Tally {
  int checked = 0, good = 0;

  void add(const std::optional<bool>& measured) {
    if (!measured) return;
    ++checked;
    good += *measured ? 1 : 0;
  }
  std::optional<double> rate() const {
    if (checked == 0) return std::nullopt;
    return static_cast<double>(good) / checked;
  }
};

// Averages and the bandwidth limit of one variant.
struct VariantSummary {
  int prompts = 0;
  int tokens_generated = 0;
  double total_generation_time_s = 0;
  double avg_generation_time_s = 0;
  double avg_tokens_per_second = 0;     // the original's: total generated tokens / total generation time
  double decode_tokens_per_second = 0;  // decode steps / decode time, over all prompts
  double prompt_tokens_per_second = 0;  // prompt tokens / prefill time, over all prompts
  double avg_first_token_latency_s = 0;
  double avg_keyword_score = 0;
  int syntax_checked = 0;  // prompts whose syntax was measured
  int syntax_valid = 0;
  std::optional<double> syntax_valid_rate;  // absent when nothing was measured
  bool has_keywords = false;                // false for humaneval: no keyword lists, no keyword score
  Tally tests;  // tests run and passed: pass@1 with one completion per prompt (greedy or one sample)
  Tally logic;  // logic flow measured and ok
  Tally lint;   // pyflakes run and clean
  int lint_findings = 0;
  // Bandwidth limit: the variant's bandwidth / bytes read per decode token (weights + the
  // KV cache actually read at the mean decode context).
  double bandwidth_gb_per_s = 0;  // variant_bandwidth_gb_per_s
  double mean_decode_context = 0;
  double kv_bytes_per_token = 0;
  double bytes_per_token = 0;
  double limit_tokens_per_second = 0;
  double achieved_share = 0;  // decode_tokens_per_second / limit_tokens_per_second
};

inline VariantSummary summarize(const VariantResult& v) {
  VariantSummary s;
  s.prompts = static_cast<int>(v.prompts.size());
  double keyword_sum = 0, first_token_sum = 0, decode_time = 0, prefill_time = 0, context_sum = 0;
  long long decode_steps = 0, prompt_tokens = 0;
  for (const PromptResult& p : v.prompts) {
    s.tokens_generated += p.tokens_generated;
    s.total_generation_time_s += p.generation_time_s;
    keyword_sum += p.keywords.score();
    first_token_sum += p.first_token_latency_s;
    decode_steps += p.decode_steps();
    decode_time += p.decode_s;
    prompt_tokens += p.prompt_tokens;
    prefill_time += p.prefill_s;
    context_sum += p.decode_context_sum();
    if (p.syntax != SyntaxVerdict::not_measured) ++s.syntax_checked;
    if (p.syntax == SyntaxVerdict::valid) ++s.syntax_valid;
    s.has_keywords = s.has_keywords || p.keywords.total > 0;
    s.tests.add(p.code.passed);
    s.logic.add(p.code.logic_ok());
    s.lint.add(p.code.lint_clean());
    if (p.code.lint) s.lint_findings += static_cast<int>(p.code.lint->size());
  }
  if (s.prompts > 0) {
    s.avg_generation_time_s = s.total_generation_time_s / s.prompts;
    s.avg_keyword_score = keyword_sum / s.prompts;
    s.avg_first_token_latency_s = first_token_sum / s.prompts;
  }
  if (s.total_generation_time_s > 0) s.avg_tokens_per_second = s.tokens_generated / s.total_generation_time_s;
  if (decode_time > 0) s.decode_tokens_per_second = static_cast<double>(decode_steps) / decode_time;
  if (prefill_time > 0) s.prompt_tokens_per_second = static_cast<double>(prompt_tokens) / prefill_time;
  if (s.syntax_checked > 0) s.syntax_valid_rate = static_cast<double>(s.syntax_valid) / s.syntax_checked;
  if (decode_steps > 0) s.mean_decode_context = context_sum / static_cast<double>(decode_steps);
  s.kv_bytes_per_token = s.mean_decode_context * static_cast<double>(v.kv_bytes_per_position);
  s.bytes_per_token = static_cast<double>(v.decode_weight_bytes) + s.kv_bytes_per_token;
  s.bandwidth_gb_per_s = variant_bandwidth_gb_per_s(v);
  if (s.bytes_per_token > 0) s.limit_tokens_per_second = s.bandwidth_gb_per_s * 1e9 / s.bytes_per_token;
  if (s.limit_tokens_per_second > 0) s.achieved_share = s.decode_tokens_per_second / s.limit_tokens_per_second;
  return s;
}

// True when any variant ran on random weights (its quality figures are then noise).
inline bool any_random_weights(const BenchmarkReport& r) {
  for (const VariantResult& v : r.variants) {
    if (v.format == "random") return true;
  }
  return false;
}

}  // namespace smallcoder::bench
