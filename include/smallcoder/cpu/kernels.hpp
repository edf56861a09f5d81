// The CPU kernel table: one record per weight type (kTypeKernels) saying how activation rows
// are prepared (fp32 as they are, or quantized to 8 bits once per row) and which tile
// product each SIMD level runs, plus, where a level has one, a product for batches with
// activations of its own format. kernels_for(type) answers for the level chosen at run
// time (cpu/isa.hpp); the backend only ever calls through this table.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels/activations.hpp"
#include "smallcoder/cpu/kernels/amx.hpp"
#include "smallcoder/cpu/kernels/avx2.hpp"
#include "smallcoder/cpu/kernels/avx2_kquants.hpp"
#include "smallcoder/cpu/kernels/avx512.hpp"
#include "smallcoder/cpu/kernels/dotprod.hpp"
#include "smallcoder/cpu/kernels/neon.hpp"
#include "smallcoder/cpu/kernels/scalar.hpp"
#include "smallcoder/cpu/kernels/tiling.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

namespace smallcoder::cpu {

// y[t * ldy + r] (+)= W[r] . act_t for weight rows r in [r0, r1) and tokens t < n_tokens,
// act_t being prepared activation row t (act_stride bytes apart; for ActFormat::f32 simply
// the fp32 rows). n_tokens == 1 is the decode matrix-vector product.
using GemmFn = void (*)(const TensorView& w, std::int64_t r0, std::int64_t r1, const std::byte* acts,
                        std::size_t act_stride, int n_tokens, float* y, std::size_t ldy, bool accumulate);

// Quantizes one fp32 activation row of `cols` elements into act_row_bytes(format, cols) bytes.
using QuantizeActsFn = void (*)(const float* x, std::int64_t cols, std::byte* out);

// Packs n <= kGroupTokens fp32 rows of `cols` values (ldx floats apart) into one group of
// a grouped activation format (ActFormat::bf16_split) at out, 64-byte aligned.
using PackActsFn = void (*)(const float* x, std::size_t ldx, int n, std::int64_t cols, std::byte* out);

// A level's second product, for batches: from min_tokens tokens, on matrices whose cols are
// a multiple of cols_multiple, it beats Kernels::gemm. Its activations, in format `act`, are
// packed a group of kGroupTokens tokens at a time; gemm then takes act_stride =
// act_row_bytes(act, cols), one token's share of a group.
struct BatchKernels {
  ActFormat act = ActFormat::f32;
  PackActsFn pack_acts = nullptr;
  GemmFn gemm = nullptr;  // null: the level has none for this weight type
  int min_tokens = 0;
  std::int64_t cols_multiple = 1;
};

// Weight rows per work item of a batch product on `threads` threads: an equal share per
// thread in whole 16-row tiles, at most 256. Each activation tile it loads serves every row
// of the item, so items larger than the 64 rows of the other batched products keep the
// activations in cache longer (measured: +25% on SmallCoder-Medium's 3328-column down
// projection).
inline std::int64_t batch_item_rows(std::int64_t matrix_rows, int threads) {
  constexpr std::int64_t kMaxRows = 256;
  const std::int64_t per_thread = (matrix_rows + threads - 1) / threads;
  const std::int64_t items = threads * ((per_thread + kMaxRows - 1) / kMaxRows);
  return ((matrix_rows + items - 1) / items + 15) / 16 * 16;
}

// The level-independent half of a weight type's products: how its activation
// rows are prepared and the product at each SIMD level (null: the level has
// none of its own and takes the one below it), plus the amx level's batch
// product. One record per DType, in enum order (checked below), as
// tensor/dtype.hpp keeps one record per type for the formats. x86 kernels
// appear only in x86 builds (SMALLCODER_X86_ONLY), arm ones only in aarch64
// builds (SMALLCODER_NEON_ONLY, SMALLCODER_DOTPROD_ONLY).
struct TypeKernels {
  DType type;
  ActFormat act;
  GemmFn scalar;     // every CPU; the reference the other levels are tested against
  GemmFn avx2;       // AVX2 + FMA + F16C
  GemmFn avx512;     // AVX-512 F/BW/VL (+ VNNI); the amx level's product for one
                     // token too
  BatchKernels amx;  // AMX tiles for batches
  GemmFn neon;       // aarch64 Advanced SIMD
  GemmFn dotprod;    // neon with sdot for the 8-bit products
};

#ifdef SMALLCODER_X86
#define SMALLCODER_X86_ONLY(...) __VA_ARGS__
#else
#define SMALLCODER_X86_ONLY(...) \
  {}
#endif
#ifdef SMALLCODER_AARCH64
#define SMALLCODER_NEON_ONLY(...) __VA_ARGS__
#else
#define SMALLCODER_NEON_ONLY(...) \
  {}
#endif
#ifdef SMALLCODER_DOTPROD
#define SMALLCODER_DOTPROD_ONLY(...) __VA_ARGS__
#else
#define SMALLCODER_DOTPROD_ONLY(...) \
  {}
#endif

// The amx batch products beat the avx512 level from 6 (bf16), 4 (Q8_0) and 8
// (Q4_0) tokens up, though most of a 16-token group is then zero padding
// (measured against avx512: bf16 1.3-1.6x at 6 tokens, 0.75-0.95x at 4;
// Q8_0 1.15-1.25x at 4, 0.9-1.05x at 3; Q4_0 1.25-1.5x at 8, 0.95-1.15x at 6).
// The k-quants have AVX2 products only, used by both wider levels; so has one token on
// float weights (bound by memory, which AVX2's loads stream as fast as AVX-512's).
constexpr TypeKernels kTypeKernels[] = {
    {DType::f32,
     ActFormat::f32,
     gemm_rows<scalar::row_dot_f32>,
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx2::FloatDecode<avx2::F32Rows>, avx2::FloatTiles<avx2::F32Rows>>),
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx2::FloatDecode<avx2::F32Rows>, avx512::FloatTiles<avx512::F32Rows>>),
     {},
     SMALLCODER_NEON_ONLY(gemm_tiled<neon::FloatTiles<neon::F32Rows>>),
     {}},
    {DType::f16,
     ActFormat::f32,
     gemm_rows<scalar::row_dot_f16>,
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx2::FloatDecode<avx2::F16Rows>, avx2::FloatTiles<avx2::F16Rows>>),
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx2::FloatDecode<avx2::F16Rows>, avx512::FloatTiles<avx512::F16Rows>>),
     {},
     SMALLCODER_NEON_ONLY(gemm_tiled<neon::FloatTiles<neon::F16Rows>>),
     {}},
    {DType::bf16,
     ActFormat::f32,
     gemm_rows<scalar::row_dot_bf16>,
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx2::FloatDecode<avx2::Bf16Rows>, avx2::FloatTiles<avx2::Bf16Rows>>),
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx2::FloatDecode<avx2::Bf16Rows>, avx512::FloatTiles<avx512::Bf16Rows>>),
     SMALLCODER_X86_ONLY({ActFormat::bf16_split, amx::pack_group, amx::gemm<amx::Bf16Tiles>, 6, kSplitCols}),
     SMALLCODER_NEON_ONLY(gemm_tiled<neon::FloatTiles<neon::Bf16Rows>>),
     {}},
    {DType::q8_0, ActFormat::q8_0, gemm_rows<scalar::row_dot_q8_0>,
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx2::Q8_0Decode, avx2::QuantTiles<avx2::Q8_0Blocks>>),
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx512::Q8_0Decode, avx512::Q8_0Tiles>),
     SMALLCODER_X86_ONLY(
         {ActFormat::q8_0_tiles, amx::pack_q8_0_group, amx::gemm<amx::QuantTiles<amx::Q8_0Blocks>>, 4, kQ0Block}),
     SMALLCODER_NEON_ONLY(gemm_tiled<neon::QuantTiles<neon::Q8_0Blocks, neon::MullDot>>),
     SMALLCODER_DOTPROD_ONLY(dotprod::enable<gemm_tiled<dotprod::QuantTiles<neon::Q8_0Blocks>>>)},
    {DType::q4_0, ActFormat::q8_0, gemm_rows<scalar::row_dot_q4_0>,
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx2::Q4_0Decode, avx2::QuantTiles<avx2::Q4_0Blocks>>),
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx512::Q4_0Decode, avx512::QuantTiles<avx512::Q4_0Groups>>),
     SMALLCODER_X86_ONLY(
         {ActFormat::q8_0_tiles, amx::pack_q8_0_group, amx::gemm<amx::QuantTiles<amx::Q4_0Blocks>>, 8, kQ0Block}),
     SMALLCODER_NEON_ONLY(gemm_tiled<neon::QuantTiles<neon::Q4_0Blocks, neon::MullDot>>),
     SMALLCODER_DOTPROD_ONLY(dotprod::enable<gemm_tiled<dotprod::QuantTiles<neon::Q4_0Blocks>>>)},
    {DType::q4_k,
     ActFormat::q8_k,
     gemm_rows<scalar::row_dot_q4_k>,
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx2::KQuantDecode<avx2::Q4KSteps>, avx2::KQuantTiles<avx2::Q4KSteps>>),
     {},
     {},
     SMALLCODER_NEON_ONLY(gemm_rows<scalar::row_dot_q4_k_with<neon::q4k_sums<neon::MullDot>>>),
     SMALLCODER_DOTPROD_ONLY(dotprod::enable<gemm_rows<scalar::row_dot_q4_k_with<neon::q4k_sums<dotprod::Sdot>>>>)},
    {DType::q6_k,
     ActFormat::q8_k,
     gemm_rows<scalar::row_dot_q6_k>,
     SMALLCODER_X86_ONLY(gemm_decode_or_tiled<avx2::KQuantDecode<avx2::Q6KSteps>, avx2::KQuantTiles<avx2::Q6KSteps>>),
     {},
     {},
     SMALLCODER_NEON_ONLY(gemm_rows<scalar::row_dot_q6_k_with<neon::q6k_sum<neon::MullDot>>>),
     SMALLCODER_DOTPROD_ONLY(dotprod::enable<gemm_rows<scalar::row_dot_q6_k_with<neon::q6k_sum<dotprod::Sdot>>>>)},
};

#undef SMALLCODER_X86_ONLY
#undef SMALLCODER_NEON_ONLY
#undef SMALLCODER_DOTPROD_ONLY

static_assert(one_record_per_dtype(kTypeKernels), "kTypeKernels: one TypeKernels per DType, in enum order");

// One weight type's kernels resolved for one SIMD level: what the backend
// calls.
struct Kernels {
  Isa isa = Isa::scalar;
  ActFormat act = ActFormat::f32;
  QuantizeActsFn quantize_acts = nullptr;  // null for ActFormat::f32
  GemmFn gemm = nullptr;
  BatchKernels batch;

  // The batch product for n tokens on a matrix of `cols` columns, or null where
  // gemm serves.
  const BatchKernels* batch_for(std::int64_t cols, int n) const {
    const bool applies = batch.gemm != nullptr && n >= batch.min_tokens && cols % batch.cols_multiple == 0;
    return applies ? &batch : nullptr;
  }
};

constexpr int kIsas = static_cast<int>(sizeof kAllIsas / sizeof kAllIsas[0]);

namespace detail {

// The activation quantizer of `format` at `isa`: the scalar rules everywhere,
// in AVX2 on x86, in NEON on aarch64.
inline QuantizeActsFn quantize_acts_for(ActFormat format, Isa isa) {
#ifdef SMALLCODER_X86
  if (isa != Isa::scalar) {
    if (format == ActFormat::q8_0) return avx2::quantize_acts_q8_0;
    if (format == ActFormat::q8_k) return avx2::quantize_acts_q8_k;
  }
#elif defined(SMALLCODER_AARCH64)
  if (isa != Isa::scalar) {
    if (format == ActFormat::q8_0) return neon::quantize_acts_q8_0;
    if (format == ActFormat::q8_k) return neon::quantize_acts_q8_k;
  }
#else
  (void)isa;
#endif
  if (format == ActFormat::q8_0) return scalar::quantize_acts_q8_0;
  if (format == ActFormat::q8_k) return scalar::quantize_acts_q8_k;
  return nullptr;
}

// A record's kernels at `isa`: its own product there, else that of the level it
// falls back to (fallback_isa; amx: avx512's product), and so on.
inline Kernels resolve(const TypeKernels& r, Isa isa) {
  Kernels k;
  k.isa = isa;
  k.act = r.act;
  k.quantize_acts = quantize_acts_for(r.act, isa);
  const GemmFn by_level[kIsas] = {r.scalar, r.avx2, r.avx512, nullptr, r.neon, r.dotprod};
  for (Isa level = isa;; level = fallback_isa(level)) {
    k.gemm = by_level[static_cast<int>(level)];
    if (k.gemm != nullptr || level == Isa::scalar) break;
  }
  if (isa == Isa::amx) k.batch = r.amx;
  return k;
}

struct KernelTable {
  Kernels entries[kIsas][kDTypeCount];
  KernelTable() {
#ifdef SMALLCODER_X86
    cpu_features();  // detection asks the OS for AMX tile state, which the amx
                     // kernels need first
#endif
    for (int i = 0; i < kIsas; ++i) {
      for (int t = 0; t < kDTypeCount; ++t) entries[i][t] = resolve(kTypeKernels[t], static_cast<Isa>(i));
    }
  }
};

}  // namespace detail

// The kernels for weights of type t at SIMD level isa (which the CPU must
// support).
inline const Kernels& kernels_for(DType t, Isa isa) {
  static const detail::KernelTable table;
  return table.entries[static_cast<int>(isa)][static_cast<int>(t)];
}

// The kernels for weights of type t at the active level (active_isa()).
inline const Kernels& kernels_for(DType t) { return kernels_for(t, active_isa()); }

}  // namespace smallcoder::cpu
