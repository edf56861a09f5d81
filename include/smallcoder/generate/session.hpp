// A generation session: keeps the KV cache between calls, so a new prompt that starts
// like the previous one (an editor resending the file up to the cursor on every
// keystroke) evaluates only the tokens after the longest common prefix with what is
// cached. The results equal a cold start's: the cached keys and values are exactly
// those a fresh prefill of the same tokens computes.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "smallcoder/generate/generator.hpp"

namespace smallcoder {

template <class Backend>
class GenerationSession {
 public:
  // The session drives `model` (and reads `tokenizer`), which must outlive it. Other use
  // of the model in between is noticed (Transformer::revision) and costs the cache only.
  GenerationSession(Transformer<Backend>& model, const Tokenizer& tokenizer) : model_(model), tokenizer_(tokenizer) {}

  // Generates a continuation of prompt_ids (BOS included), reusing the cached prefix
  // unless `reuse_cache` is false. Timings::cached_tokens says how many were reused.
  GenerationResult generate_from_ids(std::vector<std::int32_t> prompt_ids, const GenerateOptions& options,
                                     const TextCallback& on_text = {}, bool reuse_cache = true) {
    const auto start = std::chrono::steady_clock::now();
    const int cached = reuse_cache ? reusable_prefix(prompt_ids) : 0;
    cached_.clear();  // until the generation has finished, the cache holds nothing certain
    GenerationResult result =
        detail::generate_after_cached(model_, tokenizer_, std::move(prompt_ids), cached, options, on_text, start);
    // The sequence now holds the prompt and the generated tokens fed back (all but the last).
    cached_ = result.prompt_ids;
    cached_.insert(cached_.end(), result.ids.begin(), result.ids.end());
    cached_.resize(static_cast<std::size_t>(model_.position()));
    revision_ = model_.revision();
    return result;
  }

  // Encodes `prompt` as [BOS] + tokens, as generate() does, and generates.
  GenerationResult generate(std::string_view prompt, const GenerateOptions& options, const TextCallback& on_text = {},
                            bool reuse_cache = true) {
    return generate_from_ids(prompt_ids_of(model_.config(), tokenizer_, prompt), options, on_text, reuse_cache);
  }

  // The tokens whose keys and values the cache holds, position by position.
  const std::vector<std::int32_t>& cached_ids() const { return cached_; }
  void clear() { cached_.clear(); }

 private:
  // Cached positions the prompt can keep: its common prefix with the cache, less one when
  // that is the whole prompt (the last prompt token must be evaluated for its logits).
  int reusable_prefix(const std::vector<std::int32_t>& prompt) const {
    if (model_.revision() != revision_ || static_cast<int>(cached_.size()) != model_.position()) return 0;
    const std::size_t n = std::min(prompt.size(), cached_.size());
    const std::size_t common = static_cast<std::size_t>(
        std::mismatch(prompt.begin(), prompt.begin() + n, cached_.begin()).first - prompt.begin());
    return static_cast<int>(common == prompt.size() && common > 0 ? common - 1 : common);
  }

  Transformer<Backend>& model_;
  const Tokenizer& tokenizer_;
  std::vector<std::int32_t> cached_;
  std::uint64_t revision_ = 0;
};

}  // namespace smallcoder
