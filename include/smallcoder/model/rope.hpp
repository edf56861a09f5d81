// The rotary position embedding's angles, shared by every backend.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

namespace smallcoder {

// cos/sin of every (position, frequency) pair, computed once per model. Angles follow
// the reference: inv_freq = 1 / theta^(2i/d) and angle = pos * inv_freq in fp32.
class RopeTable {
 public:
  RopeTable(int context, int head_dim, float theta) : half_(head_dim / 2) {
    cos_.resize(static_cast<std::size_t>(context) * half_);
    sin_.resize(cos_.size());
    for (int i = 0; i < half_; ++i) {
      const float inv_freq = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
      for (int p = 0; p < context; ++p) {
        const float angle = static_cast<float>(p) * inv_freq;
        cos_[static_cast<std::size_t>(p) * half_ + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
        sin_[static_cast<std::size_t>(p) * half_ + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
    }
  }
  const float* cos(int pos) const { return cos_.data() + static_cast<std::size_t>(pos) * half_; }
  const float* sin(int pos) const { return sin_.data() + static_cast<std::size_t>(pos) * half_; }

 private:
  int half_;
  std::vector<float> cos_, sin_;
};

}  // namespace smallcoder
