// Attention's two loops over the KV cache (query-key scores, the probability-weighted sum of
// value rows) for cache rows stored as f32, f16 or bf16, at the SIMD level chosen at run time.
// 16-bit rows halve the bytes decode reads from the cache; they are widened in registers and
// every sum stays fp32, in the same order at every level (the same bits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels/avx2.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/tensor/dtype.hpp"

namespace smallcoder::cpu {

// Rounds n fp32 values into one cache row.
using KvStoreFn = void (*)(const float* x, int n, std::byte* row);
// scores[t] = scale * (q . K_t) for t < len, K_t being the dim-element row at keys + t * row_bytes.
using KvScoresFn = void (*)(const float* q, const std::byte* keys, std::size_t row_bytes, int len, int dim,
                            float scale, float* scores);
// out[d] = sum over t < len of p[t] * V_t[d], for d < dim.
using KvMixFn = void (*)(const float* p, const std::byte* values, std::size_t row_bytes, int len, int dim,
                         float* out);

struct KvKernels {
  KvStoreFn store = nullptr;
  KvScoresFn scores = nullptr;
  KvMixFn mix = nullptr;
};

// Throws naming `where` unless the KV cache can hold elements of type t.
inline void check_kv_cache_type(DType t, const std::string& where) {
  if (!is_float_dtype(t)) {
    fail(where, std::string("the KV cache holds f32, f16 or bf16, not ") + dtype_name(t));
  }
}

namespace kv {

template <DType T>
inline float element(const std::byte* row, int k) {
  if constexpr (T == DType::f32) {
    float v;
    std::memcpy(&v, row + 4 * static_cast<std::size_t>(k), sizeof v);
    return v;
  } else {
    std::uint16_t h;
    std::memcpy(&h, row + 2 * static_cast<std::size_t>(k), sizeof h);
    return T == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

// Every level stores with these scalar conversions (a few rows per step, nothing to gain from
// SIMD), so the cached bits are the same whichever level wrote them.
template <DType T>
inline void store(const float* x, int n, std::byte* row) {
  if constexpr (T == DType::f32) {
    std::memcpy(row, x, sizeof(float) * static_cast<std::size_t>(n));
  } else {
    for (int i = 0; i < n; ++i) {
      const std::uint16_t h = T == DType::bf16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
      std::memcpy(row + 2 * static_cast<std::size_t>(i), &h, sizeof h);
    }
  }
}

// x, opaque to the optimiser. A product passed through it is rounded to fp32 before the sum
// it joins: the compiler cannot fuse the two into an FMA (one rounding), which it otherwise
// may do at some levels and not others. So every level rounds as the scalar loops read and
// all levels give the same bits: with an f32 cache, those of plain fp32 loops without FMA.
// x stays in a vector register ("x" on x86, "w" on aarch64, where GCC fuses by default in
// C++); other targets pass it through memory, a store and a load per product.
inline float unfused(float x) {
#ifdef SMALLCODER_X86
  __asm__("" : "+x"(x));
#elif defined(__aarch64__)
  __asm__("" : "+w"(x));
#else
  __asm__("" : "+m"(x));
#endif
  return x;
}

namespace scalar {

template <DType T>
inline void scores(const float* q, const std::byte* keys, std::size_t row_bytes, int len, int dim, float scale,
                   float* out) {
  for (int t = 0; t < len; ++t) {
    const std::byte* row = keys + static_cast<std::size_t>(t) * row_bytes;
    float dot = 0.0f;
    for (int d = 0; d < dim; ++d) dot += unfused(q[d] * element<T>(row, d));
    out[t] = dot * scale;
  }
}

template <DType T>
inline void mix(const float* p, const std::byte* values, std::size_t row_bytes, int len, int dim, float* out) {
  for (int d = 0; d < dim; ++d) out[d] = 0.0f;
  for (int t = 0; t < len; ++t) {
    const std::byte* row = values + static_cast<std::size_t>(t) * row_bytes;
    for (int d = 0; d < dim; ++d) out[d] += unfused(p[t] * element<T>(row, d));
  }
}

}  // namespace scalar

#ifdef SMALLCODER_X86
// The AVX2 level, which the AVX-512 level runs too (8 lanes already keep the loads of a 64- to
// 128-element head ahead of DRAM). Each lane sums what one scalar loop sums, in its order.
// Rows is one of the AVX2 float-row loaders of kernels/avx2.hpp.
namespace simd {

// unfused() for 8 lanes.
SMALLCODER_AVX2 inline __m256 unfused8(__m256 x) {
  __asm__("" : "+x"(x));
  return x;
}

// In: v[j] = elements d .. d+7 of row j. Out: v[m] = element d+m of rows 0 .. 7.
SMALLCODER_AVX2 inline void transpose8(__m256 (&v)[8]) {
  // Per 128-bit half: pairs of rows interleaved, then quads, then the halves swapped.
  const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
  const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Eight rows at a time, one per lane: blocks of 8 x 8 elements are transposed in registers so
// that each lane accumulates its row's products in element order, as the scalar loop does.
template <DType T, class Rows>
SMALLCODER_AVX2 inline void scores(const float* q, const std::byte* keys, std::size_t row_bytes, int len, int dim,
                                   float scale, float* out) {
  const int vec = dim / 8 * 8;
  int t = 0;
  for (; t + 8 <= len; t += 8) {
    const std::byte* rows = keys + static_cast<std::size_t>(t) * row_bytes;
    __m256 acc = _mm256_setzero_ps();
    for (int d = 0; d < vec; d += 8) {
      __m256 v[8];
      for (int j = 0; j < 8; ++j) v[j] = Rows::load(rows + static_cast<std::size_t>(j) * row_bytes, d);
      transpose8(v);
      for (int m = 0; m < 8; ++m) acc = _mm256_add_ps(acc, unfused8(_mm256_mul_ps(_mm256_set1_ps(q[d + m]), v[m])));
    }
    alignas(32) float dots[8];
    _mm256_store_ps(dots, acc);
    for (int j = 0; j < 8; ++j) {
      const std::byte* row = rows + static_cast<std::size_t>(j) * row_bytes;
      for (int d = vec; d < dim; ++d) dots[j] += unfused(q[d] * element<T>(row, d));
      out[t + j] = dots[j] * scale;
    }
  }
  scalar::scores<T>(q, keys + static_cast<std::size_t>(t) * row_bytes, row_bytes, len - t, dim, scale, out + t);
}

// out[d0 .. d0 + 8R) held in R registers while every row goes past once.
template <class Rows, int R>
SMALLCODER_AVX2 inline void mix_span(const float* p, const std::byte* values, std::size_t row_bytes, int len, int d0,
                                     float* out) {
  __m256 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
  for (int t = 0; t < len; ++t) {
    const std::byte* row = values + static_cast<std::size_t>(t) * row_bytes;
    const __m256 pv = _mm256_set1_ps(p[t]);
    for (int i = 0; i < R; ++i) acc[i] = _mm256_add_ps(acc[i], unfused8(_mm256_mul_ps(pv, Rows::load(row, d0 + 8 * i))));
  }
  for (int i = 0; i < R; ++i) _mm256_storeu_ps(out + d0 + 8 * i, acc[i]);
}

template <DType T, class Rows>
SMALLCODER_AVX2 inline void mix(const float* p, const std::byte* values, std::size_t row_bytes, int len, int dim,
                                float* out) {
  constexpr int kSpan = 8;  // registers of output per pass: a 64-element head in one pass
  int d = 0;
  for (; d + 8 * kSpan <= dim; d += 8 * kSpan) mix_span<Rows, kSpan>(p, values, row_bytes, len, d, out);
  for (; d + 8 <= dim; d += 8) mix_span<Rows, 1>(p, values, row_bytes, len, d, out);
  for (; d < dim; ++d) {
    float sum = 0.0f;
    for (int t = 0; t < len; ++t) sum += unfused(p[t] * element<T>(values + static_cast<std::size_t>(t) * row_bytes, d));
    out[d] = sum;
  }
}

}  // namespace simd
#endif

template <DType T>
inline KvKernels kernels(Isa isa) {
  KvKernels k{store<T>, scalar::scores<T>, scalar::mix<T>};
#ifdef SMALLCODER_X86
  using Rows = std::conditional_t<T == DType::f32, avx2::F32Rows,
                                  std::conditional_t<T == DType::bf16, avx2::Bf16Rows, avx2::F16Rows>>;
  if (isa != Isa::scalar) {
    k.scores = simd::scores<T, Rows>;
    k.mix = simd::mix<T, Rows>;
  }
#else
  (void)isa;
#endif
  return k;
}

}  // namespace kv

// The cache kernels for elements of type t (check_kv_cache_type(t) must pass) at SIMD level
// isa (which the CPU must support).
inline KvKernels kv_kernels_for(DType t, Isa isa) {
  switch (t) {
    case DType::f16:
      return kv::kernels<DType::f16>(isa);
    case DType::bf16:
      return kv::kernels<DType::bf16>(isa);
    default:
      return kv::kernels<DType::f32>(isa);
  }
}

// At the active level (active_isa()).
inline KvKernels kv_kernels_for(DType t) { return kv_kernels_for(t, active_isa()); }

}  // namespace smallcoder::cpu
