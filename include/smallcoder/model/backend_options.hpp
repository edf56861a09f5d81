// Settings every backend takes: threads, prefill batch size, KV-cache length and element
// type, and the number format of the activations.
#pragma once

#include "smallcoder/tensor/dtype.hpp"

namespace smallcoder {

// What the activations (and the KV cache) are stored in between ops; the weights keep
// their stored type and every product accumulates in fp32 either way.
enum class Activations {
  f32,   // matches PyTorch's fp32 forward (the default; what the CPU backend always does)
  bf16,  // every op's output rounded to bf16, as a PyTorch bf16 model computes (CUDA backend)
};

struct BackendOptions {
  int threads = 0;      // CPU threads; 0: one per physical core
  int max_batch = 512;  // tokens per prefill pass; longer prompts run in several passes
  int context = 0;      // KV-cache length; 0: the model's max_context
  Activations activations = Activations::f32;
  // What the CPU backend stores keys and values in: f32, or f16 / bf16, which halve the cache
  // and the bytes decode reads from it (most of its traffic at long contexts). The CUDA
  // backend takes f32 only (its cache follows `activations`).
  DType kv_cache = DType::f32;
};

}  // namespace smallcoder
