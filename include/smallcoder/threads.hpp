// Threads for the CPU backend and for conversions. A whole forward step runs inside ONE OpenMP
// parallel region (opened by CpuBackend::run); each op splits its loop across the
// threads already there with an orphaned `omp for`, whose implicit barrier orders
// the ops. That avoids a fork/join per op. Without OpenMP everything runs serially.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include <sched.h>

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

// Runs body(i) for i in [0, n) split statically across the threads of the enclosing
// parallel region (serially outside one). Every thread must call it; all wait at the end.
template <class Body>
inline void parallel_for(std::int64_t n, Body&& body) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
  for (std::int64_t i = 0; i < n; ++i) body(i);
}

// Opens the parallel region for one forward step with `threads` threads.
template <class Body>
inline void parallel_region(int threads, Body&& body) {
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  body();
#else
  (void)threads;
  body();
#endif
}

}  // namespace smallcoder
