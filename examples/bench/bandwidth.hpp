// Memory-bandwidth probe: a streaming read of a large buffer with the benchmark's own
// threads, best of several passes. Batch-1 decode reads every weight byte once per token,
// so this bandwidth over the bytes read per token is the speed limit the benchmark reports.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/threads.hpp"

namespace smallcoder::bench {

namespace detail {

// Four 64-bit words: a GCC/Clang vector, one 32-byte load on AVX2, two 16-byte ones on
// plain x86-64, whatever the target has elsewhere. Wide loads like the kernels' keep the
// probe's own instructions (on a core that may be shared) from limiting it below DRAM.
typedef std::uint64_t Words4 __attribute__((vector_size(32)));

// The sum of n (a multiple of 16) words at p, in four independent accumulators so that
// enough loads are in flight for one core to outrun DRAM.
__attribute__((always_inline)) inline std::uint64_t sum_words(const std::uint64_t* p, std::size_t n) {
  Words4 s[4] = {};
  for (std::size_t i = 0; i < n; i += 16) {
    for (std::size_t j = 0; j < 4; ++j) {
      Words4 v;
      std::memcpy(&v, p + i + 4 * j, sizeof v);
      s[j] += v;
    }
  }
  const Words4 all = (s[0] + s[1]) + (s[2] + s[3]);
  return all[0] + all[1] + all[2] + all[3];
}

#ifdef SMALLCODER_X86
__attribute__((target("avx2"))) inline std::uint64_t sum_words_avx2(const std::uint64_t* p, std::size_t n) {
  return sum_words(p, n);
}
#endif

inline std::uint64_t sum_words_generic(const std::uint64_t* p, std::size_t n) { return sum_words(p, n); }

// The widest loads this CPU has, chosen at run time so a generic build measures as the
// kernels (which dispatch the same way) read.
inline std::uint64_t (*sum_words_for_cpu())(const std::uint64_t*, std::size_t) {
#ifdef SMALLCODER_X86
  if (cpu::cpu_supports(cpu::Isa::avx2)) return sum_words_avx2;
#endif
  return sum_words_generic;
}

}  // namespace detail

struct BandwidthMeasurement {
  std::string device = "cpu";
  double gb_per_s = 0;             // the best pass, in 1e9 bytes per second
  std::uint64_t buffer_bytes = 0;  // bytes read per pass
  int threads = 0;
  std::vector<double> pass_gb_per_s;  // every pass, in order
};

// The bandwidth a decode measured between two probes is bounded by: their mean. On a
// machine whose memory speed drifts (a VM's host, a laptop's power states) it stands for the
// speed the decode ran at better than either probe alone (the one before a Tiny bf16 decode
// once read 34.1 GB/s while the decode itself read 56.6 GB/s).
inline double mean_gb_per_s(const BandwidthMeasurement& before, const BandwidthMeasurement& after) {
  return (before.gb_per_s + after.gb_per_s) / 2;
}

// Reads `buffer_bytes` (rounded down to 1 MiB chunks, at least one) `passes` times with
// `threads` threads. The buffer is written first, so every page is real memory (a never
// written page would be the shared zero page, which stays in cache).
inline BandwidthMeasurement measure_read_bandwidth(std::uint64_t buffer_bytes, int threads, int passes = 5) {
  using Clock = std::chrono::steady_clock;
  constexpr std::size_t kChunkWords = (std::size_t{1} << 20) / sizeof(std::uint64_t);
  if (threads <= 0) threads = default_thread_count();
  if (passes <= 0) fail("bandwidth probe", "passes must be positive");
  const std::size_t chunks = std::max<std::size_t>(1, static_cast<std::size_t>(buffer_bytes >> 20));
  std::unique_ptr<std::uint64_t[]> buffer(new (std::nothrow) std::uint64_t[chunks * kChunkWords]);
  if (!buffer) fail("bandwidth probe", "cannot allocate " + std::to_string(chunks) + " MiB");
  std::uint64_t* words = buffer.get();
  const auto n_chunks = static_cast<std::int64_t>(chunks);
  parallel_region(threads, [&] {
    parallel_for(n_chunks, [&](std::int64_t c) {
      std::uint64_t* p = words + static_cast<std::size_t>(c) * kChunkWords;
      for (std::size_t i = 0; i < kChunkWords; ++i) p[i] = i ^ static_cast<std::uint64_t>(c);
    });
  });

  BandwidthMeasurement m;
  m.buffer_bytes = chunks * kChunkWords * sizeof(std::uint64_t);
  m.threads = threads;
  std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads), 0);
  const auto sum_chunk = detail::sum_words_for_cpu();
  volatile std::uint64_t sink = 0;  // keeps the reads from being optimised away
  for (int pass = 0; pass < passes; ++pass) {
    std::fill(sums.begin(), sums.end(), 0);
    const Clock::time_point start = Clock::now();
    parallel_region(threads, [&] {
      std::uint64_t total = 0;
      parallel_for(n_chunks, [&](std::int64_t c) {
        total += sum_chunk(words + static_cast<std::size_t>(c) * kChunkWords, kChunkWords);
      });
      sums[static_cast<std::size_t>(thread_index())] = total;
    });
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    for (std::uint64_t v : sums) sink = sink + v;
    m.pass_gb_per_s.push_back(seconds > 0 ? static_cast<double>(m.buffer_bytes) / seconds / 1e9 : 0.0);
  }
  m.gb_per_s = *std::max_element(m.pass_gb_per_s.begin(), m.pass_gb_per_s.end());
  return m;
}

}  // namespace smallcoder::bench
