// The exact integer sums of one weight row with one prepared activation row,
// per block in order, at each kernel level: one int32 per Q8_0 / Q4_0 / Q6_K
// block, two per Q4_K block (scaled, mins; see scalar::Q4KSums). Every level
// must give the scalar level's values, bit for bit, from the same lane
// arithmetic its products use; only the tests read these, so they live here and
// not in the library's kernel table.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/cpu/kernels.hpp"

namespace smallcoder::cpu {

using BlockSumsFn = void (*)(const std::byte* w_row, const std::byte* act_row, std::int64_t cols, std::int32_t* out);

namespace scalar {

inline void block_sums_q8_0(const std::byte* row, const std::byte* act, std::int64_t n, std::int32_t* out) {
  const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(row);
  const Q8Acts a = q8_acts(act, n);
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) out[b] = dot_q8_0(w[b], a.qs + b * kQ0Block);
}

inline void block_sums_q4_0(const std::byte* row, const std::byte* act, std::int64_t n, std::int32_t* out) {
  const BlockQ4_0* w = reinterpret_cast<const BlockQ4_0*>(row);
  const Q8Acts a = q8_acts(act, n);
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) out[b] = dot_q4_0(w[b], a.qs + b * kQ0Block);
}

inline void block_sums_q4_k(const std::byte* row, const std::byte* act, std::int64_t n, std::int32_t* out) {
  const BlockQ4K* w = reinterpret_cast<const BlockQ4K*>(row);
  const BlockQ8K* a = reinterpret_cast<const BlockQ8K*>(act);
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    const Q4KSums s = dot_q4_k(w[b], a[b]);
    out[2 * b] = s.scaled;
    out[2 * b + 1] = s.mins;
  }
}

inline void block_sums_q6_k(const std::byte* row, const std::byte* act, std::int64_t n, std::int32_t* out) {
  const BlockQ6K* w = reinterpret_cast<const BlockQ6K*>(row);
  const BlockQ8K* a = reinterpret_cast<const BlockQ8K*>(act);
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) out[b] = dot_q6_k(w[b], a[b]);
}

}  // namespace scalar

#ifdef SMALLCODER_X86

namespace avx2 {

template <class Blocks>
SMALLCODER_AVX2 inline void block_sums(const std::byte* row, const std::byte* act, std::int64_t n, std::int32_t* out) {
  const Q8Acts a = q8_acts(act, n);
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) {
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs + b * kQ0Block));
    out[b] = hsum(Blocks::lanes(Blocks::unpack(row + b * Blocks::kBytes), av, Blocks::start(a.sums[b])));
  }
}

SMALLCODER_AVX2 inline void block_sums_q4_k(const std::byte* row, const std::byte* act, std::int64_t n,
                                            std::int32_t* out) {
  const BlockQ4K* w = reinterpret_cast<const BlockQ4K*>(row);
  const BlockQ8K* a = reinterpret_cast<const BlockQ8K*>(act);
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    out[2 * b] = hsum(super_block_lanes<Q4KSteps>(w[b], a[b]));
    out[2 * b + 1] = hsum(_mm256_zextsi128_si256(Q4KSteps::min_lanes(Q4KSteps::header(w[b]), a[b])));
  }
}

SMALLCODER_AVX2 inline void block_sums_q6_k(const std::byte* row, const std::byte* act, std::int64_t n,
                                            std::int32_t* out) {
  const BlockQ6K* w = reinterpret_cast<const BlockQ6K*>(row);
  const BlockQ8K* a = reinterpret_cast<const BlockQ8K*>(act);
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) out[b] = hsum(super_block_lanes<Q6KSteps>(w[b], a[b]));
}

}  // namespace avx2

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace avx512 {

template <class Blocks, int G>
SMALLCODER_AVX512_INLINE inline void group_sums(const std::byte* row, const Q8Acts& a, std::int64_t b,
                                                std::int32_t* out) {
  __m512i wa, wb;
  Blocks::template unpack<G>(row + b * Blocks::kBytes, wa, wb);
  const __m512i lanes = group_lanes(act_group<G>(a, b), wa, wb);
  for (int j = 0; j < G; ++j)
    out[b + j] = _mm512_reduce_add_epi32(_mm512_maskz_mov_epi32(static_cast<__mmask16>(0xFu << (4 * j)), lanes));
}

template <class Blocks>
SMALLCODER_AVX512 inline void block_sums(const std::byte* row, const std::byte* act, std::int64_t n,
                                         std::int32_t* out) {
  const Q8Acts a = q8_acts(act, n);
  const std::int64_t blocks = n / kQ0Block;
  std::int64_t b = 0;
  for (; b + 4 <= blocks; b += 4) group_sums<Blocks, 4>(row, a, b, out);
  switch (blocks - b) {
    case 3:
      group_sums<Blocks, 3>(row, a, b, out);
      break;
    case 2:
      group_sums<Blocks, 2>(row, a, b, out);
      break;
    case 1:
      group_sums<Blocks, 1>(row, a, b, out);
      break;
    default:
      break;
  }
}

SMALLCODER_AVX512 inline void block_sums_q8_0(const std::byte* row, const std::byte* act, std::int64_t n,
                                              std::int32_t* out) {
  const Q8Acts a = q8_acts(act, n);
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) {
    const std::byte* block = row + b * sizeof(BlockQ8_0);
    const __m512i lanes = Q8_0Tiles::lanes(Q8_0Tiles::unpack(block, block), Q8_0Tiles::broadcast_block(a, b));
    out[b] = avx2::hsum(_mm512_castsi512_si256(lanes));
  }
}

}  // namespace avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // SMALLCODER_X86

#ifdef SMALLCODER_AARCH64

namespace neon {

template <class Blocks, class Dot>
inline void block_sums(const std::byte* row, const std::byte* act, std::int64_t n, std::int32_t* out) {
  const Q8Acts a = q8_acts(act, n);
  for (std::int64_t b = 0; b < n / kQ0Block; ++b) {
    const std::int8_t* q = a.qs + b * kQ0Block;
    out[b] = vaddvq_s32(block_lanes<Dot>(Blocks::unpack(row + b * Blocks::kBytes), vld1q_s8(q), vld1q_s8(q + 16)));
  }
}

template <class Dot>
inline void block_sums_q4_k(const std::byte* row, const std::byte* act, std::int64_t n, std::int32_t* out) {
  const BlockQ4K* w = reinterpret_cast<const BlockQ4K*>(row);
  const BlockQ8K* a = reinterpret_cast<const BlockQ8K*>(act);
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) {
    const scalar::Q4KSums s = q4k_sums<Dot>(w[b], a[b]);
    out[2 * b] = s.scaled;
    out[2 * b + 1] = s.mins;
  }
}

template <class Dot>
inline void block_sums_q6_k(const std::byte* row, const std::byte* act, std::int64_t n, std::int32_t* out) {
  const BlockQ6K* w = reinterpret_cast<const BlockQ6K*>(row);
  const BlockQ8K* a = reinterpret_cast<const BlockQ8K*>(act);
  for (std::int64_t b = 0; b < n / kQKBlock; ++b) out[b] = q6k_sum<Dot>(w[b], a[b]);
}

// Fn itself: the neon level's functions need no compiling for an extension (dotprod::Enabled).
template <auto Fn>
struct AsIs {
  static constexpr auto run = Fn;
};

// The block sums of type t on Dot, as the functions Compiled<> makes of them.
template <class Dot, template <auto> class Compiled>
inline BlockSumsFn block_sums_for(DType t) {
  switch (t) {
    case DType::q8_0:
      return Compiled<block_sums<Q8_0Blocks, Dot>>::run;
    case DType::q4_0:
      return Compiled<block_sums<Q4_0Blocks, Dot>>::run;
    case DType::q4_k:
      return Compiled<block_sums_q4_k<Dot>>::run;
    case DType::q6_k:
      return Compiled<block_sums_q6_k<Dot>>::run;
    default:
      return nullptr;
  }
}

}  // namespace neon

#endif  // SMALLCODER_AARCH64

// Sums per block of type t (0: float types, which have no integer sums).
inline int sums_per_block(DType t) { return t == DType::q4_k ? 2 : is_float_dtype(t) ? 0 : 1; }

// The block sums of type t at level isa (null for float types). The avx512 and
// amx levels share the AVX-512 Q8_0/Q4_0 lanes and the AVX2 k-quant ones, as
// their products do; the dotprod level the neon level's functions on sdot.
inline BlockSumsFn block_sums_for(DType t, Isa isa) {
  if (isa == Isa::scalar) {
    switch (t) {
      case DType::q8_0:
        return scalar::block_sums_q8_0;
      case DType::q4_0:
        return scalar::block_sums_q4_0;
      case DType::q4_k:
        return scalar::block_sums_q4_k;
      case DType::q6_k:
        return scalar::block_sums_q6_k;
      default:
        return nullptr;
    }
  }
#ifdef SMALLCODER_X86
  const bool wide = isa != Isa::avx2;
  switch (t) {
    case DType::q8_0:
      return wide ? avx512::block_sums_q8_0 : avx2::block_sums<avx2::Q8_0Blocks>;
    case DType::q4_0:
      return wide ? avx512::block_sums<avx512::Q4_0Groups> : avx2::block_sums<avx2::Q4_0Blocks>;
    case DType::q4_k:
      return avx2::block_sums_q4_k;
    case DType::q6_k:
      return avx2::block_sums_q6_k;
    default:
      return nullptr;
  }
#elif defined(SMALLCODER_AARCH64)
#ifdef SMALLCODER_DOTPROD
  if (isa == Isa::dotprod) return neon::block_sums_for<dotprod::Sdot, dotprod::Enabled>(t);
#endif
  return neon::block_sums_for<neon::MullDot, neon::AsIs>(t);
#else
  return nullptr;
#endif
}

}  // namespace smallcoder::cpu
