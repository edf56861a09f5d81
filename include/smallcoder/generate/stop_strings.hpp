// Holds back streamed text that might be the start of a stop string, so a caller
// never sees any part of a stop string, and cuts the text where one appears.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace smallcoder {

class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {
    stops_.erase(std::remove_if(stops_.begin(), stops_.end(), [](const std::string& s) { return s.empty(); }),
                 stops_.end());
  }

  // Adds generated text; returns the text that is now safe to show. After a stop
  // string appears, returns the text before it and stopped() becomes true.
  std::string push(std::string_view text) {
    pending_ += text;
    std::size_t cut = std::string::npos;
    for (const std::string& stop : stops_) cut = std::min(cut, pending_.find(stop));
    if (cut != std::string::npos) {
      stopped_ = true;
      std::string out = pending_.substr(0, cut);
      pending_.clear();
      return out;
    }
    const std::size_t keep = longest_stop_prefix_suffix();
    std::string out = pending_.substr(0, pending_.size() - keep);
    pending_.erase(0, pending_.size() - keep);
    return out;
  }

  // Whatever was held back, once generation ends without a stop string.
  std::string flush() {
    std::string out;
    out.swap(pending_);
    return out;
  }

  bool stopped() const { return stopped_; }

 private:
  // Length of the longest suffix of pending_ that is a proper prefix of a stop string.
  std::size_t longest_stop_prefix_suffix() const {
    std::size_t best = 0;
    for (const std::string& stop : stops_) {
      const std::size_t limit = std::min(stop.size() - 1, pending_.size());
      for (std::size_t len = limit; len > best; --len) {
        if (pending_.compare(pending_.size() - len, len, stop, 0, len) == 0) {
          best = len;
          break;
        }
      }
    }
    return best;
  }

  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace smallcoder
