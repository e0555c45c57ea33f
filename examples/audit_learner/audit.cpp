#include "audit_learner/audit.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "matching_engine/matching_engine.h"

namespace rlr::audit {

void SqliteCloser::operator()(sqlite3* db) const { sqlite3_close_v2(db); }
void StmtFinalizer::operator()(sqlite3_stmt* st) const { sqlite3_finalize(st); }

void RowDigest::add(const Row& r) {
  constexpr std::uint64_t kPrime = 0x100000001b3ULL;
  auto mix = [&](std::uint8_t b) { h_ = (h_ ^ b) * kPrime; };
  auto mix64 = [&](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) mix(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  mix64(r.idx);
  mix64(r.pos);
  mix64(r.payload.size());
  for (char c : r.payload) mix(static_cast<std::uint8_t>(c));
  ++n_;
}

// ---------------------------------------------------------------------------------
// AuditDb
// ---------------------------------------------------------------------------------

struct AuditDb::Impl {
  std::mutex mu;
  std::unique_ptr<sqlite3, SqliteCloser> db;  // declared first: closed last
  StmtPtr insert;
  StmtPtr raise_acked;
  std::string path;

  Status error(std::string_view what) const {
    return {ErrorCode::IoError,
            fmt::format("audit db {}: {}: {}", path, what, db ? sqlite3_errmsg(db.get()) : "no handle")};
  }
  Status exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db.get(), sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      Status s{ErrorCode::IoError,
               fmt::format("audit db {}: {}: {}", path, sql, msg != nullptr ? msg : "?")};
      sqlite3_free(msg);
      return s;
    }
    return Status::ok();
  }
  Result<StmtPtr> prepare(const char* sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql, -1, &st, nullptr) != SQLITE_OK) return error(sql);
    return StmtPtr(st);
  }
};

AuditDb::AuditDb(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AuditDb::~AuditDb() = default;

Result<std::unique_ptr<AuditDb>> AuditDb::open(const std::string& path, bool read_only) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  sqlite3* raw = nullptr;
  const int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  impl->db.reset(raw);
  if (rc != SQLITE_OK) return impl->error("open");
  sqlite3_busy_timeout(raw, 5000);
  if (!read_only) {
    for (const char* sql : {
             "PRAGMA journal_mode=WAL",
             "PRAGMA synchronous=FULL",
             "CREATE TABLE IF NOT EXISTS order_events("
             " idx INTEGER NOT NULL, pos INTEGER NOT NULL, payload TEXT NOT NULL,"
             " PRIMARY KEY (idx, pos)) WITHOUT ROWID",
             "CREATE TABLE IF NOT EXISTS audit_meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
         }) {
      if (Status s = impl->exec(sql); !s) return s;
    }
    auto insert = impl->prepare("INSERT OR IGNORE INTO order_events(idx, pos, payload) VALUES (?, ?, ?)");
    if (!insert) return insert.status();
    impl->insert = std::move(insert).value();
    auto raise = impl->prepare(
        "INSERT INTO audit_meta(k, v) VALUES ('acked_through', ?)"
        " ON CONFLICT(k) DO UPDATE SET v = max(v, excluded.v)");
    if (!raise) return raise.status();
    impl->raise_acked = std::move(raise).value();
  }
  return std::make_unique<AuditDb>(std::move(impl));
}

Result<std::uint64_t> AuditDb::write_batch(const std::vector<Row>& rows, LogIndex acked_through) {
  std::lock_guard lock(impl_->mu);
  if (!impl_->insert) return Status{ErrorCode::InvalidArgument, "audit db opened read-only"};
  if (Status s = impl_->exec("BEGIN IMMEDIATE"); !s) return s;
  std::uint64_t inserted = 0;
  const auto fail = [&](std::string_view what) {
    Status s = impl_->error(what);
    sqlite3_reset(impl_->insert.get());
    sqlite3_reset(impl_->raise_acked.get());
    (void)impl_->exec("ROLLBACK");
    return s;
  };
  sqlite3_stmt* ins = impl_->insert.get();
  for (const Row& r : rows) {
    // SQLITE_STATIC (a null destructor): the payload outlives the step.
    if (sqlite3_bind_int64(ins, 1, static_cast<sqlite3_int64>(r.idx)) != SQLITE_OK ||
        sqlite3_bind_int64(ins, 2, static_cast<sqlite3_int64>(r.pos)) != SQLITE_OK ||
        sqlite3_bind_text(ins, 3, r.payload.data(), static_cast<int>(r.payload.size()), nullptr) !=
            SQLITE_OK) {
      return fail("bind");
    }
    if (sqlite3_step(ins) != SQLITE_DONE) return fail("insert");
    inserted += static_cast<std::uint64_t>(sqlite3_changes(impl_->db.get()));
    sqlite3_reset(ins);
  }
  if (acked_through.value() > 0) {
    sqlite3_stmt* up = impl_->raise_acked.get();
    if (sqlite3_bind_int64(up, 1, static_cast<sqlite3_int64>(acked_through.value())) != SQLITE_OK ||
        sqlite3_step(up) != SQLITE_DONE) {
      return fail("acked_through");
    }
    sqlite3_reset(up);
  }
  if (Status s = impl_->exec("COMMIT"); !s) {
    (void)impl_->exec("ROLLBACK");
    return s;
  }
  return inserted;
}

Result<LogIndex> AuditDb::acked_through() {
  std::lock_guard lock(impl_->mu);
  auto st = impl_->prepare("SELECT v FROM audit_meta WHERE k = 'acked_through'");
  if (!st) {
    // A read-only open of a database the writer has not created the table in yet.
    return LogIndex{};
  }
  const int rc = sqlite3_step(st.value().get());
  if (rc == SQLITE_ROW) return LogIndex{static_cast<std::uint64_t>(sqlite3_column_int64(st.value().get(), 0))};
  if (rc == SQLITE_DONE) return LogIndex{};
  return impl_->error("read acked_through");
}

Result<std::unique_ptr<RowCursor>> AuditDb::rows(LogIndex through) {
  std::unique_lock lock(impl_->mu);
  auto st = impl_->prepare("SELECT idx, pos, payload FROM order_events WHERE idx <= ? ORDER BY idx, pos");
  if (!st) return st.status();
  if (sqlite3_bind_int64(st.value().get(), 1, static_cast<sqlite3_int64>(through.value())) != SQLITE_OK) {
    return impl_->error("bind");
  }
  return std::make_unique<RowCursor>(std::move(lock), std::move(st).value());
}

Result<AuditDb::Summary> AuditDb::summarize(LogIndex through) {
  auto cursor = rows(through);
  if (!cursor) return cursor.status();
  RowDigest d;
  while (true) {
    auto r = cursor.value()->next();
    if (!r) return r.status();
    if (!r.value()) break;
    d.add(*r.value());
  }
  return Summary{d.count(), d.value()};
}

Result<std::optional<Row>> RowCursor::next() {
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_DONE) return std::optional<Row>{};
  if (rc != SQLITE_ROW) {
    return Status{ErrorCode::IoError,
                  fmt::format("audit db: reading rows: {}", sqlite3_errstr(rc))};
  }
  Row r;
  r.idx = static_cast<std::uint64_t>(sqlite3_column_int64(stmt_.get(), 0));
  r.pos = static_cast<std::uint32_t>(sqlite3_column_int64(stmt_.get(), 1));
  const auto* text = sqlite3_column_text(stmt_.get(), 2);
  const int len = sqlite3_column_bytes(stmt_.get(), 2);
  if (text != nullptr) r.payload.assign(reinterpret_cast<const char*>(text), static_cast<std::size_t>(len));
  return std::optional<Row>(std::move(r));
}

// ---------------------------------------------------------------------------------
// AuditSink
// ---------------------------------------------------------------------------------

AuditSink::AuditSink(std::unique_ptr<AuditDb> db, Options options)
    : db_(std::move(db)), options_(options) {
  if (options_.batch_outputs_max == 0) options_.batch_outputs_max = 1;
  if (options_.queue_outputs_max == 0) options_.queue_outputs_max = 1;
  writer_ = std::thread([this] { run(); });
}

AuditSink::~AuditSink() { stop(); }

void AuditSink::deliver(const Output& output) {
  std::unique_lock lock(mu_);
  if (any_key_ && output.key <= last_key_) return;  // already received
  cv_.wait(lock, [&] { return stopping_ || queue_.size() < options_.queue_outputs_max; });
  if (stopping_) return;
  last_key_ = output.key;
  any_key_ = true;
  Item item;
  item.index = output.key.index.value();
  if (output.topic == me::kTopicOrderEvent) {
    item.row = Row{item.index, output.key.position, std::string(output.payload.as_string_view())};
  }
  queue_.push_back(std::move(item));
  ++enqueued_;
  cv_.notify_all();
}

void AuditSink::note_applied(LogIndex index, std::uint64_t outputs) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  Item item;
  item.index = index.value();
  item.note = true;
  item.outputs = outputs;
  queue_.push_back(std::move(item));
  ++enqueued_;
  cv_.notify_all();
}

bool AuditSink::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const std::uint64_t target = enqueued_;
  return done_cv_.wait_for(lock, timeout, [&] { return committed_ >= target; });
}

Status AuditSink::health() const {
  std::lock_guard lock(mu_);
  return health_;
}

void AuditSink::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void AuditSink::set_progress(std::function<LogIndex()> progress) {
  std::lock_guard lock(mu_);
  progress_ = std::move(progress);
}

void AuditSink::run() {
  std::vector<Item> batch;
  std::vector<Row> rows;
  while (true) {
    batch.clear();
    rows.clear();
    // The runner's position, read before taking the queue: every entry at or below it
    // has been applied, so its note is already queued.
    std::uint64_t progress = 0;
    bool drained = false;
    {
      std::unique_lock lock(mu_);
      const auto moved = [&] {
        return progress_ && progress_().value() > acked_.load() && notes_.empty();
      };
      // Idle: wake up now and then to let the acknowledgement follow internal entries.
      cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;  // everything is committed
      if (queue_.empty() && !moved()) continue;
      if (progress_) progress = progress_().value();
      std::size_t outputs = 0;
      while (!queue_.empty() && outputs < options_.batch_outputs_max) {
        if (!queue_.front().note) ++outputs;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      drained = queue_.empty();
    }
    cv_.notify_all();  // room for deliver()
    // What this batch acknowledges once committed: count its outputs per entry, then
    // walk the notes in order while each entry has all its outputs committed.
    std::uint64_t acked = acked_.load();
    for (Item& item : batch) {
      if (item.note) {
        notes_.emplace_back(item.index, item.outputs);
      } else {
        ++committed_outputs_[item.index];
        if (item.row) rows.push_back(std::move(*item.row));
      }
    }
    while (!notes_.empty()) {
      const auto [index, expected] = notes_.front();
      auto it = committed_outputs_.find(index);
      const std::uint64_t have = it == committed_outputs_.end() ? 0 : it->second;
      if (have < expected) break;
      acked = std::max(acked, index);
      if (it != committed_outputs_.end()) committed_outputs_.erase(it);
      notes_.pop_front();
    }
    if (drained && notes_.empty()) acked = std::max(acked, progress);
    if (rows.empty() && acked == acked_.load() && batch.empty()) continue;
    // Retry a failed transaction until it commits (or the sink stops): the rows must
    // not be lost, and nothing above them may be acknowledged first.
    while (true) {
      auto r = db_->write_batch(rows, LogIndex{acked});
      std::unique_lock lock(mu_);
      if (r) {
        health_ = Status::ok();
        rows_written_ += r.value();
        break;
      }
      health_ = r.status();
      std::fprintf(stderr, "[audit] %s (retrying)\n", r.status().to_string().c_str());
      if (cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; })) return;
    }
    acked_.store(acked);
    {
      std::lock_guard lock(mu_);
      committed_ += batch.size();
    }
    done_cv_.notify_all();
  }
}

// ---------------------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------------------

std::string VerifyReport::to_text() const {
  return fmt::format(
      "status={}\nthrough={}\nlog_rows={}\ndb_rows={}\nlog_digest={:016x}\ndb_digest={:016x}\n"
      "first_difference={}\n",
      ok ? "ok" : "MISMATCH", through.value(), log_rows, db_rows, log_digest, db_digest,
      first_difference.empty() ? "none" : first_difference);
}

namespace {

std::string describe(const Row& r) { return fmt::format("{}.{} \"{}\"", r.idx, r.pos, r.payload); }

std::pair<std::uint64_t, std::uint32_t> key_of(const Row& r) { return {r.idx, r.pos}; }

}  // namespace

Result<VerifyReport> verify(const ReplayFn& replay, AuditDb& db, LogIndex through) {
  VerifyReport report;
  report.through = through;
  RowDigest log_digest;
  Status db_error;
  {
    auto cursor = db.rows(through);
    if (!cursor) return cursor.status();
    std::optional<Row> db_row;  // the table's next row, not yet matched
    bool db_done = false;
    const auto pull = [&] {
      if (db_row || db_done || !db_error.is_ok()) return;
      auto r = cursor.value()->next();
      if (!r) {
        db_error = r.status();
        return;
      }
      db_row = std::move(r).value();
      if (!db_row) db_done = true;
    };
    // Walks the recomputed rows and the table's rows together, in key order.
    const auto compare = [&](const Row& want) {
      if (!report.first_difference.empty()) return;
      pull();
      if (!db_row) {
        report.first_difference = fmt::format("missing from the table: {}", describe(want));
      } else if (key_of(*db_row) < key_of(want)) {
        report.first_difference = fmt::format("not in the log: {}", describe(*db_row));
      } else if (key_of(want) < key_of(*db_row)) {
        report.first_difference = fmt::format("missing from the table: {}", describe(want));
      } else if (db_row->payload != want.payload) {
        report.first_difference = fmt::format("row {}.{} differs: table \"{}\", log \"{}\"", want.idx,
                                              want.pos, db_row->payload, want.payload);
      } else {
        db_row.reset();
      }
    };
    me::MatchingEngine fresh([&](const ApplyContext& ctx, const std::vector<me::Event>& events) {
      if (ctx.index > through) return;
      for (std::size_t p = 0; p < events.size(); ++p) {
        if (events[p].topic != me::kTopicOrderEvent) continue;
        const Row row{ctx.index.value(), static_cast<std::uint32_t>(p), events[p].payload};
        log_digest.add(row);
        compare(row);
      }
    });
    if (through.value() > 0) {
      if (Status s = replay(fresh, through); !s) return s;
    }
    if (report.first_difference.empty()) {
      pull();
      if (db_row) report.first_difference = fmt::format("not in the log: {}", describe(*db_row));
    }
  }  // releases the cursor (and the database's lock)
  if (!db_error.is_ok()) return db_error;
  auto summary = db.summarize(through);
  if (!summary) return summary.status();
  report.log_rows = log_digest.count();
  report.log_digest = log_digest.value();
  report.db_rows = summary.value().rows;
  report.db_digest = summary.value().digest;
  report.ok = report.first_difference.empty() && report.log_rows == report.db_rows &&
              report.log_digest == report.db_digest;
  return report;
}

Result<VerifyReport> verify(Node& node, AuditDb& db) {
  auto through = db.acked_through();
  if (!through) return through.status();
  const ClusterInfo info = node.cluster_info();
  if (info.first_index.value() > 1) {
    return Status{ErrorCode::Compacted,
                  fmt::format("the log starts at index {}; the audit replays from index 1",
                              info.first_index.value())};
  }
  const ReplayFn replay = [&node](RoleAwareStateMachine& sm, LogIndex to) -> Status {
    auto r = rlr::replay(node, sm, LogIndex{1}, to);
    return r ? Status::ok() : r.status();
  };
  return verify(replay, db, through.value());
}

}  // namespace rlr::audit
