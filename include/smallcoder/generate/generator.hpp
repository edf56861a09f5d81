// Text generation: prompt -> tokens -> prefill -> sample/decode loop -> streamed text,
// with the stop reason and the timings the benchmark reports.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "smallcoder/error.hpp"
#include "smallcoder/generate/sampler.hpp"
#include "smallcoder/generate/stop_strings.hpp"
#include "smallcoder/model/transformer.hpp"
#include "smallcoder/text/sentencepiece.hpp"

namespace smallcoder {

enum class StopReason { eos, max_tokens, stop_string, context_full, cancelled };

inline const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::eos: return "eos";
    case StopReason::max_tokens: return "max_tokens";
    case StopReason::stop_string: return "stop_string";
    case StopReason::context_full: return "context_full";
    case StopReason::cancelled: return "cancelled";
  }
  return "unknown";
}

struct GenerateOptions {
  int max_tokens = 150;
  SamplingOptions sampling;
  std::uint64_t seed = 0;
  std::vector<std::string> stop;  // generation ends before the first of these appears
  // Asked once before the prefill and once before each token; true ends the generation
  // (StopReason::cancelled), e.g. when the client that wants the text has gone.
  std::function<bool()> cancel;
};

struct Timings {
  int prompt_tokens = 0;
  int cached_tokens = 0;             // of prompt_tokens, those whose keys/values were already cached
  int generated_tokens = 0;
  double time_to_first_token_s = 0;  // generate() called -> first token's text out
  double prefill_s = 0;              // the prompt's forward passes
  double decode_s = 0;               // first token out -> last token out (one forward each)
  double total_s = 0;

  int evaluated_tokens() const { return prompt_tokens - cached_tokens; }
  double prefill_tokens_per_s() const { return prefill_s > 0 ? evaluated_tokens() / prefill_s : 0.0; }
  // Tokens produced by decode steps: every token after the first (which the prefill yields).
  double decode_tokens_per_s() const { return decode_s > 0 ? (generated_tokens - 1) / decode_s : 0.0; }
};

struct GenerationResult {
  std::string text;                    // the continuation only, stop string excluded
  std::vector<std::int32_t> prompt_ids;  // BOS + the encoded prompt
  std::vector<std::int32_t> ids;         // generated ids (an EOS that ended it included)
  StopReason stop_reason = StopReason::max_tokens;
  Timings timings;
};

using TextCallback = std::function<void(std::string_view)>;

namespace detail {

// Optional backend capability, found at compile time: a backend whose logits live on a
// device (CudaBackend) can keep them there and send the host only the largest few.
//   void keep_logits_on_device(bool);   // while on, forward() returns nullptr
//   top_logits() -> {values, ids, count}  // the step's largest logits, sorted; count 0: unknown
//   const float* host_logits();           // all of them, copied on demand
template <class Backend, class = void>
struct has_device_logits : std::false_type {};
template <class Backend>
struct has_device_logits<Backend, std::void_t<decltype(std::declval<Backend&>().top_logits())>> : std::true_type {};

// Keeps a device backend's logits on the device for one generation (and restores the
// default after it, errors included); does nothing for other backends.
template <class Backend>
class DeviceLogitsScope {
 public:
  explicit DeviceLogitsScope(Backend& backend) : backend_(backend) {
    if constexpr (has_device_logits<Backend>::value) backend_.keep_logits_on_device(true);
  }
  ~DeviceLogitsScope() {
    if constexpr (has_device_logits<Backend>::value) backend_.keep_logits_on_device(false);
  }
  DeviceLogitsScope(const DeviceLogitsScope&) = delete;
  DeviceLogitsScope& operator=(const DeviceLogitsScope&) = delete;

 private:
  Backend& backend_;
};

// The next token from the step's logits: from the device's largest logits when they decide
// the draw, otherwise (and on other backends) from all of them. The draws are identical.
template <class Backend>
std::int32_t next_token(Transformer<Backend>& model, Sampler& sampler, const float* logits) {
  const int vocab = model.config().vocab_size;
  if constexpr (has_device_logits<Backend>::value) {
    if (logits == nullptr) {
      const auto top = model.backend().top_logits();
      const std::int32_t id = sampler.sample_top(top.values, top.ids, top.count, vocab);
      if (id >= 0) return id;
      logits = model.backend().host_logits();
    }
  }
  return sampler.sample(logits, vocab);
}

}  // namespace detail

namespace detail {

inline void check_prompt_fits(std::size_t tokens, int context) {
  if (tokens == 0) fail("generate", "the prompt has no tokens");
  if (static_cast<int>(tokens) >= context) {
    fail("generate", "the prompt has " + std::to_string(tokens) + " tokens but the context holds " +
                         std::to_string(context) + " (at most " + std::to_string(context - 1) +
                         " prompt tokens leave room for one generated token)");
  }
}

// The one generation loop (generate_from_ids and GenerationSession): keeps the first
// `cached` positions of the model's sequence (they must hold prompt_ids' first tokens),
// evaluates the rest of the prompt, then samples and decodes token by token.
template <class Backend>
GenerationResult generate_after_cached(Transformer<Backend>& model, const Tokenizer& tokenizer,
                                       std::vector<std::int32_t> prompt_ids, int cached,
                                       const GenerateOptions& options, const TextCallback& on_text,
                                       std::chrono::steady_clock::time_point start) {
  using Clock = std::chrono::steady_clock;
  auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  options.sampling.validate("generate");
  if (options.max_tokens < 0) fail("generate", "max_tokens must be >= 0");
  const int context = model.context();
  check_prompt_fits(prompt_ids.size(), context);
  if (cached < 0 || cached >= static_cast<int>(prompt_ids.size())) fail("generate", "cached prefix out of range");

  GenerationResult result;
  result.timings.prompt_tokens = static_cast<int>(prompt_ids.size());
  result.timings.cached_tokens = cached;
  const auto cancelled = [&] { return options.cancel && options.cancel(); };
  model.rewind(cached);
  if (cancelled()) {
    result.prompt_ids = std::move(prompt_ids);
    result.stop_reason = StopReason::cancelled;
    result.timings.total_s = seconds_since(start);
    return result;
  }
  const DeviceLogitsScope<Backend> device_logits(model.backend());
  const Clock::time_point prefill_start = Clock::now();
  const float* logits = model.forward(prompt_ids.data() + cached, static_cast<int>(prompt_ids.size()) - cached);
  result.timings.prefill_s = seconds_since(prefill_start);
  result.prompt_ids = std::move(prompt_ids);

  Sampler sampler(options.sampling, options.seed);
  StreamDecoder decoder(tokenizer, /*at_sequence_start=*/false);
  StopStringFilter stops(options.stop);
  auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    result.text += text;
    if (on_text) on_text(text);
  };
  Clock::time_point first_token{};
  result.stop_reason = StopReason::max_tokens;
  for (int produced = 0; produced < options.max_tokens; ++produced) {
    if (cancelled()) {
      result.stop_reason = StopReason::cancelled;
      break;
    }
    const std::int32_t id = next_token(model, sampler, logits);
    result.ids.push_back(id);
    if (id == model.config().eos_id) {
      result.stop_reason = StopReason::eos;
    } else {
      emit(stops.push(decoder.push(id)));
      if (stops.stopped()) result.stop_reason = StopReason::stop_string;
    }
    if (produced == 0) {
      first_token = Clock::now();
      result.timings.time_to_first_token_s = std::chrono::duration<double>(first_token - start).count();
    }
    if (result.stop_reason != StopReason::max_tokens || produced + 1 == options.max_tokens) break;
    if (model.position() + 1 >= context) {  // this token would take the last free position
      result.stop_reason = StopReason::context_full;
      break;
    }
    logits = model.forward(&id, 1);
  }
  if (!stops.stopped()) {
    emit(stops.push(decoder.flush()));
    if (stops.stopped()) {
      result.stop_reason = StopReason::stop_string;
    } else {
      emit(stops.flush());
    }
  }
  result.timings.generated_tokens = static_cast<int>(result.ids.size());
  if (!result.ids.empty()) result.timings.decode_s = seconds_since(first_token);
  result.timings.total_s = seconds_since(start);
  return result;
}

}  // namespace detail

// Generates a continuation of already tokenized prompt ids (BOS included), streaming
// text to on_text as soon as it is complete UTF-8. Starts from an empty KV cache.
template <class Backend>
GenerationResult generate_from_ids(Transformer<Backend>& model, const Tokenizer& tokenizer,
                                   std::vector<std::int32_t> prompt_ids, const GenerateOptions& options,
                                   const TextCallback& on_text = {},
                                   std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now()) {
  return detail::generate_after_cached(model, tokenizer, std::move(prompt_ids), 0, options, on_text, start);
}

// [BOS] + the tokens of `prompt`: what generate() feeds the model.
inline std::vector<std::int32_t> prompt_ids_of(const ModelConfig& config, const Tokenizer& tokenizer,
                                               std::string_view prompt) {
  std::vector<std::int32_t> ids{config.bos_id};
  const std::vector<std::int32_t> encoded = tokenizer.encode(prompt);
  ids.insert(ids.end(), encoded.begin(), encoded.end());
  return ids;
}

// Encodes `prompt` as [BOS] + tokens and generates its continuation.
template <class Backend>
GenerationResult generate(Transformer<Backend>& model, const Tokenizer& tokenizer, std::string_view prompt,
                          const GenerateOptions& options, const TextCallback& on_text = {}) {
  const auto start = std::chrono::steady_clock::now();
  return generate_from_ids(model, tokenizer, prompt_ids_of(model.config(), tokenizer, prompt), options, on_text,
                           start);
}

}  // namespace smallcoder
