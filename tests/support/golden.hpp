// Reads the PyTorch reference files of ../shared/models/<name>/ (golden.json and the
// raw float32 logits) and compares logits the way the acceptance criteria state.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "smallcoder/io/json.hpp"
#include "support/test_data.hpp"

namespace smallcoder::test {

struct GoldenCase {
  std::string text;
  std::vector<std::int32_t> ids;          // BOS + encoded prompt
  std::vector<std::int32_t> greedy_ids;   // 48-token greedy continuation
  std::string greedy_text;
  std::vector<float> last_logits;         // [vocab]
  double greedy_min_gap = 0;
};

inline std::vector<std::int32_t> int_list(const JsonValue& v, const std::string& where) {
  std::vector<std::int32_t> out;
  for (const JsonValue& x : v.as_array(where)) out.push_back(static_cast<std::int32_t>(x.as_int(where)));
  return out;
}

inline std::vector<GoldenCase> load_golden(const std::string& model, int vocab = 32000) {
  const std::string dir = data_path("models/" + model);
  const JsonValue doc = parse_json(read_file(dir + "/golden.json"), "golden.json");
  const std::string logits = read_file(dir + "/golden_last_logits.f32");
  std::vector<GoldenCase> cases;
  for (const JsonValue& c : doc.at("cases", "golden").as_array("cases")) {
    GoldenCase g;
    g.text = c.at("text", "case").as_string("text");
    g.ids = int_list(c.at("ids", "case"), "ids");
    g.greedy_ids = int_list(c.at("greedy_ids", "case"), "greedy_ids");
    g.greedy_text = c.at("greedy_text", "case").as_string("greedy_text");
    g.greedy_min_gap = c.at("greedy_min_gap", "case").as_double("greedy_min_gap");
    const std::size_t row = static_cast<std::size_t>(c.at("logits_row", "case").as_int("logits_row"));
    if ((row + 1) * vocab * sizeof(float) > logits.size()) throw std::runtime_error("golden logits file too short");
    g.last_logits.resize(static_cast<std::size_t>(vocab));
    std::memcpy(g.last_logits.data(), logits.data() + row * vocab * sizeof(float), vocab * sizeof(float));
    cases.push_back(std::move(g));
  }
  return cases;
}

// ||a - b|| / ||b|| over n values, in double.
inline double relative_l2(const float* a, const float* b, std::size_t n) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < n; ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace smallcoder::test
