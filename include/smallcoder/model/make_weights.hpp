// Weights this process makes itself instead of mapping them from a file, all in this one
// place: a model's matrices re-stored in another type at load time (convert_weights: bf16 ->
// f32, or quantize-on-load to q8_0 / q4_0), and deterministic random weights for any config
// (random_weights). Both write rows through quantize_row, one fp32 row per thread at a time,
// so a full fp32 copy of the model never exists in memory.
//
// Random weights follow the original benchmark's rule: every linear and embedding weight
// ~ N(0, hidden^-0.5), the PAD embedding row zero, norm weights one. Each row draws from its
// own seeded stream, so the result is the same for any thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/model/weights.hpp"
#include "smallcoder/random.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/threads.hpp"

namespace smallcoder {

// The type a matrix takes when the model is asked for `target`: a block type only where
// its rows are whole blocks (smallcoder-nano's 688-wide down projection is not), else `fallback`.
inline DType matrix_dtype(DType target, std::int64_t cols, DType fallback) {
  return cols % dtype_info(target).block_elems == 0 ? target : fallback;
}

// Throws naming `where` unless the weights can be stored in `target` (quantize_row's types).
inline void check_storable(DType target, const std::string& where) {
  if (!can_quantize_to(target)) {
    fail(where, std::string("cannot store weights as ") + dtype_name(target) +
                    " (supported: " + quantizable_dtype_names() + ")");
  }
}

// Fills every row of `view` (stored in view.dtype at `base`) from row_values(r, fp32 row),
// rows split across threads; each thread holds one fp32 row at a time. view.dtype must be
// one quantize_row produces and view.cols a whole number of its blocks.
template <class RowValues>
inline void fill_rows(const TensorView& view, std::byte* base, int threads, RowValues&& row_values) {
  parallel_region(threads, [&] {
    std::vector<float> row(static_cast<std::size_t>(view.cols));
    parallel_for(view.rows, [&](std::int64_t r) {
      row_values(r, row.data());
      quantize_row(view.dtype, row.data(), view.cols, base + view.row_bytes() * static_cast<std::size_t>(r), "");
    });
  });
}

// Random weights in `dtype`: f32, f16 or bf16 (norms in that type too), or q8_0 / q4_0
// (norms in f32, matrices whose rows are not whole blocks in bf16).
inline ModelWeights random_weights(const ModelConfig& config, std::uint64_t seed, DType dtype, int threads = 0) {
  check_storable(dtype, "random init");
  if (threads <= 0) threads = default_thread_count();
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

// Every matrix becomes `target` where its rows are whole blocks of it and stays in its type
// elsewhere. When anything changes, every tensor (norms and kept matrices too) moves into
// buffers of its own and the old owners (a mapped file, earlier buffers) are let go, so the
// model then holds exactly one copy of its weights. When nothing changes, nothing is copied.
inline void convert_weights(const ModelConfig& config, ModelWeights& w, DType target, int threads = 0) {
  check_storable(target, "convert");
  bool changes = false;
  for_each_weight(config, w, [&](const WeightSlot& slot) {
    const TensorView& v = *slot.view;
    changes = changes || (!slot.is_vector() && matrix_dtype(target, v.cols, v.dtype) != v.dtype);
  });
  if (!changes) return;
  if (threads <= 0) threads = default_thread_count();
  std::vector<std::shared_ptr<const void>> owners;
  for_each_weight(config, w, [&](const WeightSlot& slot) {
    const TensorView source = *slot.view;
    const DType type = slot.is_vector() ? source.dtype : matrix_dtype(target, source.cols, source.dtype);
    auto buffer = std::make_shared<std::vector<std::byte>>(dtype_bytes(type, source.rows * source.cols));
    *slot.view = TensorView{type, source.rows, source.cols, buffer->data()};
    if (type == source.dtype) {
      std::memcpy(buffer->data(), source.data, source.bytes());
    } else {
      fill_rows(*slot.view, buffer->data(), threads,
                [&](std::int64_t r, float* row) { row_to_f32(source.dtype, source.row(r), source.cols, row); });
    }
    owners.push_back(std::move(buffer));
  });
  w.owners = std::move(owners);
  tie_output_if_needed(config, w);
}

}  // namespace smallcoder
