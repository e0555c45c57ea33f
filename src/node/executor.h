// The completion thread (private): runs user callbacks in order, off the raft thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "rlr/node.h"

namespace rlr::node {

/// One user-visible outcome: a proposal's callback with its result, or any closure.
/// Stored by value in a reused vector, so completing a proposal allocates nothing (the
/// callback is moved, never wrapped in another std::function).
struct Completion {
  ProposeCallback done;                          ///< when set: done(std::move(result))
  Result<ProposeResult> result = ProposeResult{};
  std::function<void()> task;                    ///< when `done` is empty
  void run() {
    if (done) {
      done(std::move(result));
    } else if (task) {
      task();
    }
  }
};

/// Runs completions in order on one thread, named `thread_name` (15 bytes at most).
///
/// The queue never refuses a completion (each callback runs exactly once); its producers
/// bound it instead: a node counts backlog() with its pending proposals against
/// NodeOptions::max_pending_proposals, so callbacks slower than commits turn new
/// proposals away with Busy rather than grow this queue. Thread-safe.
class Executor {
 public:
  explicit Executor(const char* thread_name);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  void post(std::function<void()> f);
  /// Takes every completion of `batch` (left empty, capacity kept when possible).
  void post_batch(std::vector<Completion>& batch);
  /// Runs what is queued, then stops. From a completion itself it only asks the thread to
  /// end (it cannot join itself); the destructor, on another thread, completes it.
  void shutdown();
  /// Completions queued or running, not yet finished (relaxed: a hint for admission).
  [[nodiscard]] std::size_t backlog() const { return backlog_.load(std::memory_order_relaxed); }
  /// True on the executor's own thread (inside a completion).
  [[nodiscard]] bool on_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Completion> queue_;
  bool stop_ = false;
  bool idle_ = false;  ///< the thread waits on cv_ (guarded by mu_): only then notify
  std::atomic<std::size_t> backlog_{0};
  std::thread thread_;
};

}  // namespace rlr::node
