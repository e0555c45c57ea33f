// The key-value store: its replicated commands and its state machine.
//
// Writes (Put, Delete) are log entries; every replica applies them in log order. Reads
// are served from the local map, after Node::read_index confirmed leadership and this
// replica applied through the returned index, which makes them linearizable.
//
// Command encoding (version 1, big-endian):
//   'K' 'V' 0x01 <op: 'P' | 'D'> <u32 count> count x (<u32 len> <len bytes>)
// Put carries exactly [key, value]; Delete carries 1..kDeleteKeysMax keys. A command that
// does not decode, or breaks a limit, changes nothing and yields an error result, the same
// on every replica.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "rlr/state_machine.h"

namespace rlr::kv {

inline constexpr std::size_t kKeyBytesMax = 64 * 1024;
inline constexpr std::size_t kValueBytesMax = 16 * 1024 * 1024;
inline constexpr std::size_t kDeleteKeysMax = 1024;

enum class Op : std::uint8_t { Put = 'P', Delete = 'D' };

struct KvCommand {
  Op op = Op::Put;
  std::vector<std::string> args;  ///< Put: key, value. Delete: keys.
  friend bool operator==(const KvCommand&, const KvCommand&) = default;
};

[[nodiscard]] Bytes encode(const KvCommand& c);
/// Errors: InvalidArgument saying what is wrong.
[[nodiscard]] Result<KvCommand> decode(std::span<const std::uint8_t> payload);

/// The outcome of applying one command.
struct KvResult {
  bool ok = true;
  std::int64_t deleted = 0;  ///< Delete: how many of the keys existed
  std::string error;         ///< when !ok
};

class KvStore : public RoleAwareStateMachine {
 public:
  void apply(const Entry& entry, const ApplyContext& ctx, Egress& egress) override;
  /// In memory: keeps what it applied in this process (0 at start).
  [[nodiscard]] LogIndex last_applied() const override { return LogIndex{applied_.load()}; }

  /// The local value (no linearizability by itself: see the file comment).
  [[nodiscard]] std::optional<std::string> get(const std::string& key) const;
  [[nodiscard]] bool exists(const std::string& key) const;
  [[nodiscard]] std::size_t size() const;

  /// Runs `done` (on the apply thread, or right here when already applied) once the
  /// command at `index` was applied, with its result (nullopt when it is no longer
  /// remembered: only the latest kResultsKept are).
  void when_applied(LogIndex index, std::function<void(std::optional<KvResult>)> done);
  /// Waits until this store applied through `index` or `progress()` (the apply runner's
  /// position, which also counts RLR's internal entries) reached it. False on timeout.
  [[nodiscard]] bool wait_applied(LogIndex index, const std::function<LogIndex()>& progress,
                                  std::chrono::steady_clock::time_point deadline) const;

  static constexpr std::size_t kResultsKept = 1 << 16;

 private:
  KvResult execute(const Entry& entry);

  mutable std::mutex mu_;
  mutable std::condition_variable applied_cv_;
  // Looked up by key only; never iterated, so its order cannot reach an output.
  std::unordered_map<std::string, std::string> map_;
  std::map<std::uint64_t, KvResult> results_;  // recent results by index
  std::multimap<std::uint64_t, std::function<void(std::optional<KvResult>)>> waiters_;
  std::atomic<std::uint64_t> applied_{0};
};

}  // namespace rlr::kv
