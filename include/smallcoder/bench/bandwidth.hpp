// Memory-bandwidth probe: a streaming read of a large buffer with the benchmark's own
// threads, best of several passes. Batch-1 decode reads every weight byte once per token,
// so this bandwidth over the bytes read per token is the speed limit the benchmark reports.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "smallcoder/cpu/threads.hpp"
#include "smallcoder/error.hpp"

namespace smallcoder::bench {

struct BandwidthMeasurement {
  std::string device = "cpu";
  double gb_per_s = 0;             // the best pass, in 1e9 bytes per second
  std::uint64_t buffer_bytes = 0;  // bytes read per pass
  int threads = 0;
  std::vector<double> pass_gb_per_s;  // every pass, in order
};

// Reads `buffer_bytes` (rounded down to 1 MiB chunks, at least one) `passes` times with
// `threads` threads. The buffer is written first, so every page is real memory (a never
// written page would be the shared zero page, which stays in cache).
inline BandwidthMeasurement measure_read_bandwidth(std::uint64_t buffer_bytes, int threads, int passes = 5) {
  using Clock = std::chrono::steady_clock;
  constexpr std::size_t kChunkWords = (std::size_t{1} << 20) / sizeof(std::uint64_t);
  if (threads <= 0) threads = cpu::default_thread_count();
  if (passes <= 0) fail("bandwidth probe", "passes must be positive");
  const std::size_t chunks = std::max<std::size_t>(1, static_cast<std::size_t>(buffer_bytes >> 20));
  std::unique_ptr<std::uint64_t[]> buffer(new (std::nothrow) std::uint64_t[chunks * kChunkWords]);
  if (!buffer) fail("bandwidth probe", "cannot allocate " + std::to_string(chunks) + " MiB");
  std::uint64_t* words = buffer.get();
  const auto n_chunks = static_cast<std::int64_t>(chunks);
  cpu::parallel_region(threads, [&] {
    cpu::parallel_for(n_chunks, [&](std::int64_t c) {
      std::uint64_t* p = words + static_cast<std::size_t>(c) * kChunkWords;
      for (std::size_t i = 0; i < kChunkWords; ++i) p[i] = i ^ static_cast<std::uint64_t>(c);
    });
  });

  BandwidthMeasurement m;
  m.buffer_bytes = chunks * kChunkWords * sizeof(std::uint64_t);
  m.threads = threads;
  std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads), 0);
  volatile std::uint64_t sink = 0;  // keeps the reads from being optimised away
  for (int pass = 0; pass < passes; ++pass) {
    std::fill(sums.begin(), sums.end(), 0);
    const Clock::time_point start = Clock::now();
    cpu::parallel_region(threads, [&] {
      std::uint64_t total = 0;
      cpu::parallel_for(n_chunks, [&](std::int64_t c) {
        // Eight independent sums in locals (registers: nothing can alias them), enough
        // loads in flight for one core to outrun DRAM.
        const std::uint64_t* p = words + static_cast<std::size_t>(c) * kChunkWords;
        std::uint64_t s[8] = {};
        for (std::size_t i = 0; i < kChunkWords; i += 8) {
          for (int j = 0; j < 8; ++j) s[j] += p[i + static_cast<std::size_t>(j)];
        }
        for (std::uint64_t v : s) total += v;
      });
      sums[static_cast<std::size_t>(cpu::thread_index())] = total;
    });
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    for (std::uint64_t v : sums) sink = sink + v;
    m.pass_gb_per_s.push_back(seconds > 0 ? static_cast<double>(m.buffer_bytes) / seconds / 1e9 : 0.0);
  }
  m.gb_per_s = *std::max_element(m.pass_gb_per_s.begin(), m.pass_gb_per_s.end());
  return m;
}

}  // namespace smallcoder::bench
