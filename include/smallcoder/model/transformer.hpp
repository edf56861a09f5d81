// The transformer forward pass, written once for every backend. It says what is
// computed and in which order; the Backend decides where and how (CPU threads, CUDA
// kernels). Reads top to bottom like one LLaMA forward step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "smallcoder/config.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/model/backend_options.hpp"
#include "smallcoder/model/step.hpp"
#include "smallcoder/model/weights.hpp"

namespace smallcoder {

template <class Backend>
class Transformer {
 public:
  using Buffer = typename Backend::Buffer;

  Transformer(const ModelConfig& config, const ModelWeights& weights, const BackendOptions& options)
      : config_(config),
        backend_(config, options),
        w_(backend_.upload(weights)),
        x_(backend_.make_buffer(config.hidden_size)),
        xn_(backend_.make_buffer(config.hidden_size)),
        q_(backend_.make_buffer(config.q_dim())),
        k_(backend_.make_buffer(config.kv_dim())),
        v_(backend_.make_buffer(config.kv_dim())),
        att_(backend_.make_buffer(config.q_dim())),
        gate_(backend_.make_buffer(config.intermediate_size)),
        up_(backend_.make_buffer(config.intermediate_size)) {}

  // Feeds `n` tokens at the next positions of the sequence (a prompt in batched passes
  // of up to max_batch tokens, or one generated token) and returns the logits that
  // follow the last of them: vocab_size floats, valid until the next call.
  const float* forward(const std::int32_t* tokens, int n) {
    if (n <= 0) fail("forward", "no tokens to process");
    if (n > context() - position_) {
      fail("forward", std::to_string(n) + " tokens do not fit: " + std::to_string(position_) + " of " +
                          std::to_string(context()) + " context positions are used");
    }
    for (int i = 0; i < n; ++i) {
      if (tokens[i] < 0 || tokens[i] >= config_.vocab_size) {
        fail("forward", "token id " + std::to_string(tokens[i]) + " is outside the vocabulary of " +
                            std::to_string(config_.vocab_size));
      }
    }
    ++revision_;
    for (int done = 0; done < n;) {
      const int rows = std::min(n - done, backend_.max_batch());
      const Step step{tokens + done, rows, position_, 0};
      const bool last = done + rows == n;
      backend_.run(step, [&] { compute(step, last); });
      position_ += rows;
      done += rows;
    }
    return backend_.logits();
  }

  // Forgets the sequence: the next forward starts at position 0.
  void reset() {
    position_ = 0;
    ++revision_;
  }
  // Forgets the positions from `position` on (at most the current one), keeping those
  // before: the next forward continues from there, overwriting their cached keys and values.
  void rewind(int position) {
    if (position < 0 || position > position_) {
      fail("rewind", "position " + std::to_string(position) + " is outside the " + std::to_string(position_) +
                         " positions of the sequence");
    }
    position_ = position;
    ++revision_;
  }
  int position() const { return position_; }
  // Changes with every forward, reset and rewind: a caller that keeps track of what the
  // KV cache holds (GenerationSession) sees whether anyone else has changed it since.
  std::uint64_t revision() const { return revision_; }
  int context() const { return backend_.context(); }
  const ModelConfig& config() const { return config_; }
  Backend& backend() { return backend_; }

 private:
  void compute(const Step& s, bool want_logits) {
    Backend& b = backend_;
    b.embed(s, w_.embed, x_);
    for (int l = 0; l < config_.num_layers; ++l) {
      const LayerWeights& lw = w_.layers[static_cast<std::size_t>(l)];
      // Attention block: x += Wo * attention(rope(Wq xn), rope(Wk xn), Wv xn).
      b.rmsnorm(s, x_, lw.attn_norm, xn_);
      b.matmul(s, lw.wq, xn_, q_);
      b.matmul(s, lw.wk, xn_, k_);
      b.matmul(s, lw.wv, xn_, v_);
      b.attention(s, l, q_, k_, v_, w_.rope_layout, att_);
      b.matmul(s, lw.wo, att_, x_, /*accumulate=*/true);
      // MLP block: x += W_down * (silu(W_gate xn) * W_up xn); SwiGLU overwrites gate.
      b.rmsnorm(s, x_, lw.ffn_norm, xn_);
      b.matmul(s, lw.w_gate, xn_, gate_);
      b.matmul(s, lw.w_up, xn_, up_);
      b.swiglu(s, gate_, up_, gate_);
      b.matmul(s, lw.w_down, gate_, x_, /*accumulate=*/true);
    }
    if (want_logits) {
      const Step last = s.last_row();
      b.rmsnorm(last, x_, w_.final_norm, xn_);
      b.output(last, xn_, w_.lm_head);
    }
  }

  ModelConfig config_;
  Backend backend_;
  ModelWeights w_;  // views the backend computes from (device copies on a GPU)
  Buffer x_, xn_, q_, k_, v_, att_, gate_, up_;
  int position_ = 0;
  std::uint64_t revision_ = 0;
};

}  // namespace smallcoder
