#include "transport/frame_queue.h"

#include <algorithm>
#include <array>
#include <utility>

#include <sys/socket.h>
#include <sys/uio.h>

namespace rlr::transport {

bool FrameQueue::push(wire::Frame f, bool& schedule) {
  std::lock_guard lock(mu_);
  schedule = false;
  if (bytes_ + f.size() > max_bytes_ && !frames_.empty()) {
    ++counts_.dropped;
    return false;
  }
  ++counts_.frames;
  counts_.bytes += f.size();
  bytes_ += f.size();
  frames_.push_back(std::move(f));
  if (!draining_) {
    draining_ = true;
    schedule = true;
  }
  return true;
}

bool FrameQueue::take(std::vector<wire::Frame>& out) {
  std::lock_guard lock(mu_);
  if (frames_.empty()) {
    draining_ = false;
    return false;
  }
  out.swap(frames_);
  frames_.clear();
  bytes_ = 0;
  return true;
}

void FrameQueue::clear() {
  std::lock_guard lock(mu_);
  frames_.clear();
  bytes_ = 0;
  draining_ = false;
}

std::size_t FrameQueue::send_or_push(std::vector<wire::Frame>& frames, bool& schedule, std::uint64_t& direct) {
  std::lock_guard lock(mu_);
  schedule = false;
  direct = 0;
  std::size_t i = 0;
  if (fd_ >= 0 && !draining_ && frames_.empty()) {
    std::array<iovec, 64> iov{};
    const std::size_t n = std::min(frames.size(), iov.size());
    for (std::size_t k = 0; k < n; ++k) {
      iov[k].iov_base = frames[k].data();
      iov[k].iov_len = frames[k].size();
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = n;
    ssize_t sent = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent > 0) {
      counts_.bytes += static_cast<std::uint64_t>(sent);
      auto left = static_cast<std::size_t>(sent);
      while (i < n && left >= frames[i].size()) {
        left -= frames[i].size();
        ++i;
      }
      if (left > 0) {
        // The socket took part of frame i: queue its rest first, so the stream stays whole.
        frames[i].drop_front(left);
      }
    }
    // sent <= 0 (would block, or an error the io thread's write will meet and report):
    // everything goes through the queue.
  }
  const std::size_t done = i;
  direct = done;
  counts_.frames += done;
  std::size_t queued = 0;
  for (; i < frames.size(); ++i) {
    // The rest of a partly written frame always gets in (a direct write happens only
    // with the queue empty, and an empty queue takes any frame), so the peer never
    // reads a torn frame.
    if (bytes_ + frames[i].size() > max_bytes_ && !frames_.empty()) {
      ++counts_.dropped;
      continue;
    }
    ++counts_.frames;
    counts_.bytes += frames[i].size();
    bytes_ += frames[i].size();
    frames_.push_back(std::move(frames[i]));
    ++queued;
  }
  if (queued > 0 && !draining_) {
    draining_ = true;
    schedule = true;
  }
  frames.clear();
  return done + queued;
}

}  // namespace rlr::transport
