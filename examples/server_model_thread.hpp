// The one thread the server computes on: the thread that loaded the model. HTTP handlers
// run on cpp-httplib's worker threads and hand their generation over to it.
//
// Why: libgomp keeps a pool of OpenMP worker threads for each thread that opens parallel
// regions, and once the pools hold more threads than there are cores it stops spinning at
// barriers: every barrier of a step then sleeps and wakes through the kernel. Generating
// on whichever worker took the request made a pool per worker (and one from loading), and
// SmallCoder-Tiny Q8_0's decode step took 4.3 ms instead of 2.6 ms on 2 cores.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>

namespace server {

class ModelThread {
 public:
  // Runs `work` on the model thread and returns once it has run, rethrowing what it threw.
  // One caller at a time (the ModelQueue's lease holder). After stop() it refuses: the
  // loop has ended, or ends once the work it holds has run.
  void run(const std::function<void()>& work) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopped_) throw std::runtime_error("the server is shutting down");
    work_ = &work;
    error_ = nullptr;
    changed_.notify_all();
    changed_.wait(lock, [this] { return work_ == nullptr; });
    if (error_) std::rethrow_exception(error_);
  }

  // The model thread's loop: runs what run() hands over until stop(), work already handed
  // over included. Call it on the thread that loaded the model.
  void serve() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      changed_.wait(lock, [this] { return work_ != nullptr || stopped_; });
      if (work_ == nullptr) return;
      const std::function<void()>& work = *work_;
      lock.unlock();
      std::exception_ptr error;
      try {
        work();
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      error_ = error;
      work_ = nullptr;
      changed_.notify_all();
    }
  }

  void stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  const std::function<void()>* work_ = nullptr;
  std::exception_ptr error_;
  bool stopped_ = false;
};

}  // namespace server
