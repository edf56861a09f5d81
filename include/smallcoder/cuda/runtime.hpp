// The CUDA runtime as the backend uses it: every call checked (a failure becomes
// smallcoder::Error with CUDA's own message), owning handles for device memory, pinned
// host memory, streams and graphs, and the device-memory accounting the benchmark reports.
#pragma once

#if !defined(__CUDACC__) && !defined(SMALLCODER_CUDA_EMULATION)
#error "smallcoder's CUDA headers must be compiled by nvcc (define SMALLCODER_CUDA only in .cu translation units)"
#endif

#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "smallcoder/error.hpp"

namespace smallcoder::cuda {

// Throws "cuda: <what>: <CUDA's error string> (<error name>)" unless `status` is cudaSuccess.
inline void check(cudaError_t status, const std::string& what) {
  if (status == cudaSuccess) return;
  fail("cuda", what + ": " + cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ")");
}

// Checks the launch that just happened (bad configuration, missing kernel image, ...).
// Faults inside a kernel surface later, at the next synchronising call, which is checked too.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), std::string("launching ") + kernel); }

// Launches kernel<<<grid, block, shared, stream>>>(args...) and checks the launch. With
// `overlap`, as a programmatic dependent launch: the kernel may start before the kernel
// in front of it in the stream has finished, and must wait for it itself before touching
// any memory the earlier kernels use (device_math.hpp's enter_dependent). (The CPU
// emulation that tests the backend's logic without a GPU, tests/support/, runs the same
// kernels through this one door.)
template <class... Params, class... Args>
inline void launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared, cudaStream_t stream,
                   const char* name, bool overlap, const Args&... args) {
#if defined(SMALLCODER_CUDA_EMULATION)
  emulation::launch(kernel, grid, block, shared, stream, overlap, args...);
#else
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = overlap ? 1 : 0;
  check(cudaLaunchKernelEx(&config, kernel, args...), std::string("launching ") + name);
#endif
  check_launch(name);
}

// Process-wide counters of the device memory smallcoder holds (like torch.cuda's
// memory_allocated / max_memory_allocated). The one piece of global mutable state in the
// CUDA backend: the benchmark asks for these between models.
struct MemoryCounters {
  std::atomic<std::size_t> allocated{0};
  std::atomic<std::size_t> peak{0};
};

inline MemoryCounters& memory_counters() {
  static MemoryCounters counters;
  return counters;
}

struct DeviceFree {
  std::size_t bytes = 0;
  void operator()(void* p) const {
    if (p == nullptr) return;
    cudaFree(p);  // a destructor cannot throw; a failure here means the context is already gone
    memory_counters().allocated -= bytes;
  }
};

// Owns one cudaMalloc allocation (never managed memory).
using DeviceMemory = std::unique_ptr<void, DeviceFree>;

inline DeviceMemory device_alloc(std::size_t bytes, const std::string& what) {
  if (bytes == 0) bytes = 1;
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "allocating " + std::to_string(bytes) + " bytes of device memory for " + what);
  MemoryCounters& c = memory_counters();
  const std::size_t now = c.allocated += bytes;
  std::size_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {
  }
  return DeviceMemory(p, DeviceFree{bytes});
}

struct PinnedFree {
  void operator()(void* p) const {
    if (p != nullptr) cudaFreeHost(p);
  }
};

// Page-locked host memory: the only host memory a captured graph may copy to or from.
// It is mapped into the device's address space too: kernels may read and write it
// directly (mapped_pointer), which a step uses for its few bytes in and out.
using PinnedMemory = std::unique_ptr<void, PinnedFree>;

inline PinnedMemory pinned_alloc(std::size_t bytes, const std::string& what) {
  void* p = nullptr;
  check(cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocMapped),
        "allocating " + std::to_string(bytes) + " bytes of pinned host memory for " + what);
  return PinnedMemory(p);
}

// The address kernels use for pinned memory (the host's own on systems with unified
// addressing), or nullptr where this system does not map it: then copy instead.
inline void* mapped_pointer(const PinnedMemory& memory) {
  void* device = nullptr;
  if (cudaHostGetDevicePointer(&device, memory.get(), 0) != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it so that the next check does not report it
    return nullptr;
  }
  return device;
}

struct StreamDestroy {
  void operator()(cudaStream_t s) const {
    if (s != nullptr) cudaStreamDestroy(s);
  }
};
using Stream = std::unique_ptr<CUstream_st, StreamDestroy>;

inline Stream make_stream() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "creating a stream");
  return Stream(s);
}

struct GraphExecDestroy {
  void operator()(cudaGraphExec_t g) const {
    if (g != nullptr) cudaGraphExecDestroy(g);
  }
};
using GraphExec = std::unique_ptr<CUgraphExec_st, GraphExecDestroy>;

struct EventDestroy {
  void operator()(cudaEvent_t e) const {
    if (e != nullptr) cudaEventDestroy(e);
  }
};
using Event = std::unique_ptr<CUevent_st, EventDestroy>;

inline Event make_event() {
  cudaEvent_t e = nullptr;
  check(cudaEventCreate(&e), "creating an event");
  return Event(e);
}

// Why this process cannot use a CUDA device (no driver, no GPU), or "" when it can.
inline std::string why_no_device() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) return cudaGetErrorString(status);
  return count > 0 ? "" : "the driver reports no device";
}

inline int current_device() {
  int device = 0;
  check(cudaGetDevice(&device), "querying the current device");
  return device;
}

}  // namespace smallcoder::cuda
