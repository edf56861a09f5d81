// Threads for the CPU backend and for conversions. A whole forward step runs inside ONE OpenMP
// parallel region (opened by CpuBackend::run); each op splits its loop across the
// threads already there with an orphaned `omp for`, and a barrier of the region's own
// (TeamBarrier) orders the ops. That avoids a fork/join per op. Without OpenMP everything
// runs serially.
#pragma once

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace smallcoder {

// Physical cores this process may run on: hyper-threads share one core's execution
// units and its memory bandwidth, so they only add contention in bandwidth-bound decode.
inline int physical_core_count() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  std::set<std::string> cores;
  int logical = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    ++logical;
    std::ifstream siblings("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings_list");
    std::string list;
    if (siblings && std::getline(siblings, list)) {
      cores.insert(list);
    } else {
      cores.insert("cpu" + std::to_string(cpu));  // no topology: count it as its own core
    }
  }
  return std::max(1, std::min(logical, static_cast<int>(cores.size())));
}

inline int default_thread_count() {
#ifdef _OPENMP
  return physical_core_count();
#else
  return 1;
#endif
}

inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

namespace detail {

// The barrier that orders a parallel region's ops. libgomp's own (the implicit one at the
// end of an `omp for`) took 1.4 us per op with two threads on a Zen 5 VM, and a Tiny
// decode step passed about 200 of them (74 since norms and attention were fused): 0.28 ms
// of a 2 ms Q8_0 token. Arriving on one counter and spinning on one generation word takes
// 0.5 us there (two cache-line moves between the cores). Spinning stops after kSpins
// rounds (tens of microseconds, longer than an op's usual imbalance): from then on a
// waiting thread yields its core, so more threads than cores (test suites side by side in
// CI) still progress and waste little.
class TeamBarrier {
 public:
  void arrive_and_wait(int threads) {
    const unsigned generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == threads - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(generation + 1, std::memory_order_release);
      return;
    }
    for (int spin = 0; generation_.load(std::memory_order_acquire) == generation; ++spin) {
      if (spin < kSpins) {
        pause();
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  static constexpr int kSpins = 1 << 11;
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<unsigned> generation_{0};
};

// The barrier of the parallel region this thread is in (null outside one).
inline thread_local TeamBarrier* team_barrier = nullptr;

}  // namespace detail

// Runs body(i) for i in [0, n) split statically across the threads of the enclosing
// parallel region (serially outside one). Every thread must call it; all wait at the end.
template <class Body>
inline void parallel_for(std::int64_t n, Body&& body) {
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
  for (std::int64_t i = 0; i < n; ++i) body(i);
  if (detail::team_barrier != nullptr) detail::team_barrier->arrive_and_wait(omp_get_num_threads());
#else
  for (std::int64_t i = 0; i < n; ++i) body(i);
#endif
}

// Opens the parallel region for one forward step with `threads` threads.
template <class Body>
inline void parallel_region(int threads, Body&& body) {
#ifdef _OPENMP
  detail::TeamBarrier barrier;
#pragma omp parallel num_threads(threads)
  {
    detail::TeamBarrier* const outer = detail::team_barrier;
    detail::team_barrier = &barrier;
    body();
    detail::team_barrier = outer;
  }
#else
  (void)threads;
  body();
#endif
}

}  // namespace smallcoder
