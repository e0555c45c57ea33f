// What both clocks' test clusters share (private to the kit): options, records, the
// attachments, the cuts of the network, and every helper that only needs to look at the
// nodes (leader, waiting, proposing at the leader). ManualCluster and RealTimeCluster add
// the nodes themselves.
#pragma once

#include <chrono>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "rlr/testing.h"
#include "testing/records.h"
#include "util/logger.h"

namespace rlr::testing {

class Kit : public Cluster {
 public:
  explicit Kit(ClusterOptions options);

  [[nodiscard]] const ClusterOptions& options() const override { return options_; }
  [[nodiscard]] std::vector<NodeId> ids() const override;
  [[nodiscard]] std::vector<Output> emitted(NodeId id) const override { return records_->emitted(id); }
  [[nodiscard]] Downstream downstream() const override { return records_->downstream(); }
  [[nodiscard]] Status digests_agree() const override { return records_->digests_agree(); }
  [[nodiscard]] std::vector<std::string> log_lines() const override;
  [[nodiscard]] Status attach(StateMachineFactory make, ApplyOptions options) override;
  using Cluster::attach;
  [[nodiscard]] Result<NodeId> wait_for_leader(std::chrono::milliseconds timeout) override;
  using Cluster::wait_for_leader;
  [[nodiscard]] NodeId leader() const override;
  [[nodiscard]] Result<ProposeResult> propose(Bytes command, ClientSession session,
                                              std::chrono::milliseconds timeout) override;
  using Cluster::propose;
  [[nodiscard]] LogIndex last_committed() const override;
  [[nodiscard]] bool wait_applied(LogIndex index, std::chrono::milliseconds timeout) override;
  using Cluster::wait_applied;
  [[nodiscard]] LogIndex min_applied() const override;
  [[nodiscard]] Role role(NodeId id) const override;
  void partition(const std::vector<std::vector<NodeId>>& groups) override;
  void isolate(NodeId id) override;
  void heal() override;

 protected:
  /// What the kit needs to know of a node.
  struct NodeView {
    bool up = false;
    Role role = Role::Follower;
    NodeId leader;
    Term term;
    LogIndex commit;
    /// The lowest applied index of its state machines; the node's applied index when
    /// none is attached.
    LogIndex applied;
    bool has_state_machines = false;
  };
  [[nodiscard]] virtual NodeView view(NodeId id) const = 0;
  /// Makes the network follow cuts() (called after every change of them).
  virtual void apply_cuts() = 0;
  /// Starts attachment `n` on running node `id`.
  [[nodiscard]] virtual Status start_attachment(NodeId id, std::size_t n) = 0;

  /// InvalidArgument unless `id` is one of the cluster's nodes.
  [[nodiscard]] Status check_id(NodeId id) const;
  /// True when the link from -> to is cut.
  [[nodiscard]] bool is_cut(NodeId from, NodeId to) const { return cuts_.count({from, to}) != 0; }
  [[nodiscard]] const std::set<std::pair<NodeId, NodeId>>& cuts() const { return cuts_; }
  /// The leader every running node that can hear it agrees on; kNoNode otherwise.
  [[nodiscard]] NodeId settled_leader() const;
  /// The log sink nodes write to: the user's, or lines_.
  [[nodiscard]] const std::shared_ptr<LogSink>& sink() const { return sink_; }
  /// The kit's own log lines (component "testing").
  [[nodiscard]] const util::Logger& kit_log() const { return kit_log_; }

  struct Attachment {
    StateMachineFactory make;
    ApplyOptions options;
  };
  [[nodiscard]] const std::vector<Attachment>& attachments() const { return attachments_; }
  [[nodiscard]] const std::shared_ptr<Records>& records() const { return records_; }

 private:
  ClusterOptions options_;
  std::shared_ptr<LineSink> lines_;  ///< null when the user brought a sink
  std::shared_ptr<LogSink> sink_;
  util::Logger kit_log_;
  std::shared_ptr<Records> records_ = std::make_shared<Records>();
  std::vector<Attachment> attachments_;
  std::set<std::pair<NodeId, NodeId>> cuts_;  ///< one-way links that are cut
};

}  // namespace rlr::testing
