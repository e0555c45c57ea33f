// rlr-node's admin HTTP server: GET /metrics (Prometheus text format), / (the status
// page), /healthz and /readyz (health.h), on its own thread.
//
// HTTP is Boost.Beast's (headers only, from libboost-dev, which the transport's Asio
// already needs); the Prometheus format is prometheus-cpp's (prometheus_text.h).
//
// Bounds: at most kMaxConnections connections at once (a further one is closed at
// once); requests of at most 8 KiB of headers and 8 KiB of body (a larger one closes the
// connection); only GET and HEAD are served (others: 405); a connection idle for 10 s
// is closed, and one closes after 100 requests. Each request takes a Node::metrics() snapshot (a turn of the raft
// thread), so one slow answer holds up the others behind it on this one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "rlr/address.h"
#include "rlr/node.h"
#include "rlr/status.h"

namespace rlr::admin {

struct AdminOptions {
  Address listen;
  std::string data_dir;          ///< probed by /healthz; empty: none (in-memory storage)
  std::uint64_t ready_max_lag = 10'000;
};

class AdminServer {
 public:
  static constexpr std::size_t kMaxConnections = 32;

  /// Binds `options.listen` and starts serving `node` (which must outlive the server).
  /// Errors: IoError when the address cannot be bound.
  [[nodiscard]] static Result<std::unique_ptr<AdminServer>> start(Node& node, AdminOptions options);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  /// The bound address (its port is the real one when the options gave 0).
  [[nodiscard]] Address address() const;
  /// Stops serving and joins the thread. Idempotent.
  void stop();

  class Impl;
  /// Only start() makes the key.
  class Key {
    friend class AdminServer;
    Key() = default;
  };
  AdminServer(Key key, std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlr::admin
