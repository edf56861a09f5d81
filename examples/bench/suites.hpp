// The benchmark's prompt suites in one table: seed8 (the original benchmark_variants.py's
// 8 prompts and keyword lists, verbatim) and tasks15 (the published results document's 15
// task types, which contain the seed8 prompts), each prompt with its expected keywords.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "smallcoder/error.hpp"

namespace smallcoder::bench {

struct BenchPrompt {
  std::string name;
  std::string category;  // algorithms | data_structures | practical
  std::string prompt;
  std::vector<std::string> keywords;  // the quality score is the share of these found in the completion
  bool in_seed8 = false;
};

// Every prompt of both suites, in tasks15 order (three categories of five). The seed8
// entries keep the original's text, keywords and names; their order within this table is
// also the original's order, so seed8 is this table filtered.
inline const std::vector<BenchPrompt>& prompt_table() {
  static const std::vector<BenchPrompt> table = {
      // algorithms
      {"fibonacci", "algorithms", "def fibonacci(n):", {"if", "return", "fibonacci", "n"}, true},
      {"binary_search", "algorithms", "def binary_search(arr, target):", {"while", "mid", "left", "right", "return"}, true},
      {"quicksort", "algorithms", "def quicksort(arr):", {"if", "len", "pivot", "return", "quicksort"}, true},
      {"merge_sort", "algorithms", "def merge_sort(arr):", {"len", "mid", "merge", "while", "return"}, false},
      {"dynamic_programming", "algorithms",
       "def coin_change(coins, amount):\n    \"\"\"Fewest coins that make up amount, by dynamic programming.\"\"\"",
       {"dp", "for", "range", "min", "return"}, false},
      // data structures
      {"stack_class", "data_structures", "class Stack:", {"def", "__init__", "self", "push", "pop"}, true},
      {"queue_class", "data_structures", "class Queue:", {"def", "__init__", "self", "enqueue", "dequeue"}, false},
      {"linked_list", "data_structures", "class LinkedList:\n    def __init__(self):", {"self", "head", "None", "Node"},
       true},
      {"binary_tree", "data_structures", "class BinaryTree:\n    def __init__(self):",
       {"root", "left", "right", "search", "order"}, false},
      {"hash_table", "data_structures", "class HashTable:", {"self", "hash", "bucket", "get", "set"}, false},
      // practical
      {"file_handling", "practical", "def read_json_file(filename):", {"with", "open", "json", "return"}, true},
      {"api_request", "practical", "import requests\n\ndef fetch_user_data(user_id):", {"requests", "get", "return", "json"},
       true},
      {"database_operations", "practical", "import sqlite3\n\ndef get_user_by_email(db_path, email):",
       {"connect", "cursor", "execute", "select", "close"}, false},
      {"string_processing", "practical", "import re\n\ndef extract_emails(text):", {"re.", "findall", "pattern", "@", "return"},
       false},
      {"list_comprehension", "practical", "# Create a list of even squares from 1 to 20\nresult =",
       {"for", "in", "range", "if"}, true},
  };
  return table;
}

enum class Suite { seed8, tasks15, all };

inline const char* suite_name(Suite s) {
  switch (s) {
    case Suite::seed8: return "seed8";
    case Suite::tasks15: return "tasks15";
    case Suite::all: return "all";
  }
  return "unknown";
}

inline Suite parse_suite(std::string_view name, const std::string& where) {
  for (Suite s : {Suite::seed8, Suite::tasks15, Suite::all}) {
    if (name == suite_name(s)) return s;
  }
  fail(where, "unknown suite '" + std::string(name) + "' (known: seed8, tasks15, all)");
}

// The prompts of a suite, in order. tasks15 contains the seed8 prompts, so "all" (every
// distinct prompt of both suites) is the same 15, ordered seed8 first: `--suite all
// --num-prompts 8` is seed8.
inline std::vector<BenchPrompt> suite_prompts(Suite suite) {
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

}  // namespace smallcoder::bench
