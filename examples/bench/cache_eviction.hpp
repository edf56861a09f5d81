// Evicting a model's weights from the CPU caches, for bench_speed --cold. A laptop's last-level
// cache holds a few MiB, so every decode step there streams the whole model from DRAM. A server
// core's L3 (hundreds of MiB) can hold a small model whole: its decode then reads the cache, and
// its "share of the DRAM bandwidth" exceeds 100% and says nothing about the laptop. Flushing every
// cache line of the weights before each timed step makes that step read them from DRAM, as the
// laptop does; the KV cache and activations stay cached, as they would in a few MiB.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/model/weights.hpp"
#include "smallcoder/threads.hpp"

#ifdef SMALLCODER_X86
#include <immintrin.h>
#endif

namespace smallcoder::bench {

// True where evict_weights can flush lines: x86-64 (clflush, part of SSE2) and aarch64
// (dc civac, which Linux lets user code run).
constexpr bool can_evict_from_caches() {
#if defined(SMALLCODER_X86) || defined(SMALLCODER_AARCH64)
  return true;
#else
  return false;
#endif
}

namespace detail {

constexpr std::size_t kCacheLine =
    64;  // the smallest line of the CPUs we run on; a larger one is flushed more than once

// Writes back and invalidates every cache line holding [p, p + n), in every level of this core's
// and the other cores' caches (both instructions act on the point of coherence).
inline void flush_lines(const std::byte* p, std::size_t n) {
  const auto first = reinterpret_cast<std::uintptr_t>(p) & ~(std::uintptr_t{kCacheLine} - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(p) + n;
  for (std::uintptr_t line = first; line < end; line += kCacheLine) {
#if defined(SMALLCODER_X86)
    _mm_clflush(reinterpret_cast<const void*>(line));
#elif defined(SMALLCODER_AARCH64)
    asm volatile("dc civac, %0" : : "r"(line) : "memory");
#endif
  }
#if defined(SMALLCODER_X86)
  _mm_mfence();  // the flushes are done before any later load
#elif defined(SMALLCODER_AARCH64)
  asm volatile("dsb ish" : : : "memory");
#endif
}

}  // namespace detail

// Flushes every tensor of `w` from the caches with `threads` threads (1 MiB pieces).
inline void evict_weights(const ModelWeights& w, int threads) {
  if (!can_evict_from_caches()) fail("cache eviction", "this CPU architecture has no cache-flush instruction we use");
  constexpr std::size_t kPiece = std::size_t{1} << 20;
  struct Piece {
    const std::byte* begin;
    std::size_t bytes;
  };
  std::vector<Piece> pieces;
  for (const TensorView* t : w.tensors()) {
    for (std::size_t at = 0; at < t->bytes(); at += kPiece) {
      pieces.push_back({t->data + at, std::min(kPiece, t->bytes() - at)});
    }
  }
  parallel_region(threads, [&] {
    parallel_for(static_cast<std::int64_t>(pieces.size()), [&](std::int64_t i) {
      detail::flush_lines(pieces[static_cast<std::size_t>(i)].begin, pieces[static_cast<std::size_t>(i)].bytes);
    });
  });
}

}  // namespace smallcoder::bench
