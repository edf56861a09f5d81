// The model's weights as views in their stored types, plus whatever keeps the bytes
// alive (a mapped file, an owned buffer). for_each_weight is the single list of every
// tensor a model has, with its expected shape: loaders, converters and random
// initialisation all walk it, so no loader can forget a tensor or a shape check.
// ModelWeights::tensors() lists the views once loaded (a tied head once), for what reads them all.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/tensor/tensor_view.hpp"

namespace smallcoder {

struct LayerWeights {
  TensorView attn_norm, wq, wk, wv, wo;
  TensorView ffn_norm, w_gate, w_up, w_down;

  // The layer's seven matrices (the norms are vectors), in file order.
  std::array<const TensorView*, 7> matrices() const { return {&wq, &wk, &wv, &wo, &w_gate, &w_up, &w_down}; }
};

// How the rows of Wq/Wk pair up dimensions for RoPE: Hugging Face checkpoints rotate
// halves (i, i + d/2); llama.cpp's converter permutes rows for adjacent pairs (2i, 2i+1).
enum class RopeLayout { rotate_half, interleaved };

struct ModelWeights {
  TensorView embed;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  TensorView final_norm;  // [1, hidden]
  TensorView lm_head;     // [vocab, hidden]; the same view as embed when tied
  RopeLayout rope_layout = RopeLayout::rotate_half;
  std::vector<std::shared_ptr<const void>> owners;  // mapped files and buffers the views point into

  // Every tensor, a tied lm_head once (it is the embedding's view).
  std::vector<const TensorView*> tensors() const {
    std::vector<const TensorView*> out = {&embed, &final_norm};
    if (lm_head.data != embed.data) out.push_back(&lm_head);
    for (const LayerWeights& l : layers) {
      for (const TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
        out.push_back(t);
      }
    }
    return out;
  }

  // Bytes of weight data, a tied embedding counted once.
  std::size_t bytes() const {
    std::size_t total = 0;
    for (const TensorView* t : tensors()) total += t->bytes();
    return total;
  }
};

enum class WeightRole { embed, attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down, final_norm, lm_head };

struct WeightSlot {
  WeightRole role;
  int layer;          // -1 for tensors outside the layers
  std::int64_t rows;  // 1 for norm vectors
  std::int64_t cols;
  TensorView* view;

  bool is_vector() const { return role == WeightRole::attn_norm || role == WeightRole::ffn_norm || role == WeightRole::final_norm; }
};

// Calls f(WeightSlot) for every tensor of the model, in file order; lm_head only when untied.
// Sizes `w.layers` to the config first.
template <class F>
inline void for_each_weight(const ModelConfig& c, ModelWeights& w, F&& f) {
  const std::int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), ff = c.intermediate_size;
  w.layers.resize(static_cast<std::size_t>(c.num_layers));
  f(WeightSlot{WeightRole::embed, -1, c.vocab_size, h, &w.embed});
  for (int i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = w.layers[static_cast<std::size_t>(i)];
    f(WeightSlot{WeightRole::attn_norm, i, 1, h, &l.attn_norm});
    f(WeightSlot{WeightRole::wq, i, q, h, &l.wq});
    f(WeightSlot{WeightRole::wk, i, kv, h, &l.wk});
    f(WeightSlot{WeightRole::wv, i, kv, h, &l.wv});
    f(WeightSlot{WeightRole::wo, i, h, q, &l.wo});
    f(WeightSlot{WeightRole::ffn_norm, i, 1, h, &l.ffn_norm});
    f(WeightSlot{WeightRole::w_gate, i, ff, h, &l.w_gate});
    f(WeightSlot{WeightRole::w_up, i, ff, h, &l.w_up});
    f(WeightSlot{WeightRole::w_down, i, h, ff, &l.w_down});
  }
  f(WeightSlot{WeightRole::final_norm, -1, 1, h, &w.final_norm});
  if (!c.tie_word_embeddings) f(WeightSlot{WeightRole::lm_head, -1, c.vocab_size, h, &w.lm_head});
}

// Points lm_head at the embedding when the model ties them; call after loading.
inline void tie_output_if_needed(const ModelConfig& c, ModelWeights& w) {
  if (c.tie_word_embeddings) w.lm_head = w.embed;
}

// Hugging Face Llama tensor names.
inline std::string hf_tensor_name(const WeightSlot& s) {
  const std::string layer = "model.layers." + std::to_string(s.layer) + ".";
  switch (s.role) {
    case WeightRole::embed: return "model.embed_tokens.weight";
    case WeightRole::attn_norm: return layer + "input_layernorm.weight";
    case WeightRole::wq: return layer + "self_attn.q_proj.weight";
    case WeightRole::wk: return layer + "self_attn.k_proj.weight";
    case WeightRole::wv: return layer + "self_attn.v_proj.weight";
    case WeightRole::wo: return layer + "self_attn.o_proj.weight";
    case WeightRole::ffn_norm: return layer + "post_attention_layernorm.weight";
    case WeightRole::w_gate: return layer + "mlp.gate_proj.weight";
    case WeightRole::w_up: return layer + "mlp.up_proj.weight";
    case WeightRole::w_down: return layer + "mlp.down_proj.weight";
    case WeightRole::final_norm: return "model.norm.weight";
    case WeightRole::lm_head: return "lm_head.weight";
  }
  return {};
}

// llama.cpp's GGUF tensor names.
inline std::string gguf_tensor_name(const WeightSlot& s) {
  const std::string layer = "blk." + std::to_string(s.layer) + ".";
  switch (s.role) {
    case WeightRole::embed: return "token_embd.weight";
    case WeightRole::attn_norm: return layer + "attn_norm.weight";
    case WeightRole::wq: return layer + "attn_q.weight";
    case WeightRole::wk: return layer + "attn_k.weight";
    case WeightRole::wv: return layer + "attn_v.weight";
    case WeightRole::wo: return layer + "attn_output.weight";
    case WeightRole::ffn_norm: return layer + "ffn_norm.weight";
    case WeightRole::w_gate: return layer + "ffn_gate.weight";
    case WeightRole::w_up: return layer + "ffn_up.weight";
    case WeightRole::w_down: return layer + "ffn_down.weight";
    case WeightRole::final_norm: return "output_norm.weight";
    case WeightRole::lm_head: return "output.weight";
  }
  return {};
}

}  // namespace smallcoder
