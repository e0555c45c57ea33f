// AsioTransport's private state, shared by its parts (private to src/transport):
//   asio_transport.cpp   the Transport interface, the peer table, start and stop
//   peer_link.{h,cpp}    the outbound link to one peer: dial, handshake, send queue,
//                        keepalives, backoff
//   snapshot_stream.cpp  snapshots sent as a window of chunks, and reassembled
//   inbound_conn.{h,cpp} connections from peers and clients: accept, handshake, reads
//   frame_queue.{h,cpp}  the bounded queue of frames of one connection
// Everything marked "io thread" runs on the one thread that runs `io`.
#pragma once

#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

#include "transport/asio_transport.h"
#include "util/logger.h"
#include "wire/peer_codec.h"

namespace rlr::transport {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class AsioTransport::Impl {
 public:
  Impl(AsioOptions o, ClientHandler* handler)
      : opts(std::move(o)), log(opts.log_sink, "transport", opts.self), clients(handler),
        tag(wire::cluster_tag(opts.cluster_id)),
        acceptor(io), rng(std::random_device{}()) {}

  class Conn;
  class Peer;

  AsioOptions opts;
  util::Logger log;
  ClientHandler* clients;
  const std::uint64_t tag;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  std::thread thread;
  Inbox* inbox = nullptr;
  std::mt19937_64 rng;  // io thread only

  std::mutex peers_mu;
  std::map<NodeId, std::shared_ptr<Peer>> peers;
  std::set<std::shared_ptr<Conn>> conns;  // io thread only

  std::atomic<std::uint64_t> frames_sent{0};
  std::atomic<std::uint64_t> writes{0};
  std::atomic<std::uint64_t> direct_writes{0};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> snapshot_bytes_sent{0};
  std::atomic<std::uint64_t> snapshot_resumes{0};
  std::atomic<std::uint64_t> links_silent{0};
  std::atomic<std::uint64_t> dials_timed_out{0};
  /// What arrived from one peer (on any of its connections to us).
  struct Received {
    std::atomic<std::uint64_t> frames{0};
    std::atomic<std::uint64_t> bytes{0};
  };
  /// Per peer; entries are never removed (a peer that returns keeps counting). At most
  /// kMaxCountedPeers; further senders share one uncounted entry.
  std::map<NodeId, std::shared_ptr<Received>> received_by_peer;  // guarded by peers_mu
  static constexpr std::size_t kMaxCountedPeers = 1024;
  std::shared_ptr<Received> uncounted = std::make_shared<Received>();
  /// The receive counters of `peer` (made on first use). Any thread.
  std::shared_ptr<Received> received_from(NodeId peer) {
    std::lock_guard lock(peers_mu);
    auto it = received_by_peer.find(peer);
    if (it != received_by_peer.end()) return it->second;
    if (received_by_peer.size() >= kMaxCountedPeers) return uncounted;
    return received_by_peer.emplace(peer, std::make_shared<Received>()).first->second;
  }
  std::atomic<bool> stopped{false};

  [[nodiscard]] bool keepalive_on() const {
    return opts.keepalive_interval_ms > 0 && opts.silence_timeout_ms > 0;
  }
  /// io thread: the kernel gives up on unacknowledged data as soon as we would.
  void tune_socket(tcp::socket& s) const;

  /// A snapshot being received from one sender. It outlives the connection it arrived
  /// on, so a transfer cut by a lost connection resumes where it stopped.
  struct Reassembly {
    LogIndex index;
    Term term;
    std::uint64_t total = 0;
    std::vector<std::uint8_t> data;
    bool delivered = false;  ///< handed to the core; later chunks of it are acknowledged
  };
  std::map<NodeId, Reassembly> snapshots;  // io thread only
  std::string advertise;  // "host:port" sent in our Hello

  /// Adds, re-addresses or (with an empty address) removes a peer. Any thread.
  void set_peer(NodeId id, const std::string& address, bool learned_only = false);
  /// Learns the address of a node that dialled us, when we have none for it.
  void learn_peer(NodeId id, const std::string& address);
  /// io thread: peer `id` connected to us; our own connection to it stops backing off.
  void dialled_by(NodeId id);
  /// io thread: peer `id`'s link to us went silent; our own link to it is redialled.
  void silent_peer(NodeId id);
  /// Our link to `id`, or null. Any thread.
  [[nodiscard]] std::shared_ptr<Peer> find_peer(NodeId id);
  /// Peers we dialled back only because they dialled us (not from the configuration).
  std::set<NodeId> learned;  // guarded by peers_mu

  bool known_peer(NodeId id) {
    std::lock_guard lock(peers_mu);
    return peers.count(id) != 0;
  }

  /// io thread: accepts connections until the acceptor closes (inbound_conn.cpp).
  void accept();
  /// io thread: a chunk of a snapshot from peer c.from, which arrived on `from`: kept,
  /// acknowledged on `from`, and the snapshot delivered once whole (snapshot_stream.cpp).
  void on_snapshot_chunk(wire::SnapshotChunk c, Conn& from);
};

}  // namespace rlr::transport
