// The largest logits of a step, picked on the device so that a sampling step sends a
// few hundred bytes to the host instead of the whole vocabulary. One block of 1024
// threads: a threshold that at least kTopLogits logits reach (each warp's second-largest
// per-thread maximum; the smallest of those over the 32 warps), the logits at or above it
// gathered in shared memory, then put in order by (value descending, id ascending), the
// order Sampler uses: each candidate counts the candidates before it (its rank) when there
// are few, else a bitonic sort (Tuning::topk 0: always the sort). Exact: when the gathered
// set overflows, the result says so.
#pragma once

#include <climits>
#include <cstdint>

#include "smallcoder/cuda/device_math.hpp"

namespace smallcoder::cuda {

constexpr int kTopLogits = 64;              // candidates returned (top-k sampling up to k = 63 needs no full copy)
constexpr int kTopThreads = 1024;           // 32 warps: 32 x 2 per-warp maxima bound the threshold
constexpr int kTopCapacity = 2048;          // logits at or above the threshold that can be sorted
constexpr int kTopRankLimit = kTopThreads;  // candidates few enough to rank (one per thread)
static_assert(kTopThreads / kWarpSize * 2 == kTopLogits, "each warp vouches for two logits above the threshold");

struct TopLogitsResult {
  float values[kTopLogits];
  std::int32_t ids[kTopLogits];
  // How many leading entries are the largest logits, in order: min(kTopLogits, n), or 0
  // when the device could not tell (more than kTopCapacity logits tied near the top, or NaNs).
  std::int32_t count;
};

// a comes before b: larger value, then smaller id.
__device__ __forceinline__ bool top_before(float va, int ia, float vb, int ib) {
  return va > vb || (va == vb && ia < ib);
}

struct TopLogitsArgs {
  const float* logits = nullptr;
  int n = 0;
  TopLogitsResult* result = nullptr;  // device memory, or mapped host memory
  bool rank = true;                   // rank the candidates when there are few (else always sort)
  bool trigger_early = false;
};

// The largest of logits [tid, tid + 1024, ...): four at a time where the row allows.
__device__ __forceinline__ float thread_max(const float* logits, int n, int tid) {
  float own = -INFINITY;
  if (n % 4 == 0 && reinterpret_cast<std::uintptr_t>(logits) % 16 == 0) {
    const float4* v = reinterpret_cast<const float4*>(logits);
#pragma unroll 8
    for (int i = tid; i < n / 4; i += kTopThreads) {
      const float4 f = v[i];
      own = fmaxf(own, fmaxf(fmaxf(f.x, f.y), fmaxf(f.z, f.w)));
    }
  } else {
#pragma unroll 8
    for (int i = tid; i < n; i += kTopThreads) own = fmaxf(own, logits[i]);
  }
  return own;
}

template <class Unused = void>
__global__ void __launch_bounds__(kTopThreads) top_logits_kernel(const TopLogitsArgs a) {
  __shared__ float values[kTopCapacity];
  __shared__ int ids[kTopCapacity];
  __shared__ float second_of_warp[kTopThreads / kWarpSize];
  __shared__ int gathered;
  enter_dependent(a.trigger_early);
  const float* logits = a.logits;
  const int n = a.n;
  TopLogitsResult* result = a.result;
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;

  // Each warp's two largest per-thread maxima are two distinct logits; the smallest
  // second-largest over the 32 warps is reached by at least 64 logits. (Whichever logits
  // a thread covers, the argument holds: each thread's maximum is one of its own logits.)
  const float own = thread_max(logits, n, tid);
  const float first = warp_max(own);
  const unsigned holders = __ballot_sync(kFullMask, own == first);
  const int holder = holders != 0 ? __ffs(holders) - 1 : -1;
  const float second = warp_max(lane == holder ? -INFINITY : own);
  if (lane == 0) second_of_warp[warp] = second;
  if (tid == 0) gathered = 0;
  __syncthreads();
  float threshold = second_of_warp[0];
  for (int w = 1; w < kTopThreads / kWarpSize; ++w) threshold = fminf(threshold, second_of_warp[w]);

  auto gather = [&](float v, int i) {
    if (v >= threshold) {  // never true for NaN
      const int slot = atomicAdd(&gathered, 1);
      if (slot < kTopCapacity) {
        values[slot] = v;
        ids[slot] = i;
      }
    }
  };
  if (n % 4 == 0 && reinterpret_cast<std::uintptr_t>(logits) % 16 == 0) {
    const float4* v = reinterpret_cast<const float4*>(logits);
#pragma unroll 8
    for (int i = tid; i < n / 4; i += kTopThreads) {
      const float4 f = v[i];
      gather(f.x, 4 * i);
      gather(f.y, 4 * i + 1);
      gather(f.z, 4 * i + 2);
      gather(f.w, 4 * i + 3);
    }
  } else {
    for (int i = tid; i < n; i += kTopThreads) gather(logits[i], i);
  }
  __syncthreads();
  const int total = gathered;
  const int kept = min(total, kTopCapacity);
  if (a.rank && kept <= kTopRankLimit) {
    // Rank: the candidates before this one; the keys (value, id) are distinct, so the
    // ranks are 0 .. kept-1 exactly once each, and ranks below kTopLogits are the answer.
    if (tid < kept) {
      const float v = values[tid];
      const int id = ids[tid];
      int rank = 0;
      for (int j = 0; j < kept; ++j) rank += top_before(values[j], ids[j], v, id) ? 1 : 0;
      if (rank < kTopLogits) {
        result->values[rank] = v;
        result->ids[rank] = id;
      }
    }
    if (tid >= kept && tid < kTopLogits) {  // fewer candidates than slots: the rest as the sort leaves them
      result->values[tid] = -INFINITY;
      result->ids[tid] = INT_MAX;
    }
  } else {
    int size = kTopLogits;  // a power of two that holds them all
    while (size < kept) size *= 2;
    for (int i = kept + tid; i < size; i += kTopThreads) {
      values[i] = -INFINITY;
      ids[i] = INT_MAX;
    }
    __syncthreads();

    // Bitonic sort of `size` entries into "before" order, one compare-exchange per pair.
    for (int block = 2; block <= size; block *= 2) {
      for (int stride = block / 2; stride > 0; stride /= 2) {
        for (int pair = tid; pair < size / 2; pair += kTopThreads) {
          const int lo = 2 * pair - (pair & (stride - 1));
          const int hi = lo + stride;
          const bool forward = (lo & block) == 0;  // this run ends in "before" order, else in reverse
          const bool swap = forward ? top_before(values[hi], ids[hi], values[lo], ids[lo])
                                    : top_before(values[lo], ids[lo], values[hi], ids[hi]);
          if (swap) {
            const float v = values[lo];
            values[lo] = values[hi];
            values[hi] = v;
            const int id = ids[lo];
            ids[lo] = ids[hi];
            ids[hi] = id;
          }
        }
        __syncthreads();
      }
    }
    if (tid < kTopLogits) {
      result->values[tid] = values[tid];
      result->ids[tid] = ids[tid];
    }
  }
  if (tid == 0) {
    const int wanted = min(kTopLogits, n);
    result->count = total <= kTopCapacity && kept >= wanted ? wanted : 0;
  }
}

}  // namespace smallcoder::cuda
