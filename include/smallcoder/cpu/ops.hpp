// Small per-row operations of the forward pass (norm, RoPE, softmax's e^x, SwiGLU) in
// plain fp32. They touch a few KB per token; matrix products dominate the time.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace smallcoder::cpu {

// out = weight * x / sqrt(mean(x^2) + eps), the reference's RMSNorm. The mean is
// accumulated in double so its rounding does not depend on the summation order, which
// lets four independent sums shorten the chain of dependent additions (one token's norm
// runs whole on every thread, before its products can start).
inline void rmsnorm_row(const float* x, const float* weight, float eps, int n, float* out) {
  double part[4] = {0.0, 0.0, 0.0, 0.0};
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) part[j] += static_cast<double>(x[i + j]) * x[i + j];
  }
  for (; i < n; ++i) part[0] += static_cast<double>(x[i]) * x[i];
  const double sum = (part[0] + part[1]) + (part[2] + part[3]);
  const float inv = static_cast<float>(1.0 / std::sqrt(sum / n + static_cast<double>(eps)));
  for (i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * inv);
}

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

// x, opaque to the optimiser: a product passed through it is rounded before the sum it
// joins, which the compiler could otherwise fuse into one FMA where the instruction set has
// it (inlined into an AVX2 function, say; by default in C++ on aarch64) and not elsewhere,
// changing the bits. x stays in a vector register ("x" on x86, "w" on aarch64); other
// targets pass it through memory, a store and a load per product.
inline float unfused(float x) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+x"(x));
#elif defined(__aarch64__)
  __asm__("" : "+w"(x));
#else
  __asm__("" : "+m"(x));
#endif
  return x;
}

// e^x to within a few ulp, for every float x (beyond +-88 it saturates at e^+-88, which
// softmax cannot tell from the true value). Plain arithmetic and bit moves, so the
// SIMD levels can take the same steps (std::exp is a library call per element, and attention
// at an 8K context takes millions per token) and every kernel level computes the same bits
// (cpu/kv_rows.hpp's softmax).
// The constants of exp_approx's steps, which the SIMD softmax repeats on vectors.
struct ExpSteps {
  static constexpr float kLow = -87.0f, kHigh = 88.0f;  // the clamp: e^x stays a normal float
  static constexpr float kLog2e = 1.44269504f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  static constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  // e^r by its Taylor series to r^7 in Horner's order (truncation error below 2e-8
  // relative at |r| = 0.35): the first coefficient, then those multiply-added after it.
  static constexpr float kFirst = 1.0f / 5040.0f;
  static constexpr float kCoefficients[7] = {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f};
};

inline float exp_approx(float x) {
  using E = ExpSteps;
  x = x < E::kLow ? E::kLow : x;
  x = x > E::kHigh ? E::kHigh : x;
  const float n = (unfused(x * E::kLog2e) + E::kRound) - E::kRound;          // nearest integer to x / ln 2
  const float r = (x - unfused(n * E::kLn2Hi)) - unfused(n * E::kLn2Lo);  // |r| <= ln(2) / 2, ln 2 split for precision
  float p = E::kFirst;
  for (float c : E::kCoefficients) p = unfused(p * r) + c;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) * (1 << 23);  // 2^n, |n| <= 127
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// SwiGLU: out = silu(gate) * up, silu(g) = g / (1 + e^-g). std::exp here, not exp_approx:
// a few thousand per token, and the greedy texts of tests/test_gguf_models.cpp's near ties
// follow llama.cpp's with it.
inline void swiglu_row(const float* gate, const float* up, int n, float* out) {
  for (int i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace smallcoder::cpu
