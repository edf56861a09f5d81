// The public entry point: a loaded model (checkpoint + transformer on a backend) that
// turns a prompt into a streamed continuation.
#pragma once

#include <string>
#include <string_view>

#include "smallcoder/cpu/backend.hpp"
#include "smallcoder/generate/generator.hpp"
#include "smallcoder/generate/session.hpp"
#include "smallcoder/model/load.hpp"
#include "smallcoder/model/transformer.hpp"

namespace smallcoder {

template <class Backend>
class BasicModel {
 public:
  explicit BasicModel(Checkpoint checkpoint, const BackendOptions& options = {})
      : checkpoint_(std::move(checkpoint)), transformer_(checkpoint_.config, checkpoint_.weights, options) {
    if (!checkpoint_.tokenizer) fail(checkpoint_.source, "no tokenizer");
  }

  static BasicModel load(const std::string& path, const LoadOptions& load = {}, const BackendOptions& backend = {}) {
    return BasicModel(load_checkpoint(path, load), backend);
  }

  // Encodes [BOS] + prompt and generates; on_text receives the continuation as it is made.
  GenerationResult generate(std::string_view prompt, const GenerateOptions& options = {},
                            const TextCallback& on_text = {}) {
    return smallcoder::generate(transformer_, *checkpoint_.tokenizer, prompt, options, on_text);
  }

  // One forward pass of [BOS], then forgotten, as llama.cpp warms a model up after loading:
  // the first real prompt then does not pay for what a first pass sets up (the threads,
  // the buffers' pages). On Tiny Q8_0 the benchmark's first prompt took 37 ms without it,
  // 9-13 ms with it (the same prompt later in the run: about 11).
  void warm_up() {
    const std::int32_t bos = checkpoint_.config.bos_id;
    transformer_.forward(&bos, 1);
    transformer_.reset();
  }

  // A session on this model that keeps the KV cache between its calls (prefix reuse).
  // generate() in between is allowed: the session then starts its next call afresh.
  GenerationSession<Backend> session() { return GenerationSession<Backend>(transformer_, *checkpoint_.tokenizer); }

  const ModelConfig& config() const { return checkpoint_.config; }
  const Tokenizer& tokenizer() const { return *checkpoint_.tokenizer; }
  const Checkpoint& checkpoint() const { return checkpoint_; }
  Transformer<Backend>& transformer() { return transformer_; }

 private:
  Checkpoint checkpoint_;  // declared first: the transformer computes from its weights
  Transformer<Backend> transformer_;
};

using Model = BasicModel<CpuBackend>;

}  // namespace smallcoder
