// What the benchmark (bench/runner.hpp, examples/benchmark.cpp) asks of the CUDA backend
// beyond the Backend concept: the device memory a model holds, in the original's MB (2^20
// bytes, as torch.cuda reported them), and the GPU's read bandwidth, which bounds decode.
#pragma once

#include <cstdint>
#include <optional>

#include "bench/bandwidth.hpp"
#include "bench/results.hpp"
#include "smallcoder/cuda/backend.hpp"
#include "smallcoder/cuda/device_info.hpp"

namespace smallcoder {

inline std::optional<bench::DeviceMemory> device_memory(const CudaBackend&) {
  const cuda::DeviceMemoryStats s = cuda::device_memory_stats();
  bench::DeviceMemory m;
  m.device = s.device_name;
  m.allocated_mb = static_cast<double>(s.allocated) / bench::kMiB;
  m.reserved_mb = static_cast<double>(s.reserved) / bench::kMiB;
  m.peak_mb = static_cast<double>(s.peak_allocated) / bench::kMiB;
  return m;
}

// `threads` does not apply: the GPU's own reads, the best of 10 passes over `bytes`. The
// benchmark probes while a model is loaded, so the device peak the probe's buffer raised is
// put back (the buffer is freed by then): the Memory column stays the model's.
inline bench::BandwidthMeasurement measure_bandwidth(const CudaBackend*, std::uint64_t bytes, int) {
  const std::size_t peak = cuda::memory_counters().peak.load();
  const cuda::ReadBandwidth r = cuda::measure_read_bandwidth(static_cast<std::size_t>(bytes));
  cuda::memory_counters().peak = peak;
  bench::BandwidthMeasurement m;
  m.device = cuda::device_memory_stats().device_name;
  m.gb_per_s = r.best_gb_per_s;
  m.buffer_bytes = r.buffer_bytes;
  m.threads = 0;
  m.pass_gb_per_s = r.pass_gb_per_s;
  return m;
}

}  // namespace smallcoder
