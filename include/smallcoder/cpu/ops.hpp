// Small per-row operations of the forward pass (norm, RoPE, softmax, SwiGLU) in
// plain fp32. They touch a few KB per token; matrix products dominate the time.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace smallcoder::cpu {

// out = weight * x / sqrt(mean(x^2) + eps), the reference's RMSNorm. The mean is
// accumulated in double so its rounding does not depend on the summation order.
inline void rmsnorm_row(const float* x, const float* weight, float eps, int n, float* out) {
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(sum / n + static_cast<double>(eps)));
  for (int i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * inv);
}

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

// Rotates one head in place. Rotate-half pairs element i with i + d/2 (Hugging Face
// layout); interleaved pairs 2i with 2i+1 (llama.cpp's GGUF layout, whose Q/K rows
// were permuted to match). Both give the same attention scores for the same model.
inline void rope_head(float* v, int head_dim, const float* cos, const float* sin, bool interleaved) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const int a = interleaved ? 2 * i : i;
    const int b = interleaved ? 2 * i + 1 : i + half;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * cos[i] - x1 * sin[i];
    v[b] = x1 * cos[i] + x0 * sin[i];
  }
}

// Softmax in place over n scores; returns nothing, the scores become probabilities.
inline void softmax_inplace(float* s, int n) {
  float max = s[0];
  for (int i = 1; i < n; ++i) max = s[i] > max ? s[i] : max;
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    s[i] = std::exp(s[i] - max);
    sum += s[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) s[i] *= inv;
}

// SwiGLU: out = silu(gate) * up, silu(g) = g / (1 + e^-g).
inline void swiglu_row(const float* gate, const float* up, int n, float* out) {
  for (int i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace smallcoder::cpu
