// Attention of each query row against the KV cache, one block per (kv head, split of
// the sequence, token row); the block serves every query head of its group, so each
// cached key and value is read once. Within a block each warp walks its own positions a
// few at a time (their loads in flight together) with an online softmax; the warps'
// states are merged in shared memory. A decode step splits the sequence across blocks of
// Tuning::split positions: each writes a partial (max, sum, weighted values) and the last
// block to finish, found with an atomic counter, merges them. In a decode step the kernel
// also applies RoPE to the query and the new key and appends the new key and value to the
// cache (`fused`), which saves two launches per layer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/cuda/device_math.hpp"
#include "smallcoder/cuda/rowwise.hpp"

namespace smallcoder::cuda {

constexpr int kAttentionThreads = 128;
constexpr int kAttentionWarps = kAttentionThreads / kWarpSize;
constexpr int kMaxKvGroup = 8;             // query heads per kv head
constexpr int kMaxAttentionHeadDim = 256;  // 8 dimensions per lane

struct AttentionArgs {
  float* q = nullptr;  // rows x (heads * head_dim), row stride ldq
  int ldq = 0;
  float* k = nullptr;  // rows x (kv_heads * head_dim); fused: the new key, roped in place
  int ldk = 0;
  const float* v = nullptr;
  int ldv = 0;
  void* k_cache = nullptr;  // this layer's [kv_heads][context][head_dim] of the cache type
  void* v_cache = nullptr;
  float* out = nullptr;
  int ldo = 0;
  const int* step = nullptr;
  int first_row = 0;
  int kv_heads = 0;
  int group = 0;  // query heads per kv head
  int head_dim = 0;
  int context = 0;
  float scale = 0.0f;            // 1 / sqrt(head_dim)
  int splits = 1;                // gridDim.y: blocks along the sequence
  int split_positions = 64;      // a split holds at least this many positions (Tuning::split)
  float* partials = nullptr;     // splits > 1: [kv_heads][splits][group][2 + head_dim] = max, sum, values
  unsigned* counters = nullptr;  // splits > 1: [kv_heads], zero before and after every launch
  bool fused = false;            // rope q and k here and append k, v to the cache (decode step, rows == 1)
  const float* rope_cos = nullptr;
  const float* rope_sin = nullptr;
  bool interleaved = false;
  bool bf16 = false;
  bool trigger_early = false;
};

// Most blocks of a decode step's splits along the sequence, for `kv_heads` heads on
// `multiprocessors`: about two blocks per multiprocessor in all, fewer for short contexts.
inline int attention_splits(int context, int split_positions, int kv_heads, int multiprocessors) {
  const int by_length = (context + split_positions - 1) / split_positions;
  const int by_device = (2 * multiprocessors + kv_heads - 1) / kv_heads;
  return by_length < by_device ? (by_length > 1 ? by_length : 1) : by_device;
}

// Dynamic shared memory of one block: the group's queries, and each warp's softmax state.
inline std::size_t attention_shared_bytes(int group, int head_dim) {
  return sizeof(float) * (static_cast<std::size_t>(group) * head_dim +
                          static_cast<std::size_t>(kAttentionWarps) * group * (2 + head_dim));
}

// kDims: head dimensions per lane (head_dim <= 32 * kDims). C: the cache's element type.
template <class C, int kDims>
__global__ void __launch_bounds__(kAttentionThreads, 1) attention_kernel(const AttentionArgs a) {
  constexpr int kBatch = kDims <= 2 ? 4 : (kDims <= 4 ? 2 : 1);  // positions loaded together: more for small heads
  __shared__ bool finishes;                                      // whether this block writes the output

  enter_dependent(a.trigger_early);
  const int g = blockIdx.x, split = blockIdx.y, r = a.first_row + blockIdx.z;
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int hd = a.head_dim, half = hd / 2, group = a.group;
  const int pos = a.step[kStepPosition] + r;
  if (pos >= a.context) return;  // checked on the host; never index past the cache
  const int len = pos + 1;
  const int chunk = max((len + a.splits - 1) / a.splits, a.split_positions);
  const int used = (len + chunk - 1) / chunk;  // splits that hold positions; the others have nothing to do
  if (split >= used) return;
  const int t0 = split * chunk, t1 = min(len, t0 + chunk);

  float* q_s = dynamic_shared<float>();                         // group x hd
  float* warp_max = q_s + group * hd;                           // warps x group
  float* warp_sum_exp = warp_max + kAttentionWarps * group;     // warps x group
  float* warp_values = warp_sum_exp + kAttentionWarps * group;  // warps x group x hd
  C* kc = static_cast<C*>(a.k_cache) + static_cast<std::size_t>(g) * a.context * hd;
  C* vc = static_cast<C*>(a.v_cache) + static_cast<std::size_t>(g) * a.context * hd;
  float* q_group = a.q + static_cast<std::size_t>(r) * a.ldq + static_cast<std::size_t>(g) * group * hd;

  for (int i = tid; i < group * hd; i += kAttentionThreads) q_s[i] = q_group[i];
  __syncthreads();
  if (a.fused) {
    const float* c = a.rope_cos + static_cast<std::size_t>(pos) * half;
    const float* s = a.rope_sin + static_cast<std::size_t>(pos) * half;
    for (int i = tid; i < group * half; i += kAttentionThreads) {
      const int h = i / half, j = i % half;
      rope_pair(q_s + h * hd, j, half, c[j], s[j], a.interleaved, a.bf16);
    }
    if (t0 <= pos && pos < t1) {  // this split holds the new position: rope the key, append key and value
      float* k_new = a.k + static_cast<std::size_t>(r) * a.ldk + static_cast<std::size_t>(g) * hd;
      const float* v_new = a.v + static_cast<std::size_t>(r) * a.ldv + static_cast<std::size_t>(g) * hd;
      C* k_at = kc + static_cast<std::size_t>(pos) * hd;
      C* v_at = vc + static_cast<std::size_t>(pos) * hd;
      for (int j = tid; j < half; j += kAttentionThreads) {
        rope_pair(k_new, j, half, c[j], s[j], a.interleaved, a.bf16);  // only this block reads this key
        const int ia = a.interleaved ? 2 * j : j, ib = a.interleaved ? 2 * j + 1 : j + half;
        k_at[ia] = CacheType<C>::store(k_new[ia]);
        k_at[ib] = CacheType<C>::store(k_new[ib]);
      }
      for (int d = tid; d < hd; d += kAttentionThreads) v_at[d] = CacheType<C>::store(v_new[d]);
    }
    __syncthreads();  // the roped queries, and this block's cache writes, are visible to all its threads
  }

  // Each warp: online softmax over positions t0 + warp + 4i, kBatch of them per round
  // (loaded together, then folded in at once); lanes hold dimensions lane, lane + 32, ...
  float m[kMaxKvGroup], l[kMaxKvGroup], acc[kMaxKvGroup][kDims];
#pragma unroll
  for (int h = 0; h < kMaxKvGroup; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.0f;
#pragma unroll
    for (int i = 0; i < kDims; ++i) acc[h][i] = 0.0f;
  }
  for (int t = t0 + warp; t < t1; t += kAttentionWarps * kBatch) {
    float kv[kBatch][kDims], vv[kBatch][kDims];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int tb = t + b * kAttentionWarps;
      const C* kt = kc + static_cast<std::size_t>(tb) * hd;  // plain loads: this kernel may have written it
      const C* vt = vc + static_cast<std::size_t>(tb) * hd;
#pragma unroll
      for (int i = 0; i < kDims; ++i) {
        const int d = lane + i * kWarpSize;
        const bool in = d < hd && tb < t1;
        kv[b][i] = in ? CacheType<C>::load(kt + d) : 0.0f;
        vv[b][i] = in ? CacheType<C>::load(vt + d) : 0.0f;
      }
    }
#pragma unroll
    for (int h = 0; h < kMaxKvGroup; ++h) {
      if (h >= group) break;
      float score[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < kDims; ++i) {
          const int d = lane + i * kWarpSize;
          if (d < hd) dot = fmaf(q_s[h * hd + d], kv[b][i], dot);
        }
        score[b] = t + b * kAttentionWarps < t1 ? warp_sum(dot) * a.scale : -INFINITY;  // the same for the whole warp
      }
      float m_new = m[h];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) m_new = fmaxf(m_new, score[b]);
      const float correction = expf(m[h] - m_new);  // 0 for the first position (m = -inf)
      l[h] *= correction;
#pragma unroll
      for (int i = 0; i < kDims; ++i) acc[h][i] *= correction;
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const float p = expf(score[b] - m_new);  // 0 for a position past the split
        l[h] += p;
#pragma unroll
        for (int i = 0; i < kDims; ++i) acc[h][i] = fmaf(p, vv[b][i], acc[h][i]);
      }
      m[h] = m_new;
    }
  }
#pragma unroll
  for (int h = 0; h < kMaxKvGroup; ++h) {
    if (h >= group) break;
    if (lane == 0) {
      warp_max[warp * group + h] = m[h];
      warp_sum_exp[warp * group + h] = l[h];
    }
#pragma unroll
    for (int i = 0; i < kDims; ++i) {
      const int d = lane + i * kWarpSize;
      if (d < hd) warp_values[(warp * group + h) * hd + d] = acc[h][i];
    }
  }
  __syncthreads();

  // Merge the warps; a warp that saw no position has max -inf and weight 0.
  const bool direct = used == 1;
  float* out_group = a.out + static_cast<std::size_t>(r) * a.ldo + static_cast<std::size_t>(g) * group * hd;
  for (int i = tid; i < group * hd; i += kAttentionThreads) {
    const int h = i / hd, d = i % hd;
    float mx = -INFINITY;
    for (int w = 0; w < kAttentionWarps; ++w) mx = fmaxf(mx, warp_max[w * group + h]);
    float sum = 0.0f, value = 0.0f;
    for (int w = 0; w < kAttentionWarps; ++w) {
      const float wm = warp_max[w * group + h];
      if (wm == -INFINITY) continue;
      const float e = expf(wm - mx);
      sum = fmaf(warp_sum_exp[w * group + h], e, sum);
      value = fmaf(warp_values[(w * group + h) * hd + d], e, value);
    }
    if (direct) {
      out_group[i] = to_activation(value / sum, a.bf16);
    } else {
      float* p = a.partials + ((static_cast<std::size_t>(g) * a.splits + split) * group + h) * (2 + hd);
      if (d == 0) {
        p[0] = mx;
        p[1] = sum;
      }
      p[2 + d] = value;
    }
  }

  if (!direct) {
    // Publish the partial, count it; the block that completes the count merges them all.
    __threadfence();
    __syncthreads();
    if (tid == 0) finishes = atomicAdd(a.counters + g, 1u) == static_cast<unsigned>(used - 1);
    __syncthreads();
    if (!finishes) return;
    __threadfence();
    for (int i = tid; i < group * hd; i += kAttentionThreads) {
      const int h = i / hd, d = i % hd;
      const float* first = a.partials + (static_cast<std::size_t>(g) * a.splits * group + h) * (2 + hd);
      const std::size_t split_stride = static_cast<std::size_t>(group) * (2 + hd);
      float mx = -INFINITY;
      for (int s = 0; s < used; ++s) mx = fmaxf(mx, __ldcg(first + s * split_stride));
      float sum = 0.0f, value = 0.0f;
      for (int s = 0; s < used; ++s) {
        const float* p = first + s * split_stride;
        const float e = expf(__ldcg(p) - mx);
        sum = fmaf(__ldcg(p + 1), e, sum);
        value = fmaf(__ldcg(p + 2 + d), e, value);
      }
      out_group[i] = to_activation(value / sum, a.bf16);
    }
    if (tid == 0) a.counters[g] = 0;  // ready for the next launch (the next layer)
  }
  if (a.fused) {
    // Leave q roped, as the unfused rope op would. Every block of this group has read q by
    // now (direct: this is the only one; otherwise all have counted their partials).
    for (int i = tid; i < group * hd; i += kAttentionThreads) q_group[i] = q_s[i];
  }
}

}  // namespace smallcoder::cuda
