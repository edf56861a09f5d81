// The loop nest shared by the SIMD levels: a weight-row range times a token count, walked
// in register tiles of Tiles::kRows rows x up to Tiles::kTokens tokens (single rows for the
// remainder), each tile one call of Tiles::tile<R, T> compiled for its instruction set.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "smallcoder/tensor/tensor_view.hpp"

namespace smallcoder::cpu {

// Stores a finished tile's sums: y = sum, or y += sum when accumulating.
inline void store_result(float* y, float sum, bool accumulate) { *y = accumulate ? *y + sum : sum; }

template <class Tiles, int R, int T = Tiles::kTokens>
inline void run_tile(int tokens, const TensorView& w, std::int64_t r, const std::byte* acts, std::size_t act_stride,
                     float* y, std::size_t ldy, bool accumulate) {
  if constexpr (T > 1) {
    if (tokens < T) return run_tile<Tiles, R, T - 1>(tokens, w, r, acts, act_stride, y, ldy, accumulate);
  }
  Tiles::template tile<R, T>(w, r, acts, act_stride, y, ldy, accumulate);
}

// y[t * ldy + r] (+)= W[r] . act_t for r in [r0, r1), t < n. Tokens form the outer loop, so
// a tile's weight rows come from L1/L2 for every token group after the first.
template <class Tiles>
inline void gemm_tiled(const TensorView& w, std::int64_t r0, std::int64_t r1, const std::byte* acts,
                       std::size_t act_stride, int n, float* y, std::size_t ldy, bool accumulate) {
  constexpr int kRows = Tiles::kRows;
  for (int t0 = 0; t0 < n; t0 += Tiles::kTokens) {
    const int tokens = std::min(Tiles::kTokens, n - t0);
    const std::byte* a = acts + static_cast<std::size_t>(t0) * act_stride;
    float* yt = y + static_cast<std::size_t>(t0) * ldy;
    std::int64_t r = r0;
    for (; r + kRows <= r1; r += kRows) run_tile<Tiles, kRows>(tokens, w, r, a, act_stride, yt, ldy, accumulate);
    for (; r < r1; ++r) run_tile<Tiles, 1>(tokens, w, r, a, act_stride, yt, ldy, accumulate);
  }
}

// The same product one row and one token at a time, for kernels that work per row pair
// (the scalar level, the k-quants): each weight row stays in cache while the tokens pass it.
template <float (*RowDot)(const std::byte*, const std::byte*, std::int64_t)>
inline void gemm_rows(const TensorView& w, std::int64_t r0, std::int64_t r1, const std::byte* acts,
                      std::size_t act_stride, int n, float* y, std::size_t ldy, bool accumulate) {
  for (std::int64_t r = r0; r < r1; ++r) {
    for (int t = 0; t < n; ++t) {
      const float v = RowDot(w.row(r), acts + static_cast<std::size_t>(t) * act_stride, w.cols);
      store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r), v, accumulate);
    }
  }
}

}  // namespace smallcoder::cpu
