// Applying the committed log to a RoleAwareStateMachine (private).
//
// ApplyEngine is the deterministic part, with no thread: it walks entries in order,
// derives this node's role at each index from the log (a leader's no-op names it; config
// entries say who is a learner), skips RLR's internal entries and duplicate session
// commands, gates and records outputs, keeps the outbox for re-emission above the egress
// watermark, and computes a digest of the outputs of every `digest_interval` entries.
// ApplyRunnerImpl runs an engine on its own thread against a live node; rlr::replay()
// runs one synchronously with replay=true.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "core/configuration.h"
#include "node/committed_log.h"
#include "node/sessions.h"
#include "rlr/state_machine.h"
#include "util/histogram.h"

namespace rlr::node {

/// Tells the engine whether this node leads `term` right now (outputs of a term this node
/// led may leave only while it still leads it).
using LeadsNow = std::function<bool(Term term)>;

/// Deliberate apply-side bugs, for the simulator to show its egress checks catch them.
/// Never set outside tests.
enum class ApplyBug : std::uint8_t {
  None = 0,
  EmitFromFollower,  ///< the gate lets every node's outputs leave, leader or not
  SkipReemit,        ///< a new leader does not re-emit the outputs above the watermark
};

class ApplyEngine {
 public:
  /// The engine continues after `start_after` (the state machine's checkpoint).
  ApplyEngine(NodeId self, std::shared_ptr<RoleAwareStateMachine> sm, const ApplyOptions& options,
              SessionTable sessions, core::Configuration config, bool replay, LeadsNow leads_now,
              LogIndex start_after);

  /// Applies (or skips) one committed entry. REQUIRES entries in order without gaps.
  void apply(const Entry& e);
  /// Feeds an entry at or below the state machine's checkpoint: only RLR's own state
  /// (sessions, roles, watermark) moves; the state machine is not called.
  void catch_up(const Entry& e);

  [[nodiscard]] LogIndex applied() const { return applied_; }
  [[nodiscard]] LogIndex watermark() const { return watermark_; }
  [[nodiscard]] Role role() const { return role_; }
  /// Checkpoints recorded so far (the oldest are dropped beyond a bound).
  [[nodiscard]] const std::deque<DigestCheckpoint>& checkpoints() const { return checkpoints_; }
  /// Called with each new checkpoint.
  void on_checkpoint(std::function<void(const DigestCheckpoint&)> f) { checkpoint_cb_ = std::move(f); }
  /// The egress watermark a leader should propose now, given the last one it proposed:
  /// what the sink acknowledged, capped at what this engine applied, when that is above
  /// both `last_proposed` and the committed watermark. nullopt when there is nothing to
  /// propose (no sink, egress not LeaderOnly, or nothing new acknowledged).
  [[nodiscard]] std::optional<LogIndex> watermark_to_propose(LogIndex last_proposed) const;
  /// Switches on a deliberate bug (tests only).
  void set_testing_bug(ApplyBug bug) { bug_ = bug; }
  /// Outputs handed to the sink as they were emitted, and again by a new leader.
  [[nodiscard]] std::uint64_t outputs_emitted() const { return emitted_; }
  [[nodiscard]] std::uint64_t outputs_reemitted() const { return reemitted_; }

  static constexpr std::size_t kCheckpointsKept = 1024;

 private:
  class Gate;
  void track(const Entry& e);
  void emit(Output out);
  void reemit_above_watermark(LogIndex below);

  NodeId self_;
  std::shared_ptr<RoleAwareStateMachine> sm_;
  ApplyOptions options_;
  SessionTable sessions_;
  core::Configuration config_;
  bool replay_;
  LeadsNow leads_now_;

  LogIndex applied_;
  Term leader_term_;        ///< the term whose no-op we saw last
  NodeId term_leader_;      ///< the leader that no-op names
  Role role_ = Role::Follower;
  bool role_announced_ = false;
  Term reemitted_term_;     ///< the last term whose leader (this node) re-emitted the outbox
  LogIndex watermark_;
  std::deque<Output> outbox_;   ///< outputs above the watermark, for re-emission
  std::uint64_t digest_ = 0;    ///< digest of the outputs since the last checkpoint
  bool digest_partial_ = true;  ///< started mid-interval: the first checkpoint is skipped
  std::deque<DigestCheckpoint> checkpoints_;
  std::function<void(const DigestCheckpoint&)> checkpoint_cb_;
  ApplyBug bug_ = ApplyBug::None;
  std::uint64_t emitted_ = 0;
  std::uint64_t reemitted_ = 0;
};

/// An ApplyEngine on its own thread, reading committed entries from its node's log.
class ApplyRunnerImpl final : public ApplyRunner,
                              public std::enable_shared_from_this<ApplyRunnerImpl> {
 public:
  /// `log` and `host` must outlive the runner (stop() it first).
  ApplyRunnerImpl(CommittedLog& log, RunnerHost& host, std::shared_ptr<RoleAwareStateMachine> sm,
                  ApplyOptions options);
  ~ApplyRunnerImpl() override;
  ApplyRunnerImpl(const ApplyRunnerImpl&) = delete;
  ApplyRunnerImpl& operator=(const ApplyRunnerImpl&) = delete;

  /// Prepares the engine (sessions and roles up to the state machine's checkpoint) and
  /// starts the thread. Errors: Compacted.
  [[nodiscard]] Status start();
  [[nodiscard]] LogIndex applied() const override { return LogIndex{applied_.load()}; }
  [[nodiscard]] Status health() const override;
  [[nodiscard]] std::vector<DigestCheckpoint> checkpoints() const override;
  void stop() override;

  /// For metrics (any thread): the `state_machine` label, the apply latency per entry
  /// (nanoseconds; each batch records its mean), and the outputs emitted and re-emitted.
  [[nodiscard]] const std::string& name() const { return options_.name; }
  void set_name(std::string name) { options_.name = std::move(name); }  // before start()
  [[nodiscard]] const util::LogLinearHistogram& apply_latency() const { return apply_latency_; }
  [[nodiscard]] std::uint64_t outputs_emitted() const { return emitted_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t outputs_reemitted() const { return reemitted_.load(std::memory_order_relaxed); }

 private:
  void run();
  void maybe_propose_watermark();

  CommittedLog& log_;
  RunnerHost& host_;
  std::shared_ptr<RoleAwareStateMachine> sm_;
  ApplyOptions options_;
  std::unique_ptr<ApplyEngine> engine_;
  LogIndex next_;
  std::atomic<std::uint64_t> applied_{0};
  util::LogLinearHistogram apply_latency_{100, 8};  // 100 ns .. 10 s
  std::atomic<std::uint64_t> emitted_{0};
  std::atomic<std::uint64_t> reemitted_{0};
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  Status health_;                                  // guarded by mu_
  std::deque<DigestCheckpoint> checkpoints_;       // guarded by mu_
  LogIndex proposed_watermark_;
  std::chrono::steady_clock::time_point next_watermark_;
  std::thread thread_;
};

/// A 64-bit FNV-1a step, the digest of outputs.
[[nodiscard]] std::uint64_t digest_output(std::uint64_t h, const Output& out);

}  // namespace rlr::node
