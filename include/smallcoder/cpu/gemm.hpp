// Matrix-matrix product for prompt processing on float weights through Eigen: a tile of
// weight rows is widened to fp32 in a per-thread scratch buffer, then Eigen's GEMM
// multiplies every token of the batch by it. Eigen picks its instruction set when this
// file is compiled, so it is only used where that includes AVX2+FMA or AVX-512 (e.g.
// -Dnative=true): in a generic x86-64 build it is SSE2 code, slower than the kernel table's
// run-time dispatched tiles. Eigen is included here only, to keep its templates out of the
// other headers (compile time and memory on small machines).
#pragma once

#include <cstdint>

// Eigen's AVX / AVX-512 packet code trips GCC 12's uninitialized-use warnings (GCC bug 105593)
// and has unused variables: keep builds with -march flags warning-free.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wunused-variable"
#endif
#include <Eigen/Core>

#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

namespace smallcoder::cpu {

// Whether this build's Eigen GEMM is vectorized with wide FMA, and the batch size from which
// it beats the kernel table's tiles (measured: below ~16 tokens the tiles, which read the
// 16-bit weights once without widening them into scratch, are faster).
#if defined(EIGEN_VECTORIZE_AVX512) || (defined(EIGEN_VECTORIZE_AVX2) && defined(EIGEN_VECTORIZE_FMA))
constexpr bool kEigenGemmVectorized = true;
#else
constexpr bool kEigenGemmVectorized = false;
#endif
constexpr int kEigenMinTokens = 16;

// Y[t][r] (+)= sum_c X[t][c] * W[r][c] for t < n and weight rows r in [r0, r1).
// X is n x W.cols (row-major, leading dimension ldx), Y has leading dimension ldy;
// scratch holds (r1 - r0) * W.cols floats when W is not f32.
inline void float_gemm_rows(const TensorView& w, const float* x, int n, int ldx, float* y, int ldy, std::int64_t r0,
                            std::int64_t r1, bool accumulate, float* scratch) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Strided = Eigen::OuterStride<>;
  const Eigen::Index rows = r1 - r0, cols = w.cols;
  const float* tile = reinterpret_cast<const float*>(w.row(r0));
  if (w.dtype != DType::f32) {
    row_to_f32(w.dtype, w.row(r0), rows * cols, scratch);
    tile = scratch;
  }
  Eigen::Map<const RowMajor, 0, Strided> xm(x, n, cols, Strided(ldx));
  Eigen::Map<const RowMajor> wm(tile, rows, cols);
  Eigen::Map<RowMajor, 0, Strided> ym(y + r0, n, rows, Strided(ldy));
  if (accumulate) {
    ym.noalias() += xm * wm.transpose();
  } else {
    ym.noalias() = xm * wm.transpose();
  }
}

}  // namespace smallcoder::cpu

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
