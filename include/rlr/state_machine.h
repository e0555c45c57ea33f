/// \file
/// librlr — role-aware state machines and the egress gate.
///
/// Every node applies every committed command; only the node that leads the term of an
/// entry lets that entry's outputs leave (a node configured with EgressMode::Persist, such
/// as an audit learner writing to a database, keeps its egress whatever its role). The
/// role is derived from the log itself — each new leader's first entry names it — so every
/// replica switches egress at exactly the same index.
///
/// Outputs are at-least-once and carry an idempotency key (log index, position within the
/// entry's outputs): after a failover the new leader re-emits every output above the
/// replicated egress watermark, and downstream deduplicates by key. Together that is
/// exactly-once delivery.
///
/// Example (a state machine that echoes every command to the "echo" topic):
/// \code{.cpp}
///   class Echo : public rlr::RoleAwareStateMachine {
///    public:
///     void apply(const rlr::Entry& e, const rlr::ApplyContext&, rlr::Egress& out) override {
///       out.emit("echo", e.payload);
///       applied_ = e.index;
///     }
///     rlr::LogIndex last_applied() const override { return applied_; }
///    private:
///     rlr::LogIndex applied_;
///   };
///   auto runner = node->attach(std::make_shared<Echo>(), rlr::ApplyOptions{});
/// \endcode
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rlr/export.h"
#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr {

/// The idempotency key of one output: the entry's index and the output's position among
/// that entry's outputs (0, 1, ...).
struct RLR_API OutputKey {
  /// The index of the entry that emitted the output.
  LogIndex index;
  /// Its position among that entry's outputs, from 0, in emit() order.
  std::uint32_t position = 0;
  /// By index, then position: the order outputs are delivered in.
  friend auto operator<=>(const OutputKey&, const OutputKey&) = default;
};

/// One output of a state machine, as the gate and the EgressSink see it.
struct RLR_API Output {
  /// Its idempotency key: downstream deduplicates by it.
  OutputKey key;
  /// As given to Egress::emit(); what it means is the application's business.
  std::string topic;
  /// As given to Egress::emit().
  Bytes payload;
};

/// Where an entry stands when it is applied.
struct RLR_API ApplyContext {
  /// The entry's index.
  LogIndex index;
  /// The entry's term: the term of the leader that appended it.
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
  /// The session's sequence number (0 when none).
  std::uint64_t sequence = 0;
};

/// The only way a state machine's side effects leave the process.
class RLR_API Egress {
 public:
  virtual ~Egress() = default;
  /// Emits one output of the entry being applied. Outputs are keyed in call order. Every
  /// output is recorded (and digested) on every node; whether it leaves is the gate's
  /// decision, never the state machine's.
  virtual void emit(std::string_view topic, Bytes payload) = 0;
};

/// Receives the outputs that pass the gate, in key order. The same key may arrive more
/// than once (after a failover); deduplicate by key.
class RLR_API EgressSink {
 public:
  virtual ~EgressSink() = default;
  /// Takes one output that passed the gate. Runs on the apply thread of the state
  /// machine that emitted it (within its apply(), or when a new leader re-emits): a
  /// slow sink slows that state machine only, never replication.
  virtual void deliver(const Output& output) = 0;
  /// The highest index through which downstream has durably taken every output. The
  /// leader replicates it as the egress watermark; at the first entry of each term it
  /// leads, a leader re-emits the outputs above the watermark that its outbox holds (see
  /// ApplyOptions::outbox_max_outputs). Default: nothing acknowledged (everything above 0
  /// is re-emitted).
  [[nodiscard]] virtual LogIndex acknowledged() const { return LogIndex{}; }
};

/// Business state built from the committed log (see rlr/state_machine.h). Every node
/// applies every command; side effects leave only through Egress. The methods run on
/// the apply thread of its ApplyRunner (Node::attach()), one at a time.
class RLR_API RoleAwareStateMachine {
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

/// Which of a node's outputs leave through ApplyOptions::sink.
enum class EgressMode : std::uint8_t {
  LeaderOnly = 0,  ///< emit only what this node leads (leader emits; others suppress)
  Persist = 1,     ///< always emit (a learner that persists to a database keeps its egress)
  Off = 2,         ///< never emit
};

/// How Node::attach() runs a state machine.
struct RLR_API ApplyOptions {
  /// Which outputs leave (default: only those of entries this node led).
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
  /// The `state_machine` label of this runner's metrics (Node::metrics()); empty: "smN",
  /// N its place among the node's attached state machines (0 for the first).
  std::string name;
};

/// A digest of the outputs of the entries in (index - digest_interval, index]: replicas
/// that applied the same commands deterministically have equal checkpoints.
struct RLR_API DigestCheckpoint {
  /// A multiple of ApplyOptions::digest_interval.
  LogIndex index;
  /// A 64-bit hash of those outputs (key, topic, payload), in emit order.
  std::uint64_t digest = 0;
  /// Same index and digest.
  friend bool operator==(const DigestCheckpoint&, const DigestCheckpoint&) = default;
};

/// A running apply loop (one thread per attached state machine).
class RLR_API ApplyRunner {
 public:
  virtual ~ApplyRunner() = default;
  /// The last index applied (or skipped as internal) by this runner.
  [[nodiscard]] virtual LogIndex applied() const = 0;
  /// Ok while running; the error that stopped it otherwise (for example Compacted:
  /// the state machine's checkpoint is below the first retained entry).
  [[nodiscard]] virtual Status health() const = 0;
  /// The latest digest checkpoints this runner recorded (at most 1024), oldest first.
  [[nodiscard]] virtual std::vector<DigestCheckpoint> checkpoints() const = 0;
  /// Stops the loop (the node keeps running).
  virtual void stop() = 0;
};

class Node;
/// Replays committed entries [from, to] of `node`'s log into `sm` with replay=true and
/// egress suppressed (outputs are still digested). Returns the digest checkpoints seen.
/// The same as node.replay(sm, from, to, digest_interval); errors as Node::replay().
[[nodiscard]] RLR_API Result<std::vector<DigestCheckpoint>> replay(Node& node,
                                                                   RoleAwareStateMachine& sm,
                                                                   LogIndex from, LogIndex to,
                                                                   std::uint64_t digest_interval = 1000);

}  // namespace rlr
