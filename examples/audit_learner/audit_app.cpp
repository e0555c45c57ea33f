// The "audit" rlr-node app: the matching engine with egress `persist` into SQLite, and a
// verifier thread that keeps proving the table against the log.
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "apps/app_util.h"
#include "audit_learner/audit.h"
#include "matching_engine/matching_engine.h"

namespace rlr::audit {
namespace {

/// Writes `text` to `path` atomically (a temporary file, then rename).
Status write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return {ErrorCode::IoError, fmt::format("cannot write {}", tmp)};
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return {ErrorCode::IoError, fmt::format("cannot rename {} to {}: {}", tmp, path, ec.message())};
  return Status::ok();
}

class AuditApp final : public apps::App {
 public:
  ~AuditApp() override { stop(); }

  Status start(apps::AppContext& ctx) override {
    db_path_ = apps::setting(ctx, "db", (std::filesystem::path(ctx.data_dir) / "audit.sqlite").string());
    report_path_ =
        apps::setting(ctx, "report", (std::filesystem::path(ctx.data_dir) / "audit-verify.txt").string());
    auto interval = apps::setting_u64(ctx, "verify_interval_ms", 1000, 0, 86'400'000);
    if (!interval) return interval.status();
    auto batch = apps::setting_u64(ctx, "batch_outputs", 2000, 1, 1'000'000);
    if (!batch) return batch.status();
    auto digest_interval = apps::setting_u64(ctx, "digest_interval", 100, 1, 1'000'000'000);
    if (!digest_interval) return digest_interval.status();
    if (ctx.egress != EgressMode::Persist) {
      std::fprintf(stderr, "[audit] note: the audit learner always keeps its egress (persist)\n");
    }

    auto db = AuditDb::open(db_path_);
    if (!db) return db.status();
    AuditSink::Options sink_options;
    sink_options.batch_outputs_max = batch.value();
    sink_ = std::make_shared<AuditSink>(std::move(db).value(), sink_options);
    std::shared_ptr<AuditSink> sink = sink_;
    auto sm = std::make_shared<me::MatchingEngine>(
        [sink](const ApplyContext& c, const std::vector<me::Event>& events) {
          // A replayed entry's outputs do not pass the gate: expect none of them.
          sink->note_applied(c.index, c.replay ? 0 : events.size());
        });
    sm->set_log_role_changes(true);
    ApplyOptions options;
    options.egress = EgressMode::Persist;
    options.sink = sink_;
    options.digest_interval = digest_interval.value();
    auto runner = ctx.node.attach(sm, options);
    if (!runner) {
      sink_->stop();
      sink_.reset();
      return runner.status();
    }
    runner_ = std::move(runner).value();
    sink_->set_progress([weak = std::weak_ptr<ApplyRunner>(runner_)] {
      auto r = weak.lock();
      return r ? r->applied() : LogIndex{};
    });
    node_ = &ctx.node;
    std::fprintf(stderr, "[audit] persisting order events to %s; verification report: %s\n",
                 db_path_.c_str(), report_path_.c_str());
    if (interval.value() > 0) {
      interval_ = std::chrono::milliseconds(interval.value());
      verifier_ = std::thread([this] { verify_loop(); });
    }
    return Status::ok();
  }

  void stop() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (verifier_.joinable()) verifier_.join();
    if (runner_) runner_->stop();
    if (sink_) sink_->stop();
    runner_.reset();
    sink_.reset();
  }

 private:
  void verify_loop() {
    // A connection of its own: verification never holds up the writer.
    std::unique_ptr<AuditDb> db;
    LogIndex verified;
    bool first = true;
    while (true) {
      {
        std::unique_lock lock(mu_);
        if (cv_.wait_for(lock, interval_, [&] { return stopping_; })) return;
      }
      if (!db) {
        auto opened = AuditDb::open(db_path_, /*read_only=*/true);
        if (!opened) continue;
        db = std::move(opened).value();
      }
      auto through = db->acked_through();
      if (!through || (!first && through.value() == verified)) continue;
      first = false;
      auto report = verify(*node_, *db);
      std::string text;
      if (!report) {
        text = fmt::format("status=error\nthrough={}\ndetail={}\n", through.value().value(),
                           report.status().to_string());
        std::fprintf(stderr, "[audit] verification failed: %s\n", report.status().to_string().c_str());
      } else {
        const VerifyReport& r = report.value();
        text = r.to_text();
        verified = r.through;
        if (r.ok) {
          std::fprintf(stderr, "[audit] verified through index %llu: %llu order events match the log (digest %016llx)\n",
                       static_cast<unsigned long long>(r.through.value()),
                       static_cast<unsigned long long>(r.db_rows),
                       static_cast<unsigned long long>(r.db_digest));
        } else {
          std::fprintf(stderr, "[audit] MISMATCH through index %llu: table %llu rows, log %llu; %s\n",
                       static_cast<unsigned long long>(r.through.value()),
                       static_cast<unsigned long long>(r.db_rows),
                       static_cast<unsigned long long>(r.log_rows), r.first_difference.c_str());
        }
      }
      if (Status s = write_file_atomically(report_path_, text); !s) {
        std::fprintf(stderr, "[audit] %s\n", s.to_string().c_str());
      }
    }
  }

  std::string db_path_;
  std::string report_path_;
  std::chrono::milliseconds interval_{1000};
  Node* node_ = nullptr;
  std::shared_ptr<AuditSink> sink_;
  std::shared_ptr<ApplyRunner> runner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread verifier_;
};

}  // namespace

std::unique_ptr<apps::App> make_app() { return std::make_unique<AuditApp>(); }

}  // namespace rlr::audit
