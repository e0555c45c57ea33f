// Nodes a client has stopped trusting for a while (private to the client library).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>

namespace rlr::client {

/// Keys (node ids, addresses) under suspicion until a time each. Bounded: at most
/// `max_keys`; adding one more drops the suspicion that would end first. Not
/// thread-safe (the client's io thread owns it).
template <class Key>
class Suspicions {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Suspicions(std::size_t max_keys) : max_keys_(max_keys) {}

  void add(const Key& key, Clock::time_point until) {
    if (until_.size() >= max_keys_ && until_.count(key) == 0) {
      auto first = std::min_element(until_.begin(), until_.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; });
      until_.erase(first);
    }
    until_[key] = until;
  }
  /// True while `key`'s suspicion lasts; an expired one is forgotten.
  [[nodiscard]] bool has(const Key& key, Clock::time_point now) {
    auto it = until_.find(key);
    if (it == until_.end()) return false;
    if (it->second > now) return true;
    until_.erase(it);
    return false;
  }
  void clear(const Key& key) { until_.erase(key); }
  /// True while some suspicion lasts; expired ones are forgotten.
  [[nodiscard]] bool any(Clock::time_point now) {
    std::erase_if(until_, [now](const auto& kv) { return kv.second <= now; });
    return !until_.empty();
  }

 private:
  std::size_t max_keys_;
  std::map<Key, Clock::time_point> until_;
};

}  // namespace rlr::client
