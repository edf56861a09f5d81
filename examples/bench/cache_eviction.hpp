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

// The smallest cache line of the CPUs we run on; a larger line is flushed more than once.
constexpr std::size_t kCacheLine = 64;

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

// A byte range to flush, at most 1 MiB: the unit the threads share.
struct CachePiece {
  const std::byte* begin;
  std::size_t bytes;
};

// Appends [p, p + n) to `pieces` as 1 MiB pieces.
inline void add_cache_pieces(const std::byte* p, std::size_t n, std::vector<CachePiece>& pieces) {
  constexpr std::size_t kPiece = std::size_t{1} << 20;
  for (std::size_t at = 0; at < n; at += kPiece) pieces.push_back({p + at, std::min(kPiece, n - at)});
}

// Flushes the pieces from the caches, split across the threads of the enclosing parallel region
// (every thread calls it; all wait at the end), or serially outside one.
inline void evict_pieces(const std::vector<CachePiece>& pieces) {
  if (!can_evict_from_caches()) fail("cache eviction", "this CPU architecture has no cache-flush instruction we use");
  parallel_for(static_cast<std::int64_t>(pieces.size()), [&](std::int64_t i) {
    detail::flush_lines(pieces[static_cast<std::size_t>(i)].begin, pieces[static_cast<std::size_t>(i)].bytes);
  });
}

// Flushes every tensor of `w` from the caches with `threads` threads.
inline void evict_weights(const ModelWeights& w, int threads) {
  std::vector<CachePiece> pieces;
  for (const TensorView* t : w.tensors()) add_cache_pieces(t->data, t->bytes(), pieces);
  parallel_region(threads, [&] { evict_pieces(pieces); });
}

}  // namespace smallcoder::bench
