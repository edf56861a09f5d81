// The markdown results document (--markdown), in the spirit of the original project's
// published results: test environment from the machine, the table, the bandwidth limit,
// the two charts drawn from the measured points, and quality per task.
#pragma once

#include <string>
#include <vector>

#include "bench/chart.hpp"
#include "bench/report_table.hpp"
#include "bench/results.hpp"

namespace smallcoder::bench {

namespace detail {

inline std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : separator) + s;
  return out;
}

// Markers A, B, C, ... in the report's variant order (then lower case, then digits).
inline char chart_marker(std::size_t i) {
  static const char markers[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return markers[i % (sizeof markers - 1)];
}

inline std::string chart_section(const std::string& title, const std::vector<ChartPoint>& points,
                                 const std::vector<std::string>& legend, const std::string& x_label,
                                 const std::string& y_label, double y_max) {
  std::string out = "## " + title + "\n\n```text\n" + text_scatter(points, x_label, y_label, 0, y_max) + "```\n\n";
  for (const std::string& line : legend) out += "- " + line + "\n";
  return out + "\n";
}

// Each variant's bandwidth: "SmallCoder-Tiny 56.8 GB/s, SmallCoder-Small 55.1 GB/s".
inline std::string variant_bandwidths(const BenchmarkReport& r) {
  std::vector<std::string> items;
  for (const VariantResult& v : r.variants)
    items.push_back(v.name + " " + format_bandwidth(variant_bandwidth_gb_per_s(v)));
  return join(items, ", ");
}

inline std::string environment_section(const BenchmarkReport& r) {
  const MachineInfo& m = r.machine;
  std::string cpu = m.cpu_model;
  if (!m.cpu_features.empty()) cpu += " (" + join(m.cpu_features, ", ") + ")";
  std::string out = "## Test environment\n\n| | |\n|---|---|\n";
  out += "| CPU | " + cpu + " |\n";
  out += "| Cores | " + std::to_string(m.physical_cores) + " physical, " + std::to_string(m.logical_cpus) +
         " logical; " + std::to_string(m.threads_used) + " threads used |\n";
  out += "| RAM | " + format_number("%.1f GiB", static_cast<double>(m.ram_bytes) / (kMiB * 1024)) + " |\n";
  out += "| Last-level cache | " + format_number("%.0f MiB", static_cast<double>(m.last_level_cache_bytes) / kMiB) +
         " |\n";
  out += "| OS | " + m.os + " |\n";
  out += "| Compiler | " + m.compiler + " |\n";
  out += "| Build | " + join(m.build_flags, ", ") + " |\n";
  out += "| Memory bandwidth | " + variant_bandwidths(r) + ": " + describe_variant_bandwidth(r) + " |\n";
  out += "| Device | " + r.settings.device + " |\n\n";
  return out;
}

inline std::string bandwidth_section(const BenchmarkReport& r) {
  std::string out =
      "## Speed and the memory-bandwidth limit\n\n"
      "Decoding one token reads every weight once plus the KV cache up to the current position, so memory "
      "bandwidth / bytes read per token is the fastest decode this machine allows. The bandwidth is " +
      describe_variant_bandwidth(r) +
      ": a machine's memory speed may drift during a run, so each limit rests on probes around its own decode.\n\n"
      "| Variant | Weights read / token (MB) | KV cache read / token (MB, mean context) | Bandwidth before / after | "
      "Bandwidth | BW limit | Decode | Share |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const VariantResult& v : r.variants) {
    const VariantSummary s = summarize(v);
    out += "| " + v.name + " | " + format_number("%.1f", static_cast<double>(v.decode_weight_bytes) / kMiB) + " | " +
           format_number("%.2f", s.kv_bytes_per_token / kMiB) + format_number(" (%.0f)", s.mean_decode_context) +
           " | " + format_number("%.1f", v.bandwidth_before.gb_per_s) + " / " +
           format_bandwidth(v.bandwidth_after.gb_per_s) + " | " + format_bandwidth(s.bandwidth_gb_per_s) + " | " +
           format_speed(s.limit_tokens_per_second) + " | " + format_speed(s.decode_tokens_per_second) + " | " +
           format_number("%.0f%%", s.achieved_share * 100) + " |\n";
  }
  return out + "\n";
}

inline std::string quality_section(const BenchmarkReport& r) {
  std::string out =
      "## Quality by task\n\nPer completion: the share of expected keywords found; the test (pass, FAIL); the logic "
      "flow (ok, no); pyflakes findings. n/m: not measured.\n\n| Task | Category | Keywords |";
  std::string rule = "|---|---|---|";
  for (const VariantResult& v : r.variants) {
    out += " " + v.name + " |";
    rule += "---:|";
  }
  out += "\n" + rule + "\n";
  if (r.variants.empty()) return out + "\n";
  const std::vector<PromptResult>& first = r.variants.front().prompts;
  for (std::size_t i = 0; i < first.size(); ++i) {
    std::string keywords;
    for (const std::string& k : first[i].expected_keywords) keywords += (keywords.empty() ? "`" : ", `") + k + "`";
    out += "| " + first[i].name + " | " + first[i].category + " | " + keywords + " |";
    for (const VariantResult& v : r.variants) {
      if (i >= v.prompts.size()) {
        out += " |";
        continue;
      }
      const PromptResult& p = v.prompts[i];
      const std::string keyword_share =
          p.keywords.total > 0 ? format_number("%.0f%%", p.keywords.score() * 100) : "n/a";
      out += " " + keyword_share + " / " + prompt_cell(p) + " |";
    }
    out += "\n";
  }
  return out + "\n";
}

}  // namespace detail

inline std::string report_markdown(const BenchmarkReport& r) {
  std::string out = "# SmallCoder benchmark results\n\n";
  out += "Measured by `benchmark_variants` (examples/benchmark.cpp)";
  if (!r.settings.started_at.empty()) out += " on " + r.settings.started_at;
  out += ": " + describe_run(r) + ".\n\n";
  out += detail::environment_section(r);
  out += "## Results\n\n" + render_markdown(results_table(r)) + "\n";
  for (const std::string& note : table_notes(r)) out += "- " + note + "\n";
  out += "\n" + detail::bandwidth_section(r);

  std::vector<ChartPoint> quality_points, memory_points;
  std::vector<std::string> quality_legend, memory_legend;
  for (std::size_t i = 0; i < r.variants.size(); ++i) {
    const VariantResult& v = r.variants[i];
    const VariantSummary s = summarize(v);
    const char marker = detail::chart_marker(i);
    const std::string speed = format_speed(s.avg_tokens_per_second);
    quality_points.push_back({marker, s.avg_tokens_per_second, s.avg_keyword_score * 100});
    quality_legend.push_back(std::string(1, marker) + " " + v.name + ": " + speed + ", quality " +
                             format_number("%.1f%%", s.avg_keyword_score * 100));
    memory_points.push_back({marker, v.memory.peak_mb(), s.avg_tokens_per_second});
    memory_legend.push_back(std::string(1, marker) + " " + v.name + ": " +
                            format_number("%.1f MB", v.memory.peak_mb()) + ", " + speed);
  }
  out += detail::chart_section("Speed vs Quality", quality_points, quality_legend, "Speed (tok/s)", "Quality (%)", 100);
  out += detail::chart_section("Memory vs Performance", memory_points, memory_legend, "Memory (MB, peak)",
                               "Speed (tok/s)", 0);
  out += detail::quality_section(r);
  return out;
}

}  // namespace smallcoder::bench
