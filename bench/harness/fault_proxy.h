// rlr-bench: TCP proxies on the peer links of a multi-process cluster, to cut nodes off
// from each other without touching the processes.
//
// One proxy per ordered pair of nodes (i dials j through proxy (i, j)), so a cut is exact
// whichever side dialled. A cut node's links stall, as a network partition looks to TCP:
// bytes are held in both directions, nothing is refused and no FIN or reset passes, so
// both ends see an established connection that went silent. Healing lets the held bytes
// through, late and in order. Clients are not proxied.
#pragma once

#include <cstdint>
#include <memory>

namespace rlrbench {

class LinkProxies {
 public:
  LinkProxies();
  ~LinkProxies();
  LinkProxies(const LinkProxies&) = delete;
  LinkProxies& operator=(const LinkProxies&) = delete;

  /// A proxy on 127.0.0.1 for node `from`'s link to node `to`, forwarding to
  /// `target_port`; returns the port it listens on (0 when it cannot listen).
  [[nodiscard]] std::uint16_t add(std::uint64_t from, std::uint64_t to, std::uint16_t target_port);
  /// Cuts `node` off from every other node (true) or heals it (false). Thread-safe.
  void isolate(std::uint64_t node, bool cut);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlrbench
