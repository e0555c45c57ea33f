#include "node/apply_engine.h"
#include "core/entry_payloads.h"

#include <cstdio>
#include <exception>
#include <limits>

#include <fmt/format.h>

#include "util/thread_name.h"

namespace rlr::node {

std::uint64_t digest_output(std::uint64_t h, const Output& out) {
  constexpr std::uint64_t kPrime = 0x100000001b3ULL;
  if (h == 0) h = 0xcbf29ce484222325ULL;
  auto mix = [&](std::uint8_t b) { h = (h ^ b) * kPrime; };
  auto mix64 = [&](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) mix(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  mix64(out.key.index.value());
  mix64(out.key.position);
  mix64(out.topic.size());
  for (char c : out.topic) mix(static_cast<std::uint8_t>(c));
  mix64(out.payload.size());
  for (std::uint8_t b : out.payload.span()) mix(b);
  return h;
}

/// The Egress handed to apply(): keys, digests and records every output, and lets it
/// leave only when the gate is open.
class ApplyEngine::Gate final : public Egress {
 public:
  Gate(ApplyEngine& engine, LogIndex index, bool open) : engine_(engine), index_(index), open_(open) {}
  void emit(std::string_view topic, Bytes payload) override {
    Output out{OutputKey{index_, position_++}, std::string(topic), std::move(payload)};
    engine_.digest_ = digest_output(engine_.digest_, out);
    if (open_ && engine_.options_.sink) {
      engine_.options_.sink->deliver(out);
      ++engine_.emitted_;
    }
    engine_.emit(std::move(out));
  }

 private:
  ApplyEngine& engine_;
  LogIndex index_;
  std::uint32_t position_ = 0;
  bool open_;
};

ApplyEngine::ApplyEngine(NodeId self, std::shared_ptr<RoleAwareStateMachine> sm,
                         const ApplyOptions& options, SessionTable sessions,
                         core::Configuration config, bool replay, LeadsNow leads_now,
                         LogIndex start_after)
    : self_(self),
      sm_(std::move(sm)),
      options_(options),
      sessions_(std::move(sessions)),
      config_(std::move(config)),
      replay_(replay),
      leads_now_(std::move(leads_now)) {
  if (options_.digest_interval == 0) options_.digest_interval = 1;
  applied_ = start_after;
  digest_partial_ = applied_.value() % options_.digest_interval != 0;
}

void ApplyEngine::emit(Output out) {
  // Only a leader-gated sink needs the outbox: a new leader re-emits from it.
  if (options_.egress != EgressMode::LeaderOnly || !options_.sink) return;
  outbox_.push_back(std::move(out));
  while (outbox_.size() > options_.outbox_max_outputs) outbox_.pop_front();
}

void ApplyEngine::reemit_above_watermark(LogIndex below) {
  if (!options_.sink) return;
  for (const Output& out : outbox_) {
    if (out.key.index > watermark_ && out.key.index < below) {
      options_.sink->deliver(out);
      ++reemitted_;
    }
  }
}

void ApplyEngine::track(const Entry& e) {
  switch (e.kind) {
    case EntryKind::Noop:
      leader_term_ = e.term;
      term_leader_ = core::decode_noop(e.payload).value_or(kNoNode);
      break;
    case EntryKind::Config:
      if (auto c = core::decode_configuration(e.payload.span())) config_ = std::move(c).value();
      break;
    case EntryKind::Watermark:
      if (const auto w = core::decode_watermark(e.payload)) {
        if (*w > watermark_) watermark_ = *w;
        while (!outbox_.empty() && outbox_.front().key.index <= watermark_) outbox_.pop_front();
      }
      break;
    default:
      break;
  }
}

void ApplyEngine::catch_up(const Entry& e) {
  track(e);
  if (e.kind == EntryKind::Session) {
    if (auto c = core::decode_session_command(e.payload)) {
      (void)sessions_.apply(e.index, e.term, c->client_id, c->sequence);
    }
  }
}

void ApplyEngine::apply(const Entry& e) {
  track(e);
  // This node's role at this point of the log.
  const bool led = e.term == leader_term_ && term_leader_ == self_;
  const Role role = led ? Role::Leader : config_.is_learner(self_) ? Role::Learner : Role::Follower;
  const NodeId leader = e.term == leader_term_ ? term_leader_ : kNoNode;
  if (role != role_ || !role_announced_) {
    role_ = role;
    role_announced_ = true;
    sm_->on_role_change(role, leader, e.index);
  }
  // At the first entry of each term it leads, this node re-emits what earlier leaders
  // (itself in an earlier term included: entries of that term may commit only now, with
  // their gate closed) may not have delivered. At-least-once, keys and the watermark make
  // exactly-once downstream.
  if (role == Role::Leader && e.term != reemitted_term_ && !replay_ && leads_now_(e.term)) {
    reemitted_term_ = e.term;
    if (bug_ != ApplyBug::SkipReemit) reemit_above_watermark(e.index);
  }
  const bool open = !replay_ && (options_.egress == EgressMode::Persist ||
                                 (options_.egress == EgressMode::LeaderOnly && role == Role::Leader &&
                                  leads_now_(e.term)) ||
                                 (options_.egress == EgressMode::LeaderOnly &&
                                  bug_ == ApplyBug::EmitFromFollower));
  if (e.kind == EntryKind::Normal) {
    ApplyContext ctx{e.index, e.term, role, leader, replay_, 0, 0};
    Gate gate(*this, e.index, open);
    sm_->apply(e, ctx, gate);
  } else if (e.kind == EntryKind::Session) {
    if (auto c = core::decode_session_command(e.payload)) {
      const auto outcome = sessions_.apply(e.index, e.term, c->client_id, c->sequence);
      if (!outcome.duplicate) {
        const Entry command{e.index, e.term, EntryKind::Normal, c->command};
        ApplyContext ctx{e.index, e.term, role, leader, replay_, c->client_id, c->sequence};
        Gate gate(*this, e.index, open);
        sm_->apply(command, ctx, gate);
      }
    }
  }
  applied_ = e.index;
  if (e.index.value() % options_.digest_interval == 0) {
    if (!digest_partial_) {
      checkpoints_.push_back(DigestCheckpoint{e.index, digest_});
      while (checkpoints_.size() > kCheckpointsKept) checkpoints_.pop_front();
      if (checkpoint_cb_) checkpoint_cb_(checkpoints_.back());
    }
    digest_ = 0;
    digest_partial_ = false;
  }
}

std::optional<LogIndex> ApplyEngine::watermark_to_propose(LogIndex last_proposed) const {
  if (!options_.sink || options_.egress != EgressMode::LeaderOnly) return std::nullopt;
  const LogIndex acked = std::min(options_.sink->acknowledged(), applied_);
  if (acked <= last_proposed || acked <= watermark_) return std::nullopt;
  return acked;
}

// ---------------------------------------------------------------------------------
// ApplyRunnerImpl
// ---------------------------------------------------------------------------------

ApplyRunnerImpl::ApplyRunnerImpl(CommittedLog& log, RunnerHost& host,
                                 std::shared_ptr<RoleAwareStateMachine> sm, ApplyOptions options)
    : log_(log), host_(host), sm_(std::move(sm)), options_(std::move(options)) {}

ApplyRunnerImpl::~ApplyRunnerImpl() { stop(); }

Status ApplyRunnerImpl::start() {
  const LogIndex checkpoint = sm_->last_applied();
  auto snap = log_.base();
  if (!snap) return snap.status();
  const core::SnapshotMeta& s = snap.value();
  if (checkpoint < s.index) {
    return {ErrorCode::Compacted,
            fmt::format("the state machine resumes after {} but the log starts after {}",
                        checkpoint.value(), s.index.value())};
  }
  SessionTable sessions = log_.new_session_table();
  if (Status d = sessions.decode(s.data.span()); !d) return d;
  RunnerHost* host = &host_;
  engine_ = std::make_unique<ApplyEngine>(log_.self(), sm_, options_, std::move(sessions), s.config,
                                          false, [host](Term t) { return host->leads(t); },
                                          checkpoint);
  // Bring RLR's own state (sessions, roles, watermark) up to the checkpoint.
  LogIndex i = s.index.next();
  while (i <= checkpoint) {
    auto batch = log_.read(i, checkpoint, 4096, 8U << 20);
    if (!batch) return batch.status();
    for (const Entry& e : batch.value()) engine_->catch_up(e);
    i = batch.value().back().index.next();
  }
  engine_->on_checkpoint([this](const DigestCheckpoint& cp) {
    {
      std::lock_guard lock(mu_);
      checkpoints_.push_back(cp);
      while (checkpoints_.size() > ApplyEngine::kCheckpointsKept) checkpoints_.pop_front();
    }
    host_.publish_checkpoint(this, cp);
  });
  next_ = checkpoint.next();
  applied_ = checkpoint.value();
  next_watermark_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] {
    util::set_thread_name("rlr-apply");
    run();
  });
  return Status::ok();
}

Status ApplyRunnerImpl::health() const {
  std::lock_guard lock(mu_);
  return health_;
}

std::vector<DigestCheckpoint> ApplyRunnerImpl::checkpoints() const {
  std::lock_guard lock(mu_);
  return {checkpoints_.begin(), checkpoints_.end()};
}

void ApplyRunnerImpl::stop() {
  stop_ = true;
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void ApplyRunnerImpl::run() {
  while (!stop_) {
    auto r = log_.read_committed(next_, 1024, std::chrono::milliseconds(50));
    if (!r) {
      if (r.status().code() != ErrorCode::ShuttingDown) {
        std::lock_guard lock(mu_);
        health_ = r.status();
      }
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    for (const Entry& e : r.value()) {
      try {
        engine_->apply(e);
      } catch (const std::exception& ex) {
        // A failing state machine stops its own loop, never the replicator.
        std::lock_guard lock(mu_);
        health_ = Status{ErrorCode::Unavailable,
                         fmt::format("state machine failed at index {}: {}", e.index.value(), ex.what())};
        return;
      } catch (...) {
        std::lock_guard lock(mu_);
        health_ = Status{ErrorCode::Unavailable,
                         fmt::format("state machine failed at index {}", e.index.value())};
        return;
      }
      next_ = e.index.next();
      applied_ = e.index.value();
    }
    // Every entry read was applied (a failure returns above).
    if (const std::uint64_t applied_now = r.value().size(); applied_now > 0) {
      const auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now() - started);
      apply_latency_.observe(static_cast<std::uint64_t>(took.count()) / applied_now, applied_now);
      emitted_.store(engine_->outputs_emitted(), std::memory_order_relaxed);
      reemitted_.store(engine_->outputs_reemitted(), std::memory_order_relaxed);
    }
    maybe_propose_watermark();
  }
}

void ApplyRunnerImpl::maybe_propose_watermark() {
  if (!options_.sink || options_.egress != EgressMode::LeaderOnly) return;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_watermark_ || !host_.is_leader()) return;
  next_watermark_ = now + options_.watermark_interval;
  const auto due = engine_->watermark_to_propose(proposed_watermark_);
  if (!due) return;
  proposed_watermark_ = *due;
  host_.propose_internal(EntryKind::Watermark, core::encode_watermark(*due),
                         [](Result<ProposeResult>) {});
}

}  // namespace rlr::node

namespace rlr::node {

Result<std::vector<DigestCheckpoint>> replay_log(const CommittedLog& log, RoleAwareStateMachine& sm,
                                                 LogIndex from, LogIndex to,
                                                 std::uint64_t digest_interval) {
  if (from.is_zero()) from = LogIndex{1};
  auto snap = log.base();
  if (!snap) return snap.status();
  if (from <= snap.value().index) {
    return Status{ErrorCode::Compacted, fmt::format("index {} is compacted", from.value())};
  }
  SessionTable sessions = log.new_session_table();
  if (Status d = sessions.decode(snap.value().data.span()); !d) return d;
  ApplyOptions options;
  options.egress = EgressMode::Off;
  options.digest_interval = digest_interval;
  // The engine holds the state machine without owning it.
  std::shared_ptr<RoleAwareStateMachine> borrowed(std::shared_ptr<void>{}, &sm);
  ApplyEngine engine(log.self(), borrowed, options, std::move(sessions), snap.value().config, true,
                     [](Term) { return false; }, from.prev());
  auto read_range = [&](LogIndex a, LogIndex b, auto&& f) -> Status {
    while (a <= b) {
      auto batch = log.read(a, b, 4096, 8U << 20);
      if (!batch) return batch.status();
      if (batch.value().empty()) {
        return Status{ErrorCode::Corruption, fmt::format("entry {} is missing from the log", a.value())};
      }
      for (const Entry& e : batch.value()) f(e);
      a = batch.value().back().index.next();
    }
    return Status::ok();
  };
  if (Status s = read_range(snap.value().index.next(), from.prev(),
                            [&](const Entry& e) { engine.catch_up(e); });
      !s) {
    return s;
  }
  to = std::min(to, log.applied_index());
  if (Status s = read_range(from, to, [&](const Entry& e) { engine.apply(e); }); !s) return s;
  return std::vector<DigestCheckpoint>(engine.checkpoints().begin(), engine.checkpoints().end());
}

}  // namespace rlr::node

namespace rlr {

Result<std::vector<DigestCheckpoint>> replay(Node& node, RoleAwareStateMachine& sm, LogIndex from,
                                             LogIndex to, std::uint64_t digest_interval) {
  return node.replay(sm, from, to, digest_interval);
}

}  // namespace rlr
