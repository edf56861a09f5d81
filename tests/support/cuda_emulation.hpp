// A CPU stand-in for the GPU, so the CUDA backend's logic (op planning and fusion, graph
// capture and replay, kernel indexing, launch limits) is tested on machines without one.
// The CUDA runtime calls the backend makes are defined here over host memory; kernels are
// the real ones, compiled by the host compiler: each block runs its threads as cooperative
// fibers that switch at barriers and warp shuffles; a stream runs work at once; a captured
// graph is the list of its launches and copies. Memory is poisoned (NaN) when allocated,
// shared memory at every block. It checks logic, not speed, races or the memory model; of
// programmatic dependent launch it checks that every thread of such a kernel waits for
// the kernels before it (device_math.hpp's wait_for_producers) before it ends, and that
// L2 prefetches stay inside device allocations.
// Include it before anything else, in one translation unit compiled by the host compiler.
#pragma once

#define SMALLCODER_CUDA_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __shared__ static  // blocks run one after another: a static local is the block's

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __forceinline__
#define __forceinline__ inline

#if defined(__x86_64__)
// Saves the callee-saved registers on the current stack, stores the stack pointer in
// *save and continues on `next` (a stack that this function, or fiber_stack_start, set up).
// glibc's swapcontext also switches the signal mask: two system calls per switch, which
// made a shuffle-heavy kernel 50 times slower.
extern "C" void smallcoder_emulation_switch(void** save, void* next);
asm(R"(
  .text
  .globl smallcoder_emulation_switch
  .type smallcoder_emulation_switch, @function
smallcoder_emulation_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size smallcoder_emulation_switch, .-smallcoder_emulation_switch
)");
#endif

namespace smallcoder::cuda::emulation {

constexpr std::size_t kFiberStack = 64 * 1024;
constexpr int kMultiprocessors = 8;
constexpr int kSharedPerBlock = 48 * 1024;
constexpr int kSharedPerBlockOptin = 227 * 1024;

struct Fiber {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t context{};
#endif
  uint3 thread{};
  bool done = false;
  bool waited = false;  // called wait_for_producers()
};

// The block being run: its fibers and the barriers they meet at.
struct Block {
  std::vector<Fiber> fibers;
#if defined(__x86_64__)
  void* scheduler = nullptr;
#else
  ucontext_t scheduler{};
#endif
  int current = 0;
  int alive = 0;
  unsigned generation = 0;  // of the block barrier
  int arrived = 0;
  std::vector<unsigned> warp_generation;
  std::vector<int> warp_arrived, warp_alive;
  std::vector<std::array<std::uint32_t, 32>> warp_slots;
  std::uint64_t events = 0;  // arrivals and exits: no change over a whole round is a deadlock
  std::function<void()> body;
};

struct Allocation {
  std::size_t bytes;
  bool pinned;
};

struct State {
  Block block;
  std::vector<std::vector<char>> stacks;
  std::vector<float4> shared;
  uint3 block_idx{};
  dim3 block_dim, grid_dim;
  cudaError_t last_error = cudaSuccess;
  std::map<std::uintptr_t, Allocation> allocations;  // device (cudaMalloc) and pinned host memory
  std::size_t allocated = 0;
  std::map<const void*, int> shared_limits;  // cudaFuncAttributeMaxDynamicSharedMemorySize per kernel
  int capturing = 0;                         // streams in capture
  bool overlap = false;                      // the running kernel was launched as a programmatic dependent
};

inline State& state() {
  static State s;
  return s;
}

inline Block& block() { return state().block; }
inline Fiber& fiber() { return block().fibers[static_cast<std::size_t>(block().current)]; }
inline int linear_thread() { return block().current; }

inline void yield() {
#if defined(__x86_64__)
  smallcoder_emulation_switch(&fiber().sp, block().scheduler);
#else
  swapcontext(&fiber().context, &block().scheduler);
#endif
}

inline void release_block_barrier_if_complete(Block& b) {
  if (b.arrived > 0 && b.arrived == b.alive) {
    b.arrived = 0;
    ++b.generation;
  }
}

inline void release_warp_barrier_if_complete(Block& b, int w) {
  if (b.warp_arrived[w] > 0 && b.warp_arrived[w] == b.warp_alive[w]) {
    b.warp_arrived[w] = 0;
    ++b.warp_generation[w];
  }
}

inline void sync_block() {
  Block& b = block();
  ++b.events;
  const unsigned generation = b.generation;
  ++b.arrived;
  release_block_barrier_if_complete(b);
  while (b.generation == generation) yield();
}

inline void sync_warp() {
  Block& b = block();
  const int w = linear_thread() / 32;
  ++b.events;
  const unsigned generation = b.warp_generation[w];
  ++b.warp_arrived[w];
  release_warp_barrier_if_complete(b, w);
  while (b.warp_generation[w] == generation) yield();
}

// Every lane publishes a word, then reads another lane's.
inline std::uint32_t exchange(std::uint32_t word, int source_lane) {
  Block& b = block();
  const int w = linear_thread() / 32, lane = linear_thread() % 32;
  b.warp_slots[w][lane] = word;
  sync_warp();
  const std::uint32_t other = b.warp_slots[w][source_lane];
  sync_warp();
  return other;
}

inline void fiber_main() {
  Block& b = block();
  b.body();
  Fiber& f = fiber();
  f.done = true;
  --b.alive;
  --b.warp_alive[linear_thread() / 32];
  ++b.events;
  release_block_barrier_if_complete(b);
  release_warp_barrier_if_complete(b, linear_thread() / 32);
#if defined(__x86_64__)
  yield();  // never resumed: the fiber is done
#endif
}  // with ucontext: returns to the scheduler through uc_link

// Points a fiber at the top of `stack`, to start in fiber_main on its first switch.
inline void start_fiber(Fiber& f, std::vector<char>& stack, Block& b) {
#if defined(__x86_64__)
  auto top = reinterpret_cast<std::uintptr_t>(stack.data() + stack.size()) & ~std::uintptr_t{15};
  void** frame = reinterpret_cast<void**>(top);
  *--frame = nullptr;                               // fiber_main's return address: never used
  *--frame = reinterpret_cast<void*>(&fiber_main);  // where the switch's ret goes
  for (int i = 0; i < 6; ++i) *--frame = nullptr;   // rbp rbx r12 r13 r14 r15, popped by the switch
  f.sp = frame;
  (void)b;
#else
  getcontext(&f.context);
  f.context.uc_stack.ss_sp = stack.data();
  f.context.uc_stack.ss_size = stack.size();
  f.context.uc_link = &b.scheduler;
  makecontext(&f.context, fiber_main, 0);
#endif
}

inline void resume(Block& b, Fiber& f) {
#if defined(__x86_64__)
  smallcoder_emulation_switch(&b.scheduler, f.sp);
#else
  swapcontext(&b.scheduler, &f.context);
#endif
}

inline void run_block(dim3 dim) {
  State& s = state();
  Block& b = s.block;
  const int n = static_cast<int>(dim.x * dim.y * dim.z);
  const int warps = (n + 31) / 32;
  if (s.stacks.size() < static_cast<std::size_t>(n))
    s.stacks.resize(static_cast<std::size_t>(n), std::vector<char>(kFiberStack));
  b.fibers.assign(static_cast<std::size_t>(n), Fiber{});
  b.alive = n;
  b.arrived = 0;
  b.warp_generation.assign(static_cast<std::size_t>(warps), 0);
  b.warp_arrived.assign(static_cast<std::size_t>(warps), 0);
  b.warp_alive.assign(static_cast<std::size_t>(warps), 0);
  b.warp_slots.assign(static_cast<std::size_t>(warps), {});
  for (int i = 0; i < n; ++i) {
    Fiber& f = b.fibers[static_cast<std::size_t>(i)];
    f.thread = make_uint3(i % dim.x, (i / dim.x) % dim.y, i / (dim.x * dim.y));
    start_fiber(f, s.stacks[static_cast<std::size_t>(i)], b);
    ++b.warp_alive[static_cast<std::size_t>(i / 32)];
  }
  while (b.alive > 0) {
    const std::uint64_t before = b.events;
    for (int i = 0; i < n; ++i) {
      if (b.fibers[static_cast<std::size_t>(i)].done) continue;
      b.current = i;
      resume(b, b.fibers[static_cast<std::size_t>(i)]);
    }
    if (b.events == before) {
      std::fprintf(stderr, "cuda emulation: deadlock in block (%u, %u, %u): %d threads wait at barriers forever\n",
                   s.block_idx.x, s.block_idx.y, s.block_idx.z, b.alive);
      std::abort();
    }
  }
  if (s.overlap) {
    for (const Fiber& f : b.fibers) {
      if (!f.waited) {
        std::fprintf(stderr,
                     "cuda emulation: thread (%u, %u, %u) of block (%u, %u, %u) of a programmatic dependent launch "
                     "ended without waiting for the kernels before it\n",
                     f.thread.x, f.thread.y, f.thread.z, s.block_idx.x, s.block_idx.y, s.block_idx.z);
        std::abort();
      }
    }
  }
}

// Runs every block of a launch, last block first (the hardware promises no order).
inline void run_grid(dim3 grid, dim3 dim, std::size_t shared, std::function<void()> body) {
  State& s = state();
  s.block.body = std::move(body);
  s.block_dim = dim;
  s.grid_dim = grid;
  const long blocks = static_cast<long>(grid.x) * grid.y * grid.z;
  for (long i = blocks - 1; i >= 0; --i) {
    s.block_idx = make_uint3(static_cast<unsigned>(i % grid.x), static_cast<unsigned>(i / grid.x % grid.y),
                             static_cast<unsigned>(i / (static_cast<long>(grid.x) * grid.y)));
    s.shared.assign((shared + sizeof(float4) - 1) / sizeof(float4) + 1, float4{});
    std::memset(s.shared.data(), 0xff, s.shared.size() * sizeof(float4));  // NaN until written
    run_block(dim);
  }
}

// Work on a stream: recorded while the stream captures, else done now.
struct Work {
  std::function<void()> run;
};

}  // namespace smallcoder::cuda::emulation

struct CUstream_st {
  bool capturing = false;
  std::vector<smallcoder::cuda::emulation::Work> captured;
};
struct CUgraph_st {
  std::vector<smallcoder::cuda::emulation::Work> nodes;
};
struct CUgraphExec_st {
  std::vector<smallcoder::cuda::emulation::Work> nodes;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at;
};

namespace smallcoder::cuda::emulation {

inline cudaError_t fail_with(cudaError_t e) {
  state().last_error = e;
  return e;
}

inline void submit(cudaStream_t stream, std::function<void()> run) {
  if (stream != nullptr && stream->capturing) {
    stream->captured.push_back(Work{std::move(run)});
  } else {
    run();
  }
}

// Whether [p, p + bytes) lies inside one allocation of the kind asked for.
inline bool inside(const void* p, std::size_t bytes, bool pinned) {
  const auto& a = state().allocations;
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  auto it = a.upper_bound(address);
  if (it == a.begin()) return false;
  --it;
  return it->second.pinned == pinned && address + bytes <= it->first + it->second.bytes;
}

inline void note_wait() { fiber().waited = true; }

// An L2 prefetch of [p, p + bytes): it must lie inside one device allocation.
inline void check_prefetch(const void* p, std::size_t bytes) {
  if (!inside(p, bytes, false)) {
    std::fprintf(stderr, "cuda emulation: an L2 prefetch of %zu bytes at %p leaves device memory\n", bytes, p);
    std::abort();
  }
}

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared, cudaStream_t stream, bool overlap,
            const Args&... args) {
  State& s = state();
  const unsigned threads = block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    fail_with(cudaErrorInvalidConfiguration);
    return;
  }
  const auto limit = s.shared_limits.find(reinterpret_cast<const void*>(kernel));
  const std::size_t allowed =
      limit != s.shared_limits.end() ? static_cast<std::size_t>(limit->second) : kSharedPerBlock;
  if (shared > allowed) {
    fail_with(cudaErrorInvalidValue);
    return;
  }
  std::tuple<std::decay_t<Params>...> values(args...);  // converted as a real launch converts them
  submit(stream, [kernel, grid, block, shared, overlap, values] {
    state().overlap = overlap;
    run_grid(grid, block, shared, [&] { std::apply(kernel, values); });
  });
}

}  // namespace smallcoder::cuda::emulation

namespace smallcoder::cuda {
template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(emulation::state().shared.data());
}
}  // namespace smallcoder::cuda

#define threadIdx (::smallcoder::cuda::emulation::fiber().thread)
#define blockIdx (::smallcoder::cuda::emulation::state().block_idx)
#define blockDim (::smallcoder::cuda::emulation::state().block_dim)
#define gridDim (::smallcoder::cuda::emulation::state().grid_dim)

// Device built-ins.
inline void __syncthreads() { smallcoder::cuda::emulation::sync_block(); }
inline void __threadfence() {}
inline float __shfl_xor_sync(unsigned, float v, int lane_mask, int = 32) {
  std::uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits = smallcoder::cuda::emulation::exchange(bits, (smallcoder::cuda::emulation::linear_thread() % 32) ^ lane_mask);
  std::memcpy(&v, &bits, sizeof v);
  return v;
}
inline unsigned __ballot_sync(unsigned, int predicate) {
  using namespace smallcoder::cuda::emulation;
  Block& b = block();
  const int w = linear_thread() / 32, lane = linear_thread() % 32;
  b.warp_slots[static_cast<std::size_t>(w)][static_cast<std::size_t>(lane)] = predicate != 0;
  sync_warp();
  unsigned mask = 0;
  for (int i = 0; i < 32; ++i) mask |= b.warp_slots[static_cast<std::size_t>(w)][static_cast<std::size_t>(i)] << i;
  sync_warp();
  return mask;
}
inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
// Byte i of the result is byte (s >> 4i) & 7 of the 8 bytes {x, y} (x the low four).
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  const std::uint64_t bytes = static_cast<std::uint64_t>(y) << 32 | x;
  unsigned r = 0;
  for (int i = 0; i < 4; ++i) r |= static_cast<unsigned>(bytes >> (8 * ((s >> (4 * i)) & 7)) & 0xff) << (8 * i);
  return r;
}
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
template <class T>
T __ldg(const T* p) {
  return *p;
}
template <class T>
T __ldcg(const T* p) {
  return *p;
}
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p += v;
  return old;
}
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  const unsigned old = *p;
  *p += v;
  return old;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// The runtime API, over host memory.
extern "C" {

inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    default: return "emulated error";
  }
}
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    default: return "cudaErrorUnknown";
  }
}
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = smallcoder::cuda::emulation::state().last_error;
  smallcoder::cuda::emulation::state().last_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "CUDA emulation on the CPU");
  p->multiProcessorCount = smallcoder::cuda::emulation::kMultiprocessors;
  p->sharedMemPerBlock = smallcoder::cuda::emulation::kSharedPerBlock;
  p->sharedMemPerBlockOptin = smallcoder::cuda::emulation::kSharedPerBlockOptin;
  p->totalGlobalMem = std::size_t{8} << 30;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->major = 9;
  p->minor = 0;
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(std::size_t* free, std::size_t* total) {
  *total = std::size_t{8} << 30;
  *free = *total - smallcoder::cuda::emulation::state().allocated;
  return cudaSuccess;
}

inline cudaError_t emulated_alloc(void** p, std::size_t bytes, bool pinned) {
  using namespace smallcoder::cuda::emulation;
  if (state().capturing > 0) return fail_with(cudaErrorStreamCaptureUnsupported);
  void* memory = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (memory == nullptr) return fail_with(cudaErrorMemoryAllocation);
  std::memset(memory, 0xff, bytes);  // NaN until written, as fresh device memory is garbage
  state().allocations[reinterpret_cast<std::uintptr_t>(memory)] = Allocation{bytes, pinned};
  if (!pinned) state().allocated += bytes;
  *p = memory;
  return cudaSuccess;
}
inline cudaError_t emulated_free(void* p, bool pinned) {
  using namespace smallcoder::cuda::emulation;
  if (p == nullptr) return cudaSuccess;
  const auto it = state().allocations.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == state().allocations.end() || it->second.pinned != pinned) return fail_with(cudaErrorInvalidValue);
  if (!pinned) state().allocated -= it->second.bytes;
  state().allocations.erase(it);
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** p, std::size_t bytes) { return emulated_alloc(p, bytes, false); }
inline cudaError_t cudaFree(void* p) { return emulated_free(p, false); }
inline cudaError_t cudaMallocHost(void** p, std::size_t bytes) { return emulated_alloc(p, bytes, true); }
inline cudaError_t cudaHostAlloc(void** p, std::size_t bytes, unsigned) { return emulated_alloc(p, bytes, true); }
// Pinned memory is mapped: kernels use the host's address, as with unified addressing.
inline cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned) {
  if (!smallcoder::cuda::emulation::inside(host, 1, true))
    return smallcoder::cuda::emulation::fail_with(cudaErrorInvalidValue);
  *device = host;
  return cudaSuccess;
}
inline cudaError_t cudaFreeHost(void* p) { return emulated_free(p, true); }

// Checks that each side of a copy is the kind of memory the copy says it is.
inline bool emulated_copy_ok(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, bool capturing) {
  using smallcoder::cuda::emulation::inside;
  const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_device && !inside(dst, bytes, false)) return false;
  if (src_device && !inside(src, bytes, false)) return false;
  // A captured graph can only copy from or to page-locked host memory.
  if (capturing && !dst_device && !inside(dst, bytes, true)) return false;
  if (capturing && !src_device && !inside(src, bytes, true)) return false;
  return true;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  using namespace smallcoder::cuda::emulation;
  if (state().capturing > 0) return fail_with(cudaErrorStreamCaptureUnsupported);
  if (!emulated_copy_ok(dst, src, bytes, kind, false)) return fail_with(cudaErrorInvalidValue);
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t stream) {
  using namespace smallcoder::cuda::emulation;
  const bool capturing = stream != nullptr && stream->capturing;
  if (!emulated_copy_ok(dst, src, bytes, kind, capturing)) return fail_with(cudaErrorInvalidValue);
  submit(stream, [dst, src, bytes] { std::memcpy(dst, src, bytes); });
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* p, int value, std::size_t bytes) {
  using namespace smallcoder::cuda::emulation;
  if (state().capturing > 0) return fail_with(cudaErrorStreamCaptureUnsupported);
  if (!inside(p, bytes, false)) return fail_with(cudaErrorInvalidValue);
  std::memset(p, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attribute, int value) {
  using namespace smallcoder::cuda::emulation;
  if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > kSharedPerBlockOptin) {
    return fail_with(cudaErrorInvalidValue);
  }
  state().shared_limits[kernel] = value;
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  *stream = new CUstream_st;
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (stream != nullptr && stream->capturing)
    return smallcoder::cuda::emulation::fail_with(cudaErrorStreamCaptureUnsupported);
  return cudaSuccess;
}
inline cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  if (stream == nullptr || stream->capturing) return smallcoder::cuda::emulation::fail_with(cudaErrorInvalidValue);
  stream->capturing = true;
  stream->captured.clear();
  ++smallcoder::cuda::emulation::state().capturing;
  return cudaSuccess;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (stream == nullptr || !stream->capturing) return smallcoder::cuda::emulation::fail_with(cudaErrorInvalidValue);
  stream->capturing = false;
  --smallcoder::cuda::emulation::state().capturing;
  *graph = new CUgraph_st{std::move(stream->captured)};
  stream->captured.clear();
  return cudaSuccess;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  for (const auto& node : exec->nodes) smallcoder::cuda::emulation::submit(stream, node.run);
  return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_st;
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  event->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

}  // extern "C"
