// The benchmark's JSON report in the original benchmark_variants.py structure (an object
// keyed by variant name, each {"summary", "detailed_results"}), with our extra fields
// (speeds, bandwidth limit, syntax, memory, run, machine) beside the original ones.
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "bench/results.hpp"
#include "json_writer.hpp"
#include "smallcoder/text/utf8.hpp"

namespace smallcoder::bench {

// The first `n` characters (code points) of UTF-8 text, as Python's text[:n]; a byte that
// is not part of a well-formed character counts as one.
inline std::string first_characters(std::string_view text, std::size_t n) {
  std::size_t pos = 0;
  for (std::size_t count = 0; count < n && pos < text.size(); ++count) {
    const std::size_t length = utf8_sequence_length(text.substr(pos));
    pos += length == 0 ? 1 : length;
  }
  return std::string(text.substr(0, pos));
}

namespace detail {

inline double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / kMiB; }

inline void write_memory_stats(JsonWriter& j, const MemoryStats& m) {
  j.begin_object();
  if (m.device) {
    j.key("device").text(m.device->device);
    j.key("allocated_mb").number(m.device->allocated_mb);
    j.key("reserved_mb").number(m.device->reserved_mb);
  } else {
    j.key("device").text("cpu");
  }
  j.key("peak_mb").number(m.peak_mb());
  j.key("rss_after_load_mb").number(mib(m.rss_after_load));
  j.key("peak_rss_after_load_mb").number(mib(m.peak_rss_after_load));
  j.key("rss_after_generation_mb").number(mib(m.rss_after_generation));
  j.key("peak_rss_mb").number(mib(m.peak_rss));
  j.key("peak_is_per_variant").boolean(m.peak_is_per_variant);
  j.key("weights_mb").number(mib(m.weight_bytes));
  j.key("weight_bytes").unsigned_integer(m.weight_bytes);
  j.key("weights_mapped_resident_mb").number(mib(m.weights_mapped_resident));
  j.key("weights_anonymous_mb").number(mib(m.weights_anonymous));
  j.key("kv_cache_mb").number(mib(m.kv_cache_bytes));
  j.key("kv_cache_bytes").unsigned_integer(m.kv_cache_bytes);
  j.end_object();
}

inline void write_config(JsonWriter& j, const ModelConfig& c) {
  j.begin_object();
  j.key("hidden_size").integer(c.hidden_size);
  j.key("num_layers").integer(c.num_layers);
  j.key("num_heads").integer(c.num_heads);
  j.key("num_kv_heads").integer(c.num_kv_heads);
  j.key("max_context").integer(c.max_context);
  j.key("intermediate_size").integer(c.intermediate_size);
  j.key("head_dim").integer(c.head_dim);
  j.key("vocab_size").integer(c.vocab_size);
  j.key("tie_word_embeddings").boolean(c.tie_word_embeddings);
  j.end_object();
}

inline void write_bandwidth_measurement(JsonWriter& j, const BandwidthMeasurement& b) {
  j.begin_object();
  j.key("device").text(b.device);
  j.key("gb_per_s").number(b.gb_per_s);
  j.key("buffer_bytes").unsigned_integer(b.buffer_bytes);
  j.key("threads").integer(b.threads);
  j.key("passes_gb_per_s").begin_array();
  for (double p : b.pass_gb_per_s) j.number(p);
  j.end_array();
  j.end_object();
}

inline void write_bandwidth_limit(JsonWriter& j, const VariantResult& v, const VariantSummary& s) {
  j.begin_object();
  j.key("bandwidth_gb_per_s").number(s.bandwidth_gb_per_s);  // the mean of the two below
  j.key("bandwidth_before");
  write_bandwidth_measurement(j, v.bandwidth_before);
  j.key("bandwidth_after");
  write_bandwidth_measurement(j, v.bandwidth_after);
  j.key("weight_bytes_per_token").unsigned_integer(v.decode_weight_bytes);
  j.key("kv_bytes_per_position").unsigned_integer(v.kv_bytes_per_position);
  j.key("mean_decode_context").number(s.mean_decode_context);
  j.key("kv_bytes_per_token").number(s.kv_bytes_per_token);
  j.key("bytes_per_token").number(s.bytes_per_token);
  j.key("limit_tokens_per_second").number(s.limit_tokens_per_second);
  j.key("decode_tokens_per_second").number(s.decode_tokens_per_second);
  j.key("achieved_share").number(s.achieved_share);
  j.end_object();
}

inline void write_run_settings(JsonWriter& j, const BenchmarkSettings& s) {
  j.begin_object();
  j.key("suite").text(s.suite);
  j.key("num_prompts").integer(s.num_prompts);
  j.key("max_tokens").integer(s.max_tokens);
  j.key("greedy").boolean(s.sampling.is_greedy());
  j.key("temperature").number(s.sampling.temperature);
  j.key("top_k").integer(s.sampling.top_k);
  j.key("top_p").number(s.sampling.top_p);
  j.key("seed").unsigned_integer(s.seed);
  j.key("device").text(s.device);
  j.key("dtype").text(s.dtype.empty() ? "as stored" : s.dtype);
  j.key("quick").boolean(s.quick);
  j.key("started_at").text(s.started_at);
  j.end_object();
}

inline void write_machine(JsonWriter& j, const MachineInfo& m) {
  j.begin_object();
  j.key("cpu_model").text(m.cpu_model);
  j.key("cpu_features").text_array(m.cpu_features);
  j.key("logical_cpus").integer(m.logical_cpus);
  j.key("physical_cores").integer(m.physical_cores);
  j.key("threads_used").integer(m.threads_used);
  j.key("ram_mb").number(mib(m.ram_bytes));
  j.key("last_level_cache_mb").number(mib(m.last_level_cache_bytes));
  j.key("os").text(m.os);
  j.key("compiler").text(m.compiler);
  j.key("build_flags").text_array(m.build_flags);
  j.end_object();
}

inline void optional_bool(JsonWriter& j, const std::optional<bool>& value) {
  if (value) {
    j.boolean(*value);
  } else {
    j.null();
  }
}

inline void optional_number(JsonWriter& j, const std::optional<double>& value) {
  if (value) {
    j.number(*value);
  } else {
    j.null();
  }
}

inline void write_tally(JsonWriter& j, const char* checked, const char* good, const char* rate, const Tally& t) {
  j.key(checked).integer(t.checked);
  j.key(good).integer(t.good);
  j.key(rate);
  optional_number(j, t.rate());
}

// The test, logic flow and pyflakes fields of one completion (null: not measured).
inline void write_code_quality(JsonWriter& j, const CodeQuality& c) {
  j.key("passed");
  optional_bool(j, c.passed);
  j.key("failure").text(c.failure);
  j.key("program");
  if (c.measured) {
    j.text(c.program);
  } else {
    j.null();
  }
  j.key("logic_flow");
  if (c.measured) {
    j.begin_object();
    const std::pair<const char*, bool> flags[] = {
        {"ok", c.logic_ok().value_or(false)}, {"parses", c.parses}, {"defined", c.defined}, {"has_body", c.has_body}};
    for (const auto& [name, value] : flags) j.key(name).boolean(value);
    j.key("control").text_array(c.control);
    j.key("all_paths_return");
    optional_bool(j, c.all_paths_return);
    j.end_object();
  } else {
    j.null();
  }
  j.key("pyflakes");
  if (c.measured && c.lint) {
    j.begin_array();
    for (const LintFinding& f : *c.lint) {
      j.begin_object().key("line").integer(f.line).key("kind").text(f.kind).key("message").text(f.message).end_object();
    }
    j.end_array();
  } else {
    j.null();
  }
  j.key("pyflakes_clean");
  optional_bool(j, c.lint_clean());
}

inline void write_prompt(JsonWriter& j, const PromptResult& p) {
  j.begin_object();
  // The original's fields.
  j.key("name").text(p.name);
  j.key("category").text(p.category);
  j.key("generated_text").text(first_characters(p.text, 200));
  j.key("tokens_generated").integer(p.tokens_generated);
  j.key("generation_time").number(p.generation_time_s);
  j.key("tokens_per_second").number(p.tokens_per_second());
  j.key("keyword_score").number(p.keywords.score());
  j.key("keywords_found").integer(static_cast<std::int64_t>(p.keywords.found.size()));
  j.key("keywords_total").integer(p.keywords.total);
  // Ours.
  j.key("completion").text(p.text);
  j.key("prompt").text(p.prompt);
  j.key("prompt_tokens").integer(p.prompt_tokens);
  j.key("keywords_expected").text_array(p.expected_keywords);
  j.key("keywords_matched").text_array(p.keywords.found);
  j.key("first_token_latency_s").number(p.first_token_latency_s);
  j.key("prefill_time_s").number(p.prefill_s);
  j.key("decode_time_s").number(p.decode_s);
  j.key("prompt_tokens_per_second").number(p.prompt_tokens_per_second());
  j.key("decode_tokens_per_second").number(p.decode_tokens_per_second());
  j.key("stop_reason").text(p.stop_reason);
  j.key("seed").unsigned_integer(p.seed);
  j.key("syntax").text(syntax_verdict_name(p.syntax));
  j.key("syntax_valid");
  if (p.syntax == SyntaxVerdict::not_measured) {
    j.null();
  } else {
    j.boolean(p.syntax == SyntaxVerdict::valid);
  }
  write_code_quality(j, p.code);
  j.end_object();
}

inline void write_variant(JsonWriter& j, const BenchmarkReport& r, const VariantResult& v) {
  const VariantSummary s = summarize(v);
  const std::int64_t params = v.config.parameter_count();
  j.key(v.name).begin_object();
  j.key("summary").begin_object();
  // The original's fields.
  j.key("variant").text(v.name);
  j.key("parameters").integer(params);
  j.key("parameters_m").number(std::round(static_cast<double>(params) / 1e4) / 100);
  j.key("memory_stats");
  write_memory_stats(j, v.memory);
  j.key("avg_keyword_score").number(s.avg_keyword_score);
  j.key("avg_generation_time").number(s.avg_generation_time_s);
  j.key("avg_tokens_per_second").number(s.avg_tokens_per_second);
  j.key("total_prompts").integer(s.prompts);
  j.key("config");
  write_config(j, v.config);
  // Ours.
  j.key("source").text(v.source);
  j.key("format").text(v.format);
  j.key("dtype").text(v.dtype);
  j.key("device").text(v.device);
  j.key("threads").integer(v.threads);
  j.key("kv_cache_positions").integer(v.context);
  j.key("kv_cache_type").text(v.kv_cache);
  j.key("load_time_s").number(v.load_time_s);
  j.key("total_tokens_generated").integer(s.tokens_generated);
  j.key("total_generation_time_s").number(s.total_generation_time_s);
  j.key("avg_decode_tokens_per_second").number(s.decode_tokens_per_second);
  j.key("avg_prompt_tokens_per_second").number(s.prompt_tokens_per_second);
  j.key("avg_first_token_latency_s").number(s.avg_first_token_latency_s);
  j.key("syntax_checked").integer(s.syntax_checked);
  j.key("syntax_valid").integer(s.syntax_valid);
  j.key("syntax_valid_rate");
  optional_number(j, s.syntax_valid_rate);
  write_tally(j, "tests_run", "tests_passed", "pass_at_1", s.tests);
  write_tally(j, "logic_flow_checked", "logic_flow_ok", "logic_flow_ok_rate", s.logic);
  write_tally(j, "pyflakes_checked", "pyflakes_clean", "pyflakes_clean_rate", s.lint);
  j.key("pyflakes_findings").integer(s.lint_findings);
  j.key("random_weights").boolean(v.format == "random");
  j.key("bandwidth_limit");
  write_bandwidth_limit(j, v, s);
  j.key("run");
  write_run_settings(j, r.settings);
  j.key("machine");
  write_machine(j, r.machine);
  j.end_object();
  j.key("detailed_results").begin_array();
  for (const PromptResult& p : v.prompts) write_prompt(j, p);
  j.end_array();
  j.end_object();
}

}  // namespace detail

inline std::string report_json(const BenchmarkReport& r) {
  JsonWriter j;
  j.begin_object();
  for (const VariantResult& v : r.variants) detail::write_variant(j, r, v);
  j.end_object();
  return j.str() + "\n";
}

}  // namespace smallcoder::bench
