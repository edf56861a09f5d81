// A read-only view of a 2-D weight tensor in its stored type: the model and the
// kernels see weights only through this, whatever file (or buffer) holds the bytes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/tensor/dtype.hpp"

namespace smallcoder {

struct TensorView {
  DType dtype = DType::f32;
  std::int64_t rows = 0;  // output features for a linear weight; 1 for a vector
  std::int64_t cols = 0;  // input features (the contiguous dimension)
  const std::byte* data = nullptr;

  std::size_t row_bytes() const { return dtype_bytes(dtype, cols); }
  std::size_t bytes() const { return row_bytes() * static_cast<std::size_t>(rows); }
  const std::byte* row(std::int64_t r) const { return data + row_bytes() * static_cast<std::size_t>(r); }
};

}  // namespace smallcoder
