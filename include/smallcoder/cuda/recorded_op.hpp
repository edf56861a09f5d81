// One op of a forward step as the CUDA backend records it. The transformer calls the
// ops one by one; the backend only writes them down, then plans the step as a whole:
// neighbouring ops fuse into one kernel, and a decode step whose ops equal the last
// one's replays a captured graph. Two records are equal when they would launch the
// same work (same buffers, weights and rows), which is what makes replay safe.
#pragma once

#include "smallcoder/model/weights.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

namespace smallcoder::cuda {

enum class OpKind : unsigned char { embed, rmsnorm, matmul, rope, attention, swiglu, output };

// A device activation matrix as an op sees it: rows `ld` floats apart.
struct Operand {
  float* data = nullptr;
  int ld = 0;

  float* row(int r) const { return data + static_cast<std::size_t>(r) * ld; }
  bool operator==(const Operand& o) const { return data == o.data && ld == o.ld; }
  bool operator!=(const Operand& o) const { return !(*this == o); }
};

inline bool same_view(const TensorView& a, const TensorView& b) {
  return a.dtype == b.dtype && a.rows == b.rows && a.cols == b.cols && a.data == b.data;
}

struct RecordedOp {
  OpKind kind = OpKind::embed;
  int rows = 0;
  int first_row = 0;
  // embed: out[0] = x. rmsnorm: in[0] -> out[0]. matmul: out[0] (+)= W in[0]. rope: out[0]
  // = q, out[1] = k. attention: in[0..2] = q, k, v -> out[0]. swiglu: in[0], in[1] ->
  // out[0]. output: in[0] -> the backend's logits.
  Operand in[3];
  Operand out[2];
  TensorView weight;  // embed table, norm weights, matrix, or output head
  bool accumulate = false;
  int layer = 0;
  RopeLayout layout = RopeLayout::rotate_half;

  int last_row() const { return first_row + rows - 1; }

  bool operator==(const RecordedOp& o) const {
    return kind == o.kind && rows == o.rows && first_row == o.first_row && in[0] == o.in[0] && in[1] == o.in[1] &&
           in[2] == o.in[2] && out[0] == o.out[0] && out[1] == o.out[1] && same_view(weight, o.weight) &&
           accumulate == o.accumulate && layer == o.layer && layout == o.layout;
  }
};

}  // namespace smallcoder::cuda
