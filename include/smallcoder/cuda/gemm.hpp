// Matrix-matrix product for long prompts: Y (+)= X W^T with fp32 activations X and weights
// in their stored type (quantized blocks too), widened to fp32 as tiles enter shared
// memory; fp32 FMA throughout, so a prompt pass gives the same numbers (up to summation
// order) as one token at a time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/cuda/device_math.hpp"

namespace smallcoder::cuda {

constexpr int kGemmTileM = 64;  // token rows per block
constexpr int kGemmTileN = 64;  // weight rows (output features) per block
constexpr int kGemmTileK = 32;
constexpr int kGemmThreads = 256;  // 16 x 16 threads, a 4 x 4 block of outputs each
constexpr int kGemmPad = 4;        // keeps the float4 reads aligned

struct GemmArgs {
  const std::byte* weight = nullptr;  // n x k, rows row_bytes apart
  int n = 0;
  int k = 0;
  std::size_t row_bytes = 0;
  bool weight_vectorized = false;  // rows readable in groups of 8 (launch.hpp's vectorizable)
  const float* x = nullptr;        // m x k, row stride ldx
  int ldx = 0;
  bool x_vectorized = false;  // ldx a multiple of 4 and x 16-byte aligned
  int m = 0;
  float* y = nullptr;  // m x n, row stride ldy
  int ldy = 0;
  bool accumulate = false;
  bool bf16 = false;
  bool trigger_early = false;
};

template <class W>
__global__ void __launch_bounds__(kGemmThreads) gemm_kernel(const GemmArgs a) {
  constexpr int kLoad = kGroup;  // consecutive k elements each thread loads per tile, of X and of W
  static_assert(kGemmTileM * kGemmTileK == kGemmThreads * kLoad, "one X row segment per thread");
  static_assert(kGemmTileN * kGemmTileK == kGemmThreads * kLoad, "one W row segment per thread");
  static_assert(kGemmTileK % 32 == 0, "tiles of whole quantized blocks");
  __shared__ __align__(16) float xs[kGemmTileK][kGemmTileM + kGemmPad];  // transposed: xs[k][m]
  __shared__ __align__(16) float ws[kGemmTileK][kGemmTileN + kGemmPad];  // transposed: ws[k][n]

  enter_dependent(a.trigger_early);
  const int tid = threadIdx.x;
  const int m0 = blockIdx.y * kGemmTileM, n0 = blockIdx.x * kGemmTileN;
  const int load_row = tid / (kGemmTileK / kLoad), load_k = (tid % (kGemmTileK / kLoad)) * kLoad;
  const int tm = (tid / 16) * 4, tn = (tid % 16) * 4;
  const int gm = m0 + load_row, gn = n0 + load_row;
  float acc[4][4] = {};

  for (int k0 = 0; k0 < a.k; k0 += kGemmTileK) {
    const int gk = k0 + load_k;
    const bool whole = gk + kLoad <= a.k;
    float xv[kLoad], wv[kLoad];
    if (gm < a.m) {
      const float* src = a.x + static_cast<std::size_t>(gm) * a.ldx;
      if (a.x_vectorized && whole) {
        const float4 p = *reinterpret_cast<const float4*>(src + gk);
        const float4 q = *reinterpret_cast<const float4*>(src + gk + 4);
        xv[0] = p.x, xv[1] = p.y, xv[2] = p.z, xv[3] = p.w, xv[4] = q.x, xv[5] = q.y, xv[6] = q.z, xv[7] = q.w;
      } else {
#pragma unroll
        for (int e = 0; e < kLoad; ++e) xv[e] = gk + e < a.k ? src[gk + e] : 0.0f;
      }
    } else {
#pragma unroll
      for (int e = 0; e < kLoad; ++e) xv[e] = 0.0f;
    }
    if (gn < a.n) {
      const std::byte* row = a.weight + static_cast<std::size_t>(gn) * a.row_bytes;
      if (a.weight_vectorized && whole) {
        WeightType<W>::widen(WeightType<W>::load(row, gk / kGroup), wv);
      } else {
#pragma unroll
        for (int e = 0; e < kLoad; ++e) wv[e] = gk + e < a.k ? WeightType<W>::at(row, gk + e) : 0.0f;
      }
    } else {
#pragma unroll
      for (int e = 0; e < kLoad; ++e) wv[e] = 0.0f;
    }
    __syncthreads();  // everyone is done reading the previous tile
#pragma unroll
    for (int e = 0; e < kLoad; ++e) {
      xs[load_k + e][load_row] = xv[e];
      ws[load_k + e][load_row] = wv[e];
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kGemmTileK; ++kk) {
      const float4 av = *reinterpret_cast<const float4*>(&xs[kk][tm]);
      const float4 bv = *reinterpret_cast<const float4*>(&ws[kk][tn]);
      const float x4[4] = {av.x, av.y, av.z, av.w};
      const float w4[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(x4[i], w4[j], acc[i][j]);
      }
    }
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + tm + i;
    if (m >= a.m) break;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tn + j;
      if (n >= a.n) break;
      float* y = a.y + static_cast<std::size_t>(m) * a.ldy + n;
      *y = to_activation(a.accumulate ? *y + acc[i][j] : acc[i][j], a.bf16);
    }
  }
}

}  // namespace smallcoder::cuda
