// Memory figures for the benchmark: the process's resident set now and at its peak (from
// the OS, /proc/self/status), a per-variant peak, and how many bytes of weights one
// decode step reads (what the memory-bandwidth limit divides by).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "smallcoder/model/weights.hpp"

namespace smallcoder::bench {

// A "Name:   1234 kB" line of /proc/self/status in bytes; 0 when there is none (not Linux).
inline std::uint64_t proc_status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.compare(0, field.size() + 1, field + ":") != 0) continue;
    return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
  }
  return 0;
}

inline std::uint64_t rss_now_bytes() { return proc_status_bytes("VmRSS"); }
inline std::uint64_t rss_peak_bytes() { return proc_status_bytes("VmHWM"); }

// Gives freed heap memory back to the OS (glibc keeps it otherwise), so the next
// variant's resident set does not include the previous one's leftovers.
inline void return_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// Resets the peak resident set to the current one (Linux: "5" to /proc/self/clear_refs),
// so that each variant's peak is its own. False when the OS refused: the peak is then
// the process's so far.
inline bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  if (!clear) return false;
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

// Bytes of weights one decode step reads: every matrix and norm once, the output head
// in full, and a single row of the embedding table (unless it is the tied head, which is
// read in full anyway).
inline std::uint64_t decode_weight_bytes(const ModelWeights& w) {
  std::uint64_t total = w.bytes();
  if (w.lm_head.data != w.embed.data) total = total - w.embed.bytes() + w.embed.row_bytes();
  return total;
}

}  // namespace smallcoder::bench
