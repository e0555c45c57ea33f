#include "node/executor.h"

#include <utility>

#include "util/thread_name.h"

namespace rlr::node {

Executor::Executor(const char* thread_name)
    : thread_([this, thread_name] {
        util::set_thread_name(thread_name);
        run();
      }) {}

Executor::~Executor() { shutdown(); }

void Executor::post(std::function<void()> f) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Completion{{}, ProposeResult{}, std::move(f)});
    backlog_.fetch_add(1, std::memory_order_relaxed);
    wake = std::exchange(idle_, false);
  }
  if (wake) cv_.notify_one();
}

void Executor::post_batch(std::vector<Completion>& batch) {
  if (batch.empty()) return;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    backlog_.fetch_add(batch.size(), std::memory_order_relaxed);
    if (queue_.empty()) {
      queue_.swap(batch);  // the executor's spent vector comes back: capacity is reused
    } else {
      for (auto& c : batch) queue_.push_back(std::move(c));
    }
    wake = std::exchange(idle_, false);
  }
  batch.clear();
  if (wake) cv_.notify_one();
}

void Executor::shutdown() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (on_thread()) return;  // a completion called stop(): ~Executor joins later
  if (thread_.joinable()) thread_.join();
}

void Executor::run() {
  std::vector<Completion> batch;
  std::unique_lock lock(mu_);
  for (;;) {
    while (!stop_ && queue_.empty()) {
      idle_ = true;
      cv_.wait(lock);
      idle_ = false;
    }
    if (queue_.empty() && stop_) return;
    batch.swap(queue_);
    lock.unlock();
    for (auto& c : batch) c.run();
    backlog_.fetch_sub(batch.size(), std::memory_order_relaxed);
    batch.clear();
    lock.lock();
  }
}

}  // namespace rlr::node
