// The CUDA backend's run-time knobs: how kernels overlap (programmatic dependent launch),
// how the matrix-vector kernels split their rows, which top-logits path runs, ... Every
// setting gives the same results; only speed differs, so one GPU run can time several
// (examples/cuda/speed.cu --sweep). Defaults are the best measured or predicted; each can
// be overridden with an environment variable SMALLCODER_CUDA_<KEY> (KEY in upper case), or
// several at once with SMALLCODER_CUDA_TUNING="key=value,key=value" (parse_tuning).
#pragma once

#include <cstdlib>
#include <string>

#include "smallcoder/error.hpp"

namespace smallcoder::cuda {

struct Tuning {
  // Programmatic dependent launch: 0 = off (each kernel waits for the previous one to
  // finish); 1 = a kernel lets the next one launch once it has passed its own wait, so the
  // next kernel prefetches its weights while this one computes; 2 = it lets the next one
  // launch as soon as it starts, so the next two or three (as many as the multiprocessors
  // hold beside it) wait, their weights prefetched, while it runs.
  int pdl = 2;
  // Weight rows pulled into L2 before a kernel waits for its inputs: 0 = no, 1 = one
  // prefetch per 128-byte line, 2 = bulk prefetches (cp.async.bulk.prefetch.L2).
  int prefetch = 1;
  int rows = 2;           // decode matrix-vector: weight rows per warp (1, 2 or 4)
  int blocks_per_sm = 4;  // decode matrix-vector grid cap, in blocks per multiprocessor (0: no cap)
  int topk = 1;           // top logits: 0 = bitonic sort of the candidates, 1 = rank them (bitonic when too many)
  int zerocopy = 1;       // 1: the step's ids and the top logits cross through mapped host memory, not copies
  int split = 32;         // decode attention: positions per block of the split sequence (16..1024)
  int prefill_rows = 16;  // prompt products: token rows per block of the multi-row kernel (1..16)
  int gemm_from = 33;     // prompt passes of at least this many tokens use the tiled GEMM kernel

  // Sets one knob by name; throws naming `where` for an unknown name or a value out of range.
  void set(const std::string& key, long value, const std::string& where) {
    auto in = [&](long lo, long hi) {
      if (value < lo || value > hi) {
        fail(where, "tuning '" + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                        std::to_string(value));
      }
      return static_cast<int>(value);
    };
    if (key == "pdl") {
      pdl = in(0, 2);
    } else if (key == "prefetch") {
      prefetch = in(0, 2);
    } else if (key == "rows") {
      rows = in(1, 4);
      if (rows == 3) fail(where, "tuning 'rows' must be 1, 2 or 4");
    } else if (key == "blocks_per_sm") {
      blocks_per_sm = in(0, 64);
    } else if (key == "topk") {
      topk = in(0, 1);
    } else if (key == "zerocopy") {
      zerocopy = in(0, 1);
    } else if (key == "split") {
      split = in(16, 1024);
    } else if (key == "prefill_rows") {
      prefill_rows = in(1, 16);
    } else if (key == "gemm_from") {
      gemm_from = in(2, 1 << 20);
    } else {
      fail(where, "unknown tuning '" + key +
                      "' (known: pdl, prefetch, rows, blocks_per_sm, topk, zerocopy, split, prefill_rows, gemm_from)");
    }
  }

  // "pdl=1 rows=2 ..." : every knob, for logs.
  std::string describe() const {
    return "pdl=" + std::to_string(pdl) + " prefetch=" + std::to_string(prefetch) + " rows=" + std::to_string(rows) +
           " blocks_per_sm=" + std::to_string(blocks_per_sm) + " topk=" + std::to_string(topk) +
           " zerocopy=" + std::to_string(zerocopy) + " split=" + std::to_string(split) +
           " prefill_rows=" + std::to_string(prefill_rows) + " gemm_from=" + std::to_string(gemm_from);
  }
};

// Applies "key=value,key=value" (spaces also separate; empty: nothing) on top of `base`.
inline Tuning parse_tuning(const std::string& text, Tuning base = Tuning{}) {
  const std::string where = "cuda tuning '" + text + "'";
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = text.find_first_of(", ", at);
    const std::string item = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
    at = end == std::string::npos ? text.size() : end + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) fail(where, "'" + item + "' is not key=value");
    const std::string value = item.substr(eq + 1);
    char* stop = nullptr;
    const long number = std::strtol(value.c_str(), &stop, 10);
    if (stop == value.c_str() || *stop != '\0') fail(where, "'" + value + "' is not an integer");
    base.set(item.substr(0, eq), number, where);
  }
  return base;
}

// The defaults, overridden by SMALLCODER_CUDA_TUNING, then SMALLCODER_CUDA_PDL,
// SMALLCODER_CUDA_ROWS, ... where set.
inline Tuning tuning_from_environment() {
  Tuning t;
  if (const char* all = std::getenv("SMALLCODER_CUDA_TUNING")) t = parse_tuning(all, t);
  for (const char* key :
       {"pdl", "prefetch", "rows", "blocks_per_sm", "topk", "zerocopy", "split", "prefill_rows", "gemm_from"}) {
    std::string name = "SMALLCODER_CUDA_";
    for (const char* c = key; *c != '\0'; ++c) name += static_cast<char>(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
    const char* value = std::getenv(name.c_str());
    if (value != nullptr && *value != '\0') t = parse_tuning(std::string(key) + "=" + value, t);
  }
  return t;
}

}  // namespace smallcoder::cuda
