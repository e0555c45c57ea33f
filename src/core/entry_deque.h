// A double-ended queue of log entries in large blocks (core-private): RaftLog's store,
// and the node's cache of recent committed entries.
// An entry never moves once pushed, and in steady state nothing is allocated: a block
// holds 4096 entries, and the blocks that compaction frees are kept for the log to grow
// back into (see recycle()). std::deque's 512-byte blocks hold nine entries, so a log
// growing by a million entries a second would allocate on the raft thread every nine
// entries and free again at compaction; a ring that doubles would move every entry when
// it grows, stalling the raft thread for long enough to lose the leadership.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "rlr/types.h"

namespace rlr::core {

class EntryDeque {
 public:
  EntryDeque() = default;
  EntryDeque(const EntryDeque&) = delete;
  EntryDeque& operator=(const EntryDeque&) = delete;
  EntryDeque(EntryDeque&& o) noexcept
      : blocks_(std::move(o.blocks_)), spare_(std::move(o.spare_)), head_(std::exchange(o.head_, 0)),
        size_(std::exchange(o.size_, 0)) {}
  EntryDeque& operator=(EntryDeque&& o) noexcept {
    if (this != &o) {
      clear();
      blocks_ = std::move(o.blocks_);
      spare_ = std::move(o.spare_);
      head_ = std::exchange(o.head_, 0);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~EntryDeque() { clear(); }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// Blocks holding entries, and freed blocks kept for reuse (for tests).
  [[nodiscard]] std::size_t blocks() const noexcept { return blocks_.size(); }
  [[nodiscard]] std::size_t spare_blocks() const noexcept { return spare_.size(); }

  static constexpr std::size_t kBlockEntries = 4096;
  static constexpr std::size_t kMinSpareBlocks = 4;

  /// The i-th entry from the front. REQUIRES: i < size().
  [[nodiscard]] const Entry& operator[](std::size_t i) const noexcept {
    assert(i < size_);
    const std::size_t k = head_ + i;
    return blocks_[k / kBlockEntries][k % kBlockEntries];
  }
  [[nodiscard]] const Entry& back() const noexcept { return (*this)[size_ - 1]; }

  void push_back(Entry e) {
    const std::size_t k = head_ + size_;
    if (k / kBlockEntries == blocks_.size()) blocks_.push_back(new_block());
    std::construct_at(&blocks_[k / kBlockEntries][k % kBlockEntries], std::move(e));
    ++size_;
  }

  /// Keeps the first `n` entries. REQUIRES: n <= size().
  void truncate(std::size_t n) {
    assert(n <= size_);
    for (std::size_t i = n; i < size_; ++i) release(i);
    size_ = n;
    if (size_ == 0) head_ = 0;
    const std::size_t used = (head_ + size_ + kBlockEntries - 1) / kBlockEntries;
    while (blocks_.size() > used) {
      recycle(std::move(blocks_.back()));
      blocks_.pop_back();
    }
  }

  /// Drops the first `n` entries. REQUIRES: n <= size().
  void pop_front(std::size_t n) {
    assert(n <= size_);
    if (n == size_) {
      truncate(0);
      return;
    }
    for (std::size_t i = 0; i < n; ++i) release(i);
    head_ += n;
    size_ -= n;
    const std::size_t drop = head_ / kBlockEntries;
    for (std::size_t b = 0; b < drop; ++b) recycle(std::move(blocks_[b]));
    blocks_.erase(blocks_.begin(), blocks_.begin() + static_cast<std::ptrdiff_t>(drop));
    head_ %= kBlockEntries;
  }

  void clear() { truncate(0); }

  /// Appends entries [from, from + n) to `out`. REQUIRES: from + n <= size().
  void copy_to(std::size_t from, std::size_t n, std::vector<Entry>& out) const {
    assert(from + n <= size_);
    for (std::size_t i = from; i < from + n; ++i) out.push_back((*this)[i]);
  }

 private:
  /// Room for kBlockEntries entries, constructed one by one as they are pushed (a new
  /// block is not written at all before use).
  struct FreeBlock {
    void operator()(Entry* p) const noexcept { std::allocator<Entry>{}.deallocate(p, kBlockEntries); }
  };
  using Block = std::unique_ptr<Entry[], FreeBlock>;

  /// Destroys entry i (its payload reference goes now); the slot becomes raw memory.
  void release(std::size_t i) noexcept {
    const std::size_t k = head_ + i;
    std::destroy_at(&blocks_[k / kBlockEntries][k % kBlockEntries]);
  }

  Block new_block() {
    if (spare_.empty()) return Block(std::allocator<Entry>{}.allocate(kBlockEntries));
    Block b = std::move(spare_.back());
    spare_.pop_back();
    return b;
  }

  /// Keeps a freed block for reuse while there are fewer spare blocks than the log held
  /// (and always a few): a compaction that drops half of the log keeps the memory the
  /// log regrows into, with no allocation and no page faults; a log that shrinks for good
  /// gives its memory back as it shrinks. REQUIRES: no entry of `b` is alive.
  void recycle(Block b) {
    if (spare_.size() < std::max(kMinSpareBlocks, blocks_.size())) spare_.push_back(std::move(b));
  }

  std::vector<Block> blocks_;  ///< entry k of the deque is at slot head_ + k
  std::vector<Block> spare_;
  std::size_t head_ = 0;  ///< slot of the first entry in blocks_[0]; < kBlockEntries
  std::size_t size_ = 0;
};

}  // namespace rlr::core
