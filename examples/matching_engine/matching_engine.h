// The matching engine as a RoleAwareStateMachine, and its rlr-node app.
//
// Every replica applies every committed order command to its own OrderBook; the outputs
// (order_event, match_result) go through the Egress, so only the leader's copy leaves the
// process (or every copy, on a node with egress `persist`).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "apps/apps.h"
#include "matching_engine/order_book.h"
#include "rlr/state_machine.h"

namespace rlr::me {

class MatchingEngine : public RoleAwareStateMachine {
 public:
  /// Sees every applied command's outputs, on the apply thread, after they were emitted.
  using Observer = std::function<void(const ApplyContext& ctx, const std::vector<Event>& events)>;

  MatchingEngine() = default;
  explicit MatchingEngine(Observer observer) : observer_(std::move(observer)) {}

  void apply(const Entry& entry, const ApplyContext& ctx, Egress& egress) override;
  void on_role_change(Role role, NodeId leader, LogIndex at) override;
  /// An in-memory book: it keeps what it applied in this process (0 at start).
  [[nodiscard]] LogIndex last_applied() const override { return LogIndex{applied_.load()}; }

  /// The book as text (thread-safe).
  [[nodiscard]] std::string dump() const;
  [[nodiscard]] std::size_t live_orders() const;

  /// Logs role changes to stderr ("[matching-engine] ..."); off by default.
  void set_log_role_changes(bool on) { log_roles_ = on; }

 private:
  Observer observer_;
  mutable std::mutex mu_;  // the book, for readers on other threads
  OrderBook book_;
  std::vector<Event> scratch_;  // apply thread only
  std::atomic<std::uint64_t> applied_{0};
  bool log_roles_ = false;
};

/// Emits a book's events through an Egress (topic + payload, in order).
void emit_all(const std::vector<Event>& events, Egress& egress);

/// The "matching-engine" app. Settings ([app] table):
///   output_log       file receiving the outputs that pass the egress gate, one line each
///                    ("<index>.<position> <topic> <payload>"); default: none
///   digest_interval  entries between digest checkpoints (default 100)
[[nodiscard]] std::unique_ptr<apps::App> make_app();

}  // namespace rlr::me
