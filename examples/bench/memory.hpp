// Memory figures for the benchmark: the process's resident set now and at its peak (from
// the OS, /proc/self/status), a per-variant peak, where the weights live (pages of the
// mapped model file vs buffers of their own, from /proc/self/smaps), and how many bytes of
// weights one decode step reads (what the memory-bandwidth limit divides by).
#pragma once

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <stdlib.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "smallcoder/config.hpp"
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

// One mapping of a file in this process: its address range, the file offset it starts at,
// and its resident bytes.
struct FileMapping {
  std::uintptr_t begin = 0, end = 0;
  std::uint64_t offset = 0;
  std::uint64_t resident = 0;
};

// The mappings of the file at `path` listed in /proc/self/smaps (none where the file or
// smaps does not exist).
inline std::vector<FileMapping> file_mappings(const std::string& path) {
  std::vector<FileMapping> out;
  char real[PATH_MAX];
  if (path.empty() || realpath(path.c_str(), real) == nullptr) return out;
  const std::string target = real;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    // A mapping's header line is "begin-end perms offset dev inode path"; its fields ("Rss:  12 kB") follow.
    const std::size_t dash = line.find('-');
    const bool header = dash != std::string::npos && dash > 0 && line.find(' ') > dash &&
                        std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(dash),
                                    [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
    if (header) {
      inside = line.size() > target.size() && line.compare(line.size() - target.size(), target.size(), target) == 0;
      if (inside) {
        FileMapping m;
        m.begin = std::strtoull(line.c_str(), nullptr, 16);
        char* after_end = nullptr;
        m.end = std::strtoull(line.c_str() + dash + 1, &after_end, 16);
        const std::size_t perms = static_cast<std::size_t>(after_end - line.c_str()) + 1;  // "r--p 0000a000 ..."
        m.offset = std::strtoull(line.c_str() + line.find(' ', perms) + 1, nullptr, 16);
        out.push_back(m);
      }
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      out.back().resident += std::strtoull(line.c_str() + 4, nullptr, 10) * 1024;
    }
  }
  return out;
}

// The memory the weights take: resident pages of the model file's mappings, plus the
// bytes of weight tensors that live outside them (converted or quantized on load, random
// weights), each buffer counted once.
struct WeightResidency {
  std::uint64_t mapped_resident = 0;
  std::uint64_t anonymous = 0;
};

inline WeightResidency weight_residency(const ModelConfig& config, const ModelWeights& weights,
                                        const std::string& model_file) {
  const std::vector<FileMapping> mappings = file_mappings(model_file);
  WeightResidency r;
  for (const FileMapping& m : mappings) r.mapped_resident += m.resident;
  const auto in_file = [&](const std::byte* p) {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    return std::any_of(mappings.begin(), mappings.end(),
                       [&](const FileMapping& m) { return address >= m.begin && address < m.end; });
  };
  std::set<const std::byte*> seen;
  ModelWeights views = weights;  // for_each_weight hands out mutable slots
  for_each_weight(config, views, [&](const WeightSlot& s) {
    if (!in_file(s.view->data) && seen.insert(s.view->data).second) r.anonymous += s.view->bytes();
  });
  return r;
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
