// The row-wise ops (one block per token row): embedding lookup, RMSNorm, RoPE with the
// append of keys and values to the KV cache, SwiGLU. A decode step fuses all but the
// embedding into its matrix-vector and attention kernels; short prompts fuse the norms and
// SwiGLU into their multi-row products.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/cuda/device_math.hpp"

namespace smallcoder::cuda {

constexpr int kRowThreads = 256;

// The step's parameters as the kernels read them from device memory, so that one
// captured graph serves every decode step: [0] = position of buffer row 0, [1 + r] =
// token id of buffer row r.
constexpr int kStepPosition = 0;
constexpr int kStepTokens = 1;

// How the KV cache stores an element: fp32, or bf16 in bf16-activation mode.
template <class C>
struct CacheType;

template <>
struct CacheType<float> {
  __device__ static float load(const float* p) { return *p; }
  __device__ static float store(float v) { return v; }
};

template <>
struct CacheType<__nv_bfloat16> {
  __device__ static float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
  __device__ static __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

// Rotates pair j of one head in place: (j, j + d/2) in the rotate-half layout, (2j, 2j+1)
// interleaved; c and s are cos and sin of position * inv_freq[j].
__device__ __forceinline__ void rope_pair(float* head, int j, int half, float c, float s, bool interleaved, bool bf16) {
  const int ia = interleaved ? 2 * j : j;
  const int ib = interleaved ? 2 * j + 1 : j + half;
  const float x0 = head[ia], x1 = head[ib];
  head[ia] = to_activation(x0 * c - x1 * s, bf16);
  head[ib] = to_activation(x1 * c + x0 * s, bf16);
}

struct EmbedArgs {
  const std::byte* table = nullptr;  // vocab x cols in the stored type
  std::size_t row_bytes = 0;
  int cols = 0;
  int vocab = 0;
  const int* step = nullptr;  // where the step's position and ids are read (device, or mapped host memory)
  int* step_copy = nullptr;   // if set: the device copy of the step that the later kernels read, filled here
  int first_row = 0;
  float* x = nullptr;
  int ldx = 0;
  bool bf16 = false;
  bool trigger_early = false;
};

template <class W>
__global__ void __launch_bounds__(kRowThreads) embed_kernel(const EmbedArgs a) {
  __shared__ int token_of_block;
  enter_dependent(a.trigger_early);
  const int r = a.first_row + blockIdx.x;
  if (threadIdx.x == 0) {  // one read (perhaps across the bus) per block
    token_of_block = a.step[kStepTokens + r];
    if (a.step_copy != nullptr) {
      a.step_copy[kStepTokens + r] = token_of_block;
      if (blockIdx.x == 0) a.step_copy[kStepPosition] = a.step[kStepPosition];
    }
  }
  __syncthreads();
  int token = token_of_block;
  if (token < 0 || token >= a.vocab)
    token = 0;  // ids are validated on the host; this only keeps a read inside the table
  const std::byte* row = a.table + static_cast<std::size_t>(token) * a.row_bytes;
  float* out = a.x + static_cast<std::size_t>(r) * a.ldx;
  for (int c = threadIdx.x; c < a.cols; c += kRowThreads) out[c] = to_activation(WeightType<W>::at(row, c), a.bf16);
}

struct RmsNormArgs {
  const float* x = nullptr;
  int ldx = 0;
  const float* weight = nullptr;  // fp32
  float eps = 0.0f;
  float* out = nullptr;
  int ldo = 0;
  int cols = 0;
  int first_row = 0;
  bool bf16 = false;
  bool trigger_early = false;
};

template <class Unused = void>
__global__ void __launch_bounds__(kRowThreads) rmsnorm_kernel(const RmsNormArgs a) {
  __shared__ float scratch[kWarpSize];
  enter_dependent(a.trigger_early);
  const int r = a.first_row + blockIdx.x;
  const float* x = a.x + static_cast<std::size_t>(r) * a.ldx;
  float* out = a.out + static_cast<std::size_t>(r) * a.ldo;
  float squares = 0.0f;
  for (int c = threadIdx.x; c < a.cols; c += kRowThreads) squares = fmaf(x[c], x[c], squares);
  const float inv = 1.0f / sqrtf(block_sum(squares, scratch) / static_cast<float>(a.cols) + a.eps);
  for (int c = threadIdx.x; c < a.cols; c += kRowThreads) out[c] = to_activation(a.weight[c] * (x[c] * inv), a.bf16);
}

// RoPE on the q and k rows of a prompt pass (in place), and/or the append of the k and v
// rows to the KV cache at their positions: one launch where the unfused ops took two.
struct RopeAppendArgs {
  float* q = nullptr;
  int ldq = 0;
  float* k = nullptr;
  int ldk = 0;
  const float* v = nullptr;
  int ldv = 0;
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  bool rope = false;           // rotate q and k
  const float* cos = nullptr;  // context x head_dim/2
  const float* sin = nullptr;
  bool interleaved = false;
  void* k_cache = nullptr;  // if set: append k and v to this layer's [kv_heads][context][head_dim]
  void* v_cache = nullptr;
  int context = 0;  // positions in the tables and the cache
  const int* step = nullptr;
  int first_row = 0;
  bool bf16 = false;
  bool trigger_early = false;
};

template <class C>
__global__ void __launch_bounds__(kRowThreads) rope_append_kernel(const RopeAppendArgs a) {
  enter_dependent(a.trigger_early);
  const int r = a.first_row + blockIdx.x;
  const int pos = a.step[kStepPosition] + r;
  if (pos >= a.context) return;  // checked on the host; never index past the tables or the cache
  const int half = a.head_dim / 2;
  float* k_row = a.k + static_cast<std::size_t>(r) * a.ldk;
  if (a.rope) {
    const float* c = a.cos + static_cast<std::size_t>(pos) * half;
    const float* s = a.sin + static_cast<std::size_t>(pos) * half;
    for (int i = threadIdx.x; i < (a.heads + a.kv_heads) * half; i += kRowThreads) {
      const int h = i / half, j = i % half;
      float* head =
          h < a.heads ? a.q + static_cast<std::size_t>(r) * a.ldq + h * a.head_dim : k_row + (h - a.heads) * a.head_dim;
      rope_pair(head, j, half, c[j], s[j], a.interleaved, a.bf16);
    }
  }
  if (a.k_cache == nullptr) return;
  __syncthreads();  // the roped keys, written by other threads of this block
  C* kc = static_cast<C*>(a.k_cache);
  C* vc = static_cast<C*>(a.v_cache);
  for (int i = threadIdx.x; i < a.kv_heads * a.head_dim; i += kRowThreads) {
    const int g = i / a.head_dim, d = i % a.head_dim;
    const std::size_t at = (static_cast<std::size_t>(g) * a.context + pos) * a.head_dim + d;
    kc[at] = CacheType<C>::store(k_row[i]);
    vc[at] = CacheType<C>::store(a.v[static_cast<std::size_t>(r) * a.ldv + i]);
  }
}

struct SwigluArgs {
  const float* gate = nullptr;
  int ldg = 0;
  const float* up = nullptr;
  int ldu = 0;
  float* out = nullptr;  // may be the gate buffer
  int ldo = 0;
  int cols = 0;
  int first_row = 0;
  bool bf16 = false;
  bool trigger_early = false;
};

template <class Unused = void>
__global__ void __launch_bounds__(kRowThreads) swiglu_kernel(const SwigluArgs a) {
  enter_dependent(a.trigger_early);
  const std::size_t r = static_cast<std::size_t>(a.first_row) + blockIdx.x;
  for (int c = threadIdx.x; c < a.cols; c += kRowThreads) {
    a.out[r * a.ldo + c] = to_activation(swiglu_value(a.gate[r * a.ldg + c], a.up[r * a.ldu + c]), a.bf16);
  }
}

}  // namespace smallcoder::cuda
