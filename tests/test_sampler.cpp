// The sampler: greedy ties, the top-k and top-p filters at their boundaries, temperature,
// seeded reproducibility, and empirical frequencies against the exact filtered softmax
// computed here independently of sampler.hpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "smallcoder/generate/sampler.hpp"

using namespace smallcoder;

namespace {

SamplingOptions sampling(float temperature, int top_k, float top_p) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  return o;
}

// The distribution the options define, straight from their description: softmax of
// logits / T; top-k keeps every token whose scaled logit is >= the k-th largest; top-p
// sorts the survivors by probability (ties by id), keeps the shortest prefix whose
// cumulative probability exceeds top_p (the crossing token included, so at least the top
// one); renormalise.
std::vector<double> exact_distribution(const std::vector<float>& logits, const SamplingOptions& o) {
  const std::size_t n = logits.size();
  std::vector<double> scaled(n);
  for (std::size_t i = 0; i < n; ++i) scaled[i] = static_cast<double>(logits[i] / o.temperature);
  std::vector<bool> kept(n, true);
  if (o.top_k > 0 && static_cast<std::size_t>(o.top_k) < n) {
    std::vector<double> sorted = scaled;
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    const double kth = sorted[static_cast<std::size_t>(o.top_k - 1)];
    for (std::size_t i = 0; i < n; ++i) kept[i] = scaled[i] >= kth;
  }
  double max = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < n; ++i) {
    if (kept[i]) max = std::max(max, scaled[i]);
  }
  std::vector<double> p(n, 0.0);
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    if (kept[i]) total += (p[i] = std::exp(scaled[i] - max));
  }
  for (double& x : p) x /= total;
  if (o.top_p < 1.0f) {
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] > p[b]; });
    double cumulative = 0.0;
    std::size_t i = 0;
    while (i < n && cumulative <= o.top_p) cumulative += p[order[i++]];
    for (std::size_t j = i; j < n; ++j) p[order[j]] = 0.0;
    total = 0.0;
    for (double x : p) total += x;
    for (double& x : p) x /= total;
  }
  return p;
}

// Draws `draws` samples and checks every token's frequency against `expected`. Each
// frequency is a binomial proportion with standard deviation sqrt(p(1-p)/N); 5 standard
// deviations make a false failure (about 6e-7 per token) practically impossible, while a
// wrong filter or temperature shifts some probability by far more (all cases below move
// at least 0.05, i.e. > 20 sigma at N = 200000). A token of probability 0 must never appear.
void check_frequencies(const std::vector<float>& logits, const SamplingOptions& o, std::uint64_t seed,
                       const std::vector<double>& expected, int draws = 200000) {
  Sampler sampler(o, seed);
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    const std::int32_t id = sampler.sample(logits.data(), static_cast<int>(logits.size()));
    if (id < 0 || id >= static_cast<int>(logits.size())) FAIL("sampled id " << id << " is outside the logits");
    ++counts[static_cast<std::size_t>(id)];
  }
  for (std::size_t t = 0; t < logits.size(); ++t) {
    CAPTURE(t);
    const double p = expected[t];
    const double freq = static_cast<double>(counts[t]) / draws;
    CAPTURE(p);
    CAPTURE(freq);
    if (p == 0.0) {
      CHECK(counts[t] == 0);
    } else {
      CHECK(std::abs(freq - p) <= 5.0 * std::sqrt(p * (1.0 - p) / draws));
    }
  }
}

std::vector<float> log_probs(const std::vector<double>& p) {
  std::vector<float> out;
  for (double x : p) out.push_back(static_cast<float>(std::log(x)));
  return out;
}

}  // namespace

TEST_CASE("sampler: greedy takes the first maximum") {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 2.0f};
  CHECK(argmax(logits.data(), 5) == 1);
  SamplingOptions greedy;
  greedy.greedy = true;
  Sampler a(greedy, 1);
  for (int i = 0; i < 10; ++i) CHECK(a.sample(logits.data(), 5) == 1);
  // Temperature 0 means greedy too, whatever the filters say.
  Sampler b(sampling(0.0f, 3, 0.5f), 2);
  CHECK(b.sample(logits.data(), 5) == 1);
  const std::vector<float> first_is_max = {3.0f, 3.0f, 3.0f};
  CHECK(argmax(first_is_max.data(), 3) == 0);
  const std::vector<float> negative = {-5.0f, -4.0f, -4.5f, -4.0f};
  CHECK(argmax(negative.data(), 4) == 1);
}

TEST_CASE("sampler: top-k keeps every logit >= the k-th largest, ties at the boundary included") {
  // Scaled logits (T = 1): the top-2 boundary is 3.0, held by three tokens; 2.0 is dropped.
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f, 0.0f};
  const SamplingOptions o = sampling(1.0f, 2, 1.0f);
  const std::vector<double> expected = exact_distribution(logits, o);
  CHECK(expected == std::vector<double>{0, 1.0 / 3, 1.0 / 3, 0, 1.0 / 3, 0});
  check_frequencies(logits, o, 5, expected);
  // top-k 1 with a tie at the top keeps both tied tokens.
  const std::vector<float> tie = {0.0f, 4.0f, 1.0f, 4.0f};
  check_frequencies(tie, sampling(1.0f, 1, 1.0f), 6, {0, 0.5, 0, 0.5});
  // k at or above the vocabulary keeps everything.
  const std::vector<double> p = {0.1, 0.2, 0.3, 0.4};
  check_frequencies(log_probs(p), sampling(1.0f, 4, 1.0f), 7, p);
  check_frequencies(log_probs(p), sampling(1.0f, 100, 1.0f), 8, p);
}

TEST_CASE("sampler: top-p keeps the token that crosses the threshold, and always the top token") {
  const std::vector<double> p = {0.05, 0.5, 0.15, 0.3};  // sorted: 0.5, 0.3, 0.15, 0.05
  const std::vector<float> logits = log_probs(p);
  // 0.6: 0.5 does not exceed it, 0.5 + 0.3 does, so tokens 1 and 3 stay.
  check_frequencies(logits, sampling(1.0f, 0, 0.6f), 9, {0, 0.5 / 0.8, 0, 0.3 / 0.8});
  // 0.85: the third token (0.15) crosses it and stays.
  check_frequencies(logits, sampling(1.0f, 0, 0.85f), 10, {0, 0.5 / 0.95, 0.15 / 0.95, 0.3 / 0.95});
  // 0.4: the top token alone already exceeds it; a tiny top_p still keeps it.
  check_frequencies(logits, sampling(1.0f, 0, 0.4f), 11, {0, 1, 0, 0});
  check_frequencies(logits, sampling(1.0f, 0, 1e-6f), 12, {0, 1, 0, 0});
  // 1 disables the filter.
  check_frequencies(logits, sampling(1.0f, 0, 1.0f), 13, p);
  // The exact model agrees with the hand-worked cases.
  const std::vector<double> e = exact_distribution(logits, sampling(1.0f, 0, 0.6f));
  CHECK(e[1] == doctest::Approx(0.625));
  CHECK(e[3] == doctest::Approx(0.375));
  CHECK(e[0] == 0.0);
  CHECK(e[2] == 0.0);
}

TEST_CASE("sampler: temperature scales the logits before the softmax") {
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(4.0f)};  // probabilities 1:2:4 at T = 1
  check_frequencies(logits, sampling(1.0f, 0, 1.0f), 14, {1.0 / 7, 2.0 / 7, 4.0 / 7});
  // T = 0.5 squares the ratios: 1:4:16.
  check_frequencies(logits, sampling(0.5f, 0, 1.0f), 15, {1.0 / 21, 4.0 / 21, 16.0 / 21});
  // T = 2 takes their square roots: 1:sqrt2:2.
  const double s = 1.0 + std::sqrt(2.0) + 2.0;
  check_frequencies(logits, sampling(2.0f, 0, 1.0f), 16, {1.0 / s, std::sqrt(2.0) / s, 2.0 / s});
  const std::vector<double> exact = exact_distribution(logits, sampling(0.5f, 0, 1.0f));
  CHECK(exact[2] == doctest::Approx(16.0 / 21));
}

TEST_CASE("sampler: all filters together match the exact filtered softmax on a larger vocabulary") {
  // 64 logits with repeated values (ties at the top-k boundary) at the benchmark's settings.
  std::vector<float> logits;
  for (int i = 0; i < 64; ++i) logits.push_back(static_cast<float>((i * 37) % 23) * 0.25f - 2.0f);
  for (const SamplingOptions& o : {sampling(0.7f, 50, 0.9f), sampling(0.7f, 10, 0.9f), sampling(1.3f, 5, 0.95f),
                                   sampling(0.7f, 0, 0.5f), sampling(1.0f, 3, 1.0f)}) {
    CAPTURE(o.temperature);
    CAPTURE(o.top_k);
    CAPTURE(o.top_p);
    const std::vector<double> expected = exact_distribution(logits, o);
    CHECK(std::accumulate(expected.begin(), expected.end(), 0.0) == doctest::Approx(1.0));
    check_frequencies(logits, o, 17, expected);
  }
}

TEST_CASE("sampler: the same seed gives the same sequence; another seed another one") {
  std::vector<float> logits(16, 0.0f);  // uniform: 16^-200 chance that two seeds agree
  auto draw = [&](std::uint64_t seed) {
    Sampler s(sampling(1.0f, 0, 1.0f), seed);
    std::vector<std::int32_t> ids;
    for (int i = 0; i < 200; ++i) ids.push_back(s.sample(logits.data(), 16));
    return ids;
  };
  CHECK(draw(42) == draw(42));
  CHECK(draw(42) != draw(43));
  CHECK(draw(0) == draw(0));
}

namespace {

// The `count` largest logits in the order a GPU backend sends them: value descending, then id.
void top_list(const std::vector<float>& logits, int count, std::vector<float>& values, std::vector<std::int32_t>& ids) {
  std::vector<std::int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
    const float la = logits[static_cast<std::size_t>(a)], lb = logits[static_cast<std::size_t>(b)];
    return la > lb || (la == lb && a < b);
  });
  ids.assign(order.begin(), order.begin() + count);
  values.clear();
  for (std::int32_t id : ids) values.push_back(logits[static_cast<std::size_t>(id)]);
}

std::vector<float> random_logits(int vocab, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<float> logits;
  for (int i = 0; i < vocab; ++i) logits.push_back(static_cast<float>(rng.normal() * 2.0));
  // A three-way tie at ranks 4, 5 and 6 (0-based): the 5th largest value, given to the
  // tokens ranked 10th and 20th.
  std::vector<std::int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](std::int32_t a, std::int32_t b) { return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)]; });
  logits[static_cast<std::size_t>(order[10])] = logits[static_cast<std::size_t>(order[20])] = logits[static_cast<std::size_t>(order[4])];
  return logits;
}

}  // namespace

TEST_CASE("sampler: sample_top over the largest logits draws exactly what sample draws") {
  const int vocab = 200, count = 32;
  const std::vector<float> logits = random_logits(vocab, 3);
  std::vector<float> values;
  std::vector<std::int32_t> ids;
  top_list(logits, count, values, ids);
  SamplingOptions greedy;
  greedy.greedy = true;
  for (const SamplingOptions& o : {sampling(0.7f, 20, 0.9f), sampling(1.0f, 5, 1.0f), sampling(0.5f, 31, 0.95f),
                                   sampling(1.3f, 4, 0.5f), greedy}) {
    CAPTURE(o.temperature);
    CAPTURE(o.top_k);
    CAPTURE(o.top_p);
    Sampler full(o, 77), top(o, 77);
    int mismatches = 0;
    for (int i = 0; i < 2000; ++i) {
      if (full.sample(logits.data(), vocab) != top.sample_top(values.data(), ids.data(), count, vocab)) ++mismatches;
    }
    CHECK(mismatches == 0);
  }
  // A complete list decides any options, top-k off included.
  std::vector<float> all_values;
  std::vector<std::int32_t> all_ids;
  top_list(logits, vocab, all_values, all_ids);
  Sampler full(sampling(0.8f, 0, 0.9f), 5), top(sampling(0.8f, 0, 0.9f), 5);
  for (int i = 0; i < 500; ++i) {
    CHECK(full.sample(logits.data(), vocab) == top.sample_top(all_values.data(), all_ids.data(), vocab, vocab));
  }
}

TEST_CASE("sampler: sample_top declines (-1, drawing nothing) when the list cannot decide the draw") {
  const int vocab = 200;
  const std::vector<float> logits = random_logits(vocab, 4);
  std::vector<float> values;
  std::vector<std::int32_t> ids;
  top_list(logits, 32, values, ids);
  const SamplingOptions top_k_off = sampling(0.7f, 0, 0.9f);
  CHECK(Sampler(top_k_off, 1).sample_top(values.data(), ids.data(), 32, vocab) == -1);  // top-k off, list partial
  CHECK(Sampler(sampling(0.7f, 32, 0.9f), 1).sample_top(values.data(), ids.data(), 32, vocab) == -1);  // k >= count
  CHECK(Sampler(sampling(0.7f, 5, 0.9f), 1).sample_top(values.data(), ids.data(), 0, vocab) == -1);   // empty list
  // The 5th largest value is held by ranks 4 to 6 (see random_logits): a list of 6 or 7 ends
  // on the tie, so a token beyond it might tie with the k-th too; a list of 8 does not.
  CHECK(Sampler(sampling(0.7f, 5, 0.9f), 1).sample_top(values.data(), ids.data(), 6, vocab) == -1);
  CHECK(Sampler(sampling(0.7f, 5, 0.9f), 1).sample_top(values.data(), ids.data(), 7, vocab) == -1);
  CHECK(Sampler(sampling(0.7f, 5, 0.9f), 1).sample_top(values.data(), ids.data(), 8, vocab) != -1);
  // Declining consumes no randomness: the next draw is a fresh sampler's first.
  const SamplingOptions o = sampling(0.7f, 5, 0.9f);
  Sampler declined(o, 9), fresh(o, 9);
  REQUIRE(declined.sample_top(values.data(), ids.data(), 6, vocab) == -1);
  for (int i = 0; i < 50; ++i) CHECK(declined.sample(logits.data(), vocab) == fresh.sample(logits.data(), vocab));
}

TEST_CASE("sampler: invalid options throw") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (const SamplingOptions& o : {sampling(-0.1f, 50, 0.9f), sampling(nan, 50, 0.9f), sampling(inf, 50, 0.9f),
                                   sampling(0.7f, -1, 0.9f), sampling(0.7f, 50, 0.0f), sampling(0.7f, 50, -0.5f),
                                   sampling(0.7f, 50, 1.5f), sampling(0.7f, 50, nan)}) {
    CAPTURE(o.temperature);
    CAPTURE(o.top_k);
    CAPTURE(o.top_p);
    CHECK_THROWS_AS(o.validate("sampling"), Error);
    CHECK_THROWS_AS(Sampler(o, 1), Error);
  }
  CHECK_THROWS_WITH(sampling(-1.0f, 50, 0.9f).validate("opts"), doctest::Contains("temperature"));
  CHECK_THROWS_WITH(sampling(0.7f, -3, 0.9f).validate("opts"), doctest::Contains("top_k"));
  CHECK_THROWS_WITH(sampling(0.7f, 50, 2.0f).validate("opts"), doctest::Contains("top_p"));
  CHECK_NOTHROW(sampling(0.0f, 0, 1.0f).validate("opts"));
}
