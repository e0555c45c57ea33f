// The test kit's RealTime clock (private): each node is a real rlr::Node (node::NodeImpl
// and its threads) over LocalTransport, on the wall clock. Its log lives in a
// storage::MemoryStorage that outlives the node; a crash first cuts the node off from
// that storage (every later write fails, as a dead process writes nothing), then stops
// it, so what it had not yet written is lost and nothing it wrote after is kept.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <vector>

#include "node/node_impl.h"
#include "storage/memory_storage.h"
#include "testing/kit.h"
#include "transport/local_transport.h"

namespace rlr::testing {

class RealTimeCluster final : public Kit {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Cluster>> create(ClusterOptions options);
  explicit RealTimeCluster(ClusterOptions options);
  ~RealTimeCluster() override;

  [[nodiscard]] std::chrono::milliseconds now() const override;
  void advance(std::chrono::milliseconds d) override;
  [[nodiscard]] bool run_until(const std::function<bool()>& done,
                               std::chrono::milliseconds timeout) override;
  [[nodiscard]] std::shared_ptr<RoleAwareStateMachine> state_machine(NodeId id,
                                                                     std::size_t n) const override;
  [[nodiscard]] Status digests_agree() const override;
  void propose_async(NodeId id, Bytes command, ClientSession session, ProposeCallback done) override;
  [[nodiscard]] Result<ProposeResult> propose_at(NodeId id, Bytes command, ClientSession session,
                                                 std::chrono::milliseconds timeout) override;
  [[nodiscard]] Result<std::vector<CommittedEntry>> committed(NodeId id, LogIndex from) const override;
  [[nodiscard]] Status transfer_leadership(NodeId to, std::chrono::milliseconds timeout) override;
  [[nodiscard]] Result<ClusterInfo> cluster_info(NodeId id) const override;
  [[nodiscard]] Node* node(NodeId id) override;
  void set_network_faults(const NetworkFaults& faults) override;
  [[nodiscard]] Status crash(NodeId id) override;
  [[nodiscard]] Status restart(NodeId id) override;
  [[nodiscard]] bool running(NodeId id) const override;

 protected:
  [[nodiscard]] NodeView view(NodeId id) const override;
  void apply_cuts() override;
  [[nodiscard]] Status start_attachment(NodeId id, std::size_t n) override;

 private:
  struct Member {
    NodeOptions options;
    std::shared_ptr<storage::MemoryStorage> disk;
    /// Cleared at a crash: the node's storage handle then refuses every write.
    std::shared_ptr<std::atomic<bool>> alive;
    std::unique_ptr<node::NodeImpl> node;
    std::vector<std::shared_ptr<RoleAwareStateMachine>> sms;
    std::vector<std::shared_ptr<ApplyRunner>> runners;
  };
  [[nodiscard]] Status start(NodeId id);
  /// Copies every running runner's digest checkpoints into the records.
  void harvest_checkpoints(const Member& m, NodeId id) const;
  [[nodiscard]] Member* find(NodeId id) const;

  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::shared_ptr<transport::LocalNetwork> net_;
  std::map<NodeId, std::unique_ptr<Member>> members_;
};

}  // namespace rlr::testing
