// The compute roofline beside the bandwidth one: the CPU's peak rates of the arithmetic the
// kernels at the active level are made of, measured with the benchmark's own threads, and
// the operations a prompt takes. Prompt processing reuses each weight across many tokens,
// so its limit is arithmetic, not memory: the operations over these peaks give the time
// the prompt could take at best. Two peaks, since float and 8-bit weights use different
// instructions:
//  - fp32 FMA at the level's vector width (scalar: the compiler's baseline vectors, mul and
//    add): the float weights' products and attention; 2 operations per lane and FMA.
//  - the 8-bit dot product the quantized kernels take: at avx2 maddubs + madd (+ the int32
//    add), 32 multiply-adds per 256-bit step; at avx512 and amx vpdpbusd, 64 per
//    instruction (AMX tiles can exceed it); 2 operations per multiply-add.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "smallcoder/config.hpp"
#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/model/weights.hpp"
#include "smallcoder/tensor/dtype.hpp"
#include "smallcoder/threads.hpp"

#ifdef SMALLCODER_X86
#include <immintrin.h>
#endif

namespace smallcoder::bench {

namespace detail {

// Each probe runs `steps` iterations of kChains independent chains (enough to cover the
// latency of the instruction on every pipe that executes it) and returns the operations
// done, plus a value that depends on every result so none is optimised away. The empty asm
// statements tell the compiler an operand may have changed, so loop-invariant products are
// not hoisted out of the loop; they emit no instruction.
constexpr int kChains = 12;

struct ProbeResult {
  double operations = 0;
  float sink = 0;
};

// acc = acc * m + a converges to a / (1 - m) = 1: no overflow, no denormals.
typedef float Floats4 __attribute__((vector_size(16)));

inline ProbeResult fma_generic(std::int64_t steps) {
  Floats4 acc[kChains];
  const Floats4 m = {0.999f, 0.999f, 0.999f, 0.999f}, a = {1e-3f, 1e-3f, 1e-3f, 1e-3f};
  for (int j = 0; j < kChains; ++j) acc[j] = a * static_cast<float>(j);
  for (std::int64_t i = 0; i < steps; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * m + a;
  }
  float sink = 0;
  for (const Floats4& v : acc) sink += v[0] + v[1] + v[2] + v[3];
  return {2.0 * 4 * kChains * static_cast<double>(steps), sink};
}

typedef std::int32_t Ints4 __attribute__((vector_size(16)));

// The baseline's 8-bit multiply-add: bytes widened to 32-bit lanes (what plain C++ on 8-bit
// values compiles to), 4 multiply-adds per vector.
inline ProbeResult int8_generic(std::int64_t steps) {
  Ints4 acc[kChains] = {};
  Ints4 u = {1, 2, 3, 4}, s = {-1, 2, -3, 4};
  for (std::int64_t i = 0; i < steps; ++i) {
    __asm__("" : "+g"(u[0]));
    for (int j = 0; j < kChains; ++j) acc[j] += u * s;
  }
  float sink = 0;
  for (const Ints4& v : acc) sink += static_cast<float>(v[0] + v[1] + v[2] + v[3]);
  return {2.0 * 4 * kChains * static_cast<double>(steps), sink};
}

#ifdef SMALLCODER_X86

__attribute__((target("avx2,fma"))) inline ProbeResult fma_avx2(std::int64_t steps) {
  __m256 acc[kChains];
  const __m256 m = _mm256_set1_ps(0.999f), a = _mm256_set1_ps(1e-3f);
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(1e-3f * static_cast<float>(j));
  for (std::int64_t i = 0; i < steps; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], m, a);
  }
  __m256 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm256_add_ps(sum, acc[j]);
  return {2.0 * 8 * kChains * static_cast<double>(steps), _mm256_cvtss_f32(sum)};
}

// maddubs(u, s) (32 byte products, summed in pairs to int16) then madd by ones (pairs to
// int32) and an add into the accumulator: the AVX2 kernels' step for 32 multiply-adds.
__attribute__((target("avx2"))) inline ProbeResult int8_avx2(std::int64_t steps) {
  __m256i acc[kChains];
  __m256i u = _mm256_set1_epi8(3);
  const __m256i s = _mm256_set1_epi8(-5), ones = _mm256_set1_epi16(1);
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_setzero_si256();
  for (std::int64_t i = 0; i < steps; ++i) {
    __asm__("" : "+x"(u));
    for (int j = 0; j < kChains; ++j) {
      acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones));
    }
  }
  __m256i sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm256_add_epi32(sum, acc[j]);
  return {2.0 * 32 * kChains * static_cast<double>(steps), static_cast<float>(_mm256_extract_epi32(sum, 0))};
}

__attribute__((target("avx512f"))) inline ProbeResult fma_avx512(std::int64_t steps) {
  __m512 acc[kChains];
  const __m512 m = _mm512_set1_ps(0.999f), a = _mm512_set1_ps(1e-3f);
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(1e-3f * static_cast<float>(j));
  for (std::int64_t i = 0; i < steps; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], m, a);
  }
  __m512 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm512_add_ps(sum, acc[j]);
  float lanes[16];  // not _mm512_reduce_add_ps, which trips GCC 12's uninitialized-use warning (bug 105593)
  _mm512_storeu_ps(lanes, sum);
  return {2.0 * 16 * kChains * static_cast<double>(steps), lanes[0] + lanes[15]};
}

// vpdpbusd: 64 byte products summed in fours into int32 lanes, one instruction.
__attribute__((target("avx512f,avx512vnni"))) inline ProbeResult int8_avx512(std::int64_t steps) {
  __m512i acc[kChains];
  __m512i u = _mm512_set1_epi8(3);
  const __m512i s = _mm512_set1_epi8(-5);
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_setzero_si512();
  for (std::int64_t i = 0; i < steps; ++i) {
    __asm__("" : "+v"(u));
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], u, s);
  }
  __m512i sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm512_add_epi32(sum, acc[j]);
  std::int32_t lanes[16];
  _mm512_storeu_si512(lanes, sum);
  // The lanes wrap (int32 SIMD adds are modular); summed as int they could overflow.
  return {2.0 * 64 * kChains * static_cast<double>(steps), static_cast<float>(lanes[0]) + static_cast<float>(lanes[15])};
}

#endif

using Probe = ProbeResult (*)(std::int64_t);

// Operations per second of `probe` on `threads` threads at once (each runs `steps`), best
// of `passes` after one warm-up pass.
inline double probe_rate(Probe probe, int threads, std::int64_t steps, int passes) {
  using Clock = std::chrono::steady_clock;
  std::vector<ProbeResult> results(static_cast<std::size_t>(threads));
  double best = 0;
  volatile float sink = 0;
  for (int pass = -1; pass < passes; ++pass) {
    const Clock::time_point start = Clock::now();
    parallel_region(threads, [&] { results[static_cast<std::size_t>(thread_index())] = probe(steps); });
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    double operations = 0;
    for (const ProbeResult& r : results) {
      operations += r.operations;
      sink = sink + r.sink;
    }
    if (pass >= 0 && seconds > 0) best = std::max(best, operations / seconds);
  }
  return best;
}

}  // namespace detail

struct ComputePeak {
  std::string level;      // the kernel level whose instructions were measured
  double fma_gflops = 0;  // fp32 FMA, 1e9 operations per second
  double int8_gops = 0;   // 8-bit dot product, 1e9 operations per second
  int threads = 0;
};

// The two peaks at the active kernel level, on `threads` threads.
inline ComputePeak measure_compute_peak(int threads, int passes = 5) {
  if (threads <= 0) threads = default_thread_count();
  detail::Probe fma = detail::fma_generic, int8 = detail::int8_generic;
  const cpu::Isa isa = cpu::active_isa();
#ifdef SMALLCODER_X86
  if (isa == cpu::Isa::avx2) {
    fma = detail::fma_avx2;
    int8 = detail::int8_avx2;
  } else if (isa == cpu::Isa::avx512 || isa == cpu::Isa::amx) {
    fma = detail::fma_avx512;
    int8 = detail::int8_avx512;
  }
#endif
  constexpr std::int64_t kSteps = std::int64_t{1} << 22;  // ~10-30 ms a pass
  ComputePeak p;
  p.level = cpu::isa_name(isa);
  p.threads = threads;
  p.fma_gflops = detail::probe_rate(fma, threads, kSteps, passes) / 1e9;
  p.int8_gops = detail::probe_rate(int8, threads, kSteps, passes) / 1e9;
  return p;
}

// The operations of a prompt of `tokens` tokens, by the peak they run at: every matrix
// product (2 per weight and token; the output head for the last token only, as the model
// computes it) at the 8-bit peak for quantized weights and the FMA peak for float ones, and
// attention (scores and the weighted sum of values: 2 x 2 x head_dim per head and cached
// position, token i seeing i + 1 positions) at the FMA peak.
struct PromptOperations {
  double fma = 0, int8 = 0;

  double total() const { return fma + int8; }
  // The least time they take: each kind at its peak.
  double seconds_at(const ComputePeak& peak) const {
    return fma / (peak.fma_gflops * 1e9) + int8 / (peak.int8_gops * 1e9);
  }
};

inline PromptOperations prompt_operations(const ModelConfig& config, const ModelWeights& w, int tokens) {
  PromptOperations ops;
  auto add = [&](const TensorView& m, double token_rows) {
    const double n = 2.0 * static_cast<double>(m.rows) * static_cast<double>(m.cols) * token_rows;
    (is_float_dtype(m.dtype) ? ops.fma : ops.int8) += n;
  };
  for (const LayerWeights& l : w.layers) {
    for (const TensorView* m : l.matrices()) add(*m, tokens);
  }
  add(w.lm_head, 1);
  const double positions = static_cast<double>(tokens) * (tokens + 1) / 2;
  ops.fma += 4.0 * config.head_dim * config.num_heads * config.num_layers * positions;
  return ops;
}

}  // namespace smallcoder::bench
