// A plain scalar LLaMA forward pass in double precision, written straight from the model
// definition in ../shared/README.md and sharing no code with the library's kernels, so
// tests can check the runtime's logits against an independent computation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/model/weights.hpp"

namespace smallcoder::test {

// A weight matrix widened to double from its stored bytes (f32 or bf16 only; bf16 is the
// top half of an f32, so widening it is a shift, done here rather than by the library).
struct RefMatrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<double> v;

  const double* row(std::int64_t r) const { return v.data() + r * cols; }

  static RefMatrix from(const TensorView& t) {
    RefMatrix m;
    m.rows = t.rows;
    m.cols = t.cols;
    m.v.resize(static_cast<std::size_t>(t.rows * t.cols));
    for (std::size_t i = 0; i < m.v.size(); ++i) {
      float f = 0.0f;
      if (t.dtype == DType::f32) {
        std::memcpy(&f, t.data + 4 * i, 4);
      } else if (t.dtype == DType::bf16) {
        std::uint16_t half = 0;
        std::memcpy(&half, t.data + 2 * i, 2);
        const std::uint32_t bits = static_cast<std::uint32_t>(half) << 16;
        std::memcpy(&f, &bits, 4);
      } else {
        throw std::runtime_error("reference forward: only f32 and bf16 weights are supported");
      }
      m.v[i] = f;
    }
    return m;
  }
};

class ReferenceForward {
 public:
  ReferenceForward(const ModelConfig& config, const ModelWeights& w) : c_(config) {
    embed_ = RefMatrix::from(w.embed);
    for (const LayerWeights& l : w.layers) {
      layers_.push_back(Layer{RefMatrix::from(l.attn_norm), RefMatrix::from(l.wq), RefMatrix::from(l.wk),
                              RefMatrix::from(l.wv), RefMatrix::from(l.wo), RefMatrix::from(l.ffn_norm),
                              RefMatrix::from(l.w_gate), RefMatrix::from(l.w_up), RefMatrix::from(l.w_down)});
    }
    final_norm_ = RefMatrix::from(w.final_norm);
    // The definition: a tied model projects with the embedding itself.
    if (!config.tie_word_embeddings) lm_head_ = RefMatrix::from(w.lm_head);
  }

  // Logits after every position of `tokens` (a fresh sequence): result[t] has vocab values.
  std::vector<std::vector<double>> logits(const std::vector<std::int32_t>& tokens) const {
    const int n = static_cast<int>(tokens.size());
    const int hd = c_.head_dim, heads = c_.num_heads, kv_heads = c_.num_kv_heads;
    const int group = heads / kv_heads;
    std::vector<Vec> x(static_cast<std::size_t>(n));
    for (int t = 0; t < n; ++t) {
      const double* e = embed_.row(tokens[static_cast<std::size_t>(t)]);
      x[static_cast<std::size_t>(t)].assign(e, e + c_.hidden_size);
    }
    for (const Layer& l : layers_) {
      std::vector<Vec> q(static_cast<std::size_t>(n)), k(static_cast<std::size_t>(n)), v(static_cast<std::size_t>(n));
      for (int t = 0; t < n; ++t) {
        const Vec xn = rmsnorm(x[static_cast<std::size_t>(t)], l.attn_norm);
        q[static_cast<std::size_t>(t)] = matvec(l.wq, xn);
        k[static_cast<std::size_t>(t)] = matvec(l.wk, xn);
        v[static_cast<std::size_t>(t)] = matvec(l.wv, xn);
        for (int h = 0; h < heads; ++h) rope(q[static_cast<std::size_t>(t)].data() + h * hd, t);
        for (int h = 0; h < kv_heads; ++h) rope(k[static_cast<std::size_t>(t)].data() + h * hd, t);
      }
      for (int t = 0; t < n; ++t) {
        Vec att(static_cast<std::size_t>(heads * hd), 0.0);
        for (int h = 0; h < heads; ++h) {
          const int g = h / group;
          const double* qh = q[static_cast<std::size_t>(t)].data() + h * hd;
          std::vector<double> scores(static_cast<std::size_t>(t + 1));
          double max_score = -INFINITY;
          for (int j = 0; j <= t; ++j) {
            const double* kj = k[static_cast<std::size_t>(j)].data() + g * hd;
            double dot = 0.0;
            for (int d = 0; d < hd; ++d) dot += qh[d] * kj[d];
            scores[static_cast<std::size_t>(j)] = dot / std::sqrt(static_cast<double>(hd));
            max_score = std::max(max_score, scores[static_cast<std::size_t>(j)]);
          }
          double total = 0.0;
          for (double& s : scores) total += (s = std::exp(s - max_score));
          for (int j = 0; j <= t; ++j) {
            const double p = scores[static_cast<std::size_t>(j)] / total;
            const double* vj = v[static_cast<std::size_t>(j)].data() + g * hd;
            for (int d = 0; d < hd; ++d) att[static_cast<std::size_t>(h * hd + d)] += p * vj[d];
          }
        }
        add(x[static_cast<std::size_t>(t)], matvec(l.wo, att));
      }
      for (int t = 0; t < n; ++t) {
        const Vec xn = rmsnorm(x[static_cast<std::size_t>(t)], l.ffn_norm);
        const Vec gate = matvec(l.w_gate, xn), up = matvec(l.w_up, xn);
        Vec hidden(gate.size());
        for (std::size_t i = 0; i < gate.size(); ++i) hidden[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
        add(x[static_cast<std::size_t>(t)], matvec(l.w_down, hidden));
      }
    }
    const RefMatrix& head = c_.tie_word_embeddings ? embed_ : lm_head_;
    std::vector<std::vector<double>> out;
    for (int t = 0; t < n; ++t) out.push_back(matvec(head, rmsnorm(x[static_cast<std::size_t>(t)], final_norm_)));
    return out;
  }

 private:
  using Vec = std::vector<double>;
  struct Layer {
    RefMatrix attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
  };

  static Vec matvec(const RefMatrix& w, const Vec& in) {
    Vec out(static_cast<std::size_t>(w.rows), 0.0);
    for (std::int64_t r = 0; r < w.rows; ++r) {
      double s = 0.0;
      for (std::int64_t c = 0; c < w.cols; ++c) s += w.row(r)[c] * in[static_cast<std::size_t>(c)];
      out[static_cast<std::size_t>(r)] = s;
    }
    return out;
  }

  static void add(Vec& x, const Vec& delta) {
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += delta[i];
  }

  // weight * x / sqrt(mean(x^2) + eps)
  Vec rmsnorm(const Vec& x, const RefMatrix& weight) const {
    double sum_sq = 0.0;
    for (double value : x) sum_sq += value * value;
    const double inv_rms = 1.0 / std::sqrt(sum_sq / static_cast<double>(x.size()) + static_cast<double>(c_.rms_norm_eps));
    Vec out(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = weight.v[i] * x[i] * inv_rms;
    return out;
  }

  // Rotate-half RoPE: dimension i pairs with i + head_dim/2, angle pos * theta^(-2i/head_dim).
  void rope(double* head, int pos) const {
    const int half = c_.head_dim / 2;
    for (int i = 0; i < half; ++i) {
      const double inv_freq = std::pow(static_cast<double>(c_.rope_theta), -2.0 * i / c_.head_dim);
      const double angle = pos * inv_freq;
      const double a = head[i], b = head[i + half];
      head[i] = a * std::cos(angle) - b * std::sin(angle);
      head[i + half] = b * std::cos(angle) + a * std::sin(angle);
    }
  }

  ModelConfig c_;
  RefMatrix embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
};

// Relative L2 error of `actual` (n floats) against the reference, and the largest absolute error.
struct LogitError {
  double relative_l2 = 0;
  double max_abs = 0;
};

inline LogitError compare_logits(const float* actual, const std::vector<double>& reference) {
  double diff = 0, norm = 0, max_abs = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const double d = static_cast<double>(actual[i]) - reference[i];
    diff += d * d;
    norm += reference[i] * reference[i];
    max_abs = std::max(max_abs, std::abs(d));
  }
  return {std::sqrt(diff / norm), max_abs};
}

}  // namespace smallcoder::test
