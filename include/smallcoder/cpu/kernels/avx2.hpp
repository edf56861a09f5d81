// AVX2 (+FMA, F16C) kernels, compiled into every x86 build through target attributes and
// run only where cpuid reports AVX2: register tiles for the float and 32-block weights, one
// super-block at a time for the k-quants, and the SIMD activation quantizers (the AVX-512
// level uses the latter two as they are).
#pragma once

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels/activations.hpp"
#include "smallcoder/cpu/kernels/tiling.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

#ifdef SMALLCODER_X86

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#define SMALLCODER_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace smallcoder::cpu::avx2 {

SMALLCODER_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

SMALLCODER_AVX2 inline std::int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

SMALLCODER_AVX2 inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// The 16 bits stored (unaligned) at p.
inline std::uint16_t u16_at(const std::byte* p) {
  std::uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return h;
}

// The f16 scale stored (unaligned) at p.
SMALLCODER_AVX2 inline float f16_at(const std::byte* p) { return _cvtsh_ss(u16_at(p)); }

// The f16 scales at first + i * stride for i < R (R <= 4) as fp32 lanes 0 .. R-1 of one
// conversion (the rest zero): the scales of one block of R rows.
template <int R>
SMALLCODER_AVX2 inline __m128 f16_column(const std::byte* first, std::size_t stride) {
  std::uint64_t halves = 0;
  for (int i = 0; i < R; ++i) halves |= std::uint64_t{u16_at(first + i * stride)} << (16 * i);
  return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(halves)));
}

// ---- activation quantizers: the same bytes as scalar::quantize_acts_* ----

// Largest |x| over n (a multiple of 8) values; max_ps(|x|, m) keeps m where x is NaN.
SMALLCODER_AVX2 inline float abs_max(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
  return hmax(m);
}

// round(x * inv) limited to [-127, 127] as int32 lanes (cvtps rounds to nearest even).
SMALLCODER_AVX2 inline __m256i quantize8(const float* x, __m256 inv) {
  const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
  return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f)));
}

// Four vectors of int32 lanes (32 values in [-127, 127]) as 32 int8 in order.
SMALLCODER_AVX2 inline __m256i pack32(__m256i q0, __m256i q1, __m256i q2, __m256i q3) {
  // The packs work within 128-bit lanes; the permute restores the element order.
  const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
  return _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// A block's values for write_q8_0_row / write_q8_k_row (activations.hpp).
struct ActValues {
  SMALLCODER_AVX2 static float abs_max(const float* x, int n) { return avx2::abs_max(x, n); }

  SMALLCODER_AVX2 static std::int32_t quantize32(const float* x, float inv, std::int8_t* q) {
    const __m256 scale = _mm256_set1_ps(inv);
    const __m256i q0 = quantize8(x, scale), q1 = quantize8(x + 8, scale);
    const __m256i q2 = quantize8(x + 16, scale), q3 = quantize8(x + 24, scale);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), pack32(q0, q1, q2, q3));
    return hsum(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
  }
};

// Compiled for AVX2 and flattened, so ActValues' vector code is inlined into the shared loop.
SMALLCODER_AVX2 __attribute__((flatten)) inline void quantize_acts_q8_0(const float* x, std::int64_t n,
                                                                        std::byte* out) {
  write_q8_0_row<ActValues>(x, n, out);
}

SMALLCODER_AVX2 __attribute__((flatten)) inline void quantize_acts_q8_k(const float* x, std::int64_t n,
                                                                        std::byte* out) {
  write_q8_k_row<ActValues>(x, n, out);
}

// One token's product (decode) reads every weight byte once, so it runs at the memory's
// speed only if enough cache lines are requested ahead: the one-token kernels below
// (FloatDecode, Q8_0Decode, Q4_0Decode, the k-quants') prefetch, for each row, the line
// kDecodeCallsAhead calls (of kRows rows) on, the distance the AVX-512 level's Q8_0 kernel
// found best (one call ahead left it waiting for lines). gemm_decode_or_tiled (tiling.hpp)
// walks a row range kRows rows at a time, as at the AVX-512 level; batches take the tiles.
constexpr int kDecodeCallsAhead = 3;

// A one-token kernel's row range in one function compiled for AVX2 (walk_decode_rows).
template <class Decode>
struct DecodeRange {
  SMALLCODER_AVX2 __attribute__((flatten)) static void range(const TensorView& w, std::int64_t r0, std::int64_t r1,
                                                             const std::byte* act, float* y, bool accumulate) {
    walk_decode_rows<Decode>(w, r0, r1, act, y, accumulate);
  }
};

// ---- float weights: fp32 activations, exact fp32 products, 8 lanes of partial sums ----

// Rows::load(row, k): elements k .. k+7 of a row as fp32; Rows::at(row, k): element k;
// kBytes: bytes per element.
struct F32Rows {
  static constexpr int kBytes = 4;
  SMALLCODER_AVX2 static __m256 load(const std::byte* row, std::int64_t k) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  }
  static float at(const std::byte* row, std::int64_t k) { return reinterpret_cast<const float*>(row)[k]; }
};

struct Bf16Rows {
  static constexpr int kBytes = 2;
  SMALLCODER_AVX2 static __m256 load(const std::byte* row, std::int64_t k) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float at(const std::byte* row, std::int64_t k) {
    return bf16_to_f32(reinterpret_cast<const std::uint16_t*>(row)[k]);
  }
};

struct F16Rows {
  static constexpr int kBytes = 2;
  SMALLCODER_AVX2 static __m256 load(const std::byte* row, std::int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * k)));
  }
  static float at(const std::byte* row, std::int64_t k) {
    return f16_to_f32(reinterpret_cast<const std::uint16_t*>(row)[k]);
  }
};

// R rows x T tokens of 8-lane accumulators: 4 x 2 leaves registers for the loaded vectors.
template <class Rows>
struct FloatTiles {
  static constexpr int kRows = 4, kTokens = 2;

  template <int R, int T>
  SMALLCODER_AVX2 static void tile(const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride,
                                   float* y, std::size_t ldy, bool accumulate) {
    const std::int64_t n = w.cols;
    const std::byte* rows[R];
    const float* x[T];
    __m256 acc[R][T];
    for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
    for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<const float*>(acts + static_cast<std::size_t>(t) * act_stride);
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps();
    }
    const std::size_t ahead = R * w.row_bytes();
    std::int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
      for (int i = 0; i < R; ++i) prefetch_ahead(rows[i] + k * Rows::kBytes, ahead);
      __m256 xv[T];
      for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x[t] + k);
      for (int i = 0; i < R; ++i) {
        const __m256 wv = Rows::load(rows[i], k);
        for (int t = 0; t < T; ++t) acc[i][t] = _mm256_fmadd_ps(wv, xv[t], acc[i][t]);
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) {
        float sum = hsum(acc[i][t]);
        for (std::int64_t j = k; j < n; ++j) sum += Rows::at(rows[i], j) * x[t][j];
        store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r + i), sum, accumulate);
      }
    }
  }
};

// One token: R <= kRows rows a cache line of each at a time, kLine / 8 accumulators per row
// (the FMA's latency would otherwise bound the loop), the activation vector loaded once for
// the R rows, and each row's line kDecodeCallsAhead calls on prefetched (see below).
template <class Rows>
struct FloatDecode : DecodeRange<FloatDecode<Rows>> {
  static constexpr int kRows = 4;
  static constexpr int kLine = 64 / Rows::kBytes;  // elements per cache line
  static constexpr int kAcc = kLine / 8;

  template <int R>
  SMALLCODER_AVX2 static void rows(const TensorView& w, std::int64_t r, std::int64_t spacing, const std::byte* act,
                                   float* y, bool accumulate) {
    const std::int64_t n = w.cols;
    const float* x = reinterpret_cast<const float*>(act);
    const std::size_t ahead = kDecodeCallsAhead * w.row_bytes();
    const std::byte* rows[R];
    __m256 acc[R][kAcc];
    for (int i = 0; i < R; ++i) {
      rows[i] = w.row(r + i * spacing);
      for (int j = 0; j < kAcc; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    std::int64_t k = 0;
    for (; k + kLine <= n; k += kLine) {
      for (int i = 0; i < R; ++i) prefetch_ahead(rows[i] + k * Rows::kBytes, ahead);
      for (int j = 0; j < kAcc; ++j) {
        const __m256 xv = _mm256_loadu_ps(x + k + 8 * j);
        for (int i = 0; i < R; ++i) acc[i][j] = _mm256_fmadd_ps(Rows::load(rows[i], k + 8 * j), xv, acc[i][j]);
      }
    }
    for (; k + 8 <= n; k += 8) {
      const __m256 xv = _mm256_loadu_ps(x + k);
      for (int i = 0; i < R; ++i) acc[i][0] = _mm256_fmadd_ps(Rows::load(rows[i], k), xv, acc[i][0]);
    }
    for (int i = 0; i < R; ++i) {
      for (int j = 1; j < kAcc; ++j) acc[i][0] = _mm256_add_ps(acc[i][0], acc[i][j]);
      float sum = hsum(acc[i][0]);
      for (std::int64_t j = k; j < n; ++j) sum += Rows::at(rows[i], j) * x[j];
      store_result(y + r + i * spacing, sum, accumulate);
    }
  }
};

// ---- 32-element blocks: one block per vector, maddubs/madd integer products ----
//
// Without VNNI the 8-bit products go through maddubs (unsigned x signed bytes to int16
// pairs) and madd by ones (int16 pairs to int32): 8 int32 lanes per block, lane j the sum
// of products 4j .. 4j+3, exact (neither step can saturate with these operands).

// Q8_0 weights are signed, so the sign moves onto the activations: |w| * (a * sign(w)),
// which maddubs (unsigned x signed bytes) takes; |w| <= 128 and |a| <= 127 cannot saturate.
struct Q8_0Blocks {
  static constexpr int kBytes = sizeof(BlockQ8_0);
  struct Unpacked {
    __m256i magnitude, w;
    float d;
  };
  SMALLCODER_AVX2 static Unpacked unpack(const std::byte* block) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
    return {_mm256_abs_epi8(w), w, f16_at(block)};
  }
  // The lanes a token's block starts from: none to correct.
  SMALLCODER_AVX2 static __m256i start(std::int32_t /*sum*/) { return _mm256_setzero_si256(); }
  // int32 lanes summing to the block's exact integer product with activations a, from `start`.
  SMALLCODER_AVX2 static __m256i lanes(const Unpacked& u, __m256i a, __m256i start) {
    const __m256i pairs = _mm256_maddubs_epi16(u.magnitude, _mm256_sign_epi8(a, u.w));
    return _mm256_add_epi32(start, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
};

// Q4_0 nibbles are unsigned (0..15) as stored: sum (q - 8) a = sum q a - 8 sum a, the
// second term the lanes' start (computed once per token and block, shared by the rows).
struct Q4_0Blocks {
  static constexpr int kBytes = sizeof(BlockQ4_0);
  struct Unpacked {
    __m256i q;
    float d;
  };
  SMALLCODER_AVX2 static Unpacked unpack(const std::byte* block) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(bytes, 4), bytes);
    return {_mm256_and_si256(both, _mm256_set1_epi8(0x0F)), f16_at(block)};
  }
  SMALLCODER_AVX2 static __m256i start(std::int32_t sum) { return _mm256_zextsi128_si256(_mm_cvtsi32_si128(-8 * sum)); }
  SMALLCODER_AVX2 static __m256i lanes(const Unpacked& u, __m256i a, __m256i start) {
    return _mm256_add_epi32(start, _mm256_madd_epi16(_mm256_maddubs_epi16(u.q, a), _mm256_set1_epi16(1)));
  }
};

// Batches: R rows x T tokens. A row's block is unpacked once (two registers) and serves T
// tokens, a token's block is loaded once and serves R rows, and each (row, token) pair
// costs the integer product, one conversion and one FMA with the product of the two
// broadcast scales. 2 x 4 keeps the 8 accumulators, the unpacked rows and their scales
// within the 16 vector registers; larger tiles spill. Q8_0's arithmetic per (row, token)
// is the one-token kernel's and the AVX-512 level's (the same lanes, one FMA per block in
// order, the same final sum), so every level gives the same bits.
template <class Blocks>
struct QuantTiles {
  static constexpr int kRows = 2, kTokens = 4;

  template <int R, int T>
  SMALLCODER_AVX2 static void tile(const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride,
                                   float* y, std::size_t ldy, bool accumulate) {
    const std::int64_t blocks = w.cols / kQ0Block;
    const std::byte* rows[R];
    Q8Acts a[T];
    __m256 acc[R][T];
    for (int i = 0; i < R; ++i) rows[i] = w.row(r + i);
    for (int t = 0; t < T; ++t) a[t] = q8_acts(acts + static_cast<std::size_t>(t) * act_stride, w.cols);
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps();
    }
    const std::size_t ahead = R * w.row_bytes();
    for (std::int64_t b = 0; b < blocks; ++b) {
      typename Blocks::Unpacked u[R];
      __m256 dw[R];
      for (int i = 0; i < R; ++i) {
        prefetch_ahead(rows[i] + b * Blocks::kBytes, ahead);
        u[i] = Blocks::unpack(rows[i] + b * Blocks::kBytes);
        dw[i] = _mm256_set1_ps(u[i].d);
      }
      for (int t = 0; t < T; ++t) {
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].qs + b * kQ0Block));
        const __m256 da = _mm256_set1_ps(a[t].d[b]);
        const __m256i start = Blocks::start(a[t].sums[b]);
        for (int i = 0; i < R; ++i) {
          const __m256 products = _mm256_cvtepi32_ps(Blocks::lanes(u[i], av, start));
          acc[i][t] = _mm256_fmadd_ps(products, _mm256_mul_ps(dw[i], da), acc[i][t]);
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int t = 0; t < T; ++t) {
        store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r + i), hsum(acc[i][t]),
                     accumulate);
      }
    }
  }
};

// Q8_0, four rows a block at a time: the activation block is loaded once for the four
// rows and the four f16 scales convert in one instruction; the arithmetic per row is
// QuantTiles<Q8_0Blocks>' (so the same bits).
struct Q8_0Decode : DecodeRange<Q8_0Decode> {
  static constexpr int kRows = 4;

  template <int R>
  SMALLCODER_AVX2 static void rows(const TensorView& w, std::int64_t r, std::int64_t spacing, const std::byte* act,
                                   float* y, bool accumulate) {
    const std::int64_t blocks = w.cols / kQ0Block;
    const std::size_t stride = static_cast<std::size_t>(spacing) * w.row_bytes(),
                      ahead = kDecodeCallsAhead * w.row_bytes();
    const std::byte* first = w.row(r);
    const Q8Acts a = q8_acts(act, w.cols);
    __m256 acc[R];
    for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::byte* block = first + b * sizeof(BlockQ8_0);
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + b * kQ0Block));
      const __m256 d = _mm256_castps128_ps256(_mm_mul_ps(f16_column<R>(block, stride), _mm_set1_ps(a.d[b])));
      for (int i = 0; i < R; ++i) {
        const std::byte* p = block + i * stride;
        prefetch_ahead(p, ahead);
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
        const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(av, wv));
        const __m256 products = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
        acc[i] = _mm256_fmadd_ps(products, _mm256_permutevar8x32_ps(d, _mm256_set1_epi32(i)), acc[i]);
      }
    }
    for (int i = 0; i < R; ++i) store_result(y + r + i * spacing, hsum(acc[i]), accumulate);
  }
};

// Q4_0, four rows x two blocks per step. One 256-bit vector holds the 16 quant bytes of two
// consecutive blocks of a row, so one mask and one shift unpack 64 nibbles, and two
// maddubs against the two blocks' activation halves leave eight int16 pair sums per block.
// Three horizontal adds of the four rows' pairs and one madd leave one vector of exact
// (block, row) sums, lane 4 * block + row, so the -8 * sum correction, the conversion, the
// scale product and the FMA each serve eight row-blocks instead of one (the AVX-512
// level's Q4_0Decode on half the width). Without VNNI Q4_0 costs more instructions per
// weight byte than any other type, so this is the kernel whose arithmetic, not DRAM, sets
// the speed on a slow core: every instruction of a step counts. The activation halves are
// put together by 128-bit inserts, not vperm2i128 (8 micro-ops each on Zen 1).
struct Q4_0Decode {
  static constexpr int kRows = 4;
  static constexpr std::size_t kBytes = sizeof(BlockQ4_0);

  // Each pair of blocks' activation scales and 8 * sums, spread over its blocks' four lanes
  // (block_sums' order), 16 words per pair: made once per row range (into a per-thread
  // buffer that grows only for a wider row) instead of by two cross-lane permutes and a
  // shift in every step (llvm-mca's znver3 model on GCC 12's loop: 16.5 -> 14.9 cycles per
  // step).
  struct Acts {
    Q8Acts q8;
    const std::uint32_t* pairs;  // blocks 2k and 2k + 1 at 16k: 8 scales, then 8 sums
  };

  SMALLCODER_AVX2 __attribute__((flatten)) static void range(const TensorView& w, std::int64_t r0, std::int64_t r1,
                                                             const std::byte* act, float* y, bool accumulate) {
    const Q8Acts a = q8_acts(act, w.cols);
    const std::size_t pairs = static_cast<std::size_t>(w.cols / kQ0Block / 2);
    thread_local std::vector<std::uint32_t> spread;
    if (spread.size() < 16 * pairs) spread.resize(16 * pairs);
    for (std::size_t k = 0; k < pairs; ++k) {
      __m256i* at = reinterpret_cast<__m256i*>(spread.data() + 16 * k);
      const Spread pair = spread_acts<2>(a, static_cast<std::int64_t>(2 * k));
      _mm256_storeu_si256(at, pair.da);
      _mm256_storeu_si256(at + 1, pair.correction);
    }
    walk_decode_rows<Q4_0Decode>(w, r0, r1, Acts{a, spread.data()}, y, accumulate);
  }

  // Blocks b and b + 1's (G = 2) or b's (G = 1) activation scales and 8 * sums, each over
  // its block's four lanes, as a step takes them.
  struct Spread {
    __m256i da, correction;
  };
  template <int G>
  SMALLCODER_AVX2 static Spread spread_acts(const Q8Acts& a, std::int64_t b) {
    return {per_block<G>(a.d + b), _mm256_slli_epi32(per_block<G>(a.sums + b), 3)};
  }

  // Blocks b and b + 1 (G = 2) or b alone (G = 1, the upper half zero) of four rows: exact
  // sums, lane 4k + i for row i's block b + k, less `correction` (8 * the activation sums).
  template <int G>
  SMALLCODER_AVX2 static __m256i block_sums(const std::byte* const* p, const Q8Acts& a, std::int64_t b,
                                            __m256i correction) {
    const std::int8_t* x = a.qs + b * kQ0Block;
    // Each block's first 16 activations meet the low nibbles, its last 16 the high ones.
    const __m256i first = halves<G>(x, x + kQ0Block), second = halves<G>(x + 16, x + kQ0Block + 16);
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m256i pairs[kRows];
    for (int i = 0; i < kRows; ++i) {
      const __m256i bytes = halves<G>(p[i] + 2, p[i] + kBytes + 2);
      const __m256i lo = _mm256_and_si256(bytes, low), hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low);
      pairs[i] = _mm256_add_epi16(_mm256_maddubs_epi16(lo, first), _mm256_maddubs_epi16(hi, second));
    }
    // A word of pairs sums four products, at most 2 * 15 * 128 * 2 = 7680 in magnitude; the
    // two horizontal adds sum four such words, at most 30720, within int16; the madd adds
    // the last two as it widens.
    const __m256i quads =
        _mm256_hadd_epi16(_mm256_hadd_epi16(pairs[0], pairs[1]), _mm256_hadd_epi16(pairs[2], pairs[3]));
    const __m256i sums = _mm256_madd_epi16(quads, _mm256_set1_epi16(1));
    return _mm256_sub_epi32(sums, correction);
  }

  // 16 bytes at `at` and (G = 2) 16 at `next` in the upper half, or zeros there (G = 1).
  template <int G>
  SMALLCODER_AVX2 static __m256i halves(const void* at, const void* next) {
    const __m128i low = _mm_loadu_si128(static_cast<const __m128i*>(at));
    if constexpr (G == 1) return _mm256_zextsi128_si256(low);
    const __m128i high = _mm_loadu_si128(static_cast<const __m128i*>(next));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(low), high, 1);
  }

  // Blocks b and b + 1's values at v (G = 2), or b's and zero (G = 1), each in the four lanes
  // of its block: one load and one permute.
  template <int G, class T>
  SMALLCODER_AVX2 static __m256i per_block(const T* v) {
    static_assert(sizeof(T) == 4, "per_block spreads 32-bit values");
    std::int32_t first = 0;
    std::memcpy(&first, v, sizeof first);
    const __m128i values = G == 2 ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(v)) : _mm_cvtsi32_si128(first);
    return _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(values), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
  }

  // The f16 scales of blocks b and b + 1 of four rows in block_sums' order, from one
  // 32-byte load per row (the pair's 36 bytes hold both scales, at bytes 0 and 18): a
  // shuffle moves each lane's scale to word i of that lane, three blends gather the rows.
  // The scales take about a quarter of the kernel's time; this is 3-4% faster (data in
  // cache) than assembling them 16-bit load by 16-bit load in general registers.
  SMALLCODER_AVX2 static __m128i pair_scales(const std::byte* const* p) {
    const __m256i to_words = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                              2, 3, 2, 3, 2, 3, 2, 3, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256i words[kRows];
    for (int i = 0; i < kRows; ++i)
      words[i] = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[i])), to_words);
    const __m256i rows = _mm256_blend_epi16(
        _mm256_blend_epi16(_mm256_blend_epi16(words[0], words[1], 0x02), words[2], 0x04), words[3], 0x08);
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(rows, 0x08));  // the lanes' low halves side by side
  }

  // The fp32 scale products dw * da of the same (block, row) lanes.
  template <int G>
  SMALLCODER_AVX2 static __m256 scales(const std::byte* const* p, __m256 da) {
    if constexpr (G == 2) {
      return _mm256_mul_ps(_mm256_cvtph_ps(pair_scales(p)), da);
    } else {
      std::uint64_t halves = 0;
      for (int i = 0; i < kRows; ++i) halves |= std::uint64_t{u16_at(p[i])} << (16 * i);
      return _mm256_mul_ps(_mm256_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(halves))), da);
    }
  }

  template <int G>
  SMALLCODER_AVX2 static __m256 step(const std::byte* const* rows, const Acts& a, std::int64_t b, std::size_t ahead,
                                     __m256 acc) {
    const std::byte* p[kRows];
    for (int i = 0; i < kRows; ++i) {
      p[i] = rows[i] + b * kBytes;
      prefetch_ahead(p[i], ahead);  // a step reads 36 bytes of a row, less than a line: every line is asked for
    }
    Spread s;
    if constexpr (G == 2) {
      const __m256i* pair = reinterpret_cast<const __m256i*>(a.pairs + 8 * b);  // b is even
      s = {_mm256_loadu_si256(pair), _mm256_loadu_si256(pair + 1)};
    } else {  // the last block of an odd count spreads its own
      s = spread_acts<1>(a.q8, b);
    }
    const __m256i sums = block_sums<G>(p, a.q8, b, s.correction);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scales<G>(p, _mm256_castsi256_ps(s.da)), acc);
  }

  // R <= 4 rows r + i * spacing; fewer than four repeat the last row and store it once.
  template <int R>
  SMALLCODER_AVX2 static void rows(const TensorView& w, std::int64_t r, std::int64_t spacing, const Acts& a, float* y,
                                   bool accumulate) {
    const std::int64_t blocks = w.cols / kQ0Block;
    const std::size_t ahead = kDecodeCallsAhead * w.row_bytes();
    const std::byte* rows[kRows];
    for (int i = 0; i < kRows; ++i) rows[i] = w.row(r + (i < R ? i : R - 1) * spacing);
    __m256 acc = _mm256_setzero_ps();
    std::int64_t b = 0;
    for (; b + 2 <= blocks; b += 2) acc = step<2>(rows, a, b, ahead, acc);
    if (b < blocks) acc = step<1>(rows, a, b, ahead, acc);
    // Row i's total: lanes i and 4 + i.
    float sums[kRows];
    _mm_storeu_ps(sums, _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
    for (int i = 0; i < R; ++i) store_result(y + r + i * spacing, sums[i], accumulate);
  }
};

}  // namespace smallcoder::cpu::avx2

#endif  // SMALLCODER_X86
