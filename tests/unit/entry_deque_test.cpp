// EntryDeque (RaftLog's store) against std::deque, across many block boundaries.

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "core/entry_deque.h"

namespace rlr::core {
namespace {

constexpr std::size_t kBlock = EntryDeque::kBlockEntries;

Entry entry(std::uint64_t i) {
  auto owner = std::make_shared<std::uint64_t>(i);
  const auto* p = static_cast<const std::uint8_t*>(static_cast<const void*>(owner.get()));
  return Entry{LogIndex{i}, Term{i % 7 + 1}, EntryKind::Normal, Bytes(owner, p, sizeof(std::uint64_t))};
}

void check_same(const EntryDeque& d, const std::deque<std::uint64_t>& model) {
  RC_ASSERT(d.size() == model.size());
  RC_ASSERT(d.empty() == model.empty());
  if (model.empty()) return;
  RC_ASSERT(d.back().index.value() == model.back());
  // Every entry near each block boundary and a stride through the rest.
  for (std::size_t i = 0; i < model.size(); i += (i % kBlock < 2 || i % kBlock > kBlock - 3) ? 1 : 97) {
    RC_ASSERT(d[i].index.value() == model[i]);
    RC_ASSERT(d[i].payload.size() == sizeof(std::uint64_t));
  }
  RC_ASSERT(d.blocks() <= model.size() / kBlock + 2);
}

TEST_CASE("EntryDeque: behaves as a deque of entries across block boundaries", "[entry_deque][property]") {
  rc::prop("push_back, pop_front, truncate, clear and copy_to match std::deque", [] {
    EntryDeque d;
    std::deque<std::uint64_t> model;
    std::uint64_t next = 1;
    const auto steps = *rc::gen::inRange(1, 30);
    for (int s = 0; s < steps; ++s) {
      switch (*rc::gen::inRange(0, 5)) {
        case 0:
        case 1: {  // pushes often cross one or more blocks
          const auto n = *rc::gen::inRange<std::size_t>(0, 3 * kBlock);
          for (std::size_t k = 0; k < n; ++k) {
            d.push_back(entry(next));
            model.push_back(next++);
          }
          break;
        }
        case 2: {
          const auto n = *rc::gen::inRange<std::size_t>(0, model.size() + 1);
          d.pop_front(n);
          model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(n));
          break;
        }
        case 3: {
          const auto n = *rc::gen::inRange<std::size_t>(0, model.size() + 1);
          d.truncate(n);
          model.resize(n);
          next = model.empty() ? next : model.back() + 1;
          break;
        }
        default: {
          if (*rc::gen::inRange(0, 4) == 0) {
            d.clear();
            model.clear();
          } else if (!model.empty()) {
            const auto from = *rc::gen::inRange<std::size_t>(0, model.size());
            const auto n = *rc::gen::inRange<std::size_t>(0, model.size() - from + 1);
            std::vector<Entry> out{entry(0)};
            d.copy_to(from, n, out);
            RC_ASSERT(out.size() == n + 1);
            for (std::size_t k = 0; k < n; ++k) RC_ASSERT(out[k + 1].index.value() == model[from + k]);
          }
          break;
        }
      }
      check_same(d, model);
    }
    EntryDeque moved(std::move(d));
    check_same(moved, model);
    RC_ASSERT(d.empty());  // NOLINT(bugprone-use-after-move): a moved-from deque is empty
  });
}

TEST_CASE("EntryDeque: dropped entries release their payloads at once", "[entry_deque]") {
  EntryDeque d;
  std::vector<std::weak_ptr<const void>> owners;
  for (std::uint64_t i = 1; i <= 3 * kBlock; ++i) {
    auto owner = std::make_shared<std::uint64_t>(i);
    owners.emplace_back(owner);
    const auto* p = static_cast<const std::uint8_t*>(static_cast<const void*>(owner.get()));
    d.push_back(Entry{LogIndex{i}, Term{1}, EntryKind::Normal, Bytes(owner, p, 8)});
  }
  CHECK(d.blocks() == 3);
  d.pop_front(kBlock + 10);  // a compaction
  CHECK(owners[kBlock + 9].expired());
  CHECK_FALSE(owners[kBlock + 10].expired());
  CHECK(d.blocks() == 2);
  CHECK(d.spare_blocks() == 1);  // kept for the log to regrow into
  d.truncate(kBlock - 10);        // a conflicting suffix goes (§5.3)
  CHECK(owners[2 * kBlock].expired());
  CHECK_FALSE(owners[2 * kBlock - 1].expired());
  CHECK(d.blocks() == 1);
  CHECK(d[0].index.value() == kBlock + 11);
  // The log regrows into the spare blocks first.
  const std::size_t spare = d.spare_blocks();
  CHECK(spare == 2);
  for (std::uint64_t i = 0; i < kBlock; ++i) d.push_back(entry(i));
  CHECK(d.spare_blocks() == spare - 1);
  d.clear();
  for (const auto& o : owners) CHECK(o.expired());
  CHECK(d.blocks() == 0);
}

TEST_CASE("EntryDeque: spare blocks stay bounded by the log they served", "[entry_deque]") {
  EntryDeque d;
  for (std::uint64_t i = 0; i < 64 * kBlock; ++i) d.push_back(entry(i));
  CHECK(d.blocks() == 64);
  d.pop_front(32 * kBlock);
  CHECK(d.blocks() == 32);
  CHECK(d.spare_blocks() == 32);
  d.clear();
  // Blocks freed while the log held 32 are kept only up to the few it always keeps.
  CHECK(d.spare_blocks() <= 32);
  CHECK(d.spare_blocks() >= EntryDeque::kMinSpareBlocks);
}

}  // namespace
}  // namespace rlr::core
