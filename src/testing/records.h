// What the test kit records of a cluster (private to the kit): the nodes' log lines,
// every output that passed a node's egress gate, and every digest checkpoint. Shared by
// both clocks' clusters. Thread-safe: in RealTime mode nodes' threads write, the test reads.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "rlr/log.h"
#include "rlr/state_machine.h"
#include "rlr/testing.h"

namespace rlr::testing {

/// Keeps the newest kMaxLines log lines of every node (older ones are dropped), each as
/// format_log_record(Text) lays it out.
class LineSink final : public LogSink {
 public:
  static constexpr std::size_t kMaxLines = 10'000;
  void write(const LogRecord& record) noexcept override;
  [[nodiscard]] std::vector<std::string> lines() const;

 private:
  mutable std::mutex mu_;
  std::deque<std::string> lines_;
};

/// Outputs and digest checkpoints, by node and by attachment.
class Records {
 public:
  /// `not_leader`: a LeaderOnly gate let it out while the node did not lead.
  void delivered(NodeId node, const Output& output, bool not_leader);
  void checkpoint(NodeId node, std::size_t attachment, const DigestCheckpoint& cp);
  [[nodiscard]] std::vector<Output> emitted(NodeId node) const;
  [[nodiscard]] Downstream downstream() const;
  [[nodiscard]] Status digests_agree() const;

 private:
  mutable std::mutex mu_;
  /// node -> outputs in delivery order
  std::map<NodeId, std::vector<Output>> outputs_;
  std::uint64_t not_leader_ = 0;
  /// (attachment, index) -> node -> digest
  std::map<std::pair<std::size_t, LogIndex>, std::map<NodeId, std::uint64_t>> digests_;
};

/// A node's egress sink for one attachment during one run of the node: records each
/// output, then hands it to the user's sink when there is one. Without a user sink it
/// acknowledges index i - 1 when it delivers an output of entry i: the runner delivers in
/// key order and re-emits what lies above the watermark first, so everything below i that
/// this sink was meant to carry has been delivered.
class RecordingSink final : public EgressSink {
 public:
  /// Tells whether the node leads right now.
  using LeadsNow = std::function<bool()>;
  /// `leader_only`: the attachment's egress is LeaderOnly, so every delivery is checked
  /// against `leads_now`.
  RecordingSink(std::shared_ptr<Records> records, NodeId node, std::shared_ptr<EgressSink> user,
                bool leader_only, LeadsNow leads_now)
      : records_(std::move(records)),
        node_(node),
        user_(std::move(user)),
        leader_only_(leader_only),
        leads_now_(std::move(leads_now)) {}
  void deliver(const Output& output) override;
  [[nodiscard]] LogIndex acknowledged() const override;

 private:
  std::shared_ptr<Records> records_;
  NodeId node_;
  std::shared_ptr<EgressSink> user_;
  const bool leader_only_;
  LeadsNow leads_now_;
  mutable std::mutex mu_;
  LogIndex acked_;  // guarded by mu_
};

}  // namespace rlr::testing
