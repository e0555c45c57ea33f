// The audit learner: a learner whose egress is `persist` writes every order event of the
// matching engine to SQLite, and proves the table matches the log.
//
//  * AuditDb — the table order_events(idx, pos, payload), PRIMARY KEY (idx, pos): the
//    output's idempotency key, so a re-delivered output is a no-op (INSERT OR IGNORE).
//    audit_meta('acked_through') says through which log index every order event is in
//    the table; it is written in the same transaction as the rows.
//  * AuditSink — the EgressSink: deliver() only queues (it runs on the apply thread); a
//    writer thread commits the queue in batched transactions and then acknowledges
//    (EgressSink::acknowledged) the highest index whose outputs are all committed.
//  * verify() — replays the log [1, through] into a fresh matching engine with
//    rlr::replay, recomputes the order events, and compares them with the table: row
//    count, digest, and the first differing row.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apps/apps.h"
#include "rlr/node.h"
#include "rlr/state_machine.h"

struct sqlite3;
struct sqlite3_stmt;

namespace rlr::audit {

/// One persisted order event.
struct Row {
  std::uint64_t idx = 0;
  std::uint32_t pos = 0;
  std::string payload;
  friend bool operator==(const Row&, const Row&) = default;
};

/// FNV-1a (64-bit) over rows in (idx, pos) order: idx, pos, payload length, payload.
class RowDigest {
 public:
  void add(const Row& r);
  [[nodiscard]] std::uint64_t value() const { return h_; }
  [[nodiscard]] std::uint64_t count() const { return n_; }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
  std::uint64_t n_ = 0;
};

struct SqliteCloser {
  void operator()(sqlite3* db) const;
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* st) const;
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

class RowCursor;

class AuditDb {
 public:
  /// Opens (creating the schema unless read_only) the database at `path`; ":memory:" for
  /// a private in-memory one. Errors: IoError.
  [[nodiscard]] static Result<std::unique_ptr<AuditDb>> open(const std::string& path,
                                                             bool read_only = false);

  /// One transaction: inserts the rows (existing keys are left alone) and raises
  /// acked_through to `acked_through` (never lowers it; 0 leaves it alone). Returns how
  /// many rows were new.
  [[nodiscard]] Result<std::uint64_t> write_batch(const std::vector<Row>& rows,
                                                  LogIndex acked_through);
  [[nodiscard]] Result<LogIndex> acked_through();

  struct Summary {
    std::uint64_t rows = 0;
    std::uint64_t digest = 0;
  };
  /// Count and digest of the rows with idx <= through.
  [[nodiscard]] Result<Summary> summarize(LogIndex through);
  /// The rows with idx <= through in key order. The cursor holds this database's lock.
  [[nodiscard]] Result<std::unique_ptr<RowCursor>> rows(LogIndex through);

  struct Impl;
  explicit AuditDb(std::unique_ptr<Impl> impl);
  ~AuditDb();
  AuditDb(const AuditDb&) = delete;
  AuditDb& operator=(const AuditDb&) = delete;

 private:
  std::unique_ptr<Impl> impl_;
};

class RowCursor {
 public:
  RowCursor(std::unique_lock<std::mutex> lock, StmtPtr stmt)
      : lock_(std::move(lock)), stmt_(std::move(stmt)) {}
  /// The next row; nullopt at the end. Errors: IoError.
  [[nodiscard]] Result<std::optional<Row>> next();

 private:
  std::unique_lock<std::mutex> lock_;
  StmtPtr stmt_;
};

/// Writes the order events it receives to an AuditDb in batched transactions.
class AuditSink final : public EgressSink {
 public:
  struct Options {
    std::size_t batch_outputs_max = 2000;  ///< outputs per transaction at most
    std::size_t queue_outputs_max = 1U << 20;  ///< beyond: deliver() waits (backpressure)
  };
  AuditSink(std::unique_ptr<AuditDb> db, Options options);
  ~AuditSink() override;
  AuditSink(const AuditSink&) = delete;
  AuditSink& operator=(const AuditSink&) = delete;

  /// Queues the output (an order_event becomes a row; others are only counted).
  /// A key at or below the last one received is a duplicate and is ignored.
  void deliver(const Output& output) override;
  /// Every entry through this index has all its outputs committed to the database.
  [[nodiscard]] LogIndex acknowledged() const override { return LogIndex{acked_.load()}; }

  /// The state machine reports, after applying `index`, how many outputs it emitted
  /// through an open gate (0 for a replayed entry): the entry is acknowledged once that
  /// many of its outputs are committed (at once when 0).
  void note_applied(LogIndex index, std::uint64_t outputs);
  /// The apply runner's position (ApplyRunner::applied), which also moves over RLR's
  /// internal entries: once every noted entry is complete, the acknowledgement follows it
  /// (so it does not stall at the last order while no-ops and watermarks commit).
  void set_progress(std::function<LogIndex()> progress);
  /// Waits until everything queued so far is committed. False on timeout.
  [[nodiscard]] bool flush(std::chrono::milliseconds timeout);
  /// The last database error (Ok when the last transaction committed).
  [[nodiscard]] Status health() const;
  [[nodiscard]] std::uint64_t rows_written() const { return rows_written_.load(); }
  /// Commits what is queued and stops the writer. Idempotent.
  void stop();

 private:
  struct Item {
    std::uint64_t index = 0;
    bool note = false;           ///< a note_applied() marker, else an output
    std::uint64_t outputs = 0;   ///< note: outputs expected for the entry
    std::optional<Row> row;      ///< output: the row to store, when an order event
  };
  void run();

  std::unique_ptr<AuditDb> db_;
  Options options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // queue_ grew, or stopping
  std::condition_variable done_cv_;  // a batch committed
  std::deque<Item> queue_;           // guarded by mu_
  std::uint64_t enqueued_ = 0;       // items ever queued; guarded by mu_
  std::uint64_t committed_ = 0;      // items ever committed; guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  Status health_;                    // guarded by mu_
  OutputKey last_key_;               // guarded by mu_
  bool any_key_ = false;             // guarded by mu_
  std::function<LogIndex()> progress_;  // guarded by mu_

  // Writer thread only.
  std::map<std::uint64_t, std::uint64_t> committed_outputs_;  // index -> outputs committed
  std::deque<std::pair<std::uint64_t, std::uint64_t>> notes_;  // (index, outputs expected)

  std::atomic<std::uint64_t> acked_{0};
  std::atomic<std::uint64_t> rows_written_{0};
  std::thread writer_;
};

struct VerifyReport {
  bool ok = false;
  LogIndex through;             ///< entries [1, through] were compared
  std::uint64_t log_rows = 0;   ///< order events recomputed from the log
  std::uint64_t db_rows = 0;    ///< rows in the table with idx <= through
  std::uint64_t log_digest = 0;
  std::uint64_t db_digest = 0;
  std::string first_difference;  ///< empty when none
  /// "status=ok through=... rows=... digest=..." lines (the report file's content).
  [[nodiscard]] std::string to_text() const;
};

/// Replays entries [1, through] into `sm` (e.g. with rlr::replay).
using ReplayFn = std::function<Status(RoleAwareStateMachine& sm, LogIndex through)>;

/// Recomputes the order events of [1, through] with `replay` into a fresh matching engine
/// and compares them with the table's rows with idx <= through.
[[nodiscard]] Result<VerifyReport> verify(const ReplayFn& replay, AuditDb& db, LogIndex through);
/// verify() against `node`'s log through the table's acked_through.
/// Errors: Compacted when the log no longer starts at index 1.
[[nodiscard]] Result<VerifyReport> verify(Node& node, AuditDb& db);

/// The "audit" rlr-node app. Settings ([app] table):
///   db                  SQLite file (default <data_dir>/audit.sqlite)
///   report              verification report file (default <data_dir>/audit-verify.txt)
///   verify_interval_ms  how often to verify what was acknowledged since the last run
///                       (default 1000; 0: never)
///   batch_outputs       outputs per transaction at most (default 2000)
///   digest_interval     entries between digest checkpoints (default 100: use the
///                       voters' value so rlr-ctl verify can compare them)
/// Its egress is always `persist`, whatever the node's egress setting.
[[nodiscard]] std::unique_ptr<apps::App> make_app();

}  // namespace rlr::audit
