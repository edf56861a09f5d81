// The server's one model, one generation at a time: requests wait their turn in a
// bounded first-in first-out queue; a waiting request whose client has gone leaves it
// without running, so a new request never waits behind work nobody will read.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace server {

class ModelQueue {
 public:
  explicit ModelQueue(std::size_t max_waiting) : max_waiting_(max_waiting) {}

  // The right to run one generation, held until the lease is destroyed.
  class Lease {
   public:
    explicit Lease(ModelQueue& q) : q_(q) {}
    ~Lease() { q_.release(); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

   private:
    ModelQueue& q_;
  };

  enum class Outcome { granted, full, client_gone };

  // Waits for the model; `client_gone` is asked every 10 ms while waiting. On `granted`
  // the lease is set; `full` when max_waiting requests are already waiting.
  Outcome acquire(const std::function<bool()>& client_gone, std::shared_ptr<Lease>& lease) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (busy_ || !waiting_.empty()) {
      if (waiting_.size() >= max_waiting_) return Outcome::full;
      const std::uint64_t ticket = next_ticket_++;
      waiting_.push_back(ticket);
      while (busy_ || waiting_.front() != ticket) {
        changed_.wait_for(lock, std::chrono::milliseconds(10));
        if (client_gone()) {
          for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
            if (*it == ticket) {
              waiting_.erase(it);
              break;
            }
          }
          changed_.notify_all();
          return Outcome::client_gone;
        }
      }
      waiting_.pop_front();
    }
    busy_ = true;
    lease = std::make_shared<Lease>(*this);
    return Outcome::granted;
  }

  std::size_t waiting() {
    std::lock_guard<std::mutex> lock(mutex_);
    return waiting_.size();
  }

 private:
  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    busy_ = false;
    changed_.notify_all();
  }

  std::size_t max_waiting_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool busy_ = false;
  std::deque<std::uint64_t> waiting_;  // tickets, oldest first
  std::uint64_t next_ticket_ = 0;
};

}  // namespace server
