// The benchmark's prompt suites in one table: seed8 (the original benchmark_variants.py's
// 8 prompts and keyword lists, verbatim) and tasks15 (the published results document's 15
// task types, which contain the seed8 prompts), each prompt with its expected keywords,
// the name its test checks and the test (examples/bench/tasks/NAME.py, embedded); and
// humaneval, made from the problems of HumanEval.jsonl.gz.
#pragma once

#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "bench/bench_python.hpp"
#include "smallcoder/error.hpp"

namespace smallcoder::bench {

struct BenchPrompt {
  std::string name;
  std::string category;  // algorithms | data_structures | practical | humaneval
  std::string prompt;
  std::vector<std::string> keywords;  // the quality score is the share of these found in the completion
  bool in_seed8 = false;
  std::string entry_point;        // the function, class or name the test checks
  bool returns_value = false;     // a function that must return a value on every path
  std::string test;               // Python defining check(candidate)
  bool humaneval = false;         // HumanEval's protocol: run as generated, the test in the program's namespace
  std::vector<std::string> stop;  // generation stops before the first of these
};

// HumanEval's stop sequences: the completion ends where a new top-level block would start.
inline const std::vector<std::string>& humaneval_stop_sequences() {
  static const std::vector<std::string> stops = {"\ndef", "\nclass", "\nif", "\nprint", "\n#"};
  return stops;
}

// Our test of a task (examples/bench/tasks/NAME.py), or "" when it has none.
inline std::string task_test(const std::string& name) {
  for (const embedded::TaskTest& t : embedded::kTaskTests) {
    if (name == t.name) return t.source;
  }
  return "";
}

// A task prompt of ours, with its test from examples/bench/tasks/NAME.py.
inline BenchPrompt task(std::string name, std::string category, std::string prompt, std::vector<std::string> keywords,
                        bool in_seed8, std::string entry_point, bool returns_value = false) {
  BenchPrompt p;
  p.test = task_test(name);
  p.name = std::move(name);
  p.category = std::move(category);
  p.prompt = std::move(prompt);
  p.keywords = std::move(keywords);
  p.in_seed8 = in_seed8;
  p.entry_point = std::move(entry_point);
  p.returns_value = returns_value;
  return p;
}

// Every prompt of both suites, in tasks15 order (three categories of five). The seed8
// entries keep the original's text, keywords and names; their order within this table is
// also the original's order, so seed8 is this table filtered.
inline const std::vector<BenchPrompt>& prompt_table() {
  // The sorts may sort in place and return None, so they need not return on every path.
  static const std::vector<BenchPrompt> table = {
      // algorithms
      task("fibonacci", "algorithms", "def fibonacci(n):", {"if", "return", "fibonacci", "n"}, true, "fibonacci", true),
      task("binary_search", "algorithms",
           "def binary_search(arr, target):", {"while", "mid", "left", "right", "return"}, true, "binary_search", true),
      task("quicksort", "algorithms", "def quicksort(arr):", {"if", "len", "pivot", "return", "quicksort"}, true,
           "quicksort", false),
      task("merge_sort", "algorithms", "def merge_sort(arr):", {"len", "mid", "merge", "while", "return"}, false,
           "merge_sort", false),
      task("dynamic_programming", "algorithms",
           "def coin_change(coins, amount):\n    \"\"\"Fewest coins that make up amount, by dynamic programming.\"\"\"",
           {"dp", "for", "range", "min", "return"}, false, "coin_change", true),
      // data structures
      task("stack_class", "data_structures", "class Stack:", {"def", "__init__", "self", "push", "pop"}, true, "Stack"),
      task("queue_class", "data_structures", "class Queue:", {"def", "__init__", "self", "enqueue", "dequeue"}, false,
           "Queue"),
      task("linked_list", "data_structures",
           "class LinkedList:\n    def __init__(self):", {"self", "head", "None", "Node"}, true, "LinkedList"),
      task("binary_tree", "data_structures", "class BinaryTree:\n    def __init__(self):",
           {"root", "left", "right", "search", "order"}, false, "BinaryTree"),
      task("hash_table", "data_structures", "class HashTable:", {"self", "hash", "bucket", "get", "set"}, false,
           "HashTable"),
      // practical
      task("file_handling", "practical", "def read_json_file(filename):", {"with", "open", "json", "return"}, true,
           "read_json_file", true),
      task("api_request", "practical", "import requests\n\ndef fetch_user_data(user_id):",
           {"requests", "get", "return", "json"}, true, "fetch_user_data", true),
      task("database_operations", "practical", "import sqlite3\n\ndef get_user_by_email(db_path, email):",
           {"connect", "cursor", "execute", "select", "close"}, false, "get_user_by_email", true),
      task("string_processing", "practical", "import re\n\ndef extract_emails(text):",
           {"re.", "findall", "pattern", "@", "return"}, false, "extract_emails", true),
      task("list_comprehension", "practical",
           "# Create a list of even squares from 1 to 20\nresult =", {"for", "in", "range", "if"}, true, "result"),
  };
  return table;
}

enum class Suite { seed8, tasks15, all, humaneval };

// The suites' names, in the enum's order.
constexpr const char* kSuiteNames[] = {"seed8", "tasks15", "all", "humaneval"};

inline const char* suite_name(Suite s) { return kSuiteNames[static_cast<int>(s)]; }

inline Suite parse_suite(std::string_view name, const std::string& where) {
  std::string known;
  for (int i = 0; i < static_cast<int>(std::size(kSuiteNames)); ++i) {
    if (name == kSuiteNames[i]) return static_cast<Suite>(i);
    known += (known.empty() ? "" : ", ") + std::string(kSuiteNames[i]);
  }
  fail(where, "unknown suite '" + std::string(name) + "' (known: " + known + ")");
}

// The prompts of a built-in suite, in order. tasks15 contains the seed8 prompts, so "all"
// (every distinct prompt of both suites; not humaneval) is the same 15, ordered seed8
// first: `--suite all --num-prompts 8` is seed8. humaneval comes from humaneval_prompts.
inline std::vector<BenchPrompt> suite_prompts(Suite suite) {
  if (suite == Suite::humaneval) fail("--suite humaneval", "its prompts come from the HumanEval file");
  std::vector<BenchPrompt> out;
  for (const BenchPrompt& p : prompt_table()) {
    if (suite == Suite::tasks15 || p.in_seed8) out.push_back(p);
  }
  if (suite == Suite::all) {
    for (const BenchPrompt& p : prompt_table()) {
      if (!p.in_seed8) out.push_back(p);
    }
  }
  return out;
}

// A HumanEval problem as HumanEval.jsonl holds it.
struct HumanEvalProblem {
  std::string task_id, prompt, entry_point, canonical_solution, test;
};

// The humaneval suite: each problem's prompt, stopped at HumanEval's stop sequences and
// tested by its own check(); no keywords.
inline std::vector<BenchPrompt> humaneval_prompts(const std::vector<HumanEvalProblem>& problems) {
  std::vector<BenchPrompt> out;
  for (const HumanEvalProblem& p : problems) {
    BenchPrompt b;
    b.name = p.task_id;
    b.category = "humaneval";
    b.prompt = p.prompt;
    b.entry_point = p.entry_point;
    b.returns_value = true;
    b.test = p.test;
    b.humaneval = true;
    b.stop = humaneval_stop_sequences();
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace smallcoder::bench
