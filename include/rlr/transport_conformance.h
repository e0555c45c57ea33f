/// \file
/// librlr — the conformance suite of the transport seam (rlr/transport.h), for anyone who
/// writes a transport, and an in-process network that passes it.
///
/// check_transport() holds an implementation to the contract rlr/transport.h writes out:
/// frames arrive intact, from the sender the handler is told, in order per sender, also
/// when several threads send at once; send() returns at once even to a peer that is not
/// there; nothing is delivered after stop(); and then real nodes run on it: a 3-node
/// cluster elects a leader, commits, survives the loss of its leader, and brings a new
/// learner up to date through a snapshot (which travels in several frames). It runs in
/// real time (a few seconds) and returns the first violation it sees.
///
/// Example (Catch2):
/// \code{.cpp}
///   class MyFactory : public rlr::testing::TransportFactory {
///    public:
///     std::shared_ptr<rlr::Transport> make(rlr::NodeId id) override { return std::make_shared<MyTransport>(net_, id); }
///    private:
///     MyNetwork net_;
///   };
///   TEST_CASE("my transport keeps the contract") {
///     MyFactory f;
///     const rlr::Status s = rlr::testing::check_transport(f);
///     INFO(s.to_string());
///     CHECK(s.is_ok());
///   }
/// \endcode
///
/// Link rlr_testing. Thread-safety: one check at a time per factory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "rlr/export.h"
#include "rlr/address.h"
#include "rlr/status.h"
#include "rlr/transport.h"
#include "rlr/types.h"

namespace rlr::testing {

/// Makes the endpoints of one network: every transport one factory makes can reach
/// every other it made (after set_peer(), for a transport that needs addresses).
class RLR_API TransportFactory {
 public:
  virtual ~TransportFactory() = default;
  /// A new, not yet started endpoint for node `id`. The suite asks for each id more than
  /// once (a fresh endpoint per check, and per node start): an endpoint made later for
  /// the same id replaces the earlier one, which has been stopped by then.
  [[nodiscard]] virtual std::shared_ptr<Transport> make(NodeId id) = 0;
  /// Where node `id`'s endpoint is reached, as the suite passes it to set_peer() and to
  /// the nodes' membership. Default: 127.0.0.1, port 20000 + id.
  [[nodiscard]] virtual Address address(NodeId id);
};

/// Runs every check against `factory`'s transports; Ok, or the first violation
/// (InvalidArgument for a broken contract, Timeout for what never arrived, and the
/// transport's or the nodes' own errors), naming the check.
[[nodiscard]] RLR_API Status check_transport(TransportFactory& factory);

/// An in-process network: its transports hand each frame to the addressed endpoint's
/// handler on a delivery thread of the network's (one for all endpoints), in order per
/// sender. At most kMaxQueued frames wait; beyond, send() drops. It passes
/// check_transport(); it is also a starting point for a transport of one's own.
class RLR_API InProcessNetwork final : public TransportFactory {
 public:
  /// Frames waiting for delivery, over all endpoints, beyond which send() drops.
  static constexpr std::size_t kMaxQueued = 1U << 16;
  InProcessNetwork();
  ~InProcessNetwork() override;
  InProcessNetwork(const InProcessNetwork&) = delete;
  InProcessNetwork& operator=(const InProcessNetwork&) = delete;
  [[nodiscard]] std::shared_ptr<Transport> make(NodeId id) override;
  /// Frames dropped because the queue was full or nobody listened at the address.
  [[nodiscard]] std::uint64_t dropped() const;

  class State;  // shared with its transports

 private:
  std::shared_ptr<State> state_;
};

}  // namespace rlr::testing
