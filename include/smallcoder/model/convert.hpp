// Re-stores the weight matrices of a model in another type at load time: bf16 -> f32, or
// quantize-on-load to q8_0 / q4_0 (any stored type, quantized ones included, is widened to
// fp32 one row at a time on the way). Norm vectors keep their stored type.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/model/random_init.hpp"
#include "smallcoder/model/weights.hpp"

namespace smallcoder {

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
  if (threads <= 0) threads = cpu::default_thread_count();
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
