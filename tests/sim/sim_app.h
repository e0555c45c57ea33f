// The application side of a simulated node, run by the runtime's own node::ApplyEngine:
// a deterministic test state machine, each node's egress sink, and the downstream they
// deliver to. The downstream is also the oracle of the egress contracts, checked as
// things happen:
//
//   state machines agree   every node reaches the same application state at each index
//                          (after session deduplication), and records the same outputs
//   egress from the leader only  an output leaves only through a node leading right now
//   one output per key     a key delivered twice carries the same output
//   output digests agree   every node's digest checkpoint at an index is the same
//   nothing missing        after the final heal, the leader's downstream holds every
//                          output of the entries that leader applied since it started
//
// The downstream acknowledges (EgressSink::acknowledged) the longest prefix of the log
// whose outputs it has all received, as a sink with a durable, gap-checking consumer
// would; the leader proposes that as the egress watermark.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "invariants.h"
#include "rlr/state_machine.h"

namespace rlr::sim {

/// The outputs and application states of the whole run, and the downstream's inbox.
class Downstream {
 public:
  explicit Downstream(InvariantChecker& checker) : checker_(checker) {}

  /// Node `id`'s state machine recorded `out` (whether or not the gate let it leave).
  void on_recorded(NodeId id, const Output& out);
  /// Node `id` finished applying index `i` with application state `state`; `outputs` is
  /// how many outputs the entry produced.
  void on_applied(NodeId id, LogIndex i, std::uint64_t state, std::uint32_t outputs);
  /// The application state at `i`, once some node applied it (0: the empty state).
  [[nodiscard]] std::optional<std::uint64_t> state_at(LogIndex i) const;
  /// Node `id`'s sink delivered `out`; `leads_now` says whether the node leads now.
  void on_delivered(NodeId id, bool leads_now, const Output& out);
  /// Node `id` recorded a digest checkpoint.
  void on_checkpoint(NodeId id, const DigestCheckpoint& cp);
  /// The end of the log prefix whose outputs have all been delivered.
  [[nodiscard]] LogIndex acknowledged() const noexcept { return complete_through_; }
  /// Every output of entries (from, through] is here, else "nothing missing" fails.
  void check_complete(NodeId leader, LogIndex from, LogIndex through);

  [[nodiscard]] std::uint64_t delivered() const noexcept { return delivered_; }
  [[nodiscard]] std::uint64_t redelivered() const noexcept { return redelivered_; }
  [[nodiscard]] std::uint64_t checkpoints_compared() const noexcept { return checkpoints_compared_; }

 private:
  static constexpr std::uint32_t kMaxOutputs = 2;  ///< per entry (SimStateMachine's)
  struct Applied {
    bool known = false;  ///< some node applied the index: state and outputs are set
    std::uint64_t state = 0;
    std::uint32_t outputs = 0;
    std::array<Bytes, kMaxOutputs> recorded{};  ///< the first recording's payloads (topics
                                                ///< are all the same)
    std::array<bool, kMaxOutputs> received{};
  };
  Applied* at(LogIndex i);
  void advance();

  InvariantChecker& checker_;
  std::vector<Applied> applied_;                   ///< [k] describes index k+1
  std::map<LogIndex, std::uint64_t> checkpoints_;  ///< digest by index
  LogIndex complete_through_;
  std::uint64_t delivered_ = 0;
  std::uint64_t redelivered_ = 0;
  std::uint64_t checkpoints_compared_ = 0;
};

/// A deterministic application: a running hash of the commands it applied, and one or
/// two outputs per command that carry the index, position and that hash.
class SimStateMachine final : public RoleAwareStateMachine {
 public:
  SimStateMachine(Downstream& downstream, NodeId id) : downstream_(downstream), id_(id) {}
  void apply(const Entry& entry, const ApplyContext& ctx, Egress& egress) override;
  [[nodiscard]] LogIndex last_applied() const override { return applied_; }

  /// The state after everything up to `applied` (a restart or a restore).
  void reset(LogIndex applied, std::uint64_t state) {
    applied_ = applied;
    state_ = state;
  }
  [[nodiscard]] std::uint64_t state() const noexcept { return state_; }
  /// Outputs of the last command applied, and forgets them (0 for internal entries).
  [[nodiscard]] std::uint32_t take_outputs() noexcept { return std::exchange(outputs_, 0); }

 private:
  Downstream& downstream_;
  NodeId id_;
  LogIndex applied_;
  std::uint64_t state_ = 0;
  std::uint32_t outputs_ = 0;
};

/// A node's egress sink: hands outputs to the downstream, noting whether the node leads.
class SimSink final : public EgressSink {
 public:
  using LeadsNow = std::function<bool()>;
  SimSink(Downstream& downstream, NodeId id, LeadsNow leads_now)
      : downstream_(downstream), id_(id), leads_now_(std::move(leads_now)) {}
  void deliver(const Output& output) override {
    downstream_.on_delivered(id_, leads_now_(), output);
  }
  [[nodiscard]] LogIndex acknowledged() const override { return downstream_.acknowledged(); }

 private:
  Downstream& downstream_;
  NodeId id_;
  LeadsNow leads_now_;
};

}  // namespace rlr::sim
