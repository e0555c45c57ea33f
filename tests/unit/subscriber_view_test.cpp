// What a subscriber sees of committed entries (core/subscriber_view.h).
#include <catch2/catch.hpp>

#include <string_view>
#include <vector>

#include "core/entry_payloads.h"
#include "core/subscriber_view.h"

namespace rlr {
namespace {

Entry entry(std::uint64_t index, EntryKind kind, Bytes payload) {
  return Entry{LogIndex{index}, Term{2}, kind, std::move(payload)};
}

std::vector<Entry> mixed_log() {
  std::vector<Entry> es;
  es.push_back(entry(5, EntryKind::Noop, core::encode_noop(NodeId{1})));
  es.push_back(entry(6, EntryKind::Normal, Bytes::copy_of(std::string_view("plain"))));
  es.push_back(entry(7, EntryKind::Session,
                     core::encode_session_command(42, 9, Bytes::copy_of(std::string_view("sessioned")))));
  es.push_back(entry(8, EntryKind::Watermark, core::encode_watermark(LogIndex{6})));
  return es;
}

TEST_CASE("subscriber view: commands only, the session as fields, the stretch covered", "[subscribe]") {
  const SubscriptionBatch b = core::subscriber_batch(mixed_log(), LogIndex{5}, SubscribeOptions{});
  CHECK(b.from == LogIndex{5});
  CHECK(b.next == LogIndex{9});
  REQUIRE(b.entries.size() == 2);
  CHECK(b.entries[0].index == LogIndex{6});
  CHECK(b.entries[0].kind == EntryKind::Normal);
  CHECK(b.entries[0].client_id == 0);
  CHECK(b.entries[0].payload.as_string_view() == "plain");
  CHECK(b.entries[1].index == LogIndex{7});
  CHECK(b.entries[1].kind == EntryKind::Normal);
  CHECK(b.entries[1].client_id == 42);
  CHECK(b.entries[1].sequence == 9);
  CHECK(b.entries[1].payload.as_string_view() == "sessioned");
  CHECK(b.entries[1].term == Term{2});
}

TEST_CASE("subscriber view: include_internal keeps every entry in its kind", "[subscribe]") {
  const SubscriptionBatch b =
      core::subscriber_batch(mixed_log(), LogIndex{5}, SubscribeOptions{.include_internal = true});
  REQUIRE(b.entries.size() == 4);
  CHECK(b.entries[0].kind == EntryKind::Noop);
  CHECK(core::decode_noop(b.entries[0].payload) == NodeId{1});
  CHECK(b.entries[2].kind == EntryKind::Normal);
  CHECK(b.entries[2].client_id == 42);
  CHECK(b.entries[3].kind == EntryKind::Watermark);
  CHECK(b.next == LogIndex{9});
}

TEST_CASE("subscriber view: an empty read covers nothing; a malformed session entry is shown as it is",
          "[subscribe]") {
  const SubscriptionBatch empty = core::subscriber_batch({}, LogIndex{3}, SubscribeOptions{});
  CHECK(empty.from == LogIndex{3});
  CHECK(empty.next == LogIndex{3});
  CHECK(empty.entries.empty());

  std::vector<Entry> bad;
  bad.push_back(entry(3, EntryKind::Session, Bytes::copy_of(std::string_view("short"))));
  const SubscriptionBatch b = core::subscriber_batch(std::move(bad), LogIndex{3}, SubscribeOptions{});
  REQUIRE(b.entries.size() == 1);
  CHECK(b.entries[0].kind == EntryKind::Session);
  CHECK(b.entries[0].payload.as_string_view() == "short");
}

}  // namespace
}  // namespace rlr
