// The audit learner with a fake egress gate and an in-memory SQLite database: idempotent
// batched writes, acknowledgement, and verification against a replayed log.
#include <catch2/catch.hpp>

#include <utility>  // before Boost.Asio

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <boost/asio.hpp>

#include <fmt/format.h>

#include "audit_learner/audit.h"
#include "matching_engine/matching_engine.h"

using rlr::LogIndex;
using rlr::audit::AuditDb;
using rlr::audit::AuditSink;
using rlr::audit::Row;

namespace {

std::unique_ptr<AuditDb> memory_db() {
  auto db = AuditDb::open(":memory:");
  REQUIRE(db);
  return std::move(db).value();
}

rlr::Output output(std::uint64_t idx, std::uint32_t pos, std::string_view topic, std::string_view payload) {
  return rlr::Output{rlr::OutputKey{LogIndex{idx}, pos}, std::string(topic), rlr::Bytes::copy_of(payload)};
}

constexpr auto kWait = std::chrono::seconds(10);

}  // namespace

TEST_CASE("audit db: writes are idempotent by (idx, pos); acked_through only rises", "[audit][db]") {
  auto db = memory_db();
  const std::vector<Row> rows = {{1, 0, "ME1 ACCEPTED 1 BUY XYZ 100 5"}, {2, 0, "ME1 ACCEPTED 2 SELL XYZ 100 5"},
                                 {2, 2, "ME1 DONE 1"}};
  auto first = db->write_batch(rows, LogIndex{2});
  REQUIRE(first);
  CHECK(first.value() == 3);
  auto again = db->write_batch(rows, LogIndex{1});
  REQUIRE(again);
  CHECK(again.value() == 0);
  CHECK(db->acked_through().value() == LogIndex{2});
  auto s = db->summarize(LogIndex{2});
  REQUIRE(s);
  CHECK(s.value().rows == 3);
  rlr::audit::RowDigest d;
  for (const auto& r : rows) d.add(r);
  CHECK(s.value().digest == d.value());
  CHECK(db->summarize(LogIndex{1}).value().rows == 1);
}

TEST_CASE("audit sink: stores order events, counts the rest, acknowledges complete entries", "[audit][sink]") {
  auto db_owner = memory_db();
  AuditDb* db = db_owner.get();
  AuditSink sink(std::move(db_owner), AuditSink::Options{2, 100});
  // Entry 1: two outputs, one of them an order event.
  sink.deliver(output(1, 0, "order_event", "ME1 ACCEPTED 1 BUY XYZ 100 5"));
  sink.deliver(output(1, 1, "match_result", "ME1 FILL XYZ 9 1 100 5"));
  sink.note_applied(LogIndex{1}, 2);
  // Entry 2: no outputs at all.
  sink.note_applied(LogIndex{2}, 0);
  // Entry 3: expects two, only one arrives.
  sink.deliver(output(3, 0, "order_event", "ME1 CANCELLED 7 3"));
  sink.note_applied(LogIndex{3}, 2);
  REQUIRE(sink.flush(kWait));
  CHECK(sink.health().is_ok());
  CHECK(sink.acknowledged() == LogIndex{2});
  // A duplicate (re-emitted) output is ignored; the missing one completes entry 3.
  sink.deliver(output(1, 0, "order_event", "ME1 ACCEPTED 1 BUY XYZ 100 5"));
  sink.deliver(output(3, 1, "order_event", "ME1 DONE 8"));
  REQUIRE(sink.flush(kWait));
  CHECK(sink.acknowledged() == LogIndex{3});
  CHECK(sink.rows_written() == 3);
  // RLR's internal entries (4, 5) never reach the state machine; the runner's position
  // carries the acknowledgement over them once every noted entry is complete.
  std::atomic<std::uint64_t> runner{5};
  sink.set_progress([&] { return LogIndex{runner.load()}; });
  for (int i = 0; i < 100 && sink.acknowledged() < LogIndex{5}; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(sink.acknowledged() == LogIndex{5});
  // ...but not over an entry whose outputs are still missing.
  sink.note_applied(LogIndex{6}, 1);
  runner = 7;
  REQUIRE(sink.flush(kWait));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(sink.acknowledged() == LogIndex{5});
  sink.deliver(output(6, 0, "order_event", "ME1 DONE 9"));
  for (int i = 0; i < 100 && sink.acknowledged() < LogIndex{7}; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(sink.acknowledged() == LogIndex{7});
  sink.stop();
  CHECK(db->acked_through().value() == LogIndex{7});
  CHECK(db->summarize(LogIndex{7}).value().rows == 4);
}

namespace {

/// Stands in for the node's egress gate with EgressMode::Persist: keys every output in
/// emit order and hands it to the sink.
class PersistGate final : public rlr::Egress {
 public:
  PersistGate(rlr::EgressSink& sink, LogIndex index) : sink_(sink), index_(index) {}
  void emit(std::string_view topic, rlr::Bytes payload) override {
    sink_.deliver(rlr::Output{rlr::OutputKey{index_, position_++}, std::string(topic), std::move(payload)});
  }

 private:
  rlr::EgressSink& sink_;
  LogIndex index_;
  std::uint32_t position_ = 0;
};

class NullEgress final : public rlr::Egress {
 public:
  void emit(std::string_view, rlr::Bytes) override {}
};

/// A seeded stream of order commands (with some malformed ones and cancels).
std::vector<rlr::Entry> order_log(std::uint64_t seed, int n) {
  std::mt19937_64 rng(seed);
  std::vector<rlr::Entry> log;
  for (int i = 1; i <= n; ++i) {
    std::string cmd;
    const auto r = rng() % 100;
    if (r < 20) {
      cmd = fmt::format("ME1 CXL {}", 1 + rng() % static_cast<std::uint64_t>(i));
    } else if (r < 23) {
      cmd = "ME1 NEW junk";
    } else {
      cmd = fmt::format("ME1 NEW {} {} XYZ {} {}", i, rng() % 2 ? "BUY" : "SELL", 95 + rng() % 11, 1 + rng() % 40);
    }
    log.push_back(rlr::Entry{LogIndex{static_cast<std::uint64_t>(i)}, rlr::Term{1}, rlr::EntryKind::Normal,
                             rlr::Bytes::copy_of(cmd)});
  }
  return log;
}

/// Applies the log to a learner: matching engine -> persist gate -> audit sink.
void run_learner(const std::vector<rlr::Entry>& log, AuditSink& sink) {
  rlr::me::MatchingEngine sm([&](const rlr::ApplyContext& ctx, const std::vector<rlr::me::Event>& ev) {
    sink.note_applied(ctx.index, ctx.replay ? 0 : ev.size());
  });
  for (const auto& e : log) {
    rlr::ApplyContext ctx;
    ctx.index = e.index;
    ctx.term = e.term;
    ctx.role = rlr::Role::Learner;
    PersistGate gate(sink, e.index);
    sm.apply(e, ctx, gate);
  }
}

rlr::audit::ReplayFn replay_of(const std::vector<rlr::Entry>& log) {
  return [&log](rlr::RoleAwareStateMachine& sm, LogIndex through) -> rlr::Status {
    NullEgress egress;
    for (const auto& e : log) {
      if (e.index > through) break;
      rlr::ApplyContext ctx;
      ctx.index = e.index;
      ctx.term = e.term;
      ctx.replay = true;
      sm.apply(e, ctx, egress);
    }
    return rlr::Status::ok();
  };
}

}  // namespace

TEST_CASE("audit: a learner's table verifies against the replayed log", "[audit][verify]") {
  const auto log = order_log(5, 2000);
  auto db_owner = memory_db();
  AuditDb* db = db_owner.get();
  AuditSink sink(std::move(db_owner), AuditSink::Options{500, 1000});
  run_learner(log, sink);
  REQUIRE(sink.flush(kWait));
  CHECK(sink.acknowledged() == LogIndex{2000});
  sink.stop();
  auto report = rlr::audit::verify(replay_of(log), *db, db->acked_through().value());
  REQUIRE(report);
  INFO(report.value().to_text());
  CHECK(report.value().ok);
  CHECK(report.value().through == LogIndex{2000});
  CHECK(report.value().log_rows > 2000);
  CHECK(report.value().db_rows == report.value().log_rows);
  CHECK(report.value().db_digest == report.value().log_digest);
  // Verifying a prefix compares only that prefix.
  auto prefix = rlr::audit::verify(replay_of(log), *db, LogIndex{700});
  REQUIRE(prefix);
  CHECK(prefix.value().ok);
  CHECK(prefix.value().db_rows < report.value().db_rows);
}

TEST_CASE("audit: delivering the same outputs twice (a failover re-emission) changes nothing", "[audit][verify]") {
  const auto log = order_log(8, 500);
  auto db_owner = memory_db();
  AuditDb* db = db_owner.get();
  AuditSink sink(std::move(db_owner), AuditSink::Options{64, 1000});
  run_learner(log, sink);
  REQUIRE(sink.flush(kWait));
  const auto rows = sink.rows_written();
  // A restarted learner applies everything again; every key is already stored.
  run_learner(log, sink);
  REQUIRE(sink.flush(kWait));
  CHECK(sink.rows_written() == rows);
  sink.stop();
  auto report = rlr::audit::verify(replay_of(log), *db, LogIndex{500});
  REQUIRE(report);
  CHECK(report.value().ok);
}

TEST_CASE("audit: a missing, an extra or an altered row is reported with its key", "[audit][verify]") {
  const auto log = order_log(9, 300);
  // The rows the learner would have written.
  std::vector<Row> good;
  {
    rlr::me::MatchingEngine sm([&](const rlr::ApplyContext& ctx, const std::vector<rlr::me::Event>& ev) {
      for (std::size_t p = 0; p < ev.size(); ++p) {
        if (ev[p].topic == rlr::me::kTopicOrderEvent) {
          good.push_back(Row{ctx.index.value(), static_cast<std::uint32_t>(p), ev[p].payload});
        }
      }
    });
    NullEgress egress;
    for (const auto& e : log) {
      rlr::ApplyContext ctx;
      ctx.index = e.index;
      sm.apply(e, ctx, egress);
    }
  }
  REQUIRE(good.size() > 100);
  const Row victim = good[good.size() / 2];

  SECTION("missing") {
    auto db = memory_db();
    std::vector<Row> rows = good;
    rows.erase(rows.begin() + static_cast<std::ptrdiff_t>(good.size() / 2));
    REQUIRE(db->write_batch(rows, LogIndex{300}));
    auto r = rlr::audit::verify(replay_of(log), *db, LogIndex{300});
    REQUIRE(r);
    CHECK(!r.value().ok);
    CHECK(r.value().db_rows + 1 == r.value().log_rows);
    CHECK(r.value().first_difference ==
          fmt::format("missing from the table: {}.{} \"{}\"", victim.idx, victim.pos, victim.payload));
  }
  SECTION("extra") {
    auto db = memory_db();
    std::vector<Row> rows = good;
    rows.push_back(Row{victim.idx, 99, "ME1 DONE 424242"});
    REQUIRE(db->write_batch(rows, LogIndex{300}));
    auto r = rlr::audit::verify(replay_of(log), *db, LogIndex{300});
    REQUIRE(r);
    CHECK(!r.value().ok);
    CHECK(r.value().first_difference == fmt::format("not in the log: {}.99 \"ME1 DONE 424242\"", victim.idx));
  }
  SECTION("altered") {
    auto db = memory_db();
    std::vector<Row> rows = good;
    rows[good.size() / 2].payload = "ME1 DONE 1";
    REQUIRE(db->write_batch(rows, LogIndex{300}));
    auto r = rlr::audit::verify(replay_of(log), *db, LogIndex{300});
    REQUIRE(r);
    CHECK(!r.value().ok);
    CHECK(r.value().db_rows == r.value().log_rows);
    CHECK(r.value().db_digest != r.value().log_digest);
    CHECK(r.value().first_difference == fmt::format("row {}.{} differs: table \"ME1 DONE 1\", log \"{}\"",
                                                    victim.idx, victim.pos, victim.payload));
  }
}

namespace {

std::uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("audit app on a real node: persists, verifies with rlr::replay, catches tampering", "[audit][node]") {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("rlr-audit-test-{}", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::uint16_t port = free_port();
  auto built = rlr::NodeBuilder()
                   .cluster_id("audit-test")
                   .id(rlr::NodeId{1})
                   .listen("127.0.0.1", port)
                   .member(rlr::NodeId{1}, "127.0.0.1", port)
                   .data_dir((dir / "n1").string())
                   .tick(std::chrono::milliseconds{5})
                   .build();
  REQUIRE(built);
  auto node = std::move(built).value();
  for (int i = 0; i < 400 && node->role() != rlr::Role::Leader; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(node->role() == rlr::Role::Leader);

  const auto db_path = (dir / "audit.sqlite").string();
  const auto report_path = dir / "audit-verify.txt";
  rlr::apps::AppContext ctx{*node, dir.string(),
                            {{"db", db_path},
                             {"report", report_path.string()},
                             {"verify_interval_ms", "50"},
                             {"digest_interval", "10"}},
                            rlr::EgressMode::Persist};
  auto app = rlr::audit::make_app();
  REQUIRE(app->start(ctx).is_ok());

  const auto log = order_log(21, 150);
  std::uint64_t last = 0;
  for (const auto& e : log) {
    auto r = node->propose_sync(e.payload, std::chrono::seconds(5));
    REQUIRE(r);
    last = r.value().index.value();
  }
  // The verifier thread reports once the table is acknowledged through the last order.
  std::string report;
  for (int i = 0; i < 500; ++i) {
    report = read_text(report_path);
    const auto at = report.find("through=");
    if (at != std::string::npos && std::stoull(report.substr(at + 8)) >= last) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  INFO(report);
  CHECK(report.find("status=ok") != std::string::npos);
  CHECK(report.find("first_difference=none") != std::string::npos);

  {
    auto db = AuditDb::open(db_path);
    REQUIRE(db);
    auto ok = rlr::audit::verify(*node, *db.value());
    REQUIRE(ok);
    CHECK(ok.value().ok);
    CHECK(ok.value().through.value() >= last);
    CHECK(ok.value().db_rows >= log.size());
    // Tampering: a row that no replica ever emitted.
    REQUIRE(db.value()->write_batch({Row{last, 99, "ME1 DONE 31337"}}, LogIndex{}));
    auto bad = rlr::audit::verify(*node, *db.value());
    REQUIRE(bad);
    CHECK(!bad.value().ok);
    CHECK(bad.value().first_difference == fmt::format("not in the log: {}.99 \"ME1 DONE 31337\"", last));
  }
  app->stop();
  node->stop();
  std::filesystem::remove_all(dir);
}
