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
// For the `heads` query heads sharing one KV head (q_h = q + h * dim, grouped-query
// attention): scores[h * ld + t] = scale * (q_h . K_t) for t < len, K_t being the
// dim-element row at keys + t * row_bytes. Each key row is read once for all the heads.
using KvScoresFn = void (*)(const float* q, int heads, const std::byte* keys, std::size_t row_bytes, int len, int dim,
                            float scale, float* scores, std::size_t ld);
// out[h * dim + d] = sum over t < len of p[h * ld + t] * V_t[d], for h < heads and d < dim:
// each value row is read once for all the heads.
using KvMixFn = void (*)(const float* p, std::size_t ld, int heads, const std::byte* values, std::size_t row_bytes,
                         int len, int dim, float* out);

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
inline float unfused(float x) {
#ifdef SMALLCODER_X86
  __asm__("" : "+x"(x));
#else
  __asm__("" : "+m"(x));
#endif
  return x;
}

namespace scalar {

template <DType T>
inline void scores(const float* q, int heads, const std::byte* keys, std::size_t row_bytes, int len, int dim,
                   float scale, float* out, std::size_t ld) {
  for (int t = 0; t < len; ++t) {
    const std::byte* row = keys + static_cast<std::size_t>(t) * row_bytes;
    for (int h = 0; h < heads; ++h) {
      const float* qh = q + static_cast<std::size_t>(h) * dim;
      float dot = 0.0f;
      for (int d = 0; d < dim; ++d) dot += unfused(qh[d] * element<T>(row, d));
      out[h * ld + static_cast<std::size_t>(t)] = dot * scale;
    }
  }
}

template <DType T>
inline void mix(const float* p, std::size_t ld, int heads, const std::byte* values, std::size_t row_bytes, int len,
                int dim, float* out) {
  for (int i = 0; i < heads * dim; ++i) out[i] = 0.0f;
  for (int t = 0; t < len; ++t) {
    const std::byte* row = values + static_cast<std::size_t>(t) * row_bytes;
    for (int h = 0; h < heads; ++h) {
      const float ph = p[h * ld + static_cast<std::size_t>(t)];
      float* oh = out + static_cast<std::size_t>(h) * dim;
      for (int d = 0; d < dim; ++d) oh[d] += unfused(ph * element<T>(row, d));
    }
  }
}

}  // namespace scalar

#ifdef SMALLCODER_X86
// The AVX2 level, which the AVX-512 level runs too (8 lanes already keep the loads of a 64- to
// 128-element head ahead of DRAM). Each lane sums what one scalar loop sums, in its order.
// Rows is one of the AVX2 float-row loaders of kernels/avx2.hpp. Up to kHeads heads of a group
// go through each pass over the rows; a larger group takes several passes.
namespace simd {

constexpr int kHeads = 4;

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

// H heads against eight rows at a time, one row per lane: each 8 x 8 block of elements is
// loaded and transposed in registers once for all H heads, and each lane accumulates its
// row's products in element order, as the scalar loop does.
template <DType T, class Rows, int H>
SMALLCODER_AVX2 inline void scores_heads(const float* q, const std::byte* keys, std::size_t row_bytes, int len,
                                         int dim, float scale, float* out, std::size_t ld) {
  const int vec = dim / 8 * 8;
  int t = 0;
  for (; t + 8 <= len; t += 8) {
    const std::byte* rows = keys + static_cast<std::size_t>(t) * row_bytes;
    __m256 acc[H];
    for (int h = 0; h < H; ++h) acc[h] = _mm256_setzero_ps();
    for (int d = 0; d < vec; d += 8) {
      __m256 v[8];
      for (int j = 0; j < 8; ++j) v[j] = Rows::load(rows + static_cast<std::size_t>(j) * row_bytes, d);
      transpose8(v);
      for (int h = 0; h < H; ++h) {
        const float* qh = q + static_cast<std::size_t>(h) * dim + d;
        for (int m = 0; m < 8; ++m) acc[h] = _mm256_add_ps(acc[h], unfused8(_mm256_mul_ps(_mm256_set1_ps(qh[m]), v[m])));
      }
    }
    for (int h = 0; h < H; ++h) {
      const float* qh = q + static_cast<std::size_t>(h) * dim;
      alignas(32) float dots[8];
      _mm256_store_ps(dots, acc[h]);
      for (int j = 0; j < 8; ++j) {
        const std::byte* row = rows + static_cast<std::size_t>(j) * row_bytes;
        for (int d = vec; d < dim; ++d) dots[j] += unfused(qh[d] * element<T>(row, d));
        out[h * ld + static_cast<std::size_t>(t + j)] = dots[j] * scale;
      }
    }
  }
  scalar::scores<T>(q, H, keys + static_cast<std::size_t>(t) * row_bytes, row_bytes, len - t, dim, scale, out + t, ld);
}

template <DType T, class Rows>
SMALLCODER_AVX2 inline void scores(const float* q, int heads, const std::byte* keys, std::size_t row_bytes, int len,
                                   int dim, float scale, float* out, std::size_t ld) {
  for (int h = 0; h < heads; h += kHeads) {
    const float* qh = q + static_cast<std::size_t>(h) * dim;
    float* oh = out + static_cast<std::size_t>(h) * ld;
    switch (heads - h) {
      case 1:
        scores_heads<T, Rows, 1>(qh, keys, row_bytes, len, dim, scale, oh, ld);
        break;
      case 2:
        scores_heads<T, Rows, 2>(qh, keys, row_bytes, len, dim, scale, oh, ld);
        break;
      case 3:
        scores_heads<T, Rows, 3>(qh, keys, row_bytes, len, dim, scale, oh, ld);
        break;
      default:
        scores_heads<T, Rows, kHeads>(qh, keys, row_bytes, len, dim, scale, oh, ld);
        break;
    }
  }
}

// out[h * dim + d0 .. + 8R) for H heads, carried in H x R registers while rows [t0, t1) go
// past once; they start from out (zeroed before the first rows).
template <class Rows, int H, int R>
SMALLCODER_AVX2 inline void mix_span(const float* p, std::size_t ld, const std::byte* values, std::size_t row_bytes,
                                     int t0, int t1, int dim, int d0, float* out) {
  __m256 acc[H][R];
  for (int h = 0; h < H; ++h) {
    for (int i = 0; i < R; ++i) acc[h][i] = _mm256_loadu_ps(out + static_cast<std::size_t>(h) * dim + d0 + 8 * i);
  }
  for (int t = t0; t < t1; ++t) {
    const std::byte* row = values + static_cast<std::size_t>(t) * row_bytes;
    __m256 v[R];
    for (int i = 0; i < R; ++i) v[i] = Rows::load(row, d0 + 8 * i);
    for (int h = 0; h < H; ++h) {
      const __m256 pv = _mm256_set1_ps(p[h * ld + static_cast<std::size_t>(t)]);
      for (int i = 0; i < R; ++i) acc[h][i] = _mm256_add_ps(acc[h][i], unfused8(_mm256_mul_ps(pv, v[i])));
    }
  }
  for (int h = 0; h < H; ++h) {
    for (int i = 0; i < R; ++i) _mm256_storeu_ps(out + static_cast<std::size_t>(h) * dim + d0 + 8 * i, acc[h][i]);
  }
}

// H heads' weighted sums: rows go past in blocks small enough to stay in L1 while every span
// of output registers takes its turn over them; each output element still sums its rows in
// order.
template <DType T, class Rows, int H>
SMALLCODER_AVX2 inline void mix_heads(const float* p, std::size_t ld, const std::byte* values, std::size_t row_bytes,
                                      int len, int dim, float* out) {
  constexpr int kSpan = 8 / H > 1 ? 8 / H : 2;  // output registers per head and pass
  constexpr int kBlockRows = 96;                 // 96 rows of 128 fp32 elements: 48 KB
  const int vec = dim / 8 * 8;
  for (int i = 0; i < H * dim; ++i) out[i] = 0.0f;
  for (int t0 = 0; t0 < len; t0 += kBlockRows) {
    const int t1 = t0 + kBlockRows < len ? t0 + kBlockRows : len;
    int d = 0;
    for (; d + 8 * kSpan <= vec; d += 8 * kSpan) mix_span<Rows, H, kSpan>(p, ld, values, row_bytes, t0, t1, dim, d, out);
    for (; d < vec; d += 8) mix_span<Rows, H, 1>(p, ld, values, row_bytes, t0, t1, dim, d, out);
    for (int t = t0; t < t1; ++t) {
      const std::byte* row = values + static_cast<std::size_t>(t) * row_bytes;
      for (int h = 0; h < H; ++h) {
        const float ph = p[h * ld + static_cast<std::size_t>(t)];
        for (int e = vec; e < dim; ++e) out[h * dim + e] += unfused(ph * element<T>(row, e));
      }
    }
  }
}

template <DType T, class Rows>
SMALLCODER_AVX2 inline void mix(const float* p, std::size_t ld, int heads, const std::byte* values,
                                std::size_t row_bytes, int len, int dim, float* out) {
  for (int h = 0; h < heads; h += kHeads) {
    const float* ph = p + static_cast<std::size_t>(h) * ld;
    float* oh = out + static_cast<std::size_t>(h) * dim;
    switch (heads - h) {
      case 1:
        mix_heads<T, Rows, 1>(ph, ld, values, row_bytes, len, dim, oh);
        break;
      case 2:
        mix_heads<T, Rows, 2>(ph, ld, values, row_bytes, len, dim, oh);
        break;
      case 3:
        mix_heads<T, Rows, 3>(ph, ld, values, row_bytes, len, dim, oh);
        break;
      default:
        mix_heads<T, Rows, kHeads>(ph, ld, values, row_bytes, len, dim, oh);
        break;
    }
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
