// A bounded queue of encoded frames for one connection of AsioTransport (private).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "wire/frame.h"

namespace rlr::transport {

/// A bounded queue of encoded frames, filled by any thread and drained by the io thread.
/// Thread-safe.
class FrameQueue {
 public:
  explicit FrameQueue(std::size_t max_bytes) : max_bytes_(max_bytes) {}
  /// False when the frame does not fit (it is dropped). `schedule` tells the caller to
  /// arrange a drain: the queue went from idle to non-empty.
  bool push(wire::Frame f, bool& schedule);
  /// Takes everything queued; when empty, marks the queue idle and returns false.
  bool take(std::vector<wire::Frame>& out);
  void clear();

  /// The socket frames may be written to directly (-1: none). Set by the io thread once
  /// the connection is established, and cleared *before* it closes the socket, so a
  /// direct write never reaches a closed (or reused) descriptor.
  void set_fd(int fd) {
    std::lock_guard lock(mu_);
    fd_ = fd;
  }

  /// Sends `frames` on the calling thread when the connection is idle (nothing queued,
  /// no write of the io thread in progress): one non-blocking sendmsg, no hand-off to the
  /// io thread and no wake-up. What the socket does not take (or everything, when the
  /// connection is busy or down) is queued in order, as push() would; `schedule` as there.
  /// Returns the frames queued or sent (`direct`: how many were sent whole, here);
  /// frames that do not fit the queue are dropped.
  std::size_t send_or_push(std::vector<wire::Frame>& frames, bool& schedule, std::uint64_t& direct);

  /// What the queue took since it was made: frames and bytes sent or queued, and frames
  /// dropped because they did not fit.
  struct Counts {
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
    std::uint64_t dropped = 0;
  };
  [[nodiscard]] Counts counts() const {
    std::lock_guard lock(mu_);
    return counts_;
  }

 private:
  mutable std::mutex mu_;
  Counts counts_;  // guarded by mu_
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::vector<wire::Frame> frames_;
  bool draining_ = false;
  int fd_ = -1;
};

}  // namespace rlr::transport
