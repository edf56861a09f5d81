// Where a step's device time goes, launch by launch: with profiling on (and graphs off)
// the backend records an event pair around every launch and copy, and after each step adds
// the times up by label ("norm+qkv 1280x768", "rope+attention", ...). Events between
// kernels also stop them overlapping, so the sum is the step without overlap; compare it
// with a replayed graph's time to see what overlap and the launch gaps take.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "smallcoder/cuda/runtime.hpp"

namespace smallcoder::cuda {

class LaunchProfile {
 public:
  struct Entry {
    std::string label;
    long long launches = 0;
    double total_ms = 0;
  };

  // Around one launch (or copy) on `stream`: begin, enqueue it, end.
  void begin(const std::string& label, cudaStream_t stream) {
    pending_.push_back(Pending{index_of(label), event(stream)});
  }
  void end(cudaStream_t stream) { pending_.back().end = event(stream); }

  // After the stream has finished: adds the pending launches' times to their labels.
  void collect() {
    for (const Pending& p : pending_) {
      float ms = 0;
      check(cudaEventElapsedTime(&ms, events_[p.start].get(), events_[p.end].get()), "timing a launch");
      entries_[p.label].launches += 1;
      entries_[p.label].total_ms += ms;
    }
    pending_.clear();
    used_ = 0;
  }

  // Totals by label, the largest first.
  std::vector<Entry> entries() const {
    std::vector<Entry> sorted = entries_;
    std::sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) { return a.total_ms > b.total_ms; });
    return sorted;
  }

  void clear() {
    entries_.clear();
    pending_.clear();
    used_ = 0;
  }

 private:
  struct Pending {
    std::size_t label = 0;
    std::size_t start = 0;
    std::size_t end = 0;
  };

  std::size_t index_of(const std::string& label) {
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].label == label) return i;
    }
    entries_.push_back(Entry{label, 0, 0});
    return entries_.size() - 1;
  }

  // The next event of the pool (reused every step), recorded on `stream` now.
  std::size_t event(cudaStream_t stream) {
    if (used_ == events_.size()) events_.push_back(make_event());
    check(cudaEventRecord(events_[used_].get(), stream), "recording a profiling event");
    return used_++;
  }

  std::vector<Event> events_;
  std::size_t used_ = 0;
  std::vector<Pending> pending_;
  std::vector<Entry> entries_;
};

}  // namespace smallcoder::cuda
