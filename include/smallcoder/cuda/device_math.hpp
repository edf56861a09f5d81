// Device-side building blocks shared by the kernels: warp and block reductions, the
// rounding that emulates bf16 activations, the programmatic-dependent-launch handshake,
// L2 prefetches, and reading weights in their stored type (f32, bf16, f16, and the
// Q8_0 / Q4_0 blocks of quant_blocks.hpp) eight elements at a time.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace smallcoder::cuda {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpSize = 32;

#if !defined(SMALLCODER_CUDA_EMULATION)  // the CPU emulation supplies its own
// The block's dynamic shared memory (the launch's third parameter), 16-byte aligned.
template <class T>
__device__ __forceinline__ T* dynamic_shared() {
  extern __shared__ float4 dynamic_shared_memory[];
  return reinterpret_cast<T*>(dynamic_shared_memory);
}
#endif

// The programmatic-dependent-launch handshake every kernel of a step makes after its
// prologue, before it touches any memory that an earlier kernel of the stream writes or
// reads: wait_for_producers() returns once every earlier kernel has finished and its
// writes are visible; allow_dependents() lets the next kernel launch (and run its own
// prologue) early. A prologue may only read what no kernel writes (weights, tables) and
// write nothing. Both are no-ops when the kernel was launched without the attribute.
__device__ __forceinline__ void wait_for_producers() {
#if defined(SMALLCODER_CUDA_EMULATION)
  emulation::note_wait();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_dependents() {
#if !defined(SMALLCODER_CUDA_EMULATION) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The handshake with the trigger where Tuning::pdl puts it: before the wait (early) or after.
__device__ __forceinline__ void enter_dependent(bool trigger_early) {
  if (trigger_early) allow_dependents();
  wait_for_producers();
  if (!trigger_early) allow_dependents();
}

// Asks for bytes [p, p + n) to be brought into L2 (a hint: results never depend on it).
// mode 1: one prefetch per 128-byte line, spread over the 32 lanes of the calling warp;
// mode 2: bulk prefetches of up to 16 KB each, issued by the lanes in turn. The bulk form
// widens the range to 16-byte boundaries: callers keep 16 bytes of slack after their data.
__device__ __forceinline__ void prefetch_l2(const std::byte* p, std::size_t n, int mode, int lane) {
  if (n == 0 || mode == 0) return;
  if (mode == 1) {
    const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{127};
    const std::uintptr_t end = reinterpret_cast<std::uintptr_t>(p) + n;
#if defined(SMALLCODER_CUDA_EMULATION)
    if (lane == 0) emulation::check_prefetch(p, n);
#endif
    for (std::uintptr_t at = first + static_cast<std::uintptr_t>(lane) * 128; at < end; at += 32 * 128) {
#if !defined(SMALLCODER_CUDA_EMULATION)
      asm volatile("prefetch.global.L2 [%0];" ::"l"(at));
#endif
    }
    return;
  }
  constexpr std::uintptr_t kChunk = 16 * 1024;
  const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{15};
  const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(p) + n + 15) & ~std::uintptr_t{15};
#if defined(SMALLCODER_CUDA_EMULATION)
  if (lane == 0) emulation::check_prefetch(reinterpret_cast<const void*>(first), end - first);
#endif
  for (std::uintptr_t at = first + static_cast<std::uintptr_t>(lane) * kChunk; at < end; at += 32 * kChunk) {
    const unsigned bytes = static_cast<unsigned>(end - at < kChunk ? end - at : kChunk);
#if !defined(SMALLCODER_CUDA_EMULATION) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(at), "r"(bytes) : "memory");
#else
    (void)bytes;
#endif
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to every
// thread. `scratch` holds 32 floats of shared memory; every thread must call this.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  v = warp_sum(v);
  __syncthreads();  // the scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / kWarpSize;
  return warp_sum(lane < warps ? scratch[lane] : 0.0f);
}

// An op's result as the model stores it: unchanged in fp32 mode, rounded to the nearest
// bf16 (ties to even) in bf16-activation mode, as PyTorch's bf16 ops round their outputs.
__device__ __forceinline__ float to_activation(float v, bool bf16) {
  return bf16 ? __bfloat162float(__float2bfloat16_rn(v)) : v;
}

// x * silu(x) without the x: silu(g) * u = g / (1 + e^-g) * u, as the CPU computes it.
__device__ __forceinline__ float swiglu_value(float gate, float up) { return gate / (1.0f + expf(-gate)) * up; }

__device__ __forceinline__ float bf16_bits_to_float(unsigned bits16) { return __uint_as_float(bits16 << 16); }

__device__ __forceinline__ float f16_bits_to_float(unsigned short bits) { return __half2float(__ushort_as_half(bits)); }

// Elements are read in groups of eight consecutive ones (group g = elements 8g .. 8g+7):
// one 16-byte load for 16-bit floats, two for f32, a quarter block for Q8_0 / Q4_0.
constexpr int kGroup = 8;

// The quantized weight types, as template tags (the float types are their own tags).
struct Q8_0Weights {};
struct Q4_0Weights {};

// How a weight element type is read: Raw is what one lane loads for a group; load() needs
// rows that are "vectorizable" (launch.hpp): 16-byte aligned rows of whole groups for
// floats, any row of whole blocks for the quantized types; widen() gives the 8 values.
template <class W>
struct WeightType;

template <>
struct WeightType<float> {
  struct Raw {
    uint4 a, b;
  };
  __device__ static float at(const std::byte* row, std::int64_t i) {
    return __ldg(reinterpret_cast<const float*>(row) + i);
  }
  __device__ static Raw load(const std::byte* row, int g) {
    const uint4* v = reinterpret_cast<const uint4*>(row) + 2 * static_cast<std::ptrdiff_t>(g);
    return Raw{__ldg(v), __ldg(v + 1)};
  }
  __device__ static void widen(const Raw& r, float (&out)[kGroup]) {
    const unsigned words[8] = {r.a.x, r.a.y, r.a.z, r.a.w, r.b.x, r.b.y, r.b.z, r.b.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = __uint_as_float(words[i]);
  }
};

template <>
struct WeightType<__nv_bfloat16> {
  using Raw = uint4;
  __device__ static float at(const std::byte* row, std::int64_t i) {
    return bf16_bits_to_float(__ldg(reinterpret_cast<const unsigned short*>(row) + i));
  }
  __device__ static Raw load(const std::byte* row, int g) { return __ldg(reinterpret_cast<const uint4*>(row) + g); }
  __device__ static void widen(const Raw& v, float (&out)[kGroup]) {
    const unsigned words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = __uint_as_float(words[i] << 16);  // little-endian: the low half is the first element
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  }
};

template <>
struct WeightType<__half> {
  using Raw = uint4;
  __device__ static float at(const std::byte* row, std::int64_t i) {
    return f16_bits_to_float(__ldg(reinterpret_cast<const unsigned short*>(row) + i));
  }
  __device__ static Raw load(const std::byte* row, int g) { return __ldg(reinterpret_cast<const uint4*>(row) + g); }
  __device__ static void widen(const Raw& v, float (&out)[kGroup]) {
    const unsigned words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = f16_bits_to_float(static_cast<unsigned short>(words[i] & 0xffffu));  // the low half first
      out[2 * i + 1] = f16_bits_to_float(static_cast<unsigned short>(words[i] >> 16));
    }
  }
};

// The 8 bytes at p (2-byte aligned, the bytes of one group) from two aligned 8-byte loads:
// blocks of 34 or 18 bytes put them at any even offset. Reads up to 8 bytes past p + 8;
// weight uploads keep that much slack after every tensor.
__device__ __forceinline__ unsigned long long load_8_bytes(const std::byte* p) {
  const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(p);
  const auto* base = reinterpret_cast<const unsigned long long*>(address & ~std::uintptr_t{7});
  const unsigned shift = static_cast<unsigned>(address & 7) * 8;  // 0, 16, 32 or 48
  const unsigned long long lo = __ldg(base), hi = __ldg(base + 1);
  return shift == 0 ? lo : (lo >> shift) | (hi << (64 - shift));
}

// Byte k of `word` as the float 2^23 + byte (exact): the byte in the low mantissa bits.
__device__ __forceinline__ float byte_as_float_plus_2p23(unsigned word, int k) {
  return __uint_as_float(__byte_perm(word, 0x4B000000u, 0x7440u | static_cast<unsigned>(k)));
}

// Q8_0: group g is quarter g % 4 (qs[8q .. 8q+7]) of block g / 4; value = qs * d, exact in fp32.
template <>
struct WeightType<Q8_0Weights> {
  static constexpr int kBlockBytes = 34;
  struct Raw {
    unsigned long long qs;
    unsigned short d;
  };
  __device__ static float at(const std::byte* row, std::int64_t i) {
    const std::byte* block = row + (i / 32) * kBlockBytes;
    const float d = f16_bits_to_float(__ldg(reinterpret_cast<const unsigned short*>(block)));
    return static_cast<float>(
               static_cast<signed char>(__ldg(reinterpret_cast<const unsigned char*>(block) + 2 + i % 32))) *
           d;
  }
  __device__ static Raw load(const std::byte* row, int g) {
    const std::byte* block = row + static_cast<std::ptrdiff_t>(g / 4) * kBlockBytes;
    return Raw{load_8_bytes(block + 2 + 8 * (g % 4)), __ldg(reinterpret_cast<const unsigned short*>(block))};
  }
  __device__ static void widen(const Raw& r, float (&out)[kGroup]) {
    const float d = f16_bits_to_float(r.d);
    // Flipping the sign bit maps int8 q to the unsigned byte q + 128.
    const unsigned words[2] = {static_cast<unsigned>(r.qs) ^ 0x80808080u,
                               static_cast<unsigned>(r.qs >> 32) ^ 0x80808080u};
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = (byte_as_float_plus_2p23(words[i / 4], i % 4) - 8388736.0f) * d;
  }
};

// Q4_0: group g of block g / 4 is elements 8q .. 8q+7 (q = g % 4): the low nibbles of
// qs[8q ..] for q < 2, the high nibbles of qs[8(q-2) ..] otherwise; value = (nibble - 8) * d.
template <>
struct WeightType<Q4_0Weights> {
  static constexpr int kBlockBytes = 18;
  struct Raw {
    unsigned long long nibbles;  // the group's 8 nibbles, one per byte
    unsigned short d;
  };
  __device__ static float at(const std::byte* row, std::int64_t i) {
    const std::byte* block = row + (i / 32) * kBlockBytes;
    const float d = f16_bits_to_float(__ldg(reinterpret_cast<const unsigned short*>(block)));
    const int j = static_cast<int>(i % 32);
    const unsigned byte = __ldg(reinterpret_cast<const unsigned char*>(block) + 2 + j % 16);
    return static_cast<float>(static_cast<int>(j < 16 ? byte & 15u : byte >> 4) - 8) * d;
  }
  __device__ static Raw load(const std::byte* row, int g) {
    const std::byte* block = row + static_cast<std::ptrdiff_t>(g / 4) * kBlockBytes;
    const int q = g % 4;
    const unsigned long long bytes = load_8_bytes(block + 2 + 8 * (q % 2));
    return Raw{(bytes >> (q < 2 ? 0 : 4)) & 0x0F0F0F0F0F0F0F0Full,
               __ldg(reinterpret_cast<const unsigned short*>(block))};
  }
  __device__ static void widen(const Raw& r, float (&out)[kGroup]) {
    const float d = f16_bits_to_float(r.d);
    const unsigned words[2] = {static_cast<unsigned>(r.nibbles), static_cast<unsigned>(r.nibbles >> 32)};
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = (byte_as_float_plus_2p23(words[i / 4], i % 4) - 8388616.0f) * d;
  }
};

// Where element c of an input row sits in shared memory: each row is stored as its
// groups' first halves (float4 each), then their second halves, so a warp reading one
// half of 32 consecutive groups touches 512 consecutive bytes (no bank conflicts).
__host__ __device__ __forceinline__ int split_groups(int cols) { return (cols + kGroup - 1) / kGroup; }
__host__ __device__ __forceinline__ int split_row_floats(int cols) { return split_groups(cols) * kGroup; }
__device__ __forceinline__ int split_index(int c, int groups) {
  const int g = c / kGroup, k = c % kGroup;
  return k < 4 ? 4 * g + k : 4 * (groups + g) + k - 4;
}

// w . x over one group, x the split row in shared memory.
__device__ __forceinline__ float group_dot(const float (&w)[kGroup], const float* x_row, int groups, int g) {
  const float4 lo = reinterpret_cast<const float4*>(x_row)[g];
  const float4 hi = reinterpret_cast<const float4*>(x_row)[groups + g];
  float s = w[0] * lo.x;
  s = fmaf(w[1], lo.y, s);
  s = fmaf(w[2], lo.z, s);
  s = fmaf(w[3], lo.w, s);
  s = fmaf(w[4], hi.x, s);
  s = fmaf(w[5], hi.y, s);
  s = fmaf(w[6], hi.z, s);
  return fmaf(w[7], hi.w, s);
}

}  // namespace smallcoder::cuda
