// Matrix-vector products, the whole cost of a decode step, and their few-token form for
// short prompts: each warp owns a few weight rows and streams them once, eight elements
// per lane per load (several loads in flight), against input rows held in shared memory,
// accumulating in fp32 and reducing with shuffles. One launch fuses what surrounds the
// products: the RMSNorm of its inputs, up to three matrices sharing them (Q, K, V), the
// residual add (accumulate), and SwiGLU over paired gate/up rows. Before waiting for the
// kernel in front of it (device_math.hpp), a block asks L2 for the weight rows it will read.
#pragma once

#include <cstddef>
#include <cstdint>

#include "smallcoder/cuda/device_math.hpp"

namespace smallcoder::cuda {

constexpr int kProductThreads = 256;
constexpr int kProductWarps = kProductThreads / kWarpSize;
constexpr int kMaxProductTargets = 3;
constexpr int kMaxProductInputs = 16;  // token rows one block multiplies at once (prompts)
constexpr int kFewInputRows = 2;       // weight rows per warp of the multi-row instantiation

struct ProductTarget {
  const std::byte* weight = nullptr;  // [rows x cols] in the stored type
  float* out = nullptr;               // output row j of the launch at out + j * ld
  int ld = 0;
  int rows = 0;
  bool accumulate = false;  // out += W x (the residual add) instead of out = W x
};

// One launch: the targets are stacked (their rows numbered one after the other) and share
// the input rows, their length and the weight type. In pair mode (swiglu_out set) targets
// 0 and 1 are gate and up, of the same shape, and output row r is silu(gate_r) * up_r.
struct ProductArgs {
  ProductTarget targets[kMaxProductTargets];
  int target_count = 0;
  int total_rows = 0;  // sum of the targets' rows (pair mode: the rows of each of the two)
  int cols = 0;
  std::size_t row_bytes = 0;
  bool vectorized = false;   // rows readable in groups (launch.hpp's vectorizable)
  const float* x = nullptr;  // input row j at x + j * ldx
  int ldx = 0;
  bool x_vectorized = false;           // cols and ldx multiples of 4, x 16-byte aligned: float4 staging
  int inputs = 1;                      // input rows in the launch
  int inputs_per_block = 1;            // input rows of each blockIdx.y (<= the instantiation's kInputs)
  const float* norm_weight = nullptr;  // fp32 RMSNorm weights: inputs are normalised first
  float norm_eps = 0.0f;
  float* norm_out = nullptr;  // where blocks with blockIdx.x == 0 store the normalised inputs
  int ldn = 0;
  float* swiglu_out = nullptr;  // pair mode's output, row j at swiglu_out + j * lds (may alias gate)
  int lds = 0;
  bool bf16 = false;        // round every stored result to bf16
  int units_per_block = 0;  // output rows (pairs in pair mode) per block and row group
  int row_groups = 0;       // ceil(total_rows / units_per_block); blocks stride over them
  int prefetch = 0;         // Tuning::prefetch
  bool trigger_early = false;
};

// Dynamic shared memory: `inputs` split rows (device_math.hpp) and the norm's partial sums.
inline std::size_t product_shared_bytes(int cols, int inputs) {
  return sizeof(float) * (static_cast<std::size_t>(inputs) * split_row_floats(cols) +
                          static_cast<std::size_t>(kProductWarps + 1) * kMaxProductInputs);
}

// The weight row of stacked row `row`, its target, and its row within the target.
__device__ __forceinline__ const ProductTarget& product_target(const ProductArgs& a, int row, int& local) {
  local = row;
  if (a.target_count > 1 && local >= a.targets[0].rows) {
    local -= a.targets[0].rows;
    if (a.target_count > 2 && local >= a.targets[1].rows) {
      local -= a.targets[1].rows;
      return a.targets[2];
    }
    return a.targets[1];
  }
  return a.targets[0];
}

// Asks L2 for the weight rows of output units [first, end): rows of gate and up in pair
// mode, else the stacked rows, cut where the targets meet. Called by one whole warp.
__device__ __forceinline__ void prefetch_units(const ProductArgs& a, int first, int end, int lane) {
  if (a.prefetch == 0 || first >= end) return;
  if (a.swiglu_out != nullptr) {
    for (int t = 0; t < 2; ++t) {
      prefetch_l2(a.targets[t].weight + static_cast<std::size_t>(first) * a.row_bytes,
                  static_cast<std::size_t>(end - first) * a.row_bytes, a.prefetch, lane);
    }
    return;
  }
  int base = 0;
  for (int t = 0; t < a.target_count; ++t) {
    const int lo = first > base ? first - base : 0;
    const int hi = (end - base < a.targets[t].rows ? end - base : a.targets[t].rows);
    if (lo < hi) {
      prefetch_l2(a.targets[t].weight + static_cast<std::size_t>(lo) * a.row_bytes,
                  static_cast<std::size_t>(hi - lo) * a.row_bytes, a.prefetch, lane);
    }
    base += a.targets[t].rows;
  }
}

// W: weight tag (device_math.hpp). kInputs: input rows the registers hold (1: decode).
// kRows: weight rows each warp streams at once (pair mode: kRows / 2 gate/up pairs).
template <class W, int kInputs, int kRows>
__global__ void __launch_bounds__(kProductThreads, 2) products_kernel(const ProductArgs a) {
  constexpr int kInFlight = kRows >= 8 ? 1 : 8 / kRows;  // groups per row loaded before the first is used
  float* xs = dynamic_shared<float>();
  const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
  const bool pair = a.swiglu_out != nullptr;
  const int units_per_warp = pair ? kRows / 2 : kRows;

  // Prologue: only the weights, which no kernel writes.
  if (warp == 0 && blockIdx.x < static_cast<unsigned>(a.row_groups)) {
    const int first = blockIdx.x * a.units_per_block;
    prefetch_units(a, first, min(first + a.units_per_block, a.total_rows), lane);
  }
  enter_dependent(a.trigger_early);

  // The block's input rows into shared memory, normalised if asked.
  const int groups = split_groups(a.cols), stride = split_row_floats(a.cols);
  const int j0 = blockIdx.y * a.inputs_per_block;
  const int n_in = min(a.inputs_per_block, a.inputs - j0);
  float* partial = xs + static_cast<std::size_t>(a.inputs_per_block) * stride;  // warps x kMaxProductInputs
  float* inv_rms = partial + kProductWarps * kMaxProductInputs;
  float squares[kInputs];
#pragma unroll
  for (int j = 0; j < kInputs; ++j) {
    squares[j] = 0.0f;
    if (j >= n_in) break;
    const float* src = a.x + static_cast<std::size_t>(j0 + j) * a.ldx;
    float* dst = xs + static_cast<std::size_t>(j) * stride;
    if (a.x_vectorized) {
      for (int c = 4 * tid; c < a.cols; c += 4 * kProductThreads) {
        const float4 v = *reinterpret_cast<const float4*>(src + c);  // plain load: an earlier kernel wrote it
        *reinterpret_cast<float4*>(dst + split_index(c, groups)) = v;
        squares[j] = fmaf(v.x, v.x, fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, squares[j]))));
      }
    } else {
      for (int c = tid; c < a.cols; c += kProductThreads) {
        const float v = src[c];
        dst[split_index(c, groups)] = v;
        squares[j] = fmaf(v, v, squares[j]);
      }
    }
  }
  if (a.norm_weight != nullptr) {
    // RMSNorm as the CPU computes it: weight * (x * (1 / sqrt(mean(x^2) + eps))).
#pragma unroll
    for (int j = 0; j < kInputs; ++j) {
      if (j >= n_in) break;
      const float s = warp_sum(squares[j]);
      if (lane == 0) partial[warp * kMaxProductInputs + j] = s;
    }
    __syncthreads();
    if (tid < n_in) {
      float total = 0.0f;
      for (int w = 0; w < kProductWarps; ++w) total += partial[w * kMaxProductInputs + tid];
      inv_rms[tid] = 1.0f / sqrtf(total / static_cast<float>(a.cols) + a.norm_eps);
    }
    __syncthreads();
    const bool store = blockIdx.x == 0 && a.norm_out != nullptr;
    const int step = a.x_vectorized ? 4 : 1;  // as staged: each thread rescales what it loaded
    for (int j = 0; j < n_in; ++j) {
      const float inv = inv_rms[j];
      float* row = xs + static_cast<std::size_t>(j) * stride;
      float* out = store ? a.norm_out + static_cast<std::size_t>(j0 + j) * a.ldn : nullptr;
      for (int c = step * tid; c < a.cols; c += step * kProductThreads) {
        for (int e = 0; e < step; ++e) {
          float& v = row[split_index(c + e, groups)];
          v = to_activation(a.norm_weight[c + e] * (v * inv), a.bf16);
          if (store) out[c + e] = v;
        }
      }
    }
  }
  __syncthreads();

  for (int group = blockIdx.x; group < a.row_groups; group += gridDim.x) {
    const int unit0 = group * a.units_per_block + warp * units_per_warp;
    // Row slot r: stacked row unit0 + r, or in pair mode gate (r even) / up (r odd) of
    // unit unit0 + r / 2. Slots past the end read row 0 of target 0 and are not stored.
    const std::byte* rows[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int unit = unit0 + (pair ? r / 2 : r);
      rows[r] = a.targets[0].weight;
      if (unit < a.total_rows) {
        if (pair) {
          rows[r] = a.targets[r % 2].weight + static_cast<std::size_t>(unit) * a.row_bytes;
        } else {
          int local = 0;
          rows[r] = product_target(a, unit, local).weight + static_cast<std::size_t>(local) * a.row_bytes;
        }
      }
    }
    float acc[kRows][kInputs];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
#pragma unroll
      for (int j = 0; j < kInputs; ++j) acc[r][j] = 0.0f;
    }
    if (a.vectorized) {
      for (int base = lane; base < groups; base += kInFlight * kWarpSize) {
        typename WeightType<W>::Raw raw[kRows][kInFlight];
#pragma unroll
        for (int u = 0; u < kInFlight; ++u) {
          const int g = base + u * kWarpSize;
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            if (g < groups) raw[r][u] = WeightType<W>::load(rows[r], g);
          }
        }
#pragma unroll
        for (int u = 0; u < kInFlight; ++u) {
          const int g = base + u * kWarpSize;
          if (g >= groups) break;
          float w[kRows][kGroup];
#pragma unroll
          for (int r = 0; r < kRows; ++r) WeightType<W>::widen(raw[r][u], w[r]);
#pragma unroll
          for (int j = 0; j < kInputs; ++j) {
            if (j >= n_in) break;
            const float* x_row = xs + static_cast<std::size_t>(j) * stride;
#pragma unroll
            for (int r = 0; r < kRows; ++r) acc[r][j] += group_dot(w[r], x_row, groups, g);
          }
        }
      }
    } else {
      for (int c = lane; c < a.cols; c += kWarpSize) {
        const int at = split_index(c, groups);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const float w = WeightType<W>::at(rows[r], c);
#pragma unroll
          for (int j = 0; j < kInputs; ++j) {
            if (j >= n_in) break;
            acc[r][j] = fmaf(w, xs[static_cast<std::size_t>(j) * stride + at], acc[r][j]);
          }
        }
      }
    }

    // Every lane gets the sums; lane j stores input row j.
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
#pragma unroll
      for (int j = 0; j < kInputs; ++j) acc[r][j] = j < n_in ? warp_sum(acc[r][j]) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kInputs; ++j) {
      if (j >= n_in) break;
      if (lane != j % kWarpSize) continue;
      const std::size_t jr = static_cast<std::size_t>(j0 + j);
      if (pair) {
#pragma unroll
        for (int p = 0; p < kRows / 2; ++p) {
          const int row = unit0 + p;
          if (row >= a.total_rows) break;
          const float gate = to_activation(acc[2 * p][j], a.bf16);
          const float up = to_activation(acc[2 * p + 1][j], a.bf16);
          // In the order the unfused ops would leave them; the output may alias the gate.
          a.targets[0].out[jr * a.targets[0].ld + row] = gate;
          a.targets[1].out[jr * a.targets[1].ld + row] = up;
          a.swiglu_out[jr * a.lds + row] = to_activation(swiglu_value(gate, up), a.bf16);
        }
      } else {
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const int row = unit0 + r;
          if (row >= a.total_rows) break;
          int local = 0;
          const ProductTarget& t = product_target(a, row, local);
          float* y = t.out + jr * t.ld + local;
          *y = to_activation(t.accumulate ? *y + acc[r][j] : acc[r][j], a.bf16);
        }
      }
    }
  }
}

}  // namespace smallcoder::cuda
