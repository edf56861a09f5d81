// The CPU kernel table: for every weight type and SIMD level, how activation rows are
// prepared (fp32 as they are, or quantized to 8 bits once per row) and the tile product
// all matrix products go through, plus, where a level has one, a product for batches with
// activations of its own format. kernels_for(type) answers for the level chosen at run
// time (cpu/isa.hpp); the backend and the tests only ever call through this table.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/cpu/float_kernels.hpp"
#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels/activations.hpp"
#include "smallcoder/cpu/kernels/amx.hpp"
#include "smallcoder/cpu/kernels/avx2.hpp"
#include "smallcoder/cpu/kernels/avx512.hpp"
#include "smallcoder/cpu/kernels/scalar.hpp"
#include "smallcoder/cpu/kernels/tiling.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/tensor/quant_blocks.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

namespace smallcoder::cpu {

// y[t * ldy + r] (+)= W[r] . act_t for weight rows r in [r0, r1) and tokens t < n_tokens,
// act_t being prepared activation row t (act_stride bytes apart; for ActFormat::f32 simply
// the fp32 rows). n_tokens == 1 is the decode matrix-vector product.
using GemmFn = void (*)(const TensorView& w, std::int64_t r0, std::int64_t r1, const std::byte* acts,
                        std::size_t act_stride, int n_tokens, float* y, std::size_t ldy, bool accumulate);

// Quantizes one fp32 activation row of `cols` elements into act_row_bytes(format, cols) bytes.
using QuantizeActsFn = void (*)(const float* x, std::int64_t cols, std::byte* out);

// The exact integer sums of one weight row with one prepared activation row, per block in
// order: one int32 per Q8_0 / Q4_0 / Q6_K block, two per Q4_K block (scaled, mins; see
// scalar::Q4KSums). Every level must give the scalar level's values: the tests compare them.
using BlockSumsFn = void (*)(const std::byte* w_row, const std::byte* act_row, std::int64_t cols, std::int32_t* out);

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

struct Kernels {
  DType weight = DType::f32;
  Isa isa = Isa::scalar;
  ActFormat act = ActFormat::f32;
  QuantizeActsFn quantize_acts = nullptr;  // null for ActFormat::f32
  GemmFn gemm = nullptr;
  BlockSumsFn block_sums = nullptr;  // null for float weights
  int sums_per_block = 0;
  BatchKernels batch;

  // The batch product for n tokens on a matrix of `cols` columns, or null where gemm serves.
  const BatchKernels* batch_for(std::int64_t cols, int n) const {
    const bool applies = batch.gemm != nullptr && n >= batch.min_tokens && cols % batch.cols_multiple == 0;
    return applies ? &batch : nullptr;
  }
};

namespace detail {

inline Kernels scalar_kernels(DType t) {
  Kernels k;
  k.weight = t;
  k.act = act_format_for(t);
  switch (t) {
    case DType::f32:
      k.gemm = gemm_rows<scalar::row_dot_f32>;
      break;
    case DType::bf16:
      k.gemm = gemm_rows<scalar::row_dot_bf16>;
      break;
    case DType::f16:
      k.gemm = gemm_rows<scalar::row_dot_f16>;
      break;
    case DType::q8_0:
      k.gemm = gemm_rows<scalar::row_dot_q8_0>;
      k.block_sums = scalar::block_sums_q8_0;
      break;
    case DType::q4_0:
      k.gemm = gemm_rows<scalar::row_dot_q4_0>;
      k.block_sums = scalar::block_sums_q4_0;
      break;
    case DType::q4_k:
      k.gemm = gemm_rows<scalar::row_dot_q4_k>;
      k.block_sums = scalar::block_sums_q4_k;
      break;
    case DType::q6_k:
      k.gemm = gemm_rows<scalar::row_dot_q6_k>;
      k.block_sums = scalar::block_sums_q6_k;
      break;
  }
  if (k.act == ActFormat::q8_0) k.quantize_acts = scalar::quantize_acts_q8_0;
  if (k.act == ActFormat::q8_k) k.quantize_acts = scalar::quantize_acts_q8_k;
  k.sums_per_block = t == DType::q4_k ? 2 : (k.block_sums != nullptr ? 1 : 0);
  return k;
}

#ifdef SMALLCODER_X86
// The AVX2 and AVX-512 levels share the AVX2 activation quantizers and k-quant kernels.
// The amx level is the AVX-512 one plus batch products (amx_kernels).
inline Kernels simd_kernels(DType t, Isa isa) {
  Kernels k = scalar_kernels(t);
  k.isa = isa;
  if (k.act == ActFormat::q8_0) k.quantize_acts = avx2::quantize_acts_q8_0;
  if (k.act == ActFormat::q8_k) k.quantize_acts = avx2::quantize_acts_q8_k;
  const bool wide = isa != Isa::avx2;
  switch (t) {
    case DType::f32:
      k.gemm = wide ? gemm_tiled<avx512::FloatTiles<avx512::F32Rows>> : gemm_tiled<avx2::FloatTiles<avx2::F32Rows>>;
      break;
    case DType::bf16:
      k.gemm = wide ? gemm_tiled<avx512::FloatTiles<avx512::Bf16Rows>> : gemm_tiled<avx2::FloatTiles<avx2::Bf16Rows>>;
      break;
    case DType::f16:
      k.gemm = wide ? gemm_tiled<avx512::FloatTiles<avx512::F16Rows>> : gemm_tiled<avx2::FloatTiles<avx2::F16Rows>>;
      break;
    case DType::q8_0:
      k.gemm = wide ? gemm_decode_or_tiled<avx512::Q8_0Decode, avx512::Q8_0Tiles>
                     : gemm_tiled<avx2::QuantTiles<avx2::Q8_0Blocks>>;
      k.block_sums = wide ? avx512::block_sums_q8_0 : avx2::block_sums<avx2::Q8_0Blocks>;
      break;
    case DType::q4_0:
      k.gemm = wide ? gemm_decode_or_tiled<avx512::Q4_0Decode, avx512::QuantTiles<avx512::Q4_0Groups>>
                     : gemm_tiled<avx2::QuantTiles<avx2::Q4_0Blocks>>;
      k.block_sums = wide ? avx512::block_sums<avx512::Q4_0Groups> : avx2::block_sums<avx2::Q4_0Blocks>;
      break;
    case DType::q4_k:
      k.gemm = gemm_rows<avx2::row_dot_q4_k>;
      k.block_sums = avx2::block_sums_q4_k;
      break;
    case DType::q6_k:
      k.gemm = gemm_rows<avx2::row_dot_q6_k>;
      k.block_sums = avx2::block_sums_q6_k;
      break;
  }
  return k;
}

// The amx level: the AVX-512 kernels, and AMX tiles for batches of bf16, Q8_0 and Q4_0
// weights, faster from 6, 4 and 8 tokens up, though most of a 16-token group is then zero
// padding (measured against the avx512 level: bf16 1.3-1.6x at 6 tokens, 0.75-0.95x at 4;
// Q8_0 1.15-1.25x at 4, 0.9-1.05x at 3; Q4_0 1.25-1.5x at 8, 0.95-1.15x at 6).
inline Kernels amx_kernels(DType t) {
  Kernels k = simd_kernels(t, Isa::amx);
  if (t == DType::bf16) k.batch = {ActFormat::bf16_split, amx::pack_group, amx::gemm<amx::Bf16Tiles>, 6, kSplitCols};
  if (t == DType::q8_0) {
    k.batch = {ActFormat::q8_0_tiles, amx::pack_q8_0_group, amx::gemm<amx::QuantTiles<amx::Q8_0Blocks>>, 4, kQ0Block};
  }
  if (t == DType::q4_0) {
    k.batch = {ActFormat::q8_0_tiles, amx::pack_q8_0_group, amx::gemm<amx::QuantTiles<amx::Q4_0Blocks>>, 8, kQ0Block};
  }
  return k;
}
#endif

constexpr int kDTypes = static_cast<int>(DType::q6_k) + 1;
constexpr int kIsas = static_cast<int>(Isa::amx) + 1;

struct KernelTable {
  Kernels entries[kIsas][kDTypes];
  KernelTable() {
#ifdef SMALLCODER_X86
    cpu_features();  // detection asks the OS for AMX tile state, which the amx kernels need first
#endif
    for (int t = 0; t < kDTypes; ++t) {
      for (int i = 0; i < kIsas; ++i) {
#ifdef SMALLCODER_X86
        const DType type = static_cast<DType>(t);
        const Isa isa = static_cast<Isa>(i);
        entries[i][t] = isa == Isa::scalar ? scalar_kernels(type)
                        : isa == Isa::amx  ? amx_kernels(type)
                                           : simd_kernels(type, isa);
#else
        entries[i][t] = scalar_kernels(static_cast<DType>(t));  // never chosen: cpu_supports() says no
#endif
      }
    }
  }
};

}  // namespace detail

// The kernels for weights of type t at SIMD level isa (which the CPU must support).
inline const Kernels& kernels_for(DType t, Isa isa) {
  static const detail::KernelTable table;
  return table.entries[static_cast<int>(isa)][static_cast<int>(t)];
}

// The kernels for weights of type t at the active level (active_isa()).
inline const Kernels& kernels_for(DType t) { return kernels_for(t, active_isa()); }

// Widens `cols` stored elements of any type (one embedding row, say) to fp32.
inline void row_to_f32(DType t, const std::byte* row, std::int64_t cols, float* out) {
  switch (t) {
    case DType::f32:
    case DType::bf16:
    case DType::f16:
      float_row_to_f32(t, row, cols, out);
      return;
    case DType::q8_0:
      dequantize_row_q8_0(row, cols, out);
      return;
    case DType::q4_0:
      dequantize_row_q4_0(row, cols, out);
      return;
    case DType::q4_k:
      dequantize_row_q4_k(row, cols, out);
      return;
    case DType::q6_k:
      dequantize_row_q6_k(row, cols, out);
      return;
  }
}

}  // namespace smallcoder::cpu
