// The machine a benchmark ran on, for its report: CPU model and features, cores, RAM, OS,
// and how this program was compiled (compiler, optimisation, ISA, OpenMP, CUDA), the last
// read from the compiler's predefined macros.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/utsname.h>

#include "smallcoder/threads.hpp"

namespace smallcoder::bench {

struct MachineInfo {
  std::string cpu_model;               // "unknown" when the OS does not say
  std::vector<std::string> cpu_features;  // the SIMD features that matter here, as the OS lists them
  int logical_cpus = 0;
  int physical_cores = 0;              // that this process may run on
  int threads_used = 0;
  std::uint64_t ram_bytes = 0;
  std::uint64_t last_level_cache_bytes = 0;  // 0 when the OS does not say
  std::string os;                      // "Linux 6.1.0 x86_64"
  std::string compiler;
  std::vector<std::string> build_flags;  // what the predefined macros reveal
};

// The value after "key<spaces>: " on the first line of a /proc-style file starting with key.
inline std::string proc_field(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return {};
}

inline std::string compiler_description() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "gcc " __VERSION__;
#elif defined(_MSC_VER)
  return "msvc " + std::to_string(_MSC_VER);
#else
  return "unknown compiler";
#endif
}

// Optimisation, assertions, target ISA, OpenMP and CUDA as this translation unit was built.
inline std::vector<std::string> build_flag_description() {
  std::vector<std::string> flags;
#if defined(__OPTIMIZE__)
  flags.push_back("optimized");
#else
  flags.push_back("not optimized");
#endif
#if defined(NDEBUG)
  flags.push_back("NDEBUG");
#endif
#if defined(__x86_64__)
  flags.push_back("x86-64");
#elif defined(__aarch64__)
  flags.push_back("aarch64");
#endif
#if defined(__SSE4_2__)
  flags.push_back("sse4.2");
#endif
#if defined(__AVX2__)
  flags.push_back("avx2");
#endif
#if defined(__FMA__)
  flags.push_back("fma");
#endif
#if defined(__F16C__)
  flags.push_back("f16c");
#endif
#if defined(__AVX512F__)
  flags.push_back("avx512f");
#endif
#if defined(__AVX512BW__)
  flags.push_back("avx512bw");
#endif
#if defined(__AVX512VNNI__)
  flags.push_back("avx512vnni");
#endif
#if defined(__AVX512BF16__)
  flags.push_back("avx512bf16");
#endif
#if defined(__ARM_NEON)
  flags.push_back("neon");
#endif
#if defined(_OPENMP)
  flags.push_back("openmp " + std::to_string(_OPENMP));
#else
  flags.push_back("no openmp");
#endif
#if defined(SMALLCODER_CUDA)
  flags.push_back("cuda");
#endif
#if defined(__SANITIZE_ADDRESS__)
  flags.push_back("asan");
#endif
  return flags;
}

// The largest data or unified CPU cache Linux lists for cpu0 (sysfs sizes read "32768K",
// "480M"); 0 when there is none to read.
inline std::uint64_t last_level_cache_bytes() {
  std::uint64_t best = 0;
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream type_file(dir + "type"), size_file(dir + "size");
    std::string type, size;
    if (!(type_file >> type) || !(size_file >> size) || type == "Instruction") continue;
    std::uint64_t bytes = std::strtoull(size.c_str(), nullptr, 10);
    if (size.back() == 'K') bytes <<= 10;
    if (size.back() == 'M') bytes <<= 20;
    if (size.back() == 'G') bytes <<= 30;
    best = std::max(best, bytes);
  }
  return best;
}

inline MachineInfo describe_machine(int threads_used) {
  MachineInfo m;
  m.cpu_model = proc_field("/proc/cpuinfo", "model name");
  if (m.cpu_model.empty()) m.cpu_model = proc_field("/proc/cpuinfo", "Hardware");
  if (m.cpu_model.empty()) m.cpu_model = "unknown";
  std::istringstream flags(proc_field("/proc/cpuinfo", "flags"));
  const std::vector<std::string> wanted = {"avx",         "avx2",         "fma",         "f16c",       "avx512f",
                                           "avx512bw",    "avx512_vnni",  "avx512_bf16", "avx_vnni",   "amx_bf16"};
  for (std::string flag; flags >> flag;) {
    for (const std::string& w : wanted) {
      if (flag == w) m.cpu_features.push_back(flag);
    }
  }
  m.logical_cpus = static_cast<int>(std::thread::hardware_concurrency());
  m.physical_cores = physical_core_count();
  m.threads_used = threads_used;
  m.ram_bytes = std::strtoull(proc_field("/proc/meminfo", "MemTotal").c_str(), nullptr, 10) * 1024;
  m.last_level_cache_bytes = last_level_cache_bytes();
  struct utsname u {};
  if (::uname(&u) == 0) m.os = std::string(u.sysname) + " " + u.release + " " + u.machine;
  m.compiler = compiler_description();
  m.build_flags = build_flag_description();
  return m;
}

}  // namespace smallcoder::bench
