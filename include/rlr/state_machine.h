// librlr — role-aware state machines and the egress gate.
//
// Every node applies every committed command; only the node that leads the term of an
// entry lets that entry's outputs leave (a node configured with EgressMode::Persist, such
// as an audit learner writing to a database, keeps its egress whatever its role). The
// role is derived from the log itself — each new leader's first entry names it — so every
// replica switches egress at exactly the same index.
//
// Outputs are at-least-once and carry an idempotency key (log index, position within the
// entry's outputs): after a failover the new leader re-emits every output above the
// replicated egress watermark, and downstream deduplicates by key. Together that is
// exactly-once delivery.
//
// Example (a state machine that echoes every command to the "echo" topic):
//   class Echo : public rlr::RoleAwareStateMachine {
//    public:
//     void apply(const rlr::Entry& e, const rlr::ApplyContext&, rlr::Egress& out) override {
//       out.emit("echo", e.payload);
//       applied_ = e.index;
//     }
//     rlr::LogIndex last_applied() const override { return applied_; }
//    private:
//     rlr::LogIndex applied_;
//   };
//   auto runner = node->attach(std::make_shared<Echo>(), rlr::ApplyOptions{});
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr {

/// The idempotency key of one output: the entry's index and the output's position among
/// that entry's outputs (0, 1, ...).
struct OutputKey {
  LogIndex index;
  std::uint32_t position = 0;
  friend auto operator<=>(const OutputKey&, const OutputKey&) = default;
};

struct Output {
  OutputKey key;
  std::string topic;
  Bytes payload;
};

/// Where an entry stands when it is applied.
struct ApplyContext {
  LogIndex index;
  Term term;
  /// This node's role at this point of the log: Leader when it led the entry's term,
  /// Learner when it was a learner then, Follower otherwise.
  Role role = Role::Follower;
  /// The leader of the entry's term.
  NodeId leader;
  /// True when history is being re-applied (a replay into a fresh state machine, or
  /// catching up after a restart); egress is suppressed.
  bool replay = false;
  /// The client session the command was proposed with (0 when none).
  std::uint64_t client_id = 0;
  std::uint64_t sequence = 0;
};

/// The only way a state machine's side effects leave the process.
class Egress {
 public:
  virtual ~Egress() = default;
  /// Emits one output of the entry being applied. Outputs are keyed in call order. Every
  /// output is recorded (and digested) on every node; whether it leaves is the gate's
  /// decision, never the state machine's.
  virtual void emit(std::string_view topic, Bytes payload) = 0;
};

/// Receives the outputs that pass the gate, in key order. The same key may arrive more
/// than once (after a failover); deduplicate by key.
class EgressSink {
 public:
  virtual ~EgressSink() = default;
  virtual void deliver(const Output& output) = 0;
  /// The highest index through which downstream has durably taken every output. The
  /// leader replicates it as the egress watermark; at the first entry of each term it
  /// leads, a leader re-emits the outputs above the watermark that its outbox holds (see
  /// ApplyOptions::outbox_max_outputs). Default: nothing acknowledged (everything above 0
  /// is re-emitted).
  [[nodiscard]] virtual LogIndex acknowledged() const { return LogIndex{}; }
};

class RoleAwareStateMachine {
 public:
  virtual ~RoleAwareStateMachine() = default;
  /// Applies one committed command (EntryKind::Normal). Must be deterministic: the same
  /// commands give the same state and the same outputs on every replica.
  virtual void apply(const Entry& entry, const ApplyContext& ctx, Egress& egress) = 0;
  /// Called in log order, before applying index `at`, when this node's role changes.
  virtual void on_role_change(Role /*role*/, NodeId /*leader*/, LogIndex /*at*/) {}
  /// The last index whose effects this state machine keeps (its own durable checkpoint,
  /// or 0 for an in-memory one); applying resumes right after it.
  [[nodiscard]] virtual LogIndex last_applied() const = 0;
};

enum class EgressMode : std::uint8_t {
  LeaderOnly = 0,  ///< emit only what this node leads (leader emits; others suppress)
  Persist = 1,     ///< always emit (a learner that persists to a database keeps its egress)
  Off = 2,         ///< never emit
};

struct ApplyOptions {
  EgressMode egress = EgressMode::LeaderOnly;
  std::shared_ptr<EgressSink> sink;   ///< null: outputs are only recorded and digested
  /// A checkpoint digest is recorded at every index that is a multiple of this.
  std::uint64_t digest_interval = 1000;
  /// Outputs kept for re-emission above the watermark; older ones are dropped (and a
  /// new leader can re-emit only what it kept). The outbox holds the outputs of entries
  /// this runner applied since it started: after a restart, outputs at or below the state
  /// machine's checkpoint are not in it, so the watermark should trail the checkpoint
  /// closely (a sink that acknowledges promptly) for a restarted node to lead safely.
  std::size_t outbox_max_outputs = 1U << 20;
  /// How often the leader proposes the sink's acknowledged index as the watermark.
  std::chrono::milliseconds watermark_interval{50};
};

/// (index, digest) of the outputs of all entries up to and including index.
struct DigestCheckpoint {
  LogIndex index;
  std::uint64_t digest = 0;
  friend bool operator==(const DigestCheckpoint&, const DigestCheckpoint&) = default;
};

/// A running apply loop (one thread per attached state machine).
class ApplyRunner {
 public:
  virtual ~ApplyRunner() = default;
  /// The last index applied (or skipped as internal) by this runner.
  [[nodiscard]] virtual LogIndex applied() const = 0;
  /// Ok while running; the error that stopped it otherwise (e.g. Compacted: the state
  /// machine's checkpoint is below the first retained entry).
  [[nodiscard]] virtual Status health() const = 0;
  [[nodiscard]] virtual std::vector<DigestCheckpoint> checkpoints() const = 0;
  /// Stops the loop (the node keeps running).
  virtual void stop() = 0;
};

/// Replays committed entries [from, to] of `node`'s log into `sm` with replay=true and
/// egress suppressed (outputs are still digested). Returns the digest checkpoints seen.
class Node;
[[nodiscard]] Result<std::vector<DigestCheckpoint>> replay(Node& node,
                                                           RoleAwareStateMachine& sm,
                                                           LogIndex from, LogIndex to,
                                                           std::uint64_t digest_interval = 1000);

}  // namespace rlr
