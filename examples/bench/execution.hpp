// What the code a model wrote does and is: each completion goes to the Python harness
// (examples/bench/python/harness.py, embedded) in a sandboxed child process, which
// reports its logic flow (ast) and pyflakes findings, then runs the prompt's test on it.
// Without python3 every figure here is "not measured", never a guess.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_python.hpp"
#include "bench/python.hpp"
#include "bench/suites.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/io/json.hpp"

namespace smallcoder::bench {

struct LintFinding {
  int line = 0;
  std::string kind;  // pyflakes' message class: UndefinedName, UnusedImport, ...
  std::string message;
};

// One completion, measured. Absent optionals are "not measured".
struct CodeQuality {
  bool measured = false;  // the harness ran and analysed the program
  std::string program;    // what was analysed and run: prompt + completion, cut (see harness.py)
  // Logic flow, from the program's ast.
  bool parses = false;
  bool defined = false;                  // the entry point (function, class or name) is defined
  bool has_body = false;                 // more than pass / ... / a docstring
  std::vector<std::string> control;      // if, for, while, try, with, return, raise, comprehension, recursion...
  std::optional<bool> all_paths_return;  // for a function that must return a value
  std::optional<std::vector<LintFinding>> lint;  // pyflakes; absent without pyflakes
  std::optional<bool> passed;                    // the test; absent when it did not run
  std::string failure;                           // why it did not pass

  std::optional<bool> logic_ok() const {
    if (!measured) return std::nullopt;
    return parses && defined && has_body && all_paths_return.value_or(true);
  }
  std::optional<bool> lint_clean() const {
    if (!measured || !lint) return std::nullopt;
    return parses && lint->empty();
  }
};

// What the harness needs to know about one completion (code_job makes it for a prompt).
struct CodeJob {
  std::string prompt, completion;
  bool stopped_by_limit = false;  // the token limit or the context ended it mid-way
  bool cut = true;                // cut where the definition ends (our tasks); HumanEval runs as generated
  std::string entry_point;        // what check() receives
  bool returns_value = false;     // the function must return a value on every path
  std::string test;               // Python defining check(candidate); empty: analyse only
  std::string test_helpers;       // run before our task tests (examples/bench/python/task_helpers.py)
  bool test_in_program = false;   // HumanEval: the test runs after the program, in its namespace
};

// Limits for one completion: generous for a test that takes milliseconds, small enough
// that a run of HumanEval's 164 problems stays short even when many loop forever.
inline ChildLimits default_code_limits() {
  ChildLimits limits;
  limits.wall_seconds = 6;
  limits.cpu_seconds = 5;
  limits.address_space_bytes = std::uint64_t{1} << 30;
  limits.file_size_bytes = std::uint64_t{16} << 20;
  return limits;
}

inline CodeJob code_job(const BenchPrompt& prompt, const std::string& completion, bool stopped_by_limit) {
  CodeJob job;
  job.prompt = prompt.prompt;
  job.completion = completion;
  job.stopped_by_limit = stopped_by_limit;
  job.cut = !prompt.humaneval;
  job.entry_point = prompt.entry_point;
  job.returns_value = prompt.returns_value;
  job.test = prompt.test;
  job.test_helpers = prompt.humaneval ? "" : embedded::kTaskHelpers;
  job.test_in_program = prompt.humaneval;
  return job;
}

namespace detail {

inline std::string job_json(const CodeJob& job) {
  auto flag = [](bool b) { return std::string(b ? "true" : "false"); };
  const std::pair<const char*, std::string> fields[] = {
      {"prompt", json_quote(job.prompt)},
      {"completion", json_quote(job.completion)},
      {"stopped_by_limit", flag(job.stopped_by_limit)},
      {"cut", flag(job.cut)},
      {"entry_point", json_quote(job.entry_point)},
      {"returns_value", flag(job.returns_value)},
      {"test", json_quote(job.test)},
      {"test_helpers", json_quote(job.test_helpers)},
      {"test_in_program", flag(job.test_in_program)},
  };
  std::string out = "{";
  for (const auto& [key, value] : fields) out += (out.size() > 1 ? ", " : "") + json_quote(key) + ": " + value;
  return out + "}";
}

inline void read_analysis(const JsonValue& a, CodeQuality& q) {
  const std::string where = "harness analysis";
  q.measured = true;
  q.program = a.at("program", where).as_string("program");
  q.parses = a.at("parses", where).as_bool("parses");
  if (const JsonValue* v = a.find("defined")) q.defined = v->as_bool("defined");
  if (const JsonValue* v = a.find("has_body")) q.has_body = v->as_bool("has_body");
  if (const JsonValue* v = a.find("control")) {
    for (const JsonValue& c : v->as_array("control")) q.control.push_back(c.as_string("control"));
  }
  if (const JsonValue* v = a.find("all_paths_return"); v != nullptr && !v->is_null()) {
    q.all_paths_return = v->as_bool("all_paths_return");
  }
  const JsonValue& lint = a.at("lint", where);
  if (!lint.is_null()) {
    q.lint.emplace();
    for (const JsonValue& f : lint.as_array("lint")) {
      q.lint->push_back({static_cast<int>(f.at("line", where).as_int("line")), f.at("kind", where).as_string("kind"),
                         f.at("message", where).as_string("message")});
    }
  }
}

}  // namespace detail

// Analyses and (when job.test is set) runs one completion in a fresh temporary folder.
inline CodeQuality assess_code(const CodeJob& job, const ChildLimits& limits = default_code_limits()) {
  CodeQuality q;
  const std::optional<PythonInterpreter>& python = python_interpreter();
  TemporaryFolder folder;
  if (!python || !folder.ok()) return q;
  const std::string work = folder.path() + "/work", harness = folder.path() + "/harness.py",
                    job_file = folder.path() + "/job.json";
  if (!write_text_file(harness, embedded::kHarness) || !write_text_file(job_file, detail::job_json(job)) ||
      !std::filesystem::create_directory(work)) {
    return q;
  }
  const ChildOutcome o = run_child({python->executable, "-I", harness, "assess", job_file}, child_environment(work),
                                   work, folder.path() + "/out.txt", limits);
  bool verdict = false;
  std::size_t start = 0;
  try {
    for (std::size_t end; (end = o.output.find('\n', start)) != std::string::npos; start = end + 1) {
      const JsonValue line = parse_json(std::string_view(o.output).substr(start, end - start), "harness output");
      if (const JsonValue* a = line.find("analysis"); a != nullptr && !q.measured) {
        detail::read_analysis(*a, q);
      } else if (const JsonValue* v = line.find("verdict"); v != nullptr && q.measured && !verdict) {
        verdict = true;
        q.passed = v->at("passed", "verdict").as_bool("passed");
        q.failure = v->at("reason", "verdict").as_string("reason");
      }
    }
  } catch (const Error&) {
    // A line the program wrote itself: what came before it stands.
  }
  if (!q.measured) {
    // Not measured (the columns say n/m), but the reason is kept: the harness itself
    // did not finish its analysis.
    q.failure = "no analysis: python3 " + describe_child_end(o, limits);
  } else if (!job.test.empty() && !verdict) {
    q.passed = false;
    q.failure = "no verdict: the program " + describe_child_end(o, limits);
  }
  return q;
}

// The problems of HumanEval.jsonl(.gz), read by python3 (which decompresses it).
inline std::vector<HumanEvalProblem> load_humaneval(const std::string& path) {
  const std::optional<PythonInterpreter>& python = python_interpreter();
  if (!python) fail(path, "reading HumanEval needs python3, and none was found");
  TemporaryFolder folder;
  if (!folder.ok() || !write_text_file(folder.path() + "/harness.py", embedded::kHarness)) {
    fail(path, "cannot create a temporary folder");
  }
  ChildLimits limits;
  limits.wall_seconds = 60;
  limits.cpu_seconds = 60;
  const std::string absolute = std::filesystem::absolute(path).string();
  const ChildOutcome o = run_child({python->executable, "-I", folder.path() + "/harness.py", "humaneval", absolute},
                                   child_environment(folder.path()), folder.path(), folder.path() + "/out.txt", limits);
  if (o.exit_status != 0) fail(path, "not a readable HumanEval file (python3 " + describe_child_end(o, limits) + ")");
  const JsonValue doc = parse_json(o.output, path);
  std::vector<HumanEvalProblem> problems;
  for (const JsonValue& p : doc.as_array(path)) {
    problems.push_back({p.at("task_id", path).as_string("task_id"), p.at("prompt", path).as_string("prompt"),
                        p.at("entry_point", path).as_string("entry_point"),
                        p.at("canonical_solution", path).as_string("canonical_solution"),
                        p.at("test", path).as_string("test")});
  }
  if (problems.empty()) fail(path, "no problems");
  return problems;
}

}  // namespace smallcoder::bench
