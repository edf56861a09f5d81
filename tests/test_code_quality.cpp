// What the benchmark measures of the code itself (examples/bench/execution.hpp and the
// Python harness): our 15 task tests against correct and wrong solutions, the sandbox
// against completions that loop, allocate, connect, spawn or write outside, the cut, the
// logic-flow and pyflakes figures, and HumanEval's canonical solutions under its own tests.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "bench/execution.hpp"
#include "bench/suites.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;
using namespace smallcoder::bench;

namespace {

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0' && std::string(ci) != "false";
}

// False (and the test ends) without python3; CI must have it.
bool have_python() {
  if (python_interpreter()) return true;
  if (in_ci()) FAIL("python3 is required in CI for the code-quality figures");
  MESSAGE("python3 not found: the code-quality figures are not measured, test skipped");
  CHECK(!assess_code(CodeJob{}).measured);
  return false;
}

const BenchPrompt& task_prompt(const std::string& name) {
  for (const BenchPrompt& p : prompt_table()) {
    if (p.name == name) return p;
  }
  FAIL("no task named " << name);
  return prompt_table().front();
}

// The limits for tests of what the harness decides, not of the limits: a busy CI machine
// (three test suites side by side) can take seconds to start python3 and run a check().
ChildLimits generous_limits() {
  ChildLimits limits = default_code_limits();
  limits.wall_seconds = 120;
  limits.cpu_seconds = 60;
  return limits;
}

// Assesses the jobs two at a time (each is a python3 process; the machine has two cores).
std::vector<CodeQuality> assess_all(const std::vector<CodeJob>& jobs, const ChildLimits& limits = generous_limits()) {
  std::vector<CodeQuality> out(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); i += 2) {
    std::future<CodeQuality> second;
    if (i + 1 < jobs.size()) second = std::async(std::launch::async, [&] { return assess_code(jobs[i + 1], limits); });
    out[i] = assess_code(jobs[i], limits);
    if (second.valid()) out[i + 1] = second.get();
  }
  return out;
}

struct Solution {
  std::string task, kind;  // kind: "reference" or "wrong: WHY"
  std::string text;        // the prompt followed by the completion
};

// tests/data/bench_task_solutions.txt: blocks "=== TASK: KIND" (lines starting with # before the first are comments).
std::vector<Solution> read_solutions() {
  const std::string source = __FILE__;  // relative to the build folder the test runs in
  const std::string text =
      test::read_file(source.substr(0, source.find_last_of('/') + 1) + "data/bench_task_solutions.txt");
  std::vector<Solution> out;
  std::size_t pos = text.find("\n=== ");
  while (pos != std::string::npos) {
    const std::size_t header_end = text.find('\n', pos + 1);
    const std::size_t next = text.find("\n=== ", header_end);
    const std::string header = text.substr(pos + 5, header_end - pos - 5);
    std::string body = text.substr(header_end + 1, next == std::string::npos ? std::string::npos : next - header_end);
    while (body.size() > 1 && body[body.size() - 1] == '\n' && body[body.size() - 2] == '\n') body.pop_back();
    const std::size_t colon = header.find(": ");
    out.push_back({header.substr(0, colon), header.substr(colon + 2), body});
    pos = next;
  }
  return out;
}

CodeJob job_for(const std::string& task, const std::string& text) {
  const BenchPrompt& p = task_prompt(task);
  REQUIRE_MESSAGE(text.compare(0, p.prompt.size(), p.prompt) == 0,
                  task << ": the block does not start with the prompt");
  return code_job(p, text.substr(p.prompt.size()), false);
}

// A fibonacci completion that passes, for "the benchmark goes on" after a sandbox case.
const char* const kGoodFibonacci = "\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n";

}  // namespace

TEST_CASE("task tests: each of the 15 passes its correct solution and fails at least two wrong ones") {
  if (!have_python()) return;
  const std::vector<Solution> solutions = read_solutions();
  std::vector<CodeJob> jobs;
  for (const Solution& s : solutions) jobs.push_back(job_for(s.task, s.text));
  const std::vector<CodeQuality> results = assess_all(jobs);
  std::map<std::string, int> references, wrong_ones;
  for (std::size_t i = 0; i < solutions.size(); ++i) {
    const Solution& s = solutions[i];
    const CodeQuality& q = results[i];
    CAPTURE(s.task);
    CAPTURE(s.kind);
    CAPTURE(q.failure);
    REQUIRE(q.measured);
    REQUIRE(q.passed.has_value());
    if (s.kind == "reference") {
      CHECK(*q.passed);
      CHECK(q.failure.empty());
      CHECK(q.logic_ok().value());
      if (q.lint) CHECK(q.lint->empty());
      ++references[s.task];
    } else {
      CHECK(!*q.passed);
      CHECK(!q.failure.empty());
      ++wrong_ones[s.task];
    }
  }
  for (const BenchPrompt& p : suite_prompts(Suite::tasks15)) {
    CAPTURE(p.name);
    CHECK(!p.test.empty());
    CHECK(references[p.name] == 1);
    CHECK(wrong_ones[p.name] >= 2);
  }
  CHECK(references.size() == 15);
}

TEST_CASE("sandbox: loops, allocations, sockets, processes and writes outside fail, and the next completion runs") {
  if (!have_python()) return;
  ChildLimits limits = default_code_limits();
  limits.wall_seconds = 3;  // short, so that the test stays short
  limits.cpu_seconds = 2;
  limits.address_space_bytes = std::uint64_t{256} << 20;
  const std::string outside = "/tmp/smallcoder-sandbox-escape-" + std::to_string(::getpid());
  const struct {
    std::string what;
    std::string completion;
    const char* reason;  // a part of the failure's description
  } cases[] = {
      // The CPU-time limit or, on a busy machine, the wall clock: either ends it without a verdict.
      {"loops forever", "\n    while True:\n        pass\n", "no verdict: the program"},
      {"sleeps forever", "\n    import time\n    time.sleep(1000)\n", "timed out"},
      {"allocates without end", "\n    block = []\n    while True:\n        block.append(bytearray(1 << 20))\n",
       "MemoryError"},
      {"opens a socket", "\n    import socket\n    socket.socket().connect(('127.0.0.1', 9))\n", "refused: socket."},
      {"spawns a process", "\n    import subprocess\n    return subprocess.run(['true']).returncode\n",
       "refused: import _posixsubprocess"},
      {"runs a shell", "\n    import os\n    return os.system('true')\n", "refused: os.system"},
      {"forks", "\n    import os\n    return os.fork()\n", "refused: os.fork"},
      {"writes outside its folder", "\n    open('" + outside + "', 'w').write('x')\n    return 55\n",
       "outside the sandbox"},
      {"writes to its parent folder", "\n    open('../job.json', 'w').write('{}')\n    return 55\n",
       "outside the sandbox"},
      {"removes outside its folder", "\n    import os\n    os.remove('" + outside + "')\n", "outside the sandbox"},
      {"loads ctypes", "\n    import ctypes\n    return 55\n", "refused: import ctypes"},
      {"signals its parent", "\n    import os, signal\n    os.kill(os.getppid(), signal.SIGTERM)\n",
       "refused: os.kill"},
      {"exits before the test", "\n    import os\n    os._exit(0)\n", "no verdict"},
  };
  std::vector<CodeJob> jobs;
  for (const auto& c : cases) {
    jobs.push_back(code_job(task_prompt("fibonacci"), c.completion, false));
    jobs.push_back(code_job(task_prompt("fibonacci"), kGoodFibonacci, false));  // the benchmark goes on
  }
  const std::vector<CodeQuality> results = assess_all(jobs, limits);
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    const CodeQuality& bad = results[2 * i];
    const CodeQuality& next = results[2 * i + 1];
    CAPTURE(cases[i].what);
    CAPTURE(bad.failure);
    REQUIRE(bad.measured);
    CHECK(bad.passed == std::optional<bool>(false));
    CHECK(bad.failure.find(cases[i].reason) != std::string::npos);
    CHECK(next.passed == std::optional<bool>(true));
  }
  CHECK(::access(outside.c_str(), F_OK) != 0);  // nothing was written there
}

TEST_CASE("the program: cut where the definitions end, helpers kept, an unfinished last line dropped") {
  if (!have_python()) return;
  const BenchPrompt& fib = task_prompt("fibonacci");
  const std::vector<CodeJob> jobs = {
      code_job(fib, "\n    return helper(n)\n\n\ndef helper(n):\n    return n\n\nprint(fibonacci(3))\nx = 1\n", false),
      code_job(fib, "\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fib", true),
      code_job(fib, "\n    return n\n\n\ndef helper(n):\n    return (n +", true),
      code_job(task_prompt("list_comprehension"), " [\n    x * x for x in range(2, 21, 2)\n]\nprint(result)\n", false),
  };
  const std::vector<CodeQuality> r = assess_all(jobs);
  CHECK(r[0].program == "def fibonacci(n):\n    return helper(n)\n\n\ndef helper(n):\n    return n\n\n");
  CHECK(r[1].program == "def fibonacci(n):\n    if n < 2:\n        return n\n");  // the token limit cut it
  CHECK(r[2].program == "def fibonacci(n):\n    return n\n\n\n");                 // the unfinished helper goes
  CHECK(r[3].program ==
        "# Create a list of even squares from 1 to 20\nresult = [\n    x * x for x in range(2, 21, 2)\n]\n");
  CHECK(r[3].passed == std::optional<bool>(true));
}

TEST_CASE("logic flow and pyflakes: an empty body, a path without return, undefined names, unused imports") {
  if (!have_python()) return;
  const BenchPrompt& search = task_prompt("binary_search");
  const std::vector<CodeJob> jobs = {
      code_job(search, "\n    \"\"\"Finds target.\"\"\"\n    pass\n", false),
      code_job(search,
               "\n    left, right = 0, len(arr) - 1\n    while left <= right:\n        mid = (left + right) // 2\n"
               "        if arr[mid] == target:\n            return mid\n        if arr[mid] < target:\n"
               "            left = mid + 1\n        else:\n            right = mid - 1\n",
               false),
      code_job(search, "\n    import os\n    return bisect_left(arr, target)\n", false),
      code_job(task_prompt("stack_class"), "\n    pass\n", false),
      code_job(search, "\n    return (\n", false),
  };
  const std::vector<CodeQuality> r = assess_all(jobs);
  CHECK(r[0].parses);
  CHECK(r[0].defined);
  CHECK(!r[0].has_body);
  CHECK(r[0].logic_ok() == std::optional<bool>(false));

  CHECK(r[1].has_body);
  CHECK(r[1].all_paths_return == std::optional<bool>(false));  // falls off the end after the loop
  CHECK(r[1].logic_ok() == std::optional<bool>(false));
  for (const char* c : {"while", "if", "return"}) CHECK(std::count(r[1].control.begin(), r[1].control.end(), c) == 1);
  CHECK(r[1].passed ==
        std::optional<bool>(true));  // the test accepts None for an absent target; the logic figure does not

  CHECK(r[2].all_paths_return == std::optional<bool>(true));
  CHECK(r[2].logic_ok() == std::optional<bool>(true));
  if (r[2].lint) {
    std::vector<std::string> kinds;
    for (const LintFinding& f : *r[2].lint) kinds.push_back(f.kind);
    CHECK(kinds == std::vector<std::string>{"UnusedImport", "UndefinedName"});
    CHECK(r[2].lint_clean() == std::optional<bool>(false));
  } else {
    CHECK(!in_ci());  // CI installs python3-pyflakes
    CHECK(!r[2].lint_clean().has_value());
  }

  CHECK(!r[3].has_body);  // a class whose only method body is pass
  CHECK(!r[3].all_paths_return.has_value());
  CHECK(!r[4].parses);
  CHECK(r[4].logic_ok() == std::optional<bool>(false));
  CHECK(r[4].passed == std::optional<bool>(false));
}

TEST_CASE("HumanEval: the harness passes all 164 canonical solutions with the problems' own check()") {
  if (!have_python()) return;
  const std::string path = test::data_path("eval/humaneval/HumanEval.jsonl.gz");
  const std::vector<HumanEvalProblem> problems = load_humaneval(path);
  REQUIRE(problems.size() == 164);
  const std::vector<BenchPrompt> prompts = humaneval_prompts(problems);
  CHECK(prompts[0].name == "HumanEval/0");
  CHECK(prompts[0].stop == std::vector<std::string>{"\ndef", "\nclass", "\nif", "\nprint", "\n#"});
  std::vector<CodeJob> jobs;
  for (std::size_t i = 0; i < problems.size(); ++i)
    jobs.push_back(code_job(prompts[i], problems[i].canonical_solution, false));
  const std::vector<CodeQuality> results = assess_all(jobs);
  int passed = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    CAPTURE(problems[i].task_id);
    CAPTURE(results[i].failure);
    CHECK(results[i].passed == std::optional<bool>(true));
    passed += results[i].passed.value_or(false);
  }
  CHECK(passed == 164);
  // And a wrong answer fails: the first problem's solution negated.
  CodeJob wrong = code_job(prompts[0], "    return False\n", false);
  CHECK(assess_code(wrong).passed == std::optional<bool>(false));
  CHECK_THROWS_AS(load_humaneval(test::scratch_path("no-such-humaneval.jsonl.gz")), Error);
}
