// The loop nest shared by the SIMD levels: a weight-row range times a token count, walked
// in register tiles of Tiles::kRows rows x up to Tiles::kTokens tokens (single rows for the
// remainder), each tile one call of Tiles::tile<R, T> compiled for its instruction set; and
// the one-token product through a kernel of its own where a level has one.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "smallcoder/tensor/tensor_view.hpp"

namespace smallcoder::cpu {

// Stores a finished tile's sums: y = sum, or y += sum when accumulating.
inline void store_result(float* y, float sum, bool accumulate) { *y = accumulate ? *y + sum : sum; }

// Asks for the line holding p + ahead now. The tiles call it with ahead = the rows of one
// tile, so that DRAM streams the next tile's rows while this one computes: a tile reads R
// short row streams at once, for which the hardware prefetcher alone keeps too few
// requests in flight (one token's product then runs at a fraction of the bandwidth).
// The address is formed as an integer: past the matrix's last tile it points nowhere,
// which a prefetch ignores. Always inlined: GCC sees no side effect in a prefetch, so where
// it declines to inline this into a large kernel, it deletes the call as useless (it did in
// avx512::Q4_0Decode, which then ran at two thirds of its speed).
__attribute__((always_inline)) inline void prefetch_ahead(const std::byte* p, std::size_t ahead) {
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(p) + ahead), 0, 3);
}

// A register tile's operands: weight rows r .. r + R - 1 and the prepared activation rows of
// its T tokens.
template <int R, int T>
struct TileRows {
  const std::byte* w[R];
  const std::byte* act[T];

  TileRows(const TensorView& m, std::int64_t r, const std::byte* acts, std::size_t act_stride) {
    for (int i = 0; i < R; ++i) w[i] = m.row(r + i);
    for (int t = 0; t < T; ++t) act[t] = acts + static_cast<std::size_t>(t) * act_stride;
  }
};

// Stores a finished tile: y[t * ldy + r + i] (+)= sums[i][t].
template <int R, int T>
inline void store_tile(const float (&sums)[R][T], float* y, std::size_t ldy, std::int64_t r, bool accumulate) {
  for (int i = 0; i < R; ++i) {
    for (int t = 0; t < T; ++t) {
      store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r + i), sums[i][t], accumulate);
    }
  }
}

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

// The last `left` (< Decode::kRows) rows of a range, consecutive, in one call of
// Decode::rows<left>.
template <class Decode, int R = Decode::kRows - 1, class Act>
inline void decode_rest(std::int64_t left, const TensorView& w, std::int64_t r, const Act& act, float* y,
                        bool accumulate) {
  if constexpr (R > 1) {
    if (left < R) return decode_rest<Decode, R - 1>(left, w, r, act, y, accumulate);
  }
  if constexpr (R > 0) {
    if (left >= R) Decode::template rows<R>(w, r, 1, act, y, accumulate);
  }
}

// The product for one token over rows [r0, r1) through Decode::rows<R>(w, r, spacing, ...),
// a kernel made for streaming the weights once that takes R rows r, r + spacing, ...,
// r + (R - 1) spacing at a time.
// The range is read as Decode::kRows long streams, one per consecutive share of it (the
// rest, fewer than kRows rows, at the end): the hardware prefetchers follow a few long
// sequential streams, but not kRows adjacent rows read side by side, each of them a few
// cache lines long, which left a kernel at half the memory's speed however far ahead it
// prefetched (avx2 kernels, Tiny's rows, two threads on a Zen 5 EPYC).
// Each level's DecodeRange::range, compiled for its instruction set, runs this flattened, so
// the walk and its rows<R> calls are one function: a call per kRows rows (a prologue, the
// row length's division, the constants loaded again) had cost the k-quant kernels, which
// take a row per call, a sixth of their speed on Tiny's 768-wide rows. `act` is the
// activation row, or what a kernel made of it once for the whole range.
template <class Decode, class Act>
inline void walk_decode_rows(const TensorView& w, std::int64_t r0, std::int64_t r1, const Act& act, float* y,
                             bool accumulate) {
  const std::int64_t len = (r1 - r0) / Decode::kRows;
  for (std::int64_t j = 0; j < len; ++j) Decode::template rows<Decode::kRows>(w, r0 + j, len, act, y, accumulate);
  decode_rest<Decode>(r1 - r0 - Decode::kRows * len, w, r0 + Decode::kRows * len, act, y, accumulate);
}

// One token through Decode::range (a DecodeRange of its level), batches through Tiles.
template <class Decode, class Tiles>
inline void gemm_decode_or_tiled(const TensorView& w, std::int64_t r0, std::int64_t r1, const std::byte* acts,
                                 std::size_t act_stride, int n, float* y, std::size_t ldy, bool accumulate) {
  if (n != 1) return gemm_tiled<Tiles>(w, r0, r1, acts, act_stride, n, y, ldy, accumulate);
  Decode::range(w, r0, r1, acts, y, accumulate);
}

// The same product one row and one token at a time, for kernels that work per row pair
// (the scalar level, the k-quants): each weight row stays in cache while the tokens pass it.
// Each row first prefetches the row kRowsAhead below, so DRAM streams while the row computes.
template <float (*RowDot)(const std::byte*, const std::byte*, std::int64_t)>
inline void gemm_rows(const TensorView& w, std::int64_t r0, std::int64_t r1, const std::byte* acts,
                      std::size_t act_stride, int n, float* y, std::size_t ldy, bool accumulate) {
  constexpr std::size_t kRowsAhead = 4, kLine = 64;
  const std::size_t row_bytes = w.row_bytes();
  for (std::int64_t r = r0; r < r1; ++r) {
    for (std::size_t at = 0; at < row_bytes; at += kLine) prefetch_ahead(w.row(r) + at, kRowsAhead * row_bytes);
    for (int t = 0; t < n; ++t) {
      const float v = RowDot(w.row(r), acts + static_cast<std::size_t>(t) * act_stride, w.cols);
      store_result(y + static_cast<std::size_t>(t) * ldy + static_cast<std::size_t>(r), v, accumulate);
    }
  }
}

}  // namespace smallcoder::cpu
