// CommittedCache: the ring of recent committed entries that subscribers read first.

#include <catch2/catch.hpp>

#include <vector>

#include "node/committed_cache.h"
#include "node_test_util.h"

namespace rlr::node {
namespace {

std::vector<Entry> entries(std::uint64_t first, std::uint64_t last) {
  std::vector<Entry> out;
  for (std::uint64_t i = first; i <= last; ++i) {
    out.push_back(Entry{LogIndex{i}, Term{1}, EntryKind::Normal, Bytes::copy_of(std::to_string(i))});
  }
  return out;
}

std::vector<std::uint64_t> indexes(const std::vector<Entry>& es) {
  std::vector<std::uint64_t> out;
  for (const Entry& e : es) out.push_back(e.index.value());
  return out;
}

}  // namespace

TEST_CASE("committed cache: a ring of the newest entries, read from any held index",
          "[cache]") {
  CommittedCache cache(4);
  std::vector<Entry> out;
  CHECK_FALSE(cache.read(LogIndex{1}, 10, out));

  cache.append(entries(1, 3));
  REQUIRE(cache.read(LogIndex{1}, 10, out));
  CHECK(out == entries(1, 3));

  // Wraps around several times: the newest four stay, payloads intact.
  for (std::uint64_t i = 4; i <= 10; i += 2) cache.append(entries(i, i + 1));
  out.clear();
  CHECK_FALSE(cache.read(LogIndex{7}, 10, out));
  REQUIRE(cache.read(LogIndex{8}, 10, out));
  CHECK(out == entries(8, 11));
  out.clear();
  REQUIRE(cache.read(LogIndex{9}, 2, out));
  CHECK(indexes(out) == std::vector<std::uint64_t>{9, 10});
  out.clear();
  CHECK_FALSE(cache.read(LogIndex{12}, 10, out));

  // Entries that do not continue the cache replace it.
  cache.append(entries(20, 21));
  CHECK_FALSE(cache.read(LogIndex{11}, 10, out));
  REQUIRE(cache.read(LogIndex{20}, 10, out));
  CHECK(out == entries(20, 21));

  cache.reset();
  out.clear();
  CHECK_FALSE(cache.read(LogIndex{20}, 10, out));
  cache.append(entries(31, 36));
  REQUIRE(cache.read(LogIndex{33}, 10, out));
  CHECK(out == entries(33, 36));
}

}  // namespace rlr::node
