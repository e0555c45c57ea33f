#include <algorithm>

#include <fmt/format.h>

#include "node/client_service.h"
#include "node/node_impl.h"
#include "rlr/storage.h"
#include "storage/memory_storage.h"
#include "storage/public_storage.h"
#include "storage/rocksdb_storage.h"
#include "rlr/transport.h"
#include "transport/asio_transport.h"
#include "transport/frame_transport.h"

namespace rlr {

Result<std::unique_ptr<Node>> NodeBuilder::build() const {
  NodeOptions o = o_;
  if (storage_) o.storage = StorageKind::Memory;  // the kind is unused: no data_dir needed
  if (Status s = validate(o); !s) return s;
  if (transport_ && o_.forward_proposals) {
    return Status{ErrorCode::InvalidArgument,
                  "forward_proposals relays over TCP client connections, which a node on a custom "
                  "transport does not have"};
  }
  core::Configuration initial;
  for (const auto& m : o_.initial_members) {
    initial.voters.push_back(m.id);
    initial.addresses.push_back(core::MemberEndpoint{m.id, m.address.to_string()});
  }
  initial.normalize();
  const storage::Identity identity{o_.cluster_id, o_.id};
  std::unique_ptr<storage::Storage> store;
  if (storage_) {
    const StorageIdentity found = storage_->identity();
    if (found.cluster_id != o_.cluster_id || found.node_id != o_.id) {
      return Status{ErrorCode::WrongCluster,
                    fmt::format("the store given belongs to cluster '{}' node {}, not to cluster '{}' "
                                "node {}",
                                found.cluster_id, found.node_id.value(), o_.cluster_id, o_.id.value())};
    }
    store = std::make_unique<storage::UserStorage>(storage_, initial);
  } else if (o_.storage == StorageKind::Memory) {
    store = std::make_unique<storage::MemoryStorage>(identity, initial);
  } else {
    storage::RocksDbOptions ro;
    ro.path = o_.data_dir;
    ro.identity = identity;
    ro.initial_config = initial;
    ro.sync = o_.sync;
    auto opened = storage::RocksDbStorage::open(ro);
    if (!opened) return opened.status();
    store = std::move(opened).value();
  }
  const std::shared_ptr<LogSink> sink = o_.log_sink ? o_.log_sink : make_stderr_log_sink();
  if (transport_) {
    transport::FrameTransport::Options fo;
    fo.cluster_id = o_.cluster_id;
    fo.self = o_.id;
    fo.max_frame_bytes = o_.max_frame_bytes;
    fo.snapshot_chunk_bytes = o_.snapshot_chunk_bytes;
    fo.log_sink = sink;
    auto node = node::NodeImpl::start(o, std::move(store),
                                      std::make_unique<transport::FrameTransport>(fo, transport_));
    if (!node) return node.status();
    return std::unique_ptr<Node>(std::move(node).value());
  }
  auto service = std::make_shared<node::ClientService>();
  transport::AsioOptions ao;
  ao.cluster_id = o_.cluster_id;
  ao.self = o_.id;
  ao.listen_host = o_.listen.host;
  ao.listen_port = o_.listen.port;
  ao.auth_token = o_.auth_token;
  ao.max_frame_bytes = o_.max_frame_bytes;
  ao.snapshot_chunk_bytes = o_.snapshot_chunk_bytes;
  ao.log_sink = sink;
  if (o_.link_keepalive) {
    const auto keepalive = o_.tick * o_.heartbeat_ticks;
    const auto silence =
        o_.link_silence.count() != 0 ? o_.link_silence : std::max(o_.tick * o_.election_ticks, 3 * keepalive);
    ao.keepalive_interval_ms = static_cast<std::uint32_t>(keepalive.count());
    ao.silence_timeout_ms = static_cast<std::uint32_t>(silence.count());
  }
  auto transport = std::make_unique<transport::AsioTransport>(ao, service.get());
  auto node = node::NodeImpl::start(o, std::move(store), std::move(transport));
  if (!node) return node.status();
  service->attach(node.value().get());
  node.value()->keep_alive(service);
  return std::unique_ptr<Node>(std::move(node).value());
}

}  // namespace rlr
