// generate() / generate_from_ids() with the real tokenizer and small random models:
// every stop reason (max_tokens, eos, stop_string, context_full), prompt errors, streaming,
// timings and determinism; the cancel hook; GenerationSession's prefix reuse against cold
// starts; and StopStringFilter on its own, with stops split across pushes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "smallcoder/smallcoder.hpp"
#include "support/model_shape.hpp"
#include "support/test_data.hpp"

using namespace smallcoder;

namespace {

std::shared_ptr<const Tokenizer> tokenizer() {
  static const auto tok =
      std::make_shared<const Tokenizer>(Tokenizer::from_file(test::data_path("tokenizer/tokenizer.model")));
  return tok;
}

// A small model over the real 32000-token vocabulary, so every sampled id decodes.
ModelConfig small_config(int eos_id = 2) {
  ModelConfig c = test::shaped_config("generate-test", {64, 128, 2, 4, 2, 16, 32000, 256});
  c.eos_id = eos_id;
  return c;
}

Model small_model(int eos_id = 2, int context = 0) {
  return Model(random_checkpoint(small_config(eos_id), 1234, DType::f32, tokenizer()), BackendOptions{0, 512, context});
}

GenerateOptions options(int max_tokens, bool greedy, std::uint64_t seed = 0) {
  GenerateOptions o;
  o.max_tokens = max_tokens;
  o.sampling.greedy = greedy;
  o.sampling.temperature = 1.0f;  // sampled runs draw from the whole vocabulary: varied text
  o.sampling.top_k = 0;
  o.sampling.top_p = 1.0f;
  o.seed = seed;
  return o;
}

// Runs generation, collecting the streamed pieces.
struct Run {
  GenerationResult result;
  std::vector<std::string> pieces;
  std::string streamed() const {
    std::string s;
    for (const std::string& p : pieces) s += p;
    return s;
  }
};

Run run(Model& model, const std::string& prompt, const GenerateOptions& o) {
  Run r;
  r.result = model.generate(prompt, o, [&](std::string_view piece) { r.pieces.emplace_back(piece); });
  return r;
}

std::string decode_continuation(const std::vector<std::int32_t>& ids) {
  StreamDecoder decoder(*tokenizer(), /*at_sequence_start=*/false);
  std::string text;
  for (std::int32_t id : ids) text += decoder.push(id);
  return text + decoder.flush();
}

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

const char* const kPrompt = "def fibonacci(n):\n    ";

}  // namespace

TEST_CASE("generate: stops at max_tokens; streamed pieces add up to the text; timings are filled") {
  Model model = small_model();
  const Run r = run(model, kPrompt, options(12, false, 5));
  CHECK(r.result.stop_reason == StopReason::max_tokens);
  CHECK(r.result.ids.size() == 12);
  CHECK(r.streamed() == r.result.text);
  CHECK(r.result.text == decode_continuation(r.result.ids));
  CHECK_FALSE(r.result.text.empty());
  std::vector<std::int32_t> expected_prompt{1};
  const auto encoded = tokenizer()->encode(kPrompt);
  expected_prompt.insert(expected_prompt.end(), encoded.begin(), encoded.end());
  CHECK(r.result.prompt_ids == expected_prompt);

  const Timings& t = r.result.timings;
  CHECK(t.prompt_tokens == static_cast<int>(expected_prompt.size()));
  CHECK(t.generated_tokens == 12);
  CHECK(t.time_to_first_token_s > 0);
  CHECK(t.prefill_s > 0);
  CHECK(t.prefill_s <= t.time_to_first_token_s);
  CHECK(t.decode_s > 0);
  CHECK(t.total_s >= t.time_to_first_token_s);
  CHECK(t.prefill_tokens_per_s() > 0);
  CHECK(t.decode_tokens_per_s() > 0);
  MESSAGE("ttft " << t.time_to_first_token_s * 1e3 << " ms, prefill " << t.prefill_tokens_per_s() << " tok/s, decode "
                  << t.decode_tokens_per_s() << " tok/s");

  SUBCASE("max_tokens 0 generates nothing") {
    const Run none = run(model, kPrompt, options(0, true));
    CHECK(none.result.ids.empty());
    CHECK(none.result.text.empty());
    CHECK(none.pieces.empty());
    CHECK(none.result.stop_reason == StopReason::max_tokens);
    CHECK(none.result.timings.generated_tokens == 0);
  }
  SUBCASE("max_tokens 1 generates one token") {
    CHECK(run(model, kPrompt, options(1, true)).result.ids.size() == 1);
  }
}

TEST_CASE("generate: greedy and seeded sampling are deterministic") {
  Model model = small_model();
  const Run a = run(model, kPrompt, options(20, true));
  const Run b = run(model, kPrompt, options(20, true));
  CHECK(a.result.ids == b.result.ids);
  CHECK(a.result.text == b.result.text);
  // Greedy equals the argmax of the transformer's own logits, step by step.
  auto& t = model.transformer();
  t.reset();
  const float* logits = t.forward(a.result.prompt_ids.data(), static_cast<int>(a.result.prompt_ids.size()));
  for (std::int32_t id : a.result.ids) {
    CHECK(argmax(logits, 32000) == id);
    logits = t.forward(&id, 1);
  }
  // The same seed samples the same continuation, another seed another one.
  const Run s1 = run(model, kPrompt, options(20, false, 99));
  const Run s2 = run(model, kPrompt, options(20, false, 99));
  const Run s3 = run(model, kPrompt, options(20, false, 100));
  CHECK(s1.result.ids == s2.result.ids);
  CHECK(s1.result.ids != s3.result.ids);
  // A second model object with the same weights gives the same result (no hidden state).
  Model other = small_model();
  CHECK(run(other, kPrompt, options(20, true)).result.ids == a.result.ids);
}

TEST_CASE("generate: stops at EOS, which is kept in ids but not in the text") {
  // Find a sampled run's first token that did not occur before it, then make that token the
  // EOS of an identical model: the same seed must stop exactly there.
  Model model = small_model();
  const Run full = run(model, kPrompt, options(30, false, 7));
  const std::vector<std::int32_t>& ids = full.result.ids;
  std::size_t k = 1;
  while (k < ids.size() && std::find(ids.begin(), ids.begin() + static_cast<long>(k), ids[k]) != ids.begin() + static_cast<long>(k)) ++k;
  REQUIRE(k < ids.size());
  Model with_eos = small_model(ids[k]);
  const Run stopped = run(with_eos, kPrompt, options(30, false, 7));
  CHECK(stopped.result.stop_reason == StopReason::eos);
  CHECK(stopped.result.ids == std::vector<std::int32_t>(ids.begin(), ids.begin() + static_cast<long>(k) + 1));
  const std::string before_eos = decode_continuation(std::vector<std::int32_t>(ids.begin(), ids.begin() + static_cast<long>(k)));
  CHECK(stopped.result.text == before_eos);
  CHECK(stopped.streamed() == before_eos);
  CHECK(stopped.result.timings.generated_tokens == static_cast<int>(k) + 1);

  // Greedy: the first greedy token as EOS stops at once with empty text.
  const Run greedy = run(model, kPrompt, options(10, true));
  Model first_is_eos = small_model(greedy.result.ids.front());
  const Run at_once = run(first_is_eos, kPrompt, options(10, true));
  CHECK(at_once.result.stop_reason == StopReason::eos);
  CHECK(at_once.result.ids == std::vector<std::int32_t>{greedy.result.ids.front()});
  CHECK(at_once.result.text.empty());
  CHECK(at_once.pieces.empty());
}

TEST_CASE("generate: a stop string ends the text before it; the callback never sees any of it") {
  Model model = small_model();
  const Run full = run(model, kPrompt, options(40, false, 21));
  const std::string text = full.result.text;
  REQUIRE(full.pieces.size() >= 4);

  SUBCASE("a stop string that spans two streamed pieces") {
    // The last UTF-8 character of piece k and the first of piece k + 1, for the middle k.
    std::size_t k = full.pieces.size() / 2;
    while (k + 1 < full.pieces.size() && (full.pieces[k].empty() || full.pieces[k + 1].empty())) ++k;
    REQUIRE(k + 1 < full.pieces.size());
    const std::string& left = full.pieces[k];
    const std::string& right = full.pieces[k + 1];
    std::size_t start = left.size() - 1;
    while (start > 0 && is_utf8_continuation(left[start])) --start;
    std::size_t end = 1;
    while (end < right.size() && is_utf8_continuation(right[end])) ++end;
    const std::string stop = left.substr(start) + right.substr(0, end);
    CAPTURE(stop);
    const std::size_t at = text.find(stop);
    REQUIRE(at != std::string::npos);

    GenerateOptions o = options(40, false, 21);
    o.stop = {"\x01never-appears\x02", stop};
    const Run cut = run(model, kPrompt, o);
    CHECK(cut.result.stop_reason == StopReason::stop_string);
    CHECK(cut.result.text == text.substr(0, at));
    CHECK(cut.streamed() == text.substr(0, at));
    CHECK(cut.streamed().find(stop) == std::string::npos);
    // It stopped at the token that completed the stop string: a proper prefix of the full ids.
    CHECK(cut.result.ids.size() < full.result.ids.size());
    CHECK(std::equal(cut.result.ids.begin(), cut.result.ids.end(), full.result.ids.begin()));
    CHECK(decode_continuation(cut.result.ids).find(stop) != std::string::npos);
    CHECK(decode_continuation(std::vector<std::int32_t>(cut.result.ids.begin(), cut.result.ids.end() - 1)).find(stop) ==
          std::string::npos);
  }
  SUBCASE("a stop string whose start ends the text is held back, then flushed when it never completes") {
    std::size_t start = text.size() - 1;
    while (start > 0 && is_utf8_continuation(text[start])) --start;
    GenerateOptions o = options(40, false, 21);
    o.stop = {text.substr(start) + "\x7f\x7f\x7f"};
    const Run held = run(model, kPrompt, o);
    CHECK(held.result.stop_reason == StopReason::max_tokens);
    CHECK(held.result.text == text);
    CHECK(held.streamed() == text);
  }
  SUBCASE("a stop string at the very start gives empty text") {
    GenerateOptions o = options(40, false, 21);
    o.stop = {full.pieces.front()};
    const Run empty = run(model, kPrompt, o);
    CHECK(empty.result.stop_reason == StopReason::stop_string);
    CHECK(empty.result.text.empty());
    CHECK(empty.pieces.empty());
  }
}

TEST_CASE("generate: a full context stops generation; a prompt that fills it is an Error") {
  Model model = small_model(2, 16);
  REQUIRE(model.transformer().context() == 16);
  std::vector<std::int32_t> prompt{1};
  for (int i = 0; i < 9; ++i) prompt.push_back(static_cast<std::int32_t>(1000 + 37 * i));

  const GenerationResult r = generate_from_ids(model.transformer(), model.tokenizer(), prompt, options(100, true));
  CHECK(r.stop_reason == StopReason::context_full);
  CHECK(r.ids.size() == 6);
  CHECK(r.prompt_ids.size() + r.ids.size() == 16);
  CHECK(r.timings.generated_tokens == 6);
  CHECK(model.transformer().position() == 15);  // the last token is never fed back

  // 15 prompt tokens leave room for exactly one generated token.
  std::vector<std::int32_t> fifteen = prompt;
  while (fifteen.size() < 15) fifteen.push_back(500);
  const GenerationResult one = generate_from_ids(model.transformer(), model.tokenizer(), fifteen, options(100, true));
  CHECK(one.ids.size() == 1);
  CHECK(one.stop_reason == StopReason::context_full);

  std::vector<std::int32_t> sixteen = fifteen;
  sixteen.push_back(501);
  CHECK_THROWS_AS(generate_from_ids(model.transformer(), model.tokenizer(), sixteen, options(100, true)), Error);
  CHECK_THROWS_WITH(generate_from_ids(model.transformer(), model.tokenizer(), sixteen, options(100, true)),
                    doctest::Contains("the prompt has 16 tokens but the context holds 16"));
  // The same through text: a long prompt is refused, not truncated.
  CHECK_THROWS_WITH(model.generate(std::string(200, 'x') + " y z w", options(5, true)), doctest::Contains("context holds 16"));
  CHECK_THROWS_AS(generate_from_ids(model.transformer(), model.tokenizer(), {}, options(5, true)), Error);
}

TEST_CASE("generate: invalid input is an Error") {
  Model model = small_model();
  CHECK_THROWS_AS(model.generate("def f(\xff):", options(5, true)), Error);
  CHECK_THROWS_WITH(model.generate("ok \xe2\x82", options(5, true)), doctest::Contains("UTF-8"));
  CHECK_THROWS_AS(model.generate(kPrompt, options(-1, true)), Error);
  GenerateOptions bad_top_p = options(5, false);
  bad_top_p.sampling.top_p = 0.0f;
  CHECK_THROWS_WITH(model.generate(kPrompt, bad_top_p), doctest::Contains("top_p"));
  GenerateOptions bad_temperature = options(5, false);
  bad_temperature.sampling.temperature = -1.0f;
  CHECK_THROWS_AS(model.generate(kPrompt, bad_temperature), Error);
  // A refused call leaves the model usable.
  CHECK(model.generate(kPrompt, options(3, true)).ids.size() == 3);
}

// ---- StopStringFilter on its own ----

namespace {

// Pushes `chunks` through a filter; returns everything it released (flushed if not stopped).
std::string filter_all(const std::vector<std::string>& stops, const std::vector<std::string>& chunks, bool* stopped = nullptr) {
  StopStringFilter f(stops);
  std::string out;
  for (const std::string& c : chunks) {
    out += f.push(c);
    if (f.stopped()) break;
  }
  if (!f.stopped()) out += f.flush();
  if (stopped != nullptr) *stopped = f.stopped();
  return out;
}

}  // namespace

TEST_CASE("generate: the cancel hook is asked once before the prefill and once per token") {
  Model model = small_model();
  GenerateOptions o = options(20, true);
  int asked = 0;
  o.cancel = [&] { return ++asked > 4; };  // the prefill and three tokens go ahead
  const Run r = run(model, kPrompt, o);
  CHECK(r.result.stop_reason == StopReason::cancelled);
  CHECK(r.result.ids.size() == 3);
  CHECK(asked == 5);
  CHECK(r.result.text == decode_continuation(r.result.ids));
  CHECK(r.result.ids == std::vector<std::int32_t>(run(model, kPrompt, options(3, true)).result.ids));

  asked = 0;
  o.cancel = [&] { return ++asked > 0; };  // before the prefill: nothing is evaluated
  const Run none = run(model, kPrompt, o);
  CHECK(none.result.stop_reason == StopReason::cancelled);
  CHECK(none.result.ids.empty());
  CHECK(asked == 1);
}

namespace {

// The logits after prompt_ids from a fresh model (cold) and the greedy continuation.
struct Cold {
  std::vector<float> logits;
  GenerationResult result;
};
Cold cold_start(const std::vector<std::int32_t>& prompt_ids, int max_tokens) {
  Model model = small_model();
  Cold c;
  generate_from_ids(model.transformer(), model.tokenizer(), prompt_ids, options(0, true));
  const float* logits = model.transformer().backend().logits();
  c.logits.assign(logits, logits + 32000);
  c.result = generate_from_ids(model.transformer(), model.tokenizer(), prompt_ids, options(max_tokens, true));
  return c;
}

std::vector<std::int32_t> ids_of(const std::string& text) { return prompt_ids_of(small_config(), *tokenizer(), text); }

// A session call on `prompt` equals a cold start: the logits after the prompt (a
// max_tokens 0 call leaves them in the backend) and the greedy continuation.
void check_like_cold(Model& model, GenerationSession<CpuBackend>& session, const std::string& prompt,
                     int expect_cached) {
  CAPTURE(prompt);
  const std::vector<std::int32_t> ids = ids_of(prompt);
  const Cold cold = cold_start(ids, 12);
  const GenerationResult fill = session.generate(prompt, options(0, true));
  CHECK(fill.timings.cached_tokens == expect_cached);
  CHECK(fill.timings.evaluated_tokens() == static_cast<int>(ids.size()) - expect_cached);
  const float* logits = model.transformer().backend().logits();
  float worst = 0;
  for (int i = 0; i < 32000; ++i) worst = std::max(worst, std::abs(logits[i] - cold.logits[static_cast<std::size_t>(i)]));
  CHECK(worst <= 1e-4f);
  CHECK(argmax(logits, 32000) == argmax(cold.logits.data(), 32000));
  // The continuation, again through the session: the whole prompt is cached now but its
  // last token, whose logits must be computed again.
  const GenerationResult warm = session.generate(prompt, options(12, true));
  CHECK(warm.timings.cached_tokens == static_cast<int>(ids.size()) - 1);
  CHECK(warm.ids == cold.result.ids);
  CHECK(warm.text == cold.result.text);
  CHECK(warm.stop_reason == cold.result.stop_reason);
}

}  // namespace

TEST_CASE("session: reusing the cached prefix gives a cold start's logits and greedy text") {
  Model model = small_model();
  GenerationSession<CpuBackend> session = model.session();
  const std::string base = "def fibonacci(n):\n    if n < 2:\n        return n\n";
  const int base_tokens = static_cast<int>(ids_of(base).size());
  const std::string extended = base + "    return fibonacci(n - 1) + fibonacci(n - 2)\n";
  const std::string diverging = "def fibonacci(n):\n    while n > 0:\n";
  const std::vector<std::int32_t> a = ids_of(base), d = ids_of(diverging);
  const int common = static_cast<int>(std::mismatch(a.begin(), a.end(), d.begin(), d.end()).first - a.begin());
  REQUIRE(common > 2);
  REQUIRE(common < static_cast<int>(d.size()));

  check_like_cold(model, session, base, 0);  // an empty cache: everything is evaluated
  SUBCASE("a prompt that extends the cached one") {
    // The cache holds the base and its 12 greedy tokens but the last: the extension shares the base.
    const std::vector<std::int32_t> e = ids_of(extended);
    const std::vector<std::int32_t>& held = session.cached_ids();
    const int shared = static_cast<int>(std::mismatch(e.begin(), e.end(), held.begin(), held.end()).first - e.begin());
    CHECK(shared >= base_tokens - 1);
    check_like_cold(model, session, extended, shared);
  }
  SUBCASE("a prompt that diverges mid-way") {
    check_like_cold(model, session, base, base_tokens - 1);  // back to the prompt alone in the cache
    check_like_cold(model, session, diverging, common);
  }
  SUBCASE("a prompt shorter than the cache, a prefix of it") {
    const std::vector<std::int32_t> held = session.cached_ids();
    REQUIRE(held.size() > 6);
    const std::vector<std::int32_t> shorter(held.begin(), held.begin() + 6);
    const Cold cold = cold_start(shorter, 12);
    const GenerationResult warm = session.generate_from_ids(shorter, options(12, true));
    CHECK(warm.timings.cached_tokens == 5);
    CHECK(warm.ids == cold.result.ids);
    CHECK(warm.text == cold.result.text);
  }
  SUBCASE("the cached ids are the prompt and the generated tokens fed back") {
    const GenerationResult r = session.generate(base, options(5, true));
    std::vector<std::int32_t> expected = r.prompt_ids;
    expected.insert(expected.end(), r.ids.begin(), r.ids.end() - 1);
    CHECK(session.cached_ids() == expected);
    CHECK(model.transformer().position() == static_cast<int>(expected.size()));
  }
  SUBCASE("reuse off, or the model used elsewhere in between: evaluated afresh, same text") {
    const GenerationResult off = session.generate(base, options(12, true), {}, /*reuse_cache=*/false);
    CHECK(off.timings.cached_tokens == 0);
    model.generate("class Foo:", options(3, true));
    const GenerationResult after = session.generate(base, options(12, true));
    CHECK(after.timings.cached_tokens == 0);
    CHECK(after.ids == off.ids);
  }
  SUBCASE("an error leaves the session usable") {
    CHECK_THROWS_AS(session.generate_from_ids({}, options(3, true)), Error);
    CHECK(session.cached_ids().empty());
    check_like_cold(model, session, base, 0);
  }
}

TEST_CASE("stop strings: a stop split across pushes is never released") {
  StopStringFilter f({"world"});
  CHECK(f.push("Hel") == "Hel");
  CHECK(f.push("lo wor") == "lo ");  // "wor" might start "world": held back
  CHECK_FALSE(f.stopped());
  CHECK(f.push("ld and more") == "");
  CHECK(f.stopped());

  StopStringFilter g({"\n\n"});
  CHECK(g.push("a\n") == "a");
  CHECK(g.push("\n") == "");
  CHECK(g.stopped());

  // A false start is released once it can no longer become the stop string.
  StopStringFilter h({"world"});
  CHECK(h.push("wor") == "");
  CHECK(h.push("k") == "work");
  CHECK(h.push("s") == "s");
  CHECK(h.flush() == "");
  CHECK_FALSE(h.stopped());
}

TEST_CASE("stop strings: byte by byte, several stops, the earliest wins; flush returns what was held") {
  bool stopped = false;
  std::vector<std::string> bytes;
  for (char c : std::string("x = 1\nreturn x\n\ndef g():")) bytes.emplace_back(1, c);
  CHECK(filter_all({"\ndef", "\n\n"}, bytes, &stopped) == "x = 1\nreturn x");
  CHECK(stopped);
  CHECK(filter_all({"b", "abc"}, {"xa", "bc"}, &stopped) == "x");  // "abc" (at 1) starts before "b" (at 2)
  CHECK(stopped);
  CHECK(filter_all({"aab"}, {"aaa", "b"}, &stopped) == "a");  // overlapping self-prefix
  CHECK(stopped);
  CHECK(filter_all({"abc"}, {"xxab"}, &stopped) == "xxab");  // held "ab", flushed at the end
  CHECK_FALSE(stopped);
  CHECK(filter_all({}, {"anything"}, &stopped) == "anything");
  CHECK(filter_all({""}, {"empty stops are ignored"}, &stopped) == "empty stops are ignored");
  CHECK_FALSE(stopped);
  // Multi-byte UTF-8 stop split inside a character.
  CHECK(filter_all({"\xE2\x82\xAC"}, {"cost 5\xE2", "\x82", "\xAC more"}, &stopped) == "cost 5");
  CHECK(stopped);
}

TEST_CASE("stop strings: the first stop string to appear ends the stream") {
  // "c" appears (with the third byte) before "bbcb" could complete: generation ends there,
  // so "bbcb", which would have started earlier, never appears.
  bool stopped = false;
  CHECK(filter_all({"bbcb", "c"}, {"b", "b", "c", "b"}, &stopped) == "bb");
  CHECK(stopped);
  // Stops completed by the same push: the text ends before the one that starts first.
  CHECK(filter_all({"c", "bbcb"}, {"bbcb"}, &stopped) == "");
  CHECK(stopped);
}

TEST_CASE("stop strings: random texts and splits agree with a plain search after each push") {
  Rng rng(2024);
  for (int trial = 0; trial < 3000; ++trial) {
    auto random_text = [&](std::size_t max_len) {
      std::string s;
      const std::size_t len = rng.next() % (max_len + 1);
      for (std::size_t i = 0; i < len; ++i) s += static_cast<char>('a' + rng.next() % 3);
      return s;
    };
    const std::string text = random_text(30);
    std::vector<std::string> stops;
    const int n_stops = static_cast<int>(rng.next() % 3);
    for (int i = 0; i < n_stops; ++i) stops.push_back(random_text(4));
    std::vector<std::string> chunks;
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t len = std::min<std::size_t>(1 + rng.next() % 4, text.size() - i);
      chunks.push_back(text.substr(i, len));
      i += len;
    }
    // The expected output: after each push, search the text so far for every stop; the
    // first push that completes one ends the text before the earliest match.
    std::string expected = text;
    bool expect_stop = false;
    std::size_t seen = 0;
    for (const std::string& c : chunks) {
      seen += c.size();
      std::size_t cut = std::string::npos;
      for (const std::string& stop : stops) {
        if (!stop.empty()) cut = std::min(cut, text.substr(0, seen).find(stop));
      }
      if (cut != std::string::npos) {
        expected = text.substr(0, cut);
        expect_stop = true;
        break;
      }
    }
    CAPTURE(text);
    CAPTURE(stops.size());
    // Whatever is released at any point is a prefix of the final answer.
    StopStringFilter f(stops);
    std::string released;
    for (const std::string& c : chunks) {
      released += f.push(c);
      CHECK(expected.compare(0, released.size(), released) == 0);
      if (f.stopped()) break;
    }
    if (!f.stopped()) released += f.flush();
    CHECK(f.stopped() == expect_stop);
    CHECK(released == expected);
  }
}
