// The node's storage thread (private): writes the core's persistence steps while the raft
// thread goes on stepping messages and proposals.
//
// The core allows this (core/ready.h, Ready contract): a Ready's `messages` leave at once,
// its entries and hard state are written, and only then do its `messages_after_persist`
// leave and ack_persisted(persist_mark) reach the core, one Ready after another in the
// order taken. The deterministic simulation drives the core exactly so, with random fsync
// delays. Without a thread of its own the raft thread sat idle for every fsync (0.2-0.7 ms
// here) and a catching-up follower could not decode the next appends while it wrote.
//
// Group commit: every step queued while a write runs goes into the next write, merged
// into one Storage::persist (one batch, one fsync): later entries replace the suffix they
// overlap, the latest hard state wins.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/raft.h"
#include "node/node_metrics.h"
#include "node/trace.h"
#include "storage/storage.h"
#include "transport/transport.h"

namespace rlr::node {

/// One Ready's persistence step.
struct WriteStep {
  std::vector<Entry> entries;                   ///< replace the stored suffix from entries[0]
  std::optional<core::HardState> hard_state;
  std::vector<core::Message> after_persist;     ///< sent once the step is durable
  core::PersistMark mark;                       ///< acknowledged once the step is durable
};

/// Appends `next` to the merged entries `into`: an entry of `next` replaces every entry
/// of `into` at or after its index (§5.3: a later step truncates a conflicting suffix).
/// REQUIRES: next's entries are contiguous and start at most one past into's end.
void merge_entries(std::vector<Entry>& into, std::vector<Entry>&& next);

/// Where a replica hands its persistence steps when it does not write them itself: the
/// storage thread in a node (LogWriter), simulated fsyncs in the simulator. The replica
/// calls it from its own thread only.
class Persister {
 public:
  virtual ~Persister() = default;
  /// Queues a step (also one with nothing to write: its messages and mark still wait for
  /// every step before it). Steps become durable in the order submitted; then their
  /// `after_persist` messages leave and their marks reach the replica
  /// (Replica::persisted), or, when a write fails, the replica hears of it
  /// (Replica::storage_failed) and no later step claims durability.
  virtual void submit(WriteStep step) = 0;
  /// True when no step is queued or being written.
  [[nodiscard]] virtual bool idle() const = 0;
  /// Waits until every submitted step is written (or dropped after a failure), so the
  /// caller may write to storage itself.
  virtual void drain() = 0;
};

/// The storage thread: a Persister that writes on a thread of its own, merging the steps
/// queued during one write into the next (group commit).
class LogWriter final : public Persister {
 public:
  /// Called on the writer thread, in order, once steps are durable: their marks, and how
  /// long the write that made them durable took (0 when they had nothing to write).
  using Durable = std::function<void(std::vector<core::PersistMark>&& marks, std::chrono::nanoseconds took)>;
  /// Called once, on the writer thread, when a write fails; later steps are dropped.
  using Failed = std::function<void(const Status& why)>;

  /// `histograms` (may be null) records each write's duration and size; `tracer` (may be
  /// null) when each write's entries were synced.
  LogWriter(storage::Storage& storage, transport::Transport& transport, Durable durable,
            Failed failed, NodeHistograms* histograms = nullptr, Tracer* tracer = nullptr);
  ~LogWriter() override;
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  void submit(WriteStep step) override;
  /// (From the one thread that submits: no other thread submits, so the answer cannot
  /// turn false behind its back.)
  [[nodiscard]] bool idle() const override;
  void drain() override;
  /// Writes what is queued, then ends the thread. Idempotent.
  void stop();

  /// Steps written in one Storage::persist, summed, and the number of writes (for tests
  /// and tuning).
  [[nodiscard]] std::uint64_t steps_written() const;
  [[nodiscard]] std::uint64_t writes() const;

 private:
  void run();

  storage::Storage& storage_;
  transport::Transport& transport_;
  Durable durable_;
  Failed failed_;
  NodeHistograms* const histograms_;
  Tracer* const tracer_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::vector<WriteStep> queue_;  // guarded by mu_
  bool busy_ = false;             // a batch is being written (guarded by mu_)
  bool waiting_ = false;          // the thread sleeps on work_cv_ (guarded by mu_)
  bool stop_ = false;             // guarded by mu_
  bool broken_ = false;           // a write failed (writer thread only)
  std::uint64_t steps_written_ = 0;  // guarded by mu_
  std::uint64_t writes_ = 0;         // guarded by mu_
  std::thread thread_;
};

}  // namespace rlr::node
