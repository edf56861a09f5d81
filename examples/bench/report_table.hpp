// The benchmark's comparison table (the original's columns, the published table's,
// and the honest-speed ones: decode speed beside its memory-bandwidth limit), built once
// and rendered for the console or as markdown.
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/results.hpp"

namespace smallcoder::bench {

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> right_aligned;  // per column
};

inline std::string format_number(const char* pattern, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, pattern, value);
  return buffer;
}

// Parameters as the original prints them: "100.1M".
inline std::string format_params(std::int64_t params) {
  return format_number("%.1fM", static_cast<double>(params) / 1e6);
}

inline std::string format_speed(double tokens_per_second) {
  return format_number(tokens_per_second < 10 ? "%.2f tok/s" : "%.1f tok/s", tokens_per_second);
}

inline std::string format_bandwidth(double gb_per_s) { return format_number("%.1f GB/s", gb_per_s); }

inline std::string format_latency(double seconds) {
  return format_number(seconds < 0.01 ? "%.1f ms" : "%.0f ms", seconds * 1e3);
}

// A share as a percentage, or "n/m" when nothing was measured.
inline std::string format_share(const std::optional<double>& share) {
  return share ? format_number("%.0f%%", *share * 100) : std::string("n/m");
}

inline Table results_table(const BenchmarkReport& r) {
  Table t;
  t.header = {"Variant",  "Params", "Layers",   "Speed",       "Decode",        "Bandwidth",
              "BW limit", "Share",  "Prompt",   "First token", "Quality",       "Syntax",
              "Pass@1",   "Logic",  "Pyflakes", "Memory (MB)", "Inference Time"};
  t.right_aligned.assign(t.header.size(), true);
  t.right_aligned[0] = false;
  for (const VariantResult& v : r.variants) {
    const VariantSummary s = summarize(v);
    t.rows.push_back({
        v.name,
        format_params(v.config.parameter_count()),
        std::to_string(v.config.num_layers),
        format_speed(s.avg_tokens_per_second),
        format_speed(s.decode_tokens_per_second),
        format_bandwidth(s.bandwidth_gb_per_s),
        format_speed(s.limit_tokens_per_second),
        format_number("%.0f%%", s.achieved_share * 100),
        format_number("%.0f tok/s", s.prompt_tokens_per_second),
        format_latency(s.avg_first_token_latency_s),
        s.has_keywords ? format_number("%.1f%%", s.avg_keyword_score * 100) : std::string("n/a"),
        format_share(s.syntax_valid_rate),
        s.tests.rate() ? format_number("%.1f%%", *s.tests.rate() * 100) : std::string("n/m"),
        format_share(s.logic.rate()),
        format_share(s.lint.rate()),
        format_number("%.1f", v.memory.peak_mb()),
        format_number("%.2f s", s.avg_generation_time_s),
    });
  }
  return t;
}

inline std::string render_console(const Table& t) {
  std::vector<std::size_t> width(t.header.size());
  for (std::size_t c = 0; c < t.header.size(); ++c) {
    width[c] = t.header[c].size();
    for (const auto& row : t.rows) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(width[c] - cells[c].size(), ' ');
      if (c > 0) out += "  ";
      out += t.right_aligned[c] ? pad + cells[c] : cells[c] + pad;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::size_t total = 0;
  for (std::size_t w : width) total += w + 2;
  const std::string rule(total - 2, '-');
  std::string out = line(t.header) + rule + "\n";
  for (const auto& row : t.rows) out += line(row);
  return out;
}

inline std::string render_markdown(const Table& t) {
  auto line = [](const std::vector<std::string>& cells) {
    std::string out = "|";
    for (const std::string& c : cells) out += " " + c + " |";
    return out + "\n";
  };
  std::string out = line(t.header) + "|";
  for (bool right : t.right_aligned) out += right ? "---:|" : "---|";
  out += "\n";
  for (const auto& row : t.rows) out += line(row);
  return out;
}

// One line saying how the run was made ("suite seed8, 8 prompts x 150 tokens, ...").
inline std::string describe_run(const BenchmarkReport& r) {
  const BenchmarkSettings& s = r.settings;
  std::string sampling = s.sampling.is_greedy()
                             ? std::string("greedy")
                             : format_number("sampled (T %g", s.sampling.temperature) + ", top-k " +
                                   std::to_string(s.sampling.top_k) + format_number(", top-p %g)", s.sampling.top_p);
  return "suite " + s.suite + ", " + std::to_string(s.num_prompts) +
         (s.num_prompts == 1 ? " prompt x " : " prompts x ") + std::to_string(s.max_tokens) +
         (s.max_tokens == 1 ? " token, " : " tokens, ") + sampling + ", seed " + std::to_string(s.seed) + ", " +
         s.device + ", " + std::to_string(r.machine.threads_used) + " threads" + (s.quick ? ", --quick" : "");
}

// How a bandwidth probe read: "cpu: streaming read of 1024 MiB, 2 threads, best of 5".
inline std::string describe_probe(const BandwidthMeasurement& b) {
  return b.device + ": streaming read of " + format_number("%.0f MiB", static_cast<double>(b.buffer_bytes) / kMiB) +
         ", " + std::to_string(b.threads) + " threads, best of " + std::to_string(b.pass_gb_per_s.size());
}

// A measured bandwidth, with how it was measured.
inline std::string describe_bandwidth(const BandwidthMeasurement& b) {
  return format_bandwidth(b.gb_per_s) + " (" + describe_probe(b) + ")";
}

// What the Bandwidth column holds. Every variant's probes read the same buffer with the
// same threads, so the first one describes them all.
inline std::string describe_variant_bandwidth(const BenchmarkReport& r) {
  const std::string probe = r.variants.empty() ? "" : " (" + describe_probe(r.variants.front().bandwidth_before) + ")";
  return "the mean of two memory-bandwidth probes" + probe +
         " measured right before and right after each variant's prompts";
}

// What the columns mean; printed under the table wherever it appears.
inline std::vector<std::string> table_notes(const BenchmarkReport& r) {
  std::vector<std::string> notes = {
      "Speed: generated tokens / generation time (the original's); Decode: tokens after the first / their time; "
      "Prompt: prompt tokens / prefill time; First token: prompt submitted -> first token out.",
      "Bandwidth: " + describe_variant_bandwidth(r) +
          "; BW limit: Bandwidth / bytes read per decode token (weights + KV cache at the mean context); "
          "Share = Decode / BW limit.",
      "Quality: share of expected keywords in the completion (n/a: the suite has none); Syntax: completions that "
      "parse as Python. Memory: peak resident set (MB = 2^20 bytes).",
      "Pass@1: completions whose test passed, run in a sandboxed python3; Logic: completions whose definition "
      "parses, has a body beyond pass/docstring and, where a value is due, returns on every path; Pyflakes: "
      "completions with no pyflakes finding. n/m: not measured (no python3; Pyflakes: no pyflakes).",
  };
  const std::uint64_t cache = r.machine.last_level_cache_bytes;
  const bool fits_in_cache = std::any_of(r.variants.begin(), r.variants.end(),
                                         [&](const VariantResult& v) { return v.decode_weight_bytes < cache; });
  if (fits_in_cache) {
    notes.push_back("The CPU's last-level cache holds " + format_number("%.0f MiB", static_cast<double>(cache) / kMiB) +
                    ": weights smaller than that are read from cache, not DRAM, and can beat the DRAM limit "
                    "(Share over 100%).");
  }
  if (any_random_weights(r)) {
    notes.push_back(
        "Random initialisation: the Quality and Syntax columns measure nothing but noise; "
        "only trained weights (--model) give real quality numbers.");
  }
  return notes;
}

// One cell per prompt and variant: the test's verdict / logic flow / pyflakes findings
// ("-" when the program does not parse, so pyflakes could not read it).
inline std::string prompt_cell(const PromptResult& p) {
  const CodeQuality& c = p.code;
  const std::optional<bool> logic = c.logic_ok();
  return std::string(c.passed ? (*c.passed ? "pass" : "FAIL") : "n/m") + " / " +
         (logic ? (*logic ? "ok" : "no") : "n/m") + " / " +
         (!c.measured || !c.lint ? std::string("n/m")
          : c.parses             ? std::to_string(c.lint->size())
                                 : std::string("-"));
}

// Per prompt (rows) and variant (columns): test, logic flow, pyflakes findings.
inline Table prompts_table(const BenchmarkReport& r) {
  Table t;
  t.header = {"Prompt"};
  for (const VariantResult& v : r.variants) t.header.push_back(v.name);
  t.right_aligned.assign(t.header.size(), true);
  t.right_aligned[0] = false;
  if (r.variants.empty()) return t;
  const std::vector<PromptResult>& first = r.variants.front().prompts;
  for (std::size_t i = 0; i < first.size(); ++i) {
    std::vector<std::string> row = {first[i].name};
    for (const VariantResult& v : r.variants) row.push_back(i < v.prompts.size() ? prompt_cell(v.prompts[i]) : "");
    t.rows.push_back(row);
  }
  return t;
}

inline const char* kPromptsTableNote =
    "Per prompt: test (pass, FAIL) / logic flow (ok, no) / pyflakes findings (-: does not parse); n/m: not measured.";

inline std::string console_report(const BenchmarkReport& r) {
  std::string out = "SmallCoder benchmark: " + describe_run(r) + "\n\n" + render_console(results_table(r)) + "\n";
  for (const std::string& note : table_notes(r)) out += note + "\n";
  out += "\n" + render_console(prompts_table(r)) + kPromptsTableNote + "\n";
  return out;
}

}  // namespace smallcoder::bench
