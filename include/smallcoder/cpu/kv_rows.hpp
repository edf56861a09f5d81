// Attention over the KV cache for elements stored as f32, f16 or bf16, at the SIMD level
// chosen at run time (avx2 and avx512 kernels on x86, neon ones on aarch64): storing a
// position's keys and values, the query-key scores, softmax, and the probability-weighted
// sum of value rows. 16-bit elements halve the bytes decode reads from the cache; they are
// widened in registers and every sum stays fp32.
//
// Layouts. Values are rows, one per position. Keys are stored transposed in tiles of
// kKeyTile positions: a tile holds element d of its positions at d * kKeyTile + lane, so the
// scores of 16 positions are 16 lanes of one multiply-add chain over the head's elements,
// with no transposes or horizontal sums, and a tile is one contiguous stretch of memory.
// The query heads that share a KV head (grouped-query attention) go through together, so
// each cached element is read once per group, not once per head.
//
// Every score and every output element is one chain of products, each rounded and then added,
// in a fixed order (elements, then positions, ascending) at every level: all levels give the
// same bits, those of plain fp32 loops without FMA (cpu/ops.hpp's unfused() keeps the compiler
// from fusing some of them and not others).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels/avx2.hpp"
#include "smallcoder/cpu/kernels/avx512.hpp"
#include "smallcoder/cpu/kernels/neon.hpp"
#include "smallcoder/cpu/kernels/tiling.hpp"
#include "smallcoder/cpu/ops.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/tensor/dtype.hpp"

namespace smallcoder::cpu {

constexpr int kKeyTile = 16;  // positions per key tile: one AVX-512 vector of lanes

// Bytes of the key tiles for `positions` positions (rounded up to whole tiles) of `dim`
// elements of type t; the value rows of as many positions take no more.
inline std::size_t key_cache_bytes(DType t, int dim, int positions) {
  const std::size_t tiles = (static_cast<std::size_t>(positions) + kKeyTile - 1) / kKeyTile;
  return tiles * kKeyTile * dtype_bytes(t, dim);
}

// Stores the dim keys of position `pos` into the key tiles starting at `keys`.
using KvStoreKeyFn = void (*)(const float* x, int dim, std::byte* keys, int pos);
// Rounds dim fp32 values into one value row.
using KvStoreValueFn = void (*)(const float* x, int dim, std::byte* row);
// For the `heads` query heads sharing one KV head (q_h = q + h * dim):
// scores[h * ld + t] = scale * (q_h . K_t) for positions t < len of the key tiles at `keys`.
using KvScoresFn = void (*)(const float* q, int heads, const std::byte* keys, int len, int dim, float scale,
                            float* scores, std::size_t ld);
// Softmax in place over each of `heads` rows of len scores, ld apart.
using KvSoftmaxFn = void (*)(float* scores, int heads, int len, std::size_t ld);
// out[h * dim + d] = sum over t < len of p[h * ld + t] * V_t[d] for h < heads, d < dim, V_t
// being the value row at values + t * row_bytes.
using KvMixFn = void (*)(const float* p, std::size_t ld, int heads, const std::byte* values, std::size_t row_bytes,
                         int len, int dim, float* out);

struct KvKernels {
  KvStoreKeyFn store_key = nullptr;
  KvStoreValueFn store_value = nullptr;
  KvScoresFn scores = nullptr;
  KvSoftmaxFn softmax = nullptr;
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
constexpr std::size_t kElement = T == DType::f32 ? 4 : 2;

template <DType T>
inline float element(const std::byte* p, std::size_t index) {
  if constexpr (T == DType::f32) {
    float v;
    std::memcpy(&v, p + 4 * index, sizeof v);
    return v;
  } else {
    std::uint16_t h;
    std::memcpy(&h, p + 2 * index, sizeof h);
    return T == DType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

// Every level stores with these scalar conversions (a few rows per step, nothing to gain from
// SIMD), so the cached bits are the same whichever level wrote them.
template <DType T>
inline void put(std::byte* p, std::size_t index, float x) {
  if constexpr (T == DType::f32) {
    std::memcpy(p + 4 * index, &x, sizeof x);
  } else {
    const std::uint16_t h = T == DType::bf16 ? f32_to_bf16(x) : f32_to_f16(x);
    std::memcpy(p + 2 * index, &h, sizeof h);
  }
}

template <DType T>
inline std::size_t tile_bytes(int dim) {
  return kKeyTile * kElement<T> * static_cast<std::size_t>(dim);
}

template <DType T>
inline void store_key(const float* x, int dim, std::byte* keys, int pos) {
  std::byte* tile = keys + static_cast<std::size_t>(pos / kKeyTile) * tile_bytes<T>(dim);
  for (int d = 0; d < dim; ++d) put<T>(tile, static_cast<std::size_t>(d) * kKeyTile + pos % kKeyTile, x[d]);
}

template <DType T>
inline void store_value(const float* x, int dim, std::byte* row) {
  for (int d = 0; d < dim; ++d) put<T>(row, static_cast<std::size_t>(d), x[d]);
}

namespace scalar {

template <DType T>
inline void scores(const float* q, int heads, const std::byte* keys, int len, int dim, float scale, float* out,
                   std::size_t ld) {
  for (int t = 0; t < len; ++t) {
    const std::byte* tile = keys + static_cast<std::size_t>(t / kKeyTile) * tile_bytes<T>(dim);
    for (int h = 0; h < heads; ++h) {
      const float* qh = q + static_cast<std::size_t>(h) * dim;
      float dot = 0.0f;
      for (int d = 0; d < dim; ++d) {
        dot += unfused(qh[d] * element<T>(tile, static_cast<std::size_t>(d) * kKeyTile + t % kKeyTile));
      }
      out[h * ld + static_cast<std::size_t>(t)] = dot * scale;
    }
  }
}

// The steps of the scalar softmax; the SIMD levels take the same steps on vectors.
// The (double) sum runs over four interleaved partials, which one vector of four doubles
// holds at the SIMD levels.
inline void softmax_from(float* s, int begin, int len, float top, double (&sum)[4]) {
  for (int i = begin; i < len; ++i) {
    s[i] = exp_approx(s[i] - top);
    sum[i % 4] += s[i];
  }
}

inline void softmax_normalize(float* s, int len, const double (&sum)[4]) {
  const float inv = static_cast<float>(1.0 / ((sum[0] + sum[1]) + (sum[2] + sum[3])));
  for (int i = 0; i < len; ++i) s[i] *= inv;
}

// softmax_rows' steps on single values: the scalar softmax.
struct Lanes {
  static constexpr int kLanes = 1;

  static float max(const float* s, int n) {
    float top = s[0];
    for (int i = 1; i < n; ++i) top = s[i] > top ? s[i] : top;
    return top;
  }

  static void exp_sums(float* s, int n, float top, double (&sum)[4]) { softmax_from(s, 0, n, top, sum); }
};

template <DType T>
inline void mix(const float* p, std::size_t ld, int heads, const std::byte* values, std::size_t row_bytes, int len,
                int dim, float* out) {
  for (int i = 0; i < heads * dim; ++i) out[i] = 0.0f;
  for (int t = 0; t < len; ++t) {
    const std::byte* row = values + static_cast<std::size_t>(t) * row_bytes;
    for (int h = 0; h < heads; ++h) {
      const float ph = p[h * ld + static_cast<std::size_t>(t)];
      float* oh = out + static_cast<std::size_t>(h) * dim;
      for (int d = 0; d < dim; ++d) oh[d] += unfused(ph * element<T>(row, static_cast<std::size_t>(d)));
    }
  }
}

}  // namespace scalar

// Calls Fn::template run<H>(head offset, ...) for the heads in passes of at most four.
template <class Fn, class... Args>
inline void in_head_passes(int heads, Args&&... args) {
  for (int h = 0; h < heads; h += 4) {
    switch (heads - h) {
      case 1:
        Fn::template run<1>(h, args...);
        break;
      case 2:
        Fn::template run<2>(h, args...);
        break;
      case 3:
        Fn::template run<3>(h, args...);
        break;
      default:
        Fn::template run<4>(h, args...);
        break;
    }
  }
}

// ---- the loops every level runs its vector kernels in ----

// Value rows are prefetched this far ahead: one row stream alone keeps too few requests in
// flight (as for the weights, kernels/tiling.hpp); key tiles one pass ahead likewise.
constexpr std::size_t kAheadRows = 16;

// Softmax by the scalar steps, each row's first vec scores (a multiple of Lanes::kLanes) on a
// level's vectors: Lanes::max(s, vec) is the largest of s[0] and s[0 .. vec) (NaNs aside, the
// scalar loop's maximum), Lanes::exp_sums(s, vec, top, sum) softmax_from's steps on them.
template <class Lanes>
inline void softmax_rows(float* scores, int heads, int len, std::size_t ld) {
  const int vec = len / Lanes::kLanes * Lanes::kLanes;
  for (int h = 0; h < heads; ++h) {
    float* s = scores + h * ld;
    float top = Lanes::max(s, vec);
    for (int i = vec; i < len; ++i) top = s[i] > top ? s[i] : top;
    double sum[4] = {0.0, 0.0, 0.0, 0.0};
    Lanes::exp_sums(s, vec, top, sum);
    scalar::softmax_from(s, vec, len, top, sum);
    scalar::softmax_normalize(s, len, sum);
  }
}

// The scores of H heads (from head h0) at every position, Tiles::passes(H) key tiles a pass,
// then one at a time. Tiles::tiles<H, B>(q, k, tile, dim, scale, dots) leaves the scaled
// scores of the B tiles from k in dots; those of positions from len on are not stored (a
// partial last tile is read whole: the cache holds whole tiles).
template <class Tiles>
struct ScoresInPasses {
  template <int H, int B>
  static void pass(const float* q, const std::byte* keys, std::size_t tile, int len, int dim, float scale, float* out,
                   std::size_t ld, int t) {
    alignas(64) float dots[H][B * kKeyTile];
    Tiles::template tiles<H, B>(q, keys + static_cast<std::size_t>(t / kKeyTile) * tile, tile, dim, scale, dots);
    const int n = len - t < B * kKeyTile ? len - t : B * kKeyTile;
    for (int h = 0; h < H; ++h) {
      std::memcpy(out + h * ld + static_cast<std::size_t>(t), dots[h], sizeof(float) * static_cast<std::size_t>(n));
    }
  }

  template <int H>
  static void run(int h0, const float* q, const std::byte* keys, std::size_t tile, int len, int dim, float scale,
                  float* out, std::size_t ld) {
    constexpr int kTiles = Tiles::passes(H);
    q += static_cast<std::size_t>(h0) * dim;
    out += h0 * ld;
    int t = 0;
    for (; t + kTiles * kKeyTile <= len; t += kTiles * kKeyTile)
      pass<H, kTiles>(q, keys, tile, len, dim, scale, out, ld, t);
    for (; t < len; t += kKeyTile) pass<H, 1>(q, keys, tile, len, dim, scale, out, ld, t);
  }
};

// The elements from `from` on that no vector covers, one chain each.
template <DType T>
inline void mix_tail(const float* p, std::size_t ld, int heads, const std::byte* values, std::size_t row_bytes, int t0,
                     int t1, int dim, int from, float* out) {
  for (int t = t0; t < t1; ++t) {
    const std::byte* row = values + static_cast<std::size_t>(t) * row_bytes;
    for (int h = 0; h < heads; ++h) {
      const float ph = p[h * ld + static_cast<std::size_t>(t)];
      for (int d = from; d < dim; ++d) {
        out[h * dim + d] += unfused(ph * element<T>(row, static_cast<std::size_t>(d)));
      }
    }
  }
}

constexpr int kMixBlockRows = 64;  // rows per block: each block stays in L1 while the spans pass

// The weighted sums of H heads (from head h0), kMixBlockRows value rows at a time: each
// block's elements in spans of Wide::span(H) vectors of Wide::kLanes, then single vectors of
// Wide, then of Narrow (a level's narrower vectors, else Wide again), then one chain each.
// Spans::run<H, R>(p, ld, values, row_bytes, t0, t1, dim, d0, out) adds rows [t0, t1) into
// out[h * dim + d0 .. + R * Spans::kLanes), holding H x R vectors.
template <DType T, class Wide, class Narrow>
struct MixBlocks {
  template <int H>
  static void run(int h0, const float* p, std::size_t ld, const std::byte* values, std::size_t row_bytes, int len,
                  int dim, float* out) {
    constexpr int kSpan = Wide::span(H);
    p += h0 * ld;
    out += static_cast<std::size_t>(h0) * dim;
    const int wide = dim / Wide::kLanes * Wide::kLanes, vec = dim / Narrow::kLanes * Narrow::kLanes;
    for (int t0 = 0; t0 < len; t0 += kMixBlockRows) {
      const int t1 = t0 + kMixBlockRows < len ? t0 + kMixBlockRows : len;
      int d = 0;
      for (; d + Wide::kLanes * kSpan <= wide; d += Wide::kLanes * kSpan) {
        Wide::template run<H, kSpan>(p, ld, values, row_bytes, t0, t1, dim, d, out);
      }
      for (; d < wide; d += Wide::kLanes) Wide::template run<H, 1>(p, ld, values, row_bytes, t0, t1, dim, d, out);
      for (; d < vec; d += Narrow::kLanes) Narrow::template run<H, 1>(p, ld, values, row_bytes, t0, t1, dim, d, out);
      mix_tail<T>(p, ld, H, values, row_bytes, t0, t1, dim, vec, out);
    }
  }
};

// A level's KvScoresFn and KvMixFn from its vector kernels.
template <DType T, class Tiles>
inline void scores_in_passes(const float* q, int heads, const std::byte* keys, int len, int dim, float scale,
                             float* out, std::size_t ld) {
  in_head_passes<ScoresInPasses<Tiles>>(heads, q, keys, tile_bytes<T>(dim), len, dim, scale, out, ld);
}

template <DType T, class Wide, class Narrow = Wide>
inline void mix_in_blocks(const float* p, std::size_t ld, int heads, const std::byte* values, std::size_t row_bytes,
                          int len, int dim, float* out) {
  for (int i = 0; i < heads * dim; ++i) out[i] = 0.0f;
  in_head_passes<MixBlocks<T, Wide, Narrow>>(heads, p, ld, values, row_bytes, len, dim, out);
}

#ifdef SMALLCODER_X86
namespace simd {

// The x86 entry points are compiled for their level and flattened: the loops above then run
// with the vector kernels inlined into them (a function without the target may not inline
// them itself).

// ---- e^x and softmax, the scalar steps on 8 lanes (the same operations: the same bits) ----

// unfused() for 8 lanes: GCC contracts intrinsic multiplies and adds into FMAs too.
SMALLCODER_AVX2 inline __m256 unfused8(__m256 x) {
  __asm__("" : "+x"(x));
  return x;
}

// exp_approx on 8 lanes: the same steps and constants (ExpSteps).
SMALLCODER_AVX2 inline __m256 exp8(__m256 x) {
  using E = ExpSteps;
  x = _mm256_max_ps(x, _mm256_set1_ps(E::kLow));
  x = _mm256_min_ps(x, _mm256_set1_ps(E::kHigh));
  const __m256 round = _mm256_set1_ps(E::kRound);
  const __m256 n = _mm256_sub_ps(_mm256_add_ps(unfused8(_mm256_mul_ps(x, _mm256_set1_ps(E::kLog2e))), round), round);
  const __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, unfused8(_mm256_mul_ps(n, _mm256_set1_ps(E::kLn2Hi)))),
                                 unfused8(_mm256_mul_ps(n, _mm256_set1_ps(E::kLn2Lo))));
  __m256 p = _mm256_set1_ps(E::kFirst);
  for (float c : E::kCoefficients) p = _mm256_add_ps(unfused8(_mm256_mul_ps(p, r)), _mm256_set1_ps(c));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

struct Lanes8 {
  static constexpr int kLanes = 8;

  SMALLCODER_AVX2 static float max(const float* s, int vec) {
    __m256 top8 = _mm256_set1_ps(s[0]);
    for (int i = 0; i < vec; i += 8) top8 = _mm256_max_ps(top8, _mm256_loadu_ps(s + i));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, top8);
    float top = s[0];
    for (float v : lanes) top = v > top ? v : top;
    return top;
  }

  SMALLCODER_AVX2 static void exp_sums(float* s, int vec, float top, double (&sum)[4]) {
    const __m256 top_v = _mm256_set1_ps(top);
    __m256d sum4 = _mm256_loadu_pd(sum);  // partial i % 4, as the scalar steps
    for (int i = 0; i < vec; i += 8) {
      const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), top_v));
      _mm256_storeu_ps(s + i, e);
      sum4 = _mm256_add_pd(sum4, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
      sum4 = _mm256_add_pd(sum4, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    _mm256_storeu_pd(sum, sum4);
  }
};

SMALLCODER_AVX2 __attribute__((flatten)) inline void softmax(float* scores, int heads, int len, std::size_t ld) {
  softmax_rows<Lanes8>(scores, heads, len, ld);
}

// ---- AVX2: scores over half tiles (8 lanes), weighted sums in 8-lane spans ----

// Rows is one of the AVX2 float loaders of kernels/avx2.hpp: 8 elements from an index.
template <class Rows>
struct Tiles8 {
  static constexpr int passes(int) { return 1; }

  // H heads x the 16 positions of each tile, as two halves of 8 lanes.
  template <int H, int B>
  SMALLCODER_AVX2 static void tiles(const float* q, const std::byte* k, std::size_t tile, int dim, float scale,
                                    float (&dots)[H][B * kKeyTile]) {
    __m256 acc[H][2 * B];
    for (int h = 0; h < H; ++h) {
      for (int v = 0; v < 2 * B; ++v) acc[h][v] = _mm256_setzero_ps();
    }
    for (int d = 0; d < dim; ++d) {
      __m256 kv[2 * B];
      for (int v = 0; v < 2 * B; ++v) kv[v] = Rows::load(k + v / 2 * tile, d * kKeyTile + 8 * (v % 2));
      for (int h = 0; h < H; ++h) {
        const __m256 qv = _mm256_set1_ps(q[h * dim + d]);
        for (int v = 0; v < 2 * B; ++v) acc[h][v] = _mm256_add_ps(acc[h][v], unfused8(_mm256_mul_ps(qv, kv[v])));
      }
    }
    for (int h = 0; h < H; ++h) {
      for (int v = 0; v < 2 * B; ++v) _mm256_store_ps(dots[h] + 8 * v, _mm256_mul_ps(acc[h][v], _mm256_set1_ps(scale)));
    }
  }
};

template <class Rows>
struct Spans8 {
  static constexpr int kLanes = 8;
  static constexpr int span(int heads) { return 8 / heads > 1 ? 8 / heads : 2; }  // registers per head

  template <int H, int R>
  SMALLCODER_AVX2 static void run(const float* p, std::size_t ld, const std::byte* values, std::size_t row_bytes,
                                  int t0, int t1, int dim, int d0, float* out) {
    __m256 acc[H][R];
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < R; ++i) acc[h][i] = _mm256_loadu_ps(out + static_cast<std::size_t>(h) * dim + d0 + 8 * i);
    }
    for (int t = t0; t < t1; ++t) {
      const std::byte* row = values + static_cast<std::size_t>(t) * row_bytes;
      for (std::size_t at = 0; at < row_bytes; at += 64) prefetch_ahead(row + at, kAheadRows * row_bytes);
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
};

template <DType T, class Rows>
SMALLCODER_AVX2 __attribute__((flatten)) inline void scores8(const float* q, int heads, const std::byte* keys, int len,
                                                             int dim, float scale, float* out, std::size_t ld) {
  scores_in_passes<T, Tiles8<Rows>>(q, heads, keys, len, dim, scale, out, ld);
}

template <DType T, class Rows>
SMALLCODER_AVX2 __attribute__((flatten)) inline void mix8(const float* p, std::size_t ld, int heads,
                                                          const std::byte* values, std::size_t row_bytes, int len,
                                                          int dim, float* out) {
  mix_in_blocks<T, Spans8<Rows>>(p, ld, heads, values, row_bytes, len, dim, out);
}

// ---- AVX-512: a whole tile per vector, B tiles at a time; weighted sums in 16-lane spans ----

// unfused() for 16 lanes.
SMALLCODER_AVX512 inline __m512 unfused16(__m512 x) {
  __asm__("" : "+v"(x));
  return x;
}

// Rows is one of the AVX-512 float loaders of kernels/avx512.hpp: 16 elements from an index.
template <DType T, class Rows>
struct Tiles16 {
  static constexpr int passes(int heads) { return heads > 2 ? 4 : 8 / heads; }  // heads x tiles accumulators

  template <int H, int B>
  SMALLCODER_AVX512 static void tiles(const float* q, const std::byte* k, std::size_t tile, int dim, float scale,
                                      float (&dots)[H][B * kKeyTile]) {
    __m512 acc[H][B];
    for (int h = 0; h < H; ++h) {
      for (int b = 0; b < B; ++b) acc[h][b] = _mm512_setzero_ps();
    }
    for (int d = 0; d < dim; ++d) {
      __m512 kv[B];
      for (int b = 0; b < B; ++b) {
        prefetch_ahead(k + b * tile + d * kKeyTile * kElement<T>, B * tile);  // the next pass's tiles
        kv[b] = Rows::template load<false>(k + b * tile, d * kKeyTile, 0);
      }
      for (int h = 0; h < H; ++h) {
        const __m512 qv = _mm512_set1_ps(q[h * dim + d]);
        for (int b = 0; b < B; ++b) acc[h][b] = _mm512_add_ps(acc[h][b], unfused16(_mm512_mul_ps(qv, kv[b])));
      }
    }
    for (int h = 0; h < H; ++h) {
      for (int b = 0; b < B; ++b)
        _mm512_store_ps(dots[h] + kKeyTile * b, _mm512_mul_ps(acc[h][b], _mm512_set1_ps(scale)));
    }
  }
};

template <class Rows>
struct Spans16 {
  static constexpr int kLanes = 16;
  static constexpr int span(int heads) { return 16 / heads < 8 ? 16 / heads : 8; }  // registers per head

  template <int H, int R>
  SMALLCODER_AVX512 static void run(const float* p, std::size_t ld, const std::byte* values, std::size_t row_bytes,
                                    int t0, int t1, int dim, int d0, float* out) {
    __m512 acc[H][R];
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < R; ++i) acc[h][i] = _mm512_loadu_ps(out + static_cast<std::size_t>(h) * dim + d0 + 16 * i);
    }
    for (int t = t0; t < t1; ++t) {
      const std::byte* row = values + static_cast<std::size_t>(t) * row_bytes;
      for (std::size_t at = 0; at < row_bytes; at += 64) prefetch_ahead(row + at, kAheadRows * row_bytes);
      __m512 v[R];
      for (int i = 0; i < R; ++i) v[i] = Rows::template load<false>(row, d0 + 16 * i, 0);
      for (int h = 0; h < H; ++h) {
        const __m512 pv = _mm512_set1_ps(p[h * ld + static_cast<std::size_t>(t)]);
        for (int i = 0; i < R; ++i) acc[h][i] = _mm512_add_ps(acc[h][i], unfused16(_mm512_mul_ps(pv, v[i])));
      }
    }
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < R; ++i) _mm512_storeu_ps(out + static_cast<std::size_t>(h) * dim + d0 + 16 * i, acc[h][i]);
    }
  }
};

template <DType T, class Rows>
SMALLCODER_AVX512 __attribute__((flatten)) inline void scores16(const float* q, int heads, const std::byte* keys,
                                                                int len, int dim, float scale, float* out,
                                                                std::size_t ld) {
  scores_in_passes<T, Tiles16<T, Rows>>(q, heads, keys, len, dim, scale, out, ld);
}

// Rows8: the AVX2 loader for the 8 elements past the last 16 (Narrow).
template <DType T, class Rows, class Rows8>
SMALLCODER_AVX512 __attribute__((flatten)) inline void mix16(const float* p, std::size_t ld, int heads,
                                                             const std::byte* values, std::size_t row_bytes, int len,
                                                             int dim, float* out) {
  mix_in_blocks<T, Spans16<Rows>, Spans8<Rows8>>(p, ld, heads, values, row_bytes, len, dim, out);
}

}  // namespace simd
#endif

#ifdef SMALLCODER_AARCH64
namespace simd {

// ---- NEON: the scalar steps on 4 lanes; scores B tiles of 4 vectors a pass, weighted sums
// in 4-lane spans ----

// unfused() for 4 lanes: GCC contracts intrinsic multiplies and adds into FMAs too.
inline float32x4_t unfused4(float32x4_t x) {
  __asm__("" : "+w"(x));
  return x;
}

// exp_approx on 4 lanes: the same steps and constants (ExpSteps), the clamps as compares
// and selects, as the scalar steps.
inline float32x4_t exp4(float32x4_t x) {
  using E = ExpSteps;
  const float32x4_t low = vdupq_n_f32(E::kLow), high = vdupq_n_f32(E::kHigh), round = vdupq_n_f32(E::kRound);
  x = vbslq_f32(vcltq_f32(x, low), low, x);
  x = vbslq_f32(vcgtq_f32(x, high), high, x);
  const float32x4_t n = vsubq_f32(vaddq_f32(unfused4(vmulq_n_f32(x, E::kLog2e)), round), round);
  const float32x4_t r =
      vsubq_f32(vsubq_f32(x, unfused4(vmulq_n_f32(n, E::kLn2Hi))), unfused4(vmulq_n_f32(n, E::kLn2Lo)));
  float32x4_t p = vdupq_n_f32(E::kFirst);
  for (float c : E::kCoefficients) p = vaddq_f32(unfused4(vmulq_f32(p, r)), vdupq_n_f32(c));
  const int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(bits));
}

struct Lanes4 {
  static constexpr int kLanes = 4;

  static float max(const float* s, int vec) {
    float32x4_t top4 = vdupq_n_f32(s[0]);
    for (int i = 0; i < vec; i += 4) {
      const float32x4_t v = vld1q_f32(s + i);
      top4 = vbslq_f32(vcgtq_f32(v, top4), v, top4);  // the scalar compare: NaNs never win
    }
    return vmaxvq_f32(top4);
  }

  static void exp_sums(float* s, int vec, float top, double (&sum)[4]) {
    const float32x4_t top_v = vdupq_n_f32(top);
    float64x2_t sum01 = vld1q_f64(sum), sum23 = vld1q_f64(sum + 2);  // partials i % 4, as the scalar steps
    for (int i = 0; i < vec; i += 4) {
      const float32x4_t e = exp4(vsubq_f32(vld1q_f32(s + i), top_v));
      vst1q_f32(s + i, e);
      sum01 = vaddq_f64(sum01, vcvt_f64_f32(vget_low_f32(e)));
      sum23 = vaddq_f64(sum23, vcvt_high_f64_f32(e));
    }
    vst1q_f64(sum, sum01);
    vst1q_f64(sum + 2, sum23);
  }
};

// Rows is one of the NEON float loaders of kernels/neon.hpp: 4 elements from an index.
template <DType T, class Rows>
struct Tiles4 {
  static constexpr int kVectors = kKeyTile / 4;                                 // per tile
  static constexpr int passes(int heads) { return heads > 2 ? 1 : 4 / heads; }  // at most 16 accumulators

  template <int H, int B>
  static void tiles(const float* q, const std::byte* k, std::size_t tile, int dim, float scale,
                    float (&dots)[H][B * kKeyTile]) {
    float32x4_t acc[H][B * kVectors];
    for (int h = 0; h < H; ++h) {
      for (int v = 0; v < B * kVectors; ++v) acc[h][v] = vdupq_n_f32(0.0f);
    }
    for (int d = 0; d < dim; ++d) {
      float32x4_t kv[B * kVectors];
      for (int b = 0; b < B; ++b) {
        prefetch_ahead(k + b * tile + d * kKeyTile * kElement<T>, B * tile);  // the next pass's tiles
        for (int v = 0; v < kVectors; ++v) kv[b * kVectors + v] = Rows::load(k + b * tile, d * kKeyTile + 4 * v);
      }
      for (int h = 0; h < H; ++h) {
        const float32x4_t qv = vdupq_n_f32(q[h * dim + d]);
        for (int v = 0; v < B * kVectors; ++v) acc[h][v] = vaddq_f32(acc[h][v], unfused4(vmulq_f32(qv, kv[v])));
      }
    }
    for (int h = 0; h < H; ++h) {
      for (int v = 0; v < B * kVectors; ++v) vst1q_f32(dots[h] + 4 * v, vmulq_n_f32(acc[h][v], scale));
    }
  }
};

template <class Rows>
struct Spans4 {
  static constexpr int kLanes = 4;
  static constexpr int span(int heads) { return 16 / heads < 8 ? 16 / heads : 8; }  // registers per head

  template <int H, int R>
  static void run(const float* p, std::size_t ld, const std::byte* values, std::size_t row_bytes, int t0, int t1,
                  int dim, int d0, float* out) {
    float32x4_t acc[H][R];
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < R; ++i) acc[h][i] = vld1q_f32(out + static_cast<std::size_t>(h) * dim + d0 + 4 * i);
    }
    for (int t = t0; t < t1; ++t) {
      const std::byte* row = values + static_cast<std::size_t>(t) * row_bytes;
      for (std::size_t at = 0; at < row_bytes; at += 64) prefetch_ahead(row + at, kAheadRows * row_bytes);
      float32x4_t v[R];
      for (int i = 0; i < R; ++i) v[i] = Rows::load(row, d0 + 4 * i);
      for (int h = 0; h < H; ++h) {
        const float32x4_t pv = vdupq_n_f32(p[h * ld + static_cast<std::size_t>(t)]);
        for (int i = 0; i < R; ++i) acc[h][i] = vaddq_f32(acc[h][i], unfused4(vmulq_f32(pv, v[i])));
      }
    }
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < R; ++i) vst1q_f32(out + static_cast<std::size_t>(h) * dim + d0 + 4 * i, acc[h][i]);
    }
  }
};

}  // namespace simd
#endif

template <DType T>
inline KvKernels kernels(Isa isa) {
  KvKernels k{store_key<T>, store_value<T>, scalar::scores<T>, softmax_rows<scalar::Lanes>, scalar::mix<T>};
#ifdef SMALLCODER_X86
  using Rows8 = std::conditional_t<T == DType::f32, avx2::F32Rows,
                                   std::conditional_t<T == DType::bf16, avx2::Bf16Rows, avx2::F16Rows>>;
  using Rows16 = std::conditional_t<T == DType::f32, avx512::F32Rows,
                                    std::conditional_t<T == DType::bf16, avx512::Bf16Rows, avx512::F16Rows>>;
  if (isa != Isa::scalar) k.softmax = simd::softmax;
  if (isa == Isa::avx2) {
    k.scores = simd::scores8<T, Rows8>;
    k.mix = simd::mix8<T, Rows8>;
  } else if (isa != Isa::scalar) {
    k.scores = simd::scores16<T, Rows16>;
    k.mix = simd::mix16<T, Rows16, Rows8>;
  }
#elif defined(SMALLCODER_AARCH64)
  using Rows4 = std::conditional_t<T == DType::f32, neon::F32Rows,
                                   std::conditional_t<T == DType::bf16, neon::Bf16Rows, neon::F16Rows>>;
  if (isa != Isa::scalar) {  // neon and dotprod
    k.softmax = softmax_rows<simd::Lanes4>;
    k.scores = scores_in_passes<T, simd::Tiles4<T, Rows4>>;
    k.mix = mix_in_blocks<T, simd::Spans4<Rows4>>;
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
