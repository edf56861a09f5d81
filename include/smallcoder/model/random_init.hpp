// Deterministic random weights for any config, by the original benchmark's rule:
// every linear and embedding weight ~ N(0, hidden^-0.5), the PAD embedding row zero,
// norm weights one. Each row draws from its own seeded stream, so the result is the
// same for any thread count. Rows are drawn in fp32 and stored straight away in the
// requested type (quantized too), so the fp32 model never exists in memory.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/cpu/threads.hpp"
#include "smallcoder/model/weights.hpp"
#include "smallcoder/random.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/tensor/quant_encode.hpp"

namespace smallcoder {

// The type a matrix takes when the model is asked for `target`: a block type only where
// its rows are whole blocks (smallcoder-nano's 688-wide down projection is not), else `fallback`.
inline DType matrix_dtype(DType target, std::int64_t cols, DType fallback) {
  return cols % dtype_info(target).block_elems == 0 ? target : fallback;
}

// Throws naming `where` unless the weights can be stored in `target` (quantize_row's types).
inline void check_storable(DType target, const std::string& where) {
  if (!can_quantize_to(target)) {
    fail(where,
         std::string("cannot store weights as ") + dtype_name(target) + " (supported: " + quantizable_dtype_names() + ")");
  }
}

// Fills every row of `view` (stored in view.dtype at `base`) from row_values(r, fp32 row),
// rows split across threads; each thread holds one fp32 row at a time. view.dtype must be
// one quantize_row produces and view.cols a whole number of its blocks.
template <class RowValues>
inline void fill_rows(const TensorView& view, std::byte* base, int threads, RowValues&& row_values) {
  cpu::parallel_region(threads, [&] {
    std::vector<float> row(static_cast<std::size_t>(view.cols));
    cpu::parallel_for(view.rows, [&](std::int64_t r) {
      row_values(r, row.data());
      quantize_row(view.dtype, row.data(), view.cols, base + view.row_bytes() * static_cast<std::size_t>(r), "");
    });
  });
}

// Random weights in `dtype`: f32, f16 or bf16 (norms in that type too), or q8_0 / q4_0
// (norms in f32, matrices whose rows are not whole blocks in bf16).
inline ModelWeights random_weights(const ModelConfig& config, std::uint64_t seed, DType dtype, int threads = 0) {
  check_storable(dtype, "random init");
  if (threads <= 0) threads = cpu::default_thread_count();
  const bool quantized = !is_float_dtype(dtype);
  ModelWeights w;
  const double stddev = 1.0 / std::sqrt(static_cast<double>(config.hidden_size));
  std::uint64_t tensor_index = 0;
  for_each_weight(config, w, [&](const WeightSlot& slot) {
    const DType type =
        slot.is_vector() ? (quantized ? DType::f32 : dtype) : matrix_dtype(dtype, slot.cols, DType::bf16);
    auto buffer = std::make_shared<std::vector<std::byte>>(dtype_bytes(type, slot.rows * slot.cols));
    *slot.view = TensorView{type, slot.rows, slot.cols, buffer->data()};
    const std::uint64_t stream = seed * 0x100000001b3ull + (++tensor_index) * 0x9e3779b97f4a7c15ull;
    const bool zero_pad_row = slot.role == WeightRole::embed && config.pad_id >= 0;
    fill_rows(*slot.view, buffer->data(), threads, [&](std::int64_t r, float* row) {
      if (slot.is_vector()) {
        std::fill(row, row + slot.cols, 1.0f);
      } else if (zero_pad_row && r == config.pad_id) {
        std::fill(row, row + slot.cols, 0.0f);
      } else {
        Rng rng(stream ^ (static_cast<std::uint64_t>(r) * 0xd6e8feb86659fd93ull));
        for (std::int64_t c = 0; c < slot.cols; ++c) row[c] = static_cast<float>(rng.normal() * stddev);
      }
    });
    w.owners.push_back(std::move(buffer));
  });
  tie_output_if_needed(config, w);
  return w;
}

}  // namespace smallcoder
