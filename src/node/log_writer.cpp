#include "node/log_writer.h"

#include <cassert>
#include <utility>

#include "util/thread_name.h"

namespace rlr::node {

void merge_entries(std::vector<Entry>& into, std::vector<Entry>&& next) {
  if (next.empty()) return;
  if (!into.empty()) {
    const std::uint64_t first = into.front().index.value();
    const std::uint64_t start = next.front().index.value();
    assert(start <= into.back().index.value() + 1);
    // Drop the suffix the later step replaces (all of `into` when it starts at or before
    // it). Elements are moved in rather than the vector taken over, so `into` keeps its
    // capacity.
    into.resize(start > first ? static_cast<std::size_t>(start - first) : 0);
  }
  into.insert(into.end(), std::make_move_iterator(next.begin()), std::make_move_iterator(next.end()));
}

LogWriter::LogWriter(storage::Storage& storage, transport::Transport& transport, Durable durable,
                     Failed failed, NodeHistograms* histograms, Tracer* tracer)
    : storage_(storage),
      transport_(transport),
      durable_(std::move(durable)),
      failed_(std::move(failed)),
      histograms_(histograms),
      tracer_(tracer),
      thread_([this] {
        util::set_thread_name("rlr-log-writer");
        run();
      }) {}

LogWriter::~LogWriter() { stop(); }

void LogWriter::submit(WriteStep step) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(step));
    wake = waiting_;
  }
  if (wake) work_cv_.notify_one();
}

bool LogWriter::idle() const {
  std::lock_guard lock(mu_);
  return queue_.empty() && !busy_;
}

void LogWriter::drain() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

void LogWriter::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::uint64_t LogWriter::steps_written() const {
  std::lock_guard lock(mu_);
  return steps_written_;
}

std::uint64_t LogWriter::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

void LogWriter::run() {
  std::vector<WriteStep> batch;
  std::vector<Entry> entries;
  std::vector<core::Message> out;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      while (queue_.empty() && !stop_) {
        waiting_ = true;
        work_cv_.wait(lock);
        waiting_ = false;
      }
      if (queue_.empty()) break;  // stopping, and everything submitted is written
      batch.swap(queue_);
      busy_ = true;
    }
    bool wrote = false;
    if (!broken_) {
      std::optional<core::HardState> hard_state;
      std::vector<core::PersistMark> marks;
      marks.reserve(batch.size());
      // One step (the common case when writes keep up) is written from its own vector;
      // several are merged into `entries`, whose capacity is kept from write to write
      // (a fresh multi-megabyte vector per write cost a page fault every 4 KiB).
      std::size_t with_entries = 0;
      for (const WriteStep& s : batch) with_entries += s.entries.empty() ? 0 : 1;
      std::vector<Entry>* to_write = &entries;
      for (WriteStep& s : batch) {
        if (with_entries == 1 && !s.entries.empty()) {
          to_write = &s.entries;
        } else {
          merge_entries(entries, std::move(s.entries));
        }
        if (s.hard_state) hard_state = s.hard_state;  // each is whole: the latest wins
        marks.push_back(s.mark);
        for (core::Message& m : s.after_persist) out.push_back(std::move(m));
      }
      Status st = Status::ok();
      std::chrono::nanoseconds took{0};
      if (!to_write->empty() || hard_state) {
        storage::PersistRequest req;
        req.entries = *to_write;
        req.hard_state = hard_state;
        const auto started = std::chrono::steady_clock::now();
        st = storage_.persist(req);
        took = std::chrono::steady_clock::now() - started;
        if (st) record_write(histograms_, took, *to_write);
        if (st && tracer_ != nullptr && !to_write->empty()) {
          tracer_->synced(to_write->front().index, to_write->back().index);
        }
        wrote = true;
      }
      if (st) {
        // Votes and acknowledgements leave the moment they are true.
        if (!out.empty()) transport_.send(out);
        durable_(std::move(marks), took);
      } else {
        // Memory is ahead of disk from here on; nothing later may claim durability.
        broken_ = true;
        failed_(st);
      }
      entries.clear();
      out.clear();
    }
    const std::size_t n = batch.size();
    batch.clear();
    {
      std::lock_guard lock(mu_);
      busy_ = false;
      steps_written_ += n;
      if (wrote) ++writes_;
    }
    idle_cv_.notify_all();
  }
}

}  // namespace rlr::node
