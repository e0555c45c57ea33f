#include "matching_engine/matching_engine.h"

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "apps/app_util.h"
#include "rlr/node.h"

namespace rlr::me {

void emit_all(const std::vector<Event>& events, Egress& egress) {
  for (const Event& e : events) egress.emit(e.topic, Bytes::copy_of(e.payload));
}

void MatchingEngine::apply(const Entry& entry, const ApplyContext& ctx, Egress& egress) {
  scratch_.clear();
  {
    std::lock_guard lock(mu_);
    book_.execute(entry.payload.as_string_view(), scratch_);
  }
  emit_all(scratch_, egress);
  if (observer_) observer_(ctx, scratch_);
  applied_.store(ctx.index.value());
}

void MatchingEngine::on_role_change(Role role, NodeId leader, LogIndex at) {
  if (!log_roles_) return;
  std::fprintf(stderr, "[matching-engine] from index %llu this node is %s (leader: node %llu)%s\n",
               static_cast<unsigned long long>(at.value()), std::string(to_string(role)).c_str(),
               static_cast<unsigned long long>(leader.value()),
               role == Role::Leader ? " -- its outputs leave through egress" : "");
}

std::string MatchingEngine::dump() const {
  std::lock_guard lock(mu_);
  return book_.dump();
}

std::size_t MatchingEngine::live_orders() const {
  std::lock_guard lock(mu_);
  return book_.live_orders();
}

namespace {

/// Appends each delivered output to a file, once per key (re-emissions after a failover
/// are dropped here). Acknowledges every entry below the last one it wrote.
class OutputLog final : public EgressSink {
 public:
  explicit OutputLog(std::FILE* f) : f_(f) {}
  ~OutputLog() override {
    if (f_ != nullptr) std::fclose(f_);
  }
  OutputLog(const OutputLog&) = delete;
  OutputLog& operator=(const OutputLog&) = delete;

  void deliver(const Output& out) override {
    std::lock_guard lock(mu_);
    if (written_any_ && out.key <= last_) return;  // a duplicate: already written
    std::fprintf(f_, "%llu.%u %s %.*s\n", static_cast<unsigned long long>(out.key.index.value()),
                 out.key.position, out.topic.c_str(), static_cast<int>(out.payload.size()),
                 out.payload.as_string_view().data());
    std::fflush(f_);
    last_ = out.key;
    written_any_ = true;
  }
  [[nodiscard]] LogIndex acknowledged() const override {
    std::lock_guard lock(mu_);
    // Outputs arrive in key order: every entry below the last written one is complete.
    return written_any_ && last_.index.value() > 0 ? last_.index.prev() : LogIndex{};
  }

 private:
  mutable std::mutex mu_;
  std::FILE* f_;
  OutputKey last_;
  bool written_any_ = false;
};

class MatchingEngineApp final : public apps::App {
 public:
  Status start(apps::AppContext& ctx) override {
    auto interval = apps::setting_u64(ctx, "digest_interval", 100, 1, 1'000'000'000);
    if (!interval) return interval.status();
    ApplyOptions options;
    options.egress = ctx.egress;
    options.digest_interval = interval.value();
    if (const std::string path = apps::setting(ctx, "output_log"); !path.empty()) {
      std::FILE* f = std::fopen(path.c_str(), "a");
      if (f == nullptr) {
        return {ErrorCode::IoError, fmt::format("[app] output_log = \"{}\": cannot open", path)};
      }
      options.sink = std::make_shared<OutputLog>(f);
    }
    auto sm = std::make_shared<MatchingEngine>();
    sm->set_log_role_changes(true);
    auto runner = ctx.node.attach(sm, options);
    if (!runner) return runner.status();
    sm_ = std::move(sm);
    runner_ = std::move(runner).value();
    return Status::ok();
  }

  void stop() override {
    if (runner_) runner_->stop();
    runner_.reset();
    sm_.reset();
  }

 private:
  std::shared_ptr<MatchingEngine> sm_;
  std::shared_ptr<ApplyRunner> runner_;
};

}  // namespace

std::unique_ptr<apps::App> make_app() { return std::make_unique<MatchingEngineApp>(); }

}  // namespace rlr::me
