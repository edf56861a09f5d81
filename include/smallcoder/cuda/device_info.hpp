// What the benchmark reports about the GPU: its name and memory, the device memory
// smallcoder holds (allocated, peak, reserved, as the original reported through
// torch.cuda), and a measured read bandwidth, the ceiling of batch-1 decode.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "smallcoder/cuda/runtime.hpp"

namespace smallcoder::cuda {

struct DeviceMemoryStats {
  std::string device_name;  // "NVIDIA H100 80GB HBM3"
  int multiprocessors = 0;
  std::size_t allocated = 0;  // live smallcoder allocations: weights, KV cache, activations, scratch
  std::size_t peak_allocated =
      0;                        // the most `allocated` has been since the newest CudaBackend (or reset_peak_memory())
  std::size_t reserved = 0;     // held from the driver: equal to allocated (smallcoder keeps no cache of freed blocks)
  std::size_t device_used = 0;  // total minus free as the driver sees it: every context on the GPU, ours included
  std::size_t device_total = 0;
};

inline DeviceMemoryStats device_memory_stats() {
  DeviceMemoryStats s;
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, current_device()), "reading the device properties");
  s.device_name = prop.name;
  s.multiprocessors = prop.multiProcessorCount;
  s.allocated = memory_counters().allocated.load();
  s.peak_allocated = memory_counters().peak.load();
  s.reserved = s.allocated;
  std::size_t free = 0, total = 0;
  check(cudaMemGetInfo(&free, &total), "reading the device memory use");
  s.device_used = total - free;
  s.device_total = total;
  return s;
}

// Starts a new peak at what is allocated now (torch.cuda.reset_peak_memory_stats).
inline void reset_peak_memory() { memory_counters().peak = memory_counters().allocated.load(); }

// Sums 16-byte words so the reads cannot be optimised away; one partial sum per thread.
// (Kernels in these headers are templates: a plain __global__ function would be defined
// again in every translation unit that includes it.)
template <class Word>
__global__ void read_bandwidth_kernel(const Word* data, std::size_t words, unsigned* sink) {
  unsigned acc = 0;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < words; i += stride) {
    const Word v = __ldg(data + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;  // practically never true: keeps the loads alive
}

struct ReadBandwidth {
  double best_gb_per_s = 0;           // 1e9 bytes per second
  std::vector<double> pass_gb_per_s;  // every timed pass, in order
  std::size_t buffer_bytes = 0;
};

// Device-memory read bandwidth: `passes` streaming reads of a `bytes` buffer (make it
// several times the L2 cache) after one warm-up, each timed with events.
inline ReadBandwidth measure_read_bandwidth(std::size_t bytes = std::size_t{1} << 30, int passes = 10) {
  const std::size_t words = bytes / sizeof(uint4);
  if (words == 0 || passes <= 0) fail("cuda bandwidth probe", "needs a positive size and pass count");
  ReadBandwidth result;
  result.buffer_bytes = words * sizeof(uint4);
  DeviceMemory buffer = device_alloc(result.buffer_bytes, "the bandwidth probe");
  DeviceMemory sink = device_alloc(sizeof(unsigned), "the bandwidth probe");
  check(cudaMemset(buffer.get(), 0x5a, result.buffer_bytes), "filling the bandwidth probe buffer");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, current_device()), "reading the device properties");
  const int threads = 512;
  const int blocks = prop.multiProcessorCount * 4;
  Event start = make_event(), stop = make_event();
  for (int pass = 0; pass <= passes; ++pass) {  // pass 0 warms up
    check(cudaEventRecord(start.get(), nullptr), "recording an event");
    launch(&read_bandwidth_kernel<uint4>, blocks, threads, 0, nullptr, "read_bandwidth_kernel", false,
           static_cast<const uint4*>(buffer.get()), words, static_cast<unsigned*>(sink.get()));
    check(cudaEventRecord(stop.get(), nullptr), "recording an event");
    check(cudaEventSynchronize(stop.get()), "running the bandwidth probe");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start.get(), stop.get()), "timing the bandwidth probe");
    if (pass == 0 || ms <= 0) continue;
    const double gb_per_s = static_cast<double>(result.buffer_bytes) / (ms * 1e-3) / 1e9;
    result.pass_gb_per_s.push_back(gb_per_s);
    result.best_gb_per_s = std::max(result.best_gb_per_s, gb_per_s);
  }
  return result;
}

}  // namespace smallcoder::cuda
