// The benchmark's pieces: the keyword scorer against the original's scores of the 32
// PyTorch texts, the suites, the Python syntax check, the bandwidth-limit arithmetic, the
// memory probes, and the JSON / markdown reports of a real (tiny) in-process run.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bench/bandwidth.hpp"
#include "bench/cache_eviction.hpp"
#include "bench/chart.hpp"
#include "bench/keywords.hpp"
#include "bench/machine.hpp"
#include "bench/memory.hpp"
#include "bench/report_json.hpp"
#include "bench/report_markdown.hpp"
#include "bench/report_table.hpp"
#include "bench/runner.hpp"
#include "bench/suites.hpp"
#include "bench/syntax.hpp"
#include "smallcoder/smallcoder.hpp"
#include "support/emulated.hpp"
#include "support/model_shape.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using namespace smallcoder::bench;

namespace {

const BenchPrompt& seed8_prompt(const std::string& name) {
  static const std::vector<BenchPrompt> seed8 = suite_prompts(Suite::seed8);
  for (const BenchPrompt& p : seed8) {
    if (p.name == name) return p;
  }
  FAIL("no seed8 prompt named " << name);
  return seed8.front();
}

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0' && std::string(ci) != "false";
}

}  // namespace

TEST_CASE("keyword scorer reproduces the original's score of every PyTorch text") {
  int checked = 0;
  for (const char* model : {"smallcoder-nano", "smallcoder-tiny"}) {
    const std::string path = test::data_path(std::string("models/") + model + "/quality_pytorch.json");
    const JsonValue doc = parse_json(test::read_file(path), path);
    for (const char* mode : {"greedy", "sampled"}) {
      const JsonValue::Array& entries = doc.at(mode, path).as_array(mode);
      REQUIRE(entries.size() == 8);
      for (const JsonValue& e : entries) {
        const std::string& name = e.at("name", mode).as_string("name");
        CAPTURE(model);
        CAPTURE(mode);
        CAPTURE(name);
        const KeywordScore s = score_keywords(e.at("text", name).as_string("text"), seed8_prompt(name).keywords);
        CHECK(s.score() == e.at("score", name).as_double("score"));
        CHECK(s.total == static_cast<int>(seed8_prompt(name).keywords.size()));
        ++checked;
      }
    }
  }
  CHECK(checked == 32);
}

TEST_CASE("keyword scorer: case-insensitive substrings, as Python's lower()") {
  const std::vector<std::string> keywords = {"None", "if", "head", "Node"};
  const KeywordScore s = score_keywords("x = NONE\nnodes = []", keywords);
  CHECK(s.found == std::vector<std::string>{"None", "Node"});
  CHECK(s.total == 4);
  CHECK(s.score() == 0.5);
  // U+212A KELVIN SIGN lowers to 'k' in Python; U+0130 to "i" + combining dot, which
  // separates the i from what follows.
  CHECK(score_keywords("\xE2\x84\xAA"
                       "ey",
                       {"key"})
            .score() == 1.0);
  CHECK(score_keywords("\xC4\xB0"
                       "f",
                       {"if"})
            .score() == 0.0);
  CHECK(score_keywords("\xC4\xB0", {"i"}).score() == 1.0);
  CHECK(score_keywords("", {"if"}).score() == 0.0);
  CHECK(score_keywords("anything", {}).score() == 0.0);
}

TEST_CASE("suites: seed8 is the original's 8 prompts, tasks15 the 15 task types") {
  const std::vector<BenchPrompt> seed8 = suite_prompts(Suite::seed8);
  REQUIRE(seed8.size() == 8);
  const std::vector<std::string> names = {"fibonacci",   "binary_search", "quicksort",   "stack_class",
                                          "linked_list", "file_handling", "api_request", "list_comprehension"};
  for (std::size_t i = 0; i < names.size(); ++i) CHECK(seed8[i].name == names[i]);
  CHECK(seed8[0].prompt == "def fibonacci(n):");
  CHECK(seed8[0].keywords == std::vector<std::string>{"if", "return", "fibonacci", "n"});
  CHECK(seed8[1].prompt == "def binary_search(arr, target):");
  CHECK(seed8[1].keywords == std::vector<std::string>{"while", "mid", "left", "right", "return"});
  CHECK(seed8[2].prompt == "def quicksort(arr):");
  CHECK(seed8[2].keywords == std::vector<std::string>{"if", "len", "pivot", "return", "quicksort"});
  CHECK(seed8[3].prompt == "class Stack:");
  CHECK(seed8[3].keywords == std::vector<std::string>{"def", "__init__", "self", "push", "pop"});
  CHECK(seed8[4].prompt == "class LinkedList:\n    def __init__(self):");
  CHECK(seed8[4].keywords == std::vector<std::string>{"self", "head", "None", "Node"});
  CHECK(seed8[5].prompt == "def read_json_file(filename):");
  CHECK(seed8[5].keywords == std::vector<std::string>{"with", "open", "json", "return"});
  CHECK(seed8[6].prompt == "import requests\n\ndef fetch_user_data(user_id):");
  CHECK(seed8[6].keywords == std::vector<std::string>{"requests", "get", "return", "json"});
  CHECK(seed8[7].prompt == "# Create a list of even squares from 1 to 20\nresult =");
  CHECK(seed8[7].keywords == std::vector<std::string>{"for", "in", "range", "if"});

  const std::vector<BenchPrompt> tasks = suite_prompts(Suite::tasks15);
  REQUIRE(tasks.size() == 15);
  std::set<std::string> task_names;
  int algorithms = 0, structures = 0, practical = 0;
  for (const BenchPrompt& t : tasks) {
    CAPTURE(t.name);
    task_names.insert(t.name);
    CHECK(!t.prompt.empty());
    CHECK(t.keywords.size() >= 4);
    CHECK(t.keywords.size() <= 5);
    CHECK(!t.entry_point.empty());
    CHECK(t.test.find("def check(candidate)") != std::string::npos);  // examples/bench/tasks/NAME.py
    CHECK(t.stop.empty());
    CHECK(!t.humaneval);
    algorithms += t.category == "algorithms";
    structures += t.category == "data_structures";
    practical += t.category == "practical";
  }
  CHECK(task_names.size() == 15);
  CHECK(algorithms == 5);
  CHECK(structures == 5);
  CHECK(practical == 5);
  for (const char* n : {"merge_sort", "dynamic_programming", "queue_class", "binary_tree", "hash_table",
                        "database_operations", "string_processing"}) {
    CHECK(task_names.count(n) == 1);
  }
  // Every seed8 prompt is reused in tasks15, keywords and all.
  for (const BenchPrompt& s : seed8) {
    bool reused = false;
    for (const BenchPrompt& t : tasks)
      reused = reused || (t.name == s.name && t.prompt == s.prompt && t.keywords == s.keywords);
    CHECK_MESSAGE(reused, s.name);
  }
  const std::vector<BenchPrompt> all = suite_prompts(Suite::all);
  REQUIRE(all.size() == 15);
  for (std::size_t i = 0; i < 8; ++i) CHECK(all[i].name == seed8[i].name);
  CHECK(parse_suite("tasks15", "--suite") == Suite::tasks15);
  CHECK(parse_suite("humaneval", "--suite") == Suite::humaneval);
  CHECK_THROWS_AS(suite_prompts(Suite::humaneval), Error);  // its prompts come from the file
  CHECK_THROWS_WITH_AS(parse_suite("seed9", "--suite"),
                       "--suite: unknown suite 'seed9' (known: seed8, tasks15, all, humaneval)", Error);
}

TEST_CASE("syntax check: the source is cut at the last complete line") {
  CHECK(syntax_check_source("def f():", "\n    return 1\n    x = (", false) == "def f():\n    return 1\n");
  CHECK(syntax_check_source("def f():", "\n    return 1\n    x = (", true) == "def f():\n    return 1\n    x = (");
  CHECK(syntax_check_source("x =", " 1", false) == "x = 1");  // no newline at all: kept whole
}

TEST_CASE("syntax check: python3 parses known valid and invalid Python" * test::kNoKernels) {
  if (!python_available()) {
    if (in_ci()) FAIL("python3 is required in CI for the syntax check");
    MESSAGE("python3 not found: syntax check not measured, test skipped");
    CHECK(check_python_syntax("x = 1\n") == SyntaxVerdict::not_measured);
    return;
  }
  CHECK(check_python_syntax("def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1)\n") ==
        SyntaxVerdict::valid);
  CHECK(check_python_syntax("class Stack:\n    def __init__(self):\n        self.items = []\n") ==
        SyntaxVerdict::valid);
  CHECK(check_python_syntax("") == SyntaxVerdict::valid);
  CHECK(check_python_syntax("def f(:\n    pass\n") == SyntaxVerdict::invalid);
  CHECK(check_python_syntax("if x:\n") == SyntaxVerdict::invalid);  // a block needs a body
  CHECK(check_python_syntax("x = (1,\n") == SyntaxVerdict::invalid);
  CHECK(check_python_syntax(std::string("x = 1\0\n", 7)) == SyntaxVerdict::invalid);  // NUL byte
  CHECK(check_python_syntax("s = 'caf\xC3\xA9'\n") == SyntaxVerdict::valid);
}

TEST_CASE("text charts place measured points on zero-based axes") {
  CHECK(nice_axis_max(0) == 1);
  CHECK(nice_axis_max(7.3) == 10);
  CHECK(nice_axis_max(42.3) == 50);
  CHECK(nice_axis_max(120) == 200);
  CHECK(nice_axis_max(230) == 250);
  const std::string chart =
      text_scatter({{'A', 0, 0}, {'B', 10, 100}, {'C', 5, 50}}, "speed", "quality", 10, 100, 11, 5);
  // Rows: title, 5 grid rows (top first), axis, ticks, label.
  std::vector<std::string> lines;
  for (std::size_t start = 0, end; (end = chart.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(chart.substr(start, end - start));
  }
  REQUIRE(lines.size() == 9);
  CHECK(lines[0] == "quality");
  CHECK(lines[1] == "100 |          B");  // top right
  CHECK(lines[3] == " 50 |     C");       // the middle
  CHECK(lines[5] == "    |A");            // bottom left
  CHECK(lines[6] == "  0 +-----------");
  CHECK(lines[7] == "     0    5   10");
  // A taken cell pushes the point to the nearest free one in its row.
  const std::string crowded = text_scatter({{'A', 5, 50}, {'D', 5, 50}}, "x", "y", 10, 100, 11, 5);
  CHECK(crowded.find(" 50 |     AD") != std::string::npos);
}

TEST_CASE("first_characters counts code points, as Python's text[:n]") {
  CHECK(first_characters("abc", 2) == "ab");
  CHECK(first_characters("\xC3\xA9\xE2\x82\xAC"
                         "x",
                         2) == "\xC3\xA9\xE2\x82\xAC");
  CHECK(first_characters("ab", 200) == "ab");
  CHECK(first_characters("\xFF"
                         "a",
                         1) == "\xFF");
}

TEST_CASE("bandwidth limit: bandwidth / (weights + KV cache read at the mean context)") {
  VariantResult v;
  v.decode_weight_bytes = 1000000000;
  v.kv_bytes_per_position = 1000;
  PromptResult p;
  p.prompt_tokens = 10;
  p.tokens_generated = 5;  // 4 decode steps read 11, 12, 13, 14 positions
  p.decode_s = 2.0;
  p.prefill_s = 0.5;
  p.generation_time_s = 2.6;
  p.first_token_latency_s = 0.6;
  p.keywords.total = 4;
  p.keywords.found = {"a", "b", "c"};
  p.syntax = SyntaxVerdict::valid;
  v.prompts = {p};
  // The memory sped up during the decode: the limit rests on the mean of the two probes.
  v.bandwidth_before.gb_per_s = 8.0;
  v.bandwidth_after.gb_per_s = 12.0;
  CHECK(variant_bandwidth_gb_per_s(v) == 10.0);
  CHECK(p.decode_context_sum() == 50);
  const VariantSummary s = summarize(v);
  CHECK(s.bandwidth_gb_per_s == 10.0);
  CHECK(s.mean_decode_context == 12.5);
  CHECK(s.kv_bytes_per_token == 12500);
  CHECK(s.bytes_per_token == 1000012500.0);
  CHECK(s.limit_tokens_per_second == doctest::Approx(10e9 / 1000012500.0));
  CHECK(s.decode_tokens_per_second == 2.0);
  CHECK(s.achieved_share == doctest::Approx(2.0 / (10e9 / 1000012500.0)));
  CHECK(s.prompt_tokens_per_second == 20.0);
  CHECK(s.avg_tokens_per_second == doctest::Approx(5 / 2.6));
  CHECK(s.avg_keyword_score == 0.75);
  CHECK(s.syntax_valid_rate.value() == 1.0);
}

TEST_CASE("memory probes: resident set from the OS, weight bytes one decode step reads" * test::kNoKernels) {
  const std::uint64_t now = rss_now_bytes();
  CHECK(now > 0);
  CHECK(rss_peak_bytes() >= now);
  {
    std::vector<char> block(64 << 20, 1);  // 64 MiB, touched
    CHECK(rss_now_bytes() >= now + (60u << 20));
  }
  return_free_memory();
  // After a reset the peak is the resident set of now (whatever the allocator kept), not the 64 MiB high.
  const std::uint64_t before_reset = rss_peak_bytes();
  if (reset_peak_rss()) {
    CHECK(rss_peak_bytes() <= rss_now_bytes() + (4u << 20));
    CHECK(before_reset >= now + (60u << 20));
  }

  ModelConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 100;
  c.max_context = 32;
  ModelWeights tied = random_weights(c, 1, DType::bf16, 1);
  CHECK(decode_weight_bytes(tied) == tied.bytes());
  CHECK(tied.bytes() == static_cast<std::size_t>(c.parameter_count()) * 2);
  c.tie_word_embeddings = false;
  ModelWeights untied = random_weights(c, 1, DType::bf16, 1);
  CHECK(decode_weight_bytes(untied) == untied.bytes() - 100 * 64 * 2 + 64 * 2);
  // tensors(): embedding, final norm, nine per layer, and lm_head only when untied.
  CHECK(tied.tensors().size() == 2 + 9 * 2);
  REQUIRE(untied.tensors().size() == 3 + 9 * 2);
  CHECK(untied.tensors()[2] == &untied.lm_head);

  // bench_speed --cold flushes every tensor's lines from the caches: the bytes stay as they
  // were (a flush writes back; it never drops data).
  if (can_evict_from_caches()) {
    std::vector<std::vector<std::byte>> before;
    for (const TensorView* t : untied.tensors()) before.emplace_back(t->data, t->data + t->bytes());
    evict_weights(untied, 2);
    for (std::size_t i = 0; i < before.size(); ++i) {
      const TensorView* t = untied.tensors()[i];
      CHECK(std::memcmp(t->data, before[i].data(), t->bytes()) == 0);
    }
  }
}

TEST_CASE("bandwidth probe reads the whole buffer every pass") {
  const BandwidthMeasurement m = measure_read_bandwidth(std::uint64_t{16} << 20, 2, 3);
  CHECK(m.buffer_bytes == (std::uint64_t{16} << 20));
  CHECK(m.pass_gb_per_s.size() == 3);
  CHECK(m.gb_per_s > 0);
  for (double p : m.pass_gb_per_s) CHECK(p <= m.gb_per_s);
  CHECK(measure_read_bandwidth(1000, 1, 1).buffer_bytes == (std::uint64_t{1} << 20));  // at least one chunk
}

namespace {

ModelConfig toy_config(const char* name, int context) {
  return test::shaped_config(name, {64, 128, 2, 4, 2, 16, 32000, context});
}

std::shared_ptr<const Tokenizer> test_tokenizer() {
  return std::make_shared<const Tokenizer>(Tokenizer::from_file(test::data_path("tokenizer/tokenizer.model")));
}

// A probe result of our choosing, so that no test depends on the machine's speed.
BandwidthMeasurement fixed_bandwidth(double gb_per_s) {
  BandwidthMeasurement m;
  m.gb_per_s = gb_per_s;
  m.buffer_bytes = std::uint64_t{8} << 20;
  m.threads = 2;
  m.pass_gb_per_s = {gb_per_s - 1, gb_per_s};
  return m;
}

// The toy variants' probes, in call order: Toy before and after, then Toy-LC's.
constexpr double kToyBandwidths[] = {40, 60, 30, 50};

// Two toy "variants" (twins: same weights, different context) through the real runner.
BenchmarkReport toy_report() {
  auto tokenizer = test_tokenizer();
  std::vector<BenchPrompt> prompts = suite_prompts(Suite::seed8);
  prompts.resize(2);
  RunOptions run;
  run.max_tokens = 6;
  BackendOptions backend;
  backend.threads = 2;
  BenchmarkReport r;
  r.settings.num_prompts = 2;
  r.settings.max_tokens = 6;
  r.settings.started_at = "2025-01-01T00:00:00Z";
  r.machine = describe_machine(2);
  std::size_t probes = 0;
  const BandwidthProbe probe = [&] { return fixed_bandwidth(kToyBandwidths[probes++]); };
  for (const auto& [name, context] : {std::pair<const char*, int>{"Toy", 64}, {"Toy-LC", 256}}) {
    const ModelConfig config = toy_config(name, context);
    r.variants.push_back(benchmark_model<CpuBackend>(
        name, [&] { return random_checkpoint(config, 7, DType::bf16, tokenizer, 2); }, prompts, run, backend, probe));
  }
  CHECK(probes == 4);
  return r;
}

bool same_bytes(const TensorView& a, const TensorView& b) {
  return a.dtype == b.dtype && a.bytes() == b.bytes() && std::memcmp(a.data, b.data, a.bytes()) == 0;
}

const JsonValue& field(const JsonValue& object, const char* key, JsonValue::Kind kind) {
  const JsonValue& v = object.at(key, "report");
  CHECK_MESSAGE(v.kind() == kind, key << " is " << JsonValue::kind_name(v.kind()));
  return v;
}

double number(const JsonValue& object, const char* key) {
  return field(object, key, JsonValue::Kind::number).as_double(key);
}
std::int64_t integer(const JsonValue& object, const char* key) {
  return field(object, key, JsonValue::Kind::number).as_int(key);
}
const std::string& text(const JsonValue& object, const char* key) {
  return field(object, key, JsonValue::Kind::string).as_string(key);
}

}  // namespace

TEST_CASE("twins: random weights do not depend on the context, so the LC twin may reuse them" * test::kNoKernels) {
  ModelWeights short_context = random_weights(toy_config("Toy", 64), 3, DType::bf16, 2);
  ModelWeights long_context = random_weights(toy_config("Toy-LC", 256), 3, DType::bf16, 1);
  CHECK(same_bytes(short_context.embed, long_context.embed));
  CHECK(same_bytes(short_context.final_norm, long_context.final_norm));
  for (std::size_t l = 0; l < short_context.layers.size(); ++l) {
    const LayerWeights &a = short_context.layers[l], &b = long_context.layers[l];
    CHECK(same_bytes(a.wq, b.wq));
    CHECK(same_bytes(a.wk, b.wk));
    CHECK(same_bytes(a.wv, b.wv));
    CHECK(same_bytes(a.wo, b.wo));
    CHECK(same_bytes(a.w_gate, b.w_gate));
    CHECK(same_bytes(a.w_up, b.w_up));
    CHECK(same_bytes(a.w_down, b.w_down));
    CHECK(same_bytes(a.attn_norm, b.attn_norm));
    CHECK(same_bytes(a.ffn_norm, b.ffn_norm));
  }
}

TEST_CASE("runner probes the bandwidth right before the first prompt and right after the last, outside the peak") {
  const auto tokenizer = test_tokenizer();
  std::vector<BenchPrompt> prompts = suite_prompts(Suite::seed8);
  prompts.resize(2);
  RunOptions run;
  run.max_tokens = 2;
  run.check_syntax = false;
  run.check_code = false;
  BackendOptions backend;
  backend.threads = 2;
  const ModelConfig config = toy_config("Toy", 64);
  constexpr std::uint64_t kProbeBytes = std::uint64_t{128} << 20;
  std::vector<std::string> events;
  std::uint64_t resident_after_probe = 0;  // what stays resident once a probe's buffer is freed
  const BandwidthProbe probe = [&] {
    events.push_back("probe");
    CHECK(measure_read_bandwidth(kProbeBytes, 2, 1).buffer_bytes == kProbeBytes);  // a real probe's buffer
    resident_after_probe = std::max(resident_after_probe, rss_now_bytes());
    return fixed_bandwidth(events.size() == 1 ? 40 : 60);
  };
  const ProgressCallback progress = [&](const ProgressEvent& e) {
    events.push_back((e.finished ? "done " : "start ") + std::to_string(e.prompt_index));
  };
  const VariantResult v = benchmark_model<CpuBackend>(
      "Toy", [&] { return random_checkpoint(config, 7, DType::bf16, tokenizer, 2); }, prompts, run, backend, probe,
      progress);
  CHECK(events == std::vector<std::string>{"probe", "start 0", "done 0", "start 1", "done 1", "probe"});
  CHECK(v.bandwidth_before.gb_per_s == 40);
  CHECK(v.bandwidth_after.gb_per_s == 60);
  CHECK(summarize(v).bandwidth_gb_per_s == 50);
  // The probe's buffer is not the variant's memory: its peak leaves out the 128 MiB the
  // probe held for a moment (an allocator that keeps freed memory resident, as ASan's
  // quarantine does, keeps it in resident_after_probe). Where the OS cannot reset the peak,
  // it is the process's, the probe's buffer included.
  CHECK(v.memory.peak_rss >= v.memory.peak_rss_after_load);
  if (v.memory.peak_is_per_variant) {
    CHECK(v.memory.peak_rss < std::max(resident_after_probe, v.memory.rss_after_load) + kProbeBytes / 2);
  } else {
    CHECK(v.memory.peak_rss >= v.memory.rss_after_load + kProbeBytes / 2);
  }
}

TEST_CASE("JSON report: the original's structure, every field, from a real run") {
  const BenchmarkReport r = toy_report();
  const JsonValue doc = parse_json(report_json(r), "report");
  const JsonValue::Object& variants = doc.as_object("report");
  REQUIRE(variants.size() == 2);
  CHECK(variants[0].first == "Toy");
  CHECK(variants[1].first == "Toy-LC");
  for (std::size_t vi = 0; vi < 2; ++vi) {
    const VariantResult& v = r.variants[vi];
    const VariantSummary s = summarize(v);
    const JsonValue& entry = variants[vi].second;
    CAPTURE(v.name);
    CHECK(entry.as_object("variant").size() == 2);
    const JsonValue& summary = field(entry, "summary", JsonValue::Kind::object);
    // The original's summary fields.
    CHECK(text(summary, "variant") == v.name);
    CHECK(integer(summary, "parameters") == v.config.parameter_count());
    CHECK(number(summary, "parameters_m") == doctest::Approx(v.config.parameter_count() / 1e6).epsilon(1e-3));
    const JsonValue& memory = field(summary, "memory_stats", JsonValue::Kind::object);
    CHECK(text(memory, "device") == "cpu");
    CHECK(number(memory, "peak_mb") > 0);
    CHECK(number(memory, "peak_mb") == doctest::Approx(number(memory, "peak_rss_mb")));
    CHECK(number(memory, "rss_after_load_mb") > 0);
    CHECK(number(memory, "peak_rss_after_load_mb") >= number(memory, "rss_after_load_mb") - 0.01);
    CHECK(number(memory, "rss_after_generation_mb") > 0);
    CHECK(number(memory, "peak_rss_mb") >= number(memory, "peak_rss_after_load_mb") - 0.01);
    field(memory, "peak_is_per_variant", JsonValue::Kind::boolean);
    CHECK(number(memory, "weights_mb") == doctest::Approx(v.config.parameter_count() * 2 / kMiB).epsilon(1e-5));
    CHECK(integer(memory, "weight_bytes") == v.config.parameter_count() * 2);
    // Random weights are buffers of their own: no file is mapped.
    CHECK(number(memory, "weights_anonymous_mb") == doctest::Approx(number(memory, "weights_mb")));
    CHECK(number(memory, "weights_mapped_resident_mb") == 0);
    // fp32 K and V for every layer and position.
    const std::int64_t kv = 2LL * v.config.num_layers * v.config.kv_dim() * v.config.max_context * 4;
    CHECK(integer(memory, "kv_cache_bytes") == kv);
    CHECK(number(memory, "kv_cache_mb") == doctest::Approx(kv / kMiB).epsilon(1e-5));
    CHECK(number(summary, "avg_keyword_score") == doctest::Approx(s.avg_keyword_score).epsilon(1e-5));
    CHECK(number(summary, "avg_generation_time") > 0);
    CHECK(number(summary, "avg_tokens_per_second") > 0);
    CHECK(integer(summary, "total_prompts") == 2);
    const JsonValue& config = field(summary, "config", JsonValue::Kind::object);
    CHECK(integer(config, "hidden_size") == 64);
    CHECK(integer(config, "num_layers") == 2);
    CHECK(integer(config, "num_heads") == 4);
    CHECK(integer(config, "num_kv_heads") == 2);
    CHECK(integer(config, "max_context") == v.config.max_context);
    CHECK(integer(config, "intermediate_size") == 128);
    CHECK(integer(config, "head_dim") == 16);
    CHECK(integer(config, "vocab_size") == 32000);
    CHECK(field(config, "tie_word_embeddings", JsonValue::Kind::boolean).as_bool("tie"));
    // Ours.
    CHECK(text(summary, "source") == "random init (seed 7)");
    CHECK(text(summary, "format") == "random");
    CHECK(text(summary, "dtype") == "bf16");
    CHECK(text(summary, "device") == "cpu");
    CHECK(integer(summary, "threads") == 2);
    CHECK(integer(summary, "kv_cache_positions") == v.config.max_context);
    CHECK(text(summary, "kv_cache_type") == "f32");
    CHECK(number(summary, "load_time_s") > 0);
    CHECK(integer(summary, "total_tokens_generated") == s.tokens_generated);
    CHECK(s.tokens_generated > 0);
    CHECK(number(summary, "total_generation_time_s") > 0);
    CHECK(number(summary, "avg_decode_tokens_per_second") >= 0);
    CHECK(number(summary, "avg_prompt_tokens_per_second") > 0);
    CHECK(number(summary, "avg_first_token_latency_s") > 0);
    CHECK(integer(summary, "syntax_checked") == s.syntax_checked);
    CHECK(integer(summary, "syntax_valid") == s.syntax_valid);
    const JsonValue& rate = summary.at("syntax_valid_rate", "summary");
    CHECK((s.syntax_valid_rate ? rate.is_number() : rate.is_null()));
    CHECK(integer(summary, "pyflakes_findings") == s.lint_findings);
    const struct {
      const char *checked, *good, *rate;
      const Tally& tally;
    } tallies[] = {{"tests_run", "tests_passed", "pass_at_1", s.tests},
                   {"logic_flow_checked", "logic_flow_ok", "logic_flow_ok_rate", s.logic},
                   {"pyflakes_checked", "pyflakes_clean", "pyflakes_clean_rate", s.lint}};
    for (const auto& t : tallies) {
      CAPTURE(t.rate);
      CHECK(integer(summary, t.checked) == t.tally.checked);
      CHECK(integer(summary, t.good) == t.tally.good);
      const JsonValue& rate = summary.at(t.rate, "summary");
      CHECK((t.tally.rate() ? rate.is_number() : rate.is_null()));
      if (t.tally.rate()) CHECK(rate.as_double(t.rate) == doctest::Approx(*t.tally.rate()));
    }
    if (python_available()) {
      CHECK(s.tests.checked == 2);  // both seed8 prompts have a test
      CHECK(s.logic.checked == 2);
    }
    CHECK(field(summary, "random_weights", JsonValue::Kind::boolean).as_bool("random_weights"));
    const JsonValue& limit = field(summary, "bandwidth_limit", JsonValue::Kind::object);
    // The variant's own probes, right before and right after its prompts, and their mean.
    const double before = kToyBandwidths[2 * vi], after = kToyBandwidths[2 * vi + 1];
    CHECK(number(limit, "bandwidth_gb_per_s") == doctest::Approx((before + after) / 2));
    const JsonValue* probes[] = {&field(limit, "bandwidth_before", JsonValue::Kind::object),
                                 &field(limit, "bandwidth_after", JsonValue::Kind::object)};
    for (const JsonValue* bw : probes) {
      const double expected = bw == probes[0] ? before : after;
      CHECK(text(*bw, "device") == "cpu");
      CHECK(number(*bw, "gb_per_s") == expected);
      CHECK(integer(*bw, "buffer_bytes") == (8 << 20));
      CHECK(integer(*bw, "threads") == 2);
      const JsonValue::Array& passes = field(*bw, "passes_gb_per_s", JsonValue::Kind::array).as_array("passes");
      REQUIRE(passes.size() == 2);
      CHECK(passes[0].as_double("pass") == expected - 1);
      CHECK(passes[1].as_double("pass") == expected);
      CHECK(bw->as_object("bandwidth").size() == 5);
    }
    CHECK(s.limit_tokens_per_second == doctest::Approx((before + after) / 2 * 1e9 / s.bytes_per_token));
    CHECK(integer(limit, "weight_bytes_per_token") == v.config.parameter_count() * 2);
    CHECK(integer(limit, "kv_bytes_per_position") == 2LL * v.config.num_layers * v.config.kv_dim() * 4);
    CHECK(number(limit, "mean_decode_context") == doctest::Approx(s.mean_decode_context).epsilon(1e-5));
    CHECK(number(limit, "kv_bytes_per_token") == doctest::Approx(s.kv_bytes_per_token).epsilon(1e-5));
    CHECK(number(limit, "bytes_per_token") == doctest::Approx(s.bytes_per_token).epsilon(1e-5));
    CHECK(number(limit, "limit_tokens_per_second") == doctest::Approx(s.limit_tokens_per_second).epsilon(1e-5));
    CHECK(number(limit, "decode_tokens_per_second") == doctest::Approx(s.decode_tokens_per_second).epsilon(1e-5));
    CHECK(number(limit, "achieved_share") == doctest::Approx(s.achieved_share).epsilon(1e-5));
    const JsonValue& run = field(summary, "run", JsonValue::Kind::object);
    CHECK(text(run, "suite") == "seed8");
    CHECK(integer(run, "num_prompts") == 2);
    CHECK(integer(run, "max_tokens") == 6);
    CHECK(!field(run, "greedy", JsonValue::Kind::boolean).as_bool("greedy"));
    CHECK(number(run, "temperature") == doctest::Approx(0.7));
    CHECK(integer(run, "top_k") == 50);
    CHECK(number(run, "top_p") == doctest::Approx(0.9));
    CHECK(integer(run, "seed") == 0);
    CHECK(text(run, "device") == "cpu");
    CHECK(text(run, "dtype") == "as stored");
    CHECK(!field(run, "quick", JsonValue::Kind::boolean).as_bool("quick"));
    CHECK(text(run, "started_at") == "2025-01-01T00:00:00Z");
    const JsonValue& machine = field(summary, "machine", JsonValue::Kind::object);
    CHECK(!text(machine, "cpu_model").empty());
    field(machine, "cpu_features", JsonValue::Kind::array);
    CHECK(integer(machine, "logical_cpus") >= 1);
    CHECK(integer(machine, "physical_cores") >= 1);
    CHECK(integer(machine, "threads_used") == 2);
    CHECK(number(machine, "ram_mb") > 0);
    CHECK(number(machine, "last_level_cache_mb") >= 0);
    CHECK(!text(machine, "os").empty());
    CHECK(!text(machine, "compiler").empty());
    CHECK(!field(machine, "build_flags", JsonValue::Kind::array).as_array("flags").empty());
    // No field untested.
    CHECK(summary.as_object("summary").size() == 39);
    CHECK(memory.as_object("memory").size() == 13);
    CHECK(config.as_object("config").size() == 9);
    CHECK(limit.as_object("limit").size() == 11);
    CHECK(run.as_object("run").size() == 12);
    CHECK(machine.as_object("machine").size() == 10);

    const JsonValue::Array& details = field(entry, "detailed_results", JsonValue::Kind::array).as_array("details");
    REQUIRE(details.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
      const PromptResult& p = v.prompts[i];
      const JsonValue& d = details[i];
      CAPTURE(p.name);
      // The original's fields.
      CHECK(text(d, "name") == p.name);
      CHECK(text(d, "category") == "algorithms");
      CHECK(text(d, "generated_text") == first_characters(p.text, 200));
      CHECK(integer(d, "tokens_generated") == p.tokens_generated);
      CHECK(p.tokens_generated >= 1);
      CHECK(p.tokens_generated <= 6);
      CHECK(number(d, "generation_time") == doctest::Approx(p.generation_time_s).epsilon(1e-5));
      CHECK(number(d, "tokens_per_second") == doctest::Approx(p.tokens_per_second()).epsilon(1e-5));
      CHECK(number(d, "keyword_score") == doctest::Approx(p.keywords.score()).epsilon(1e-5));
      CHECK(integer(d, "keywords_found") == static_cast<std::int64_t>(p.keywords.found.size()));
      CHECK(integer(d, "keywords_total") == static_cast<std::int64_t>(suite_prompts(Suite::seed8)[i].keywords.size()));
      // Ours.
      CHECK(text(d, "completion") == p.text);
      CHECK(text(d, "prompt") == suite_prompts(Suite::seed8)[i].prompt);
      CHECK(integer(d, "prompt_tokens") == p.prompt_tokens);
      CHECK(p.prompt_tokens >= 2);
      CHECK(field(d, "keywords_expected", JsonValue::Kind::array).as_array("k").size() ==
            suite_prompts(Suite::seed8)[i].keywords.size());
      CHECK(field(d, "keywords_matched", JsonValue::Kind::array).as_array("k").size() == p.keywords.found.size());
      CHECK(number(d, "first_token_latency_s") > 0);
      CHECK(number(d, "prefill_time_s") > 0);
      CHECK(number(d, "decode_time_s") >= 0);
      CHECK(number(d, "prompt_tokens_per_second") > 0);
      CHECK(number(d, "decode_tokens_per_second") >= 0);
      CHECK(text(d, "stop_reason") == p.stop_reason);
      CHECK(integer(d, "seed") == static_cast<std::int64_t>(i));
      CHECK(text(d, "syntax") == syntax_verdict_name(p.syntax));
      const JsonValue& valid = d.at("syntax_valid", "detail");
      CHECK((p.syntax == SyntaxVerdict::not_measured ? valid.is_null() : valid.is_bool()));
      if (python_available() || in_ci()) CHECK(p.syntax != SyntaxVerdict::not_measured);
      // The code's figures: null when not measured.
      CHECK(p.code.measured == python_available());
      const JsonValue& passed = d.at("passed", "detail");
      CHECK((p.code.passed ? passed.as_bool("passed") == *p.code.passed : passed.is_null()));
      CHECK(text(d, "failure") == p.code.failure);
      const JsonValue& logic = d.at("logic_flow", "detail");
      const JsonValue& lint = d.at("pyflakes", "detail");
      const JsonValue& clean = d.at("pyflakes_clean", "detail");
      if (p.code.measured) {
        CHECK(text(d, "program").rfind(p.prompt, 0) == 0);
        CHECK(field(logic, "ok", JsonValue::Kind::boolean).as_bool("ok") == p.code.logic_ok().value());
        CHECK(field(logic, "parses", JsonValue::Kind::boolean).as_bool("parses") == p.code.parses);
        CHECK(field(logic, "defined", JsonValue::Kind::boolean).as_bool("defined") == p.code.defined);
        CHECK(field(logic, "has_body", JsonValue::Kind::boolean).as_bool("has_body") == p.code.has_body);
        CHECK(field(logic, "control", JsonValue::Kind::array).as_array("control").size() == p.code.control.size());
        CHECK((p.code.all_paths_return ? logic.at("all_paths_return", "logic").is_bool()
                                       : logic.at("all_paths_return", "logic").is_null()));
        CHECK(logic.as_object("logic").size() == 6);
        CHECK((p.code.lint ? lint.as_array("pyflakes").size() == p.code.lint->size() : lint.is_null()));
        CHECK((p.code.lint_clean() ? clean.as_bool("clean") == *p.code.lint_clean() : clean.is_null()));
      } else {
        CHECK(d.at("program", "detail").is_null());
        CHECK(logic.is_null());
        CHECK(lint.is_null());
        CHECK(clean.is_null());
      }
      CHECK(d.as_object("detail").size() == 29);  // no field untested
    }
  }
  // The twins share weights and seeds, so they generate the same text.
  CHECK(r.variants[0].prompts[0].text == r.variants[1].prompts[0].text);
}

TEST_CASE("console table and markdown report show every variant and the measured points") {
  const BenchmarkReport r = toy_report();
  const std::string table = console_report(r);
  CHECK(table.find("Variant") != std::string::npos);
  CHECK(table.find("BW limit") != std::string::npos);
  // Each variant's bandwidth (the mean of its two probes) stands right before its limit.
  const Table results = results_table(r);
  const auto bandwidth_column = std::find(results.header.begin(), results.header.end(), "Bandwidth");
  REQUIRE(bandwidth_column + 1 < results.header.end());
  CHECK(*(bandwidth_column + 1) == "BW limit");
  const auto bandwidth_index = static_cast<std::size_t>(bandwidth_column - results.header.begin());
  CHECK(results.rows[0][bandwidth_index] == "50.0 GB/s");
  CHECK(results.rows[1][bandwidth_index] == "40.0 GB/s");
  CHECK(results.rows[1][bandwidth_index + 1] == format_speed(summarize(r.variants[1]).limit_tokens_per_second));
  const std::string probes =
      "the mean of two memory-bandwidth probes (cpu: streaming read of 8 MiB, 2 threads, best of 2) measured right "
      "before and right after each variant's prompts";
  CHECK(table.find("Bandwidth: " + probes + "; BW limit: Bandwidth / bytes read per decode token") !=
        std::string::npos);
  CHECK(table.find("\nToy ") != std::string::npos);
  CHECK(table.find("\nToy-LC ") != std::string::npos);
  CHECK(table.find(format_params(r.variants[0].config.parameter_count())) != std::string::npos);
  CHECK(table.find("measure nothing but noise") != std::string::npos);
  for (const char* column : {"Pass@1", "Logic", "Pyflakes"}) CHECK(table.find(column) != std::string::npos);
  // The per-prompt table: one row per prompt, a cell per variant.
  const std::string cell = prompt_cell(r.variants[0].prompts[0]);
  CHECK(table.find("\nfibonacci ") != std::string::npos);
  CHECK(table.find(cell) != std::string::npos);
  CHECK(prompt_cell(PromptResult{}) == "n/m / n/m / n/m");

  const std::string md = report_markdown(r);
  const std::size_t speed = md.find("## Speed vs Quality\n\n```text\n");
  const std::size_t memory = md.find("## Memory vs Performance\n\n```text\n");
  REQUIRE(speed != std::string::npos);
  REQUIRE(memory != std::string::npos);
  const std::string speed_chart = md.substr(speed, memory - speed);
  const std::string memory_chart = md.substr(memory, md.find("## Quality by task") - memory);
  for (std::size_t i = 0; i < 2; ++i) {
    const VariantResult& v = r.variants[i];
    const VariantSummary s = summarize(v);
    const std::string marker(1, static_cast<char>('A' + i));
    CAPTURE(v.name);
    // The markers are on the grids, and the legends give the measured values.
    const std::string speed_grid = speed_chart.substr(0, speed_chart.find("```\n\n"));
    CHECK(speed_grid.find(marker) != std::string::npos);
    CHECK(speed_chart.find("- " + marker + " " + v.name + ": " + format_speed(s.avg_tokens_per_second) + ", quality " +
                           format_number("%.1f%%", s.avg_keyword_score * 100)) != std::string::npos);
    CHECK(memory_chart.find("- " + marker + " " + v.name + ": " + format_number("%.1f MB", v.memory.peak_mb()) + ", " +
                            format_speed(s.avg_tokens_per_second)) != std::string::npos);
  }
  // The chart's markers sit where the values say: the same cell the chart function picks.
  const VariantSummary a = summarize(r.variants[0]);
  const double x_max = nice_axis_max(std::max(a.avg_tokens_per_second, summarize(r.variants[1]).avg_tokens_per_second));
  const int column = chart_cell(a.avg_tokens_per_second, x_max, 57);
  const int row = 14 - chart_cell(a.avg_keyword_score * 100, 100, 15);
  std::vector<std::string> lines;
  const std::size_t grid_start = speed_chart.find("Quality (%)\n") + 12;
  for (std::size_t start = grid_start, end;
       lines.size() < 15 && (end = speed_chart.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(speed_chart.substr(start, end - start));
  }
  REQUIRE(lines.size() == 15);
  const std::size_t bar = lines[static_cast<std::size_t>(row)].find('|');
  REQUIRE(bar != std::string::npos);
  CHECK(lines[static_cast<std::size_t>(row)].substr(bar + 1 + static_cast<std::size_t>(column), 1) == "A");
  CHECK(md.find("## Test environment") != std::string::npos);
  CHECK(md.find("| Memory bandwidth | Toy 50.0 GB/s, Toy-LC 40.0 GB/s: " + probes + " |") != std::string::npos);
  // The bandwidth section: each variant's two probes, their mean and the limit it gives.
  const std::string section = md.substr(md.find("## Speed and the memory-bandwidth limit"));
  CHECK(section.find(probes) != std::string::npos);
  const char* cells[] = {" | 40.0 / 60.0 GB/s | 50.0 GB/s | ", " | 30.0 / 50.0 GB/s | 40.0 GB/s | "};
  for (std::size_t i = 0; i < 2; ++i) {
    const std::size_t at = section.find("\n| " + r.variants[i].name + " | ");
    REQUIRE(at != std::string::npos);
    const std::string line = section.substr(at + 1, section.find('\n', at + 1) - at - 1);
    CHECK(line.find(cells[i] + format_speed(summarize(r.variants[i]).limit_tokens_per_second) + " | ") !=
          std::string::npos);
  }
  CHECK(md.find(r.machine.cpu_model) != std::string::npos);
  CHECK(md.find("| fibonacci | algorithms |") != std::string::npos);
}
