// Host-side launchers: pick the kernel instantiation for a weight type (or cache type,
// head size, rows per warp) at run time, launch it on a stream (as a programmatic
// dependent launch where asked: `overlap`) and check the launch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <string>

#include "smallcoder/cuda/attention.hpp"
#include "smallcoder/cuda/gemm.hpp"
#include "smallcoder/cuda/matvec.hpp"
#include "smallcoder/cuda/rowwise.hpp"
#include "smallcoder/cuda/runtime.hpp"
#include "smallcoder/cuda/top_logits.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

namespace smallcoder::cuda {

template <class T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<W>{}) with the weight tag (device_math.hpp) of a weight dtype.
template <class F>
inline void with_weight_type(DType type, F&& f) {
  switch (type) {
    case DType::f32: f(TypeTag<float>{}); return;
    case DType::bf16: f(TypeTag<__nv_bfloat16>{}); return;
    case DType::f16: f(TypeTag<__half>{}); return;
    case DType::q8_0: f(TypeTag<Q8_0Weights>{}); return;
    case DType::q4_0: f(TypeTag<Q4_0Weights>{}); return;
    default: fail("cuda", std::string("no kernel for weights stored as ") + dtype_name(type));
  }
}

inline bool is_supported_weight_type(DType type) {
  return is_float_dtype(type) || type == DType::q8_0 || type == DType::q4_0;
}

inline bool is_block_quantized(DType type) { return type == DType::q8_0 || type == DType::q4_0; }

// Rows can be read in groups of 8 (WeightType::load): floats need 16-byte aligned rows of
// whole groups; quantized rows are whole blocks, read at any even address.
inline bool vectorizable(const TensorView& w) {
  const auto address = reinterpret_cast<std::uintptr_t>(w.data);
  if (is_block_quantized(w.dtype)) return w.cols % 32 == 0 && address % 2 == 0 && w.row_bytes() % 2 == 0;
  return w.cols % kGroup == 0 && w.row_bytes() % 16 == 0 && address % 16 == 0;
}

// Weight rows per warp of the decode instantiations (pair mode counts gate and up).
constexpr int kMaxDecodeRows = 8;

using ProductsKernel = void (*)(ProductArgs);

template <class W>
inline ProductsKernel products_kernel_of(bool multi, int rows) {
  if (multi) return &products_kernel<W, kMaxProductInputs, kFewInputRows>;
  switch (rows) {
    case 1: return &products_kernel<W, 1, 1>;
    case 2: return &products_kernel<W, 1, 2>;
    case 4: return &products_kernel<W, 1, 4>;
    default: return &products_kernel<W, 1, kMaxDecodeRows>;
  }
}

// The products kernel for `type`: decode (one input row) with `rows` weight rows per warp
// (1, 2, 4 or 8), or the multi-row form (rows ignored).
inline ProductsKernel products_kernel_for(DType type, bool multi, int rows) {
  ProductsKernel kernel = nullptr;
  with_weight_type(type, [&](auto tag) { kernel = products_kernel_of<typename decltype(tag)::type>(multi, rows); });
  return kernel;
}

inline void launch_products(DType type, const ProductArgs& a, bool multi, int rows, dim3 grid, cudaStream_t stream,
                            bool overlap) {
  launch(products_kernel_for(type, multi, rows), grid, kProductThreads,
         product_shared_bytes(a.cols, a.inputs_per_block), stream, "products_kernel", overlap, a);
}

inline void launch_gemm(DType type, const GemmArgs& a, cudaStream_t stream, bool overlap) {
  const dim3 grid((a.n + kGemmTileN - 1) / kGemmTileN, (a.m + kGemmTileM - 1) / kGemmTileM);
  with_weight_type(type, [&](auto tag) {
    using W = typename decltype(tag)::type;
    launch(&gemm_kernel<W>, grid, kGemmThreads, 0, stream, "gemm_kernel", overlap, a);
  });
}

inline void launch_embed(DType type, const EmbedArgs& a, int rows, cudaStream_t stream, bool overlap) {
  with_weight_type(type, [&](auto tag) {
    using W = typename decltype(tag)::type;
    launch(&embed_kernel<W>, rows, kRowThreads, 0, stream, "embed_kernel", overlap, a);
  });
}

// C: the cache's element type; the head size picks how many dimensions each lane holds.
template <class C>
inline void launch_attention_typed(const AttentionArgs& a, dim3 grid, cudaStream_t stream, bool overlap) {
  const std::size_t shared = attention_shared_bytes(a.group, a.head_dim);
  const int dims = (a.head_dim + kWarpSize - 1) / kWarpSize;
  auto kernel = dims <= 1   ? &attention_kernel<C, 1>
                : dims == 2 ? &attention_kernel<C, 2>
                : dims == 3 ? &attention_kernel<C, 3>
                : dims == 4 ? &attention_kernel<C, 4>
                            : &attention_kernel<C, 8>;
  launch(kernel, grid, kAttentionThreads, shared, stream, "attention_kernel", overlap, a);
}

inline void launch_attention(bool bf16_cache, const AttentionArgs& a, int rows, cudaStream_t stream, bool overlap) {
  const dim3 grid(a.kv_heads, a.splits, rows);
  if (bf16_cache) {
    launch_attention_typed<__nv_bfloat16>(a, grid, stream, overlap);
  } else {
    launch_attention_typed<float>(a, grid, stream, overlap);
  }
}

inline void launch_rope_append(bool bf16_cache, const RopeAppendArgs& a, int rows, cudaStream_t stream, bool overlap) {
  launch(bf16_cache ? &rope_append_kernel<__nv_bfloat16> : &rope_append_kernel<float>, rows, kRowThreads, 0, stream,
         "rope_append_kernel", overlap, a);
}

inline void launch_rmsnorm(const RmsNormArgs& a, int rows, cudaStream_t stream, bool overlap) {
  launch(&rmsnorm_kernel<>, rows, kRowThreads, 0, stream, "rmsnorm_kernel", overlap, a);
}

inline void launch_swiglu(const SwigluArgs& a, int rows, cudaStream_t stream, bool overlap) {
  launch(&swiglu_kernel<>, rows, kRowThreads, 0, stream, "swiglu_kernel", overlap, a);
}

inline void launch_top_logits(const TopLogitsArgs& a, cudaStream_t stream, bool overlap) {
  launch(&top_logits_kernel<>, 1, kTopThreads, 0, stream, "top_logits_kernel", overlap, a);
}

// Lets the products kernels, whose dynamic shared memory grows with the model's widths,
// use up to `bytes` of it (above the default 48 KB a launch would fail). The setting is
// the process's, so it is the same for every model: the device's limit. Call before any capture.
inline void allow_products_shared_memory(std::size_t bytes) {
  for (DType type : {DType::f32, DType::bf16, DType::f16, DType::q8_0, DType::q4_0}) {
    for (bool multi : {false, true}) {
      for (int rows = 1; rows <= (multi ? 1 : kMaxDecodeRows); rows *= 2) {
        check(cudaFuncSetAttribute(reinterpret_cast<const void*>(products_kernel_for(type, multi, rows)),
                                   cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
              std::string("allowing ") + std::to_string(bytes) + " bytes of shared memory for products_kernel");
      }
    }
  }
}

}  // namespace smallcoder::cuda
