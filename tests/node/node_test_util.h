// Helpers shared by the runtime tests.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "rlr/node.h"

namespace rlr::testing {

using namespace std::chrono_literals;

/// Waits until exactly one node of `nodes` (id -> pointer to a Node) claims leadership
/// and every other agrees; kNoNode on timeout.
template <class Nodes>
NodeId wait_single_leader(const Nodes& nodes, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    NodeId leader;
    int leaders = 0;
    for (auto& [id, n] : nodes) {
      if (n->role() == Role::Leader) {
        leader = id;
        ++leaders;
      }
    }
    if (leaders == 1) {
      bool agreed = true;
      for (auto& [id, n] : nodes) agreed = agreed && n->leader() == leader;
      if (agreed) return leader;
    }
    std::this_thread::sleep_for(5ms);
  }
  return kNoNode;
}


/// Proposes `n` entries with at most `window` outstanding; returns the committed count.
inline std::size_t propose_many(Node& leader, std::size_t n, std::size_t window,
                         const std::string& tag) {
  // Shared with the callbacks, which may outlive this call if it times out.
  struct Counters {
    std::atomic<std::size_t> ok{0};
    std::atomic<std::size_t> done{0};
    std::atomic<std::size_t> outstanding{0};
  };
  auto c = std::make_shared<Counters>();
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (std::size_t i = 0; i < n; ++i) {
    while (c->outstanding.load() >= window && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(20us);
    }
    ++c->outstanding;
    leader.propose(Bytes::copy_of(fmt::format("{}-{}", tag, i)), [c](Result<ProposeResult> r) {
      if (r) ++c->ok;
      --c->outstanding;
      ++c->done;
    });
  }
  while (c->done.load() < n && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  return c->ok.load();
}

/// Reads every committed entry, the runtime's own included, from `from` until `upto`
/// (inclusive) or timeout.
inline std::vector<CommittedEntry> read_all(Node& n, LogIndex from, LogIndex upto) {
  auto sub = n.subscribe(from, SubscribeOptions{.include_internal = true});
  REQUIRE(sub.is_ok());
  std::vector<CommittedEntry> out;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while ((out.empty() || out.back().index < upto) && std::chrono::steady_clock::now() < deadline) {
    auto r = sub.value()->next(100ms);
    REQUIRE(r.is_ok());
    for (auto& e : r.value().entries) out.push_back(std::move(e));
  }
  return out;
}

inline void check_gap_free(const std::vector<CommittedEntry>& es, LogIndex from) {
  LogIndex expect = from;
  for (const auto& e : es) {
    REQUIRE(e.index == expect);
    expect = expect.next();
  }
}


}  // namespace rlr::testing
