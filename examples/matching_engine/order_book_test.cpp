// The order book: parsing, matching rules, partial fills, cancels, price-time priority,
// determinism; and the state machine's use of the Egress.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "matching_engine/matching_engine.h"
#include "matching_engine/order_book.h"

using rlr::me::Event;
using rlr::me::OrderBook;

namespace {

std::vector<std::string> run(OrderBook& book, std::string_view line) {
  std::vector<Event> events;
  book.execute(line, events);
  std::vector<std::string> out;
  for (const Event& e : events) out.push_back(fmt::format("{}: {}", e.topic, e.payload));
  return out;
}

std::string order(std::uint64_t id, std::string_view side, std::uint64_t price, std::uint64_t qty,
                  std::string_view sym = "XYZ") {
  return fmt::format("ME1 NEW {} {} {} {} {}", id, side, sym, price, qty);
}

using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("a command round-trips through encode and parse", "[me][parse]") {
  const rlr::me::Command n = rlr::me::NewOrder{42, rlr::me::Side::Sell, "AB1", 10050, 7};
  CHECK(rlr::me::encode(n) == "ME1 NEW 42 SELL AB1 10050 7");
  auto p = rlr::me::parse(rlr::me::encode(n));
  REQUIRE(std::holds_alternative<rlr::me::Command>(p));
  CHECK(std::get<rlr::me::Command>(p) == n);
  const rlr::me::Command c = rlr::me::CancelOrder{9};
  auto q = rlr::me::parse(rlr::me::encode(c));
  REQUIRE(std::holds_alternative<rlr::me::Command>(q));
  CHECK(std::get<rlr::me::Command>(q) == c);
}

TEST_CASE("malformed commands are rejected with a reason, the book is untouched", "[me][parse]") {
  OrderBook book;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "ME1 REJECTED 0 bad-version"},
      {"ME2 NEW 1 BUY XYZ 1 1", "ME1 REJECTED 0 bad-version"},
      {"ME1", "ME1 REJECTED 0 bad-verb"},
      {"ME1 BUY 1", "ME1 REJECTED 0 bad-verb"},
      {"ME1 NEW 5 BUY XYZ 100", "ME1 REJECTED 5 bad-field-count"},
      {"ME1 NEW 5 BUY XYZ 100 1 extra", "ME1 REJECTED 5 bad-field-count"},
      {"ME1 NEW 0 BUY XYZ 100 1", "ME1 REJECTED 0 bad-id"},
      {"ME1 NEW 007 BUY XYZ 100 1", "ME1 REJECTED 0 bad-id"},
      {"ME1 NEW -1 BUY XYZ 100 1", "ME1 REJECTED 0 bad-id"},
      {"ME1 NEW 5 buy XYZ 100 1", "ME1 REJECTED 5 bad-side"},
      {"ME1 NEW 5 BUY xyz 100 1", "ME1 REJECTED 5 bad-symbol"},
      {"ME1 NEW 5 BUY ABCDEFGHIJKLM 100 1", "ME1 REJECTED 5 bad-symbol"},
      {"ME1 NEW 5 BUY XYZ 10.5 1", "ME1 REJECTED 5 bad-price"},
      {"ME1 NEW 5 BUY XYZ 0 1", "ME1 REJECTED 5 bad-price"},
      {"ME1 NEW 5 BUY XYZ 1000000000001 1", "ME1 REJECTED 5 bad-price"},
      {"ME1 NEW 5 BUY XYZ 99999999999999999999 1", "ME1 REJECTED 5 bad-price"},
      {"ME1 NEW 5 BUY XYZ 100 0", "ME1 REJECTED 5 bad-qty"},
      {"ME1 NEW 5 BUY XYZ 100 +3", "ME1 REJECTED 5 bad-qty"},
      {"ME1 NEW 5  BUY XYZ 100 1", "ME1 REJECTED 5 bad-field-count"},
      {"ME1 NEW 5 BUY XYZ 100 1 ", "ME1 REJECTED 5 bad-field-count"},
      {"ME1 CXL", "ME1 REJECTED 0 bad-field-count"},
      {"ME1 CXL x", "ME1 REJECTED 0 bad-id"},
      {std::string("ME1 CXL 1\0", 10), "ME1 REJECTED 0 bad-id"},
      {std::string(200, 'A'), "ME1 REJECTED 0 too-long"},
  };
  for (const auto& [line, want] : cases) {
    INFO("command: \"" << line << "\"");
    CHECK(run(book, line) == Lines{"order_event: " + want});
  }
  CHECK(book.live_orders() == 0);
  CHECK(book.dump().empty());
}

TEST_CASE("arbitrary bytes never crash the parser", "[me][parse]") {
  std::mt19937_64 rng(7);
  OrderBook book;
  for (int i = 0; i < 20000; ++i) {
    std::string s = "ME1 NEW ";
    const std::size_t n = rng() % 40;
    for (std::size_t k = 0; k < n; ++k) s.push_back(static_cast<char>(rng() % 256));
    std::vector<Event> out;
    book.execute(s, out);
    REQUIRE(!out.empty());
  }
}

TEST_CASE("a resting order is accepted and stays in the book", "[me][match]") {
  OrderBook book;
  CHECK(run(book, order(1, "BUY", 100, 10)) ==
        Lines{"order_event: ME1 ACCEPTED 1 BUY XYZ 100 10"});
  CHECK(book.best_bid("XYZ") == 100U);
  CHECK(!book.best_ask("XYZ"));
  CHECK(book.open_qty(1) == 10U);
}

TEST_CASE("crossing orders trade at the maker's price", "[me][match]") {
  OrderBook book;
  (void)run(book, order(1, "SELL", 100, 10));
  CHECK(run(book, order(2, "BUY", 105, 10)) == Lines{
                                                    "order_event: ME1 ACCEPTED 2 BUY XYZ 105 10",
                                                    "match_result: ME1 FILL XYZ 1 2 100 10",
                                                    "order_event: ME1 DONE 1",
                                                    "order_event: ME1 DONE 2",
                                                });
  CHECK(book.live_orders() == 0);
  // And for an incoming sell against a resting buy.
  (void)run(book, order(3, "BUY", 99, 4));
  CHECK(run(book, order(4, "SELL", 90, 4)) == Lines{
                                                   "order_event: ME1 ACCEPTED 4 SELL XYZ 90 4",
                                                   "match_result: ME1 FILL XYZ 3 4 99 4",
                                                   "order_event: ME1 DONE 3",
                                                   "order_event: ME1 DONE 4",
                                               });
}

TEST_CASE("orders that do not cross both rest", "[me][match]") {
  OrderBook book;
  (void)run(book, order(1, "SELL", 101, 10));
  CHECK(run(book, order(2, "BUY", 100, 10)).size() == 1);
  CHECK(book.best_bid("XYZ") == 100U);
  CHECK(book.best_ask("XYZ") == 101U);
}

TEST_CASE("a partial fill leaves the rest of the taker resting", "[me][match]") {
  OrderBook book;
  (void)run(book, order(1, "SELL", 100, 3));
  CHECK(run(book, order(2, "BUY", 100, 10)) == Lines{
                                                   "order_event: ME1 ACCEPTED 2 BUY XYZ 100 10",
                                                   "match_result: ME1 FILL XYZ 1 2 100 3",
                                                   "order_event: ME1 DONE 1",
                                               });
  CHECK(book.open_qty(2) == 7U);
  CHECK(book.best_bid("XYZ") == 100U);
}

TEST_CASE("a partial fill leaves the rest of the maker at the head of its level", "[me][match]") {
  OrderBook book;
  (void)run(book, order(1, "SELL", 100, 10));
  (void)run(book, order(2, "SELL", 100, 10));
  CHECK(run(book, order(3, "BUY", 100, 4)) == Lines{
                                                  "order_event: ME1 ACCEPTED 3 BUY XYZ 100 4",
                                                  "match_result: ME1 FILL XYZ 1 3 100 4",
                                                  "order_event: ME1 DONE 3",
                                              });
  CHECK(book.open_qty(1) == 6U);
  CHECK(book.dump() == "XYZ SELL 100 [1:6 2:10]\n");
}

TEST_CASE("price priority: the best price trades first, sweeping levels", "[me][match]") {
  OrderBook book;
  (void)run(book, order(1, "SELL", 103, 5));
  (void)run(book, order(2, "SELL", 101, 5));
  (void)run(book, order(3, "SELL", 102, 5));
  CHECK(run(book, order(4, "BUY", 102, 12)) == Lines{
                                                   "order_event: ME1 ACCEPTED 4 BUY XYZ 102 12",
                                                   "match_result: ME1 FILL XYZ 2 4 101 5",
                                                   "order_event: ME1 DONE 2",
                                                   "match_result: ME1 FILL XYZ 3 4 102 5",
                                                   "order_event: ME1 DONE 3",
                                               });
  // 103 does not cross 102: the remaining 2 rest as the best bid.
  CHECK(book.open_qty(4) == 2U);
  CHECK(book.best_bid("XYZ") == 102U);
  CHECK(book.best_ask("XYZ") == 103U);
}

TEST_CASE("time priority: within a price level the oldest order trades first", "[me][match]") {
  OrderBook book;
  (void)run(book, order(1, "BUY", 100, 5));
  (void)run(book, order(2, "BUY", 100, 5));
  (void)run(book, order(3, "BUY", 100, 5));
  CHECK(run(book, order(4, "SELL", 100, 7)) == Lines{
                                                   "order_event: ME1 ACCEPTED 4 SELL XYZ 100 7",
                                                   "match_result: ME1 FILL XYZ 1 4 100 5",
                                                   "order_event: ME1 DONE 1",
                                                   "match_result: ME1 FILL XYZ 2 4 100 2",
                                                   "order_event: ME1 DONE 4",
                                               });
  CHECK(book.dump() == "XYZ BUY 100 [2:3 3:5]\n");
}

TEST_CASE("symbols have separate books", "[me][match]") {
  OrderBook book;
  (void)run(book, order(1, "SELL", 100, 5, "AAA"));
  CHECK(run(book, order(2, "BUY", 100, 5, "BBB")).size() == 1);
  CHECK(book.dump() == "AAA SELL 100 [1:5]\nBBB BUY 100 [2:5]\n");
}

TEST_CASE("cancel removes a live order and reports its open quantity", "[me][cancel]") {
  OrderBook book;
  (void)run(book, order(1, "SELL", 100, 10));
  (void)run(book, order(2, "SELL", 100, 10));
  (void)run(book, order(3, "BUY", 100, 4));
  CHECK(run(book, "ME1 CXL 1") == Lines{"order_event: ME1 CANCELLED 1 6"});
  CHECK(!book.open_qty(1));
  CHECK(book.dump() == "XYZ SELL 100 [2:10]\n");
  CHECK(run(book, "ME1 CXL 2") == Lines{"order_event: ME1 CANCELLED 2 10"});
  CHECK(book.dump().empty());
  CHECK(!book.best_ask("XYZ"));
}

TEST_CASE("cancelling an unknown or finished order is rejected", "[me][cancel]") {
  OrderBook book;
  CHECK(run(book, "ME1 CXL 77") == Lines{"order_event: ME1 REJECTED 77 unknown-order"});
  (void)run(book, order(1, "SELL", 100, 1));
  (void)run(book, order(2, "BUY", 100, 1));
  CHECK(run(book, "ME1 CXL 1") == Lines{"order_event: ME1 REJECTED 1 unknown-order"});
  CHECK(run(book, "ME1 CXL 2") == Lines{"order_event: ME1 REJECTED 2 unknown-order"});
}

TEST_CASE("a cancelled order no longer trades; a reused id after it is gone is fine", "[me][cancel]") {
  OrderBook book;
  (void)run(book, order(1, "SELL", 100, 10));
  (void)run(book, "ME1 CXL 1");
  CHECK(run(book, order(2, "BUY", 100, 5)).size() == 1);
  CHECK(run(book, order(1, "SELL", 101, 1)).size() == 1);
}

TEST_CASE("a duplicate live order id is rejected", "[me][match]") {
  OrderBook book;
  (void)run(book, order(1, "BUY", 100, 10));
  CHECK(run(book, order(1, "SELL", 100, 10)) == Lines{"order_event: ME1 REJECTED 1 duplicate-id"});
  CHECK(book.open_qty(1) == 10U);
}

namespace {

std::vector<std::string> random_stream(std::uint64_t seed, int n) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> cmds;
  for (int i = 0; i < n; ++i) {
    const auto r = rng() % 100;
    if (r < 25) {
      cmds.push_back(fmt::format("ME1 CXL {}", 1 + rng() % (static_cast<std::uint64_t>(i) + 1)));
    } else if (r < 28) {
      cmds.push_back(fmt::format("ME1 NEW {} BUY X 1 ", i));  // malformed
    } else {
      cmds.push_back(order(static_cast<std::uint64_t>(i) + 1, rng() % 2 ? "BUY" : "SELL",
                           95 + rng() % 11, 1 + rng() % 50, rng() % 3 ? "XYZ" : "ABC"));
    }
  }
  return cmds;
}

}  // namespace

TEST_CASE("determinism: two books fed the same commands give identical outputs", "[me][determinism]") {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    const auto cmds = random_stream(seed, 5000);
    OrderBook a;
    OrderBook b;
    std::vector<Event> out_a;
    std::vector<Event> out_b;
    for (const auto& c : cmds) a.execute(c, out_a);
    for (const auto& c : cmds) b.execute(c, out_b);
    CHECK(out_a == out_b);
    CHECK(a.dump() == b.dump());
    // The stream exercises every kind of output.
    std::string all;
    for (const auto& e : out_a) all += e.payload + "\n";
    CHECK(all.find("FILL") != std::string::npos);
    CHECK(all.find("CANCELLED") != std::string::npos);
    CHECK(all.find("DONE") != std::string::npos);
    CHECK(all.find("REJECTED") != std::string::npos);
  }
}

TEST_CASE("conservation: filled plus open plus cancelled equals accepted quantity", "[me][match]") {
  const auto cmds = random_stream(99, 3000);
  OrderBook book;
  std::vector<Event> out;
  for (const auto& c : cmds) book.execute(c, out);
  std::uint64_t accepted = 0;
  std::uint64_t filled_twice = 0;  // each fill consumes qty from a maker and a taker
  std::uint64_t cancelled = 0;
  for (const auto& e : out) {
    std::uint64_t id = 0;
    std::uint64_t px = 0;
    std::uint64_t qty = 0;
    std::uint64_t maker = 0;
    std::uint64_t taker = 0;
    char side[8] = {};
    char sym[16] = {};
    if (std::sscanf(e.payload.c_str(), "ME1 ACCEPTED %lu %7s %15s %lu %lu", &id, side, sym, &px,
                    &qty) == 5) {
      accepted += qty;
    } else if (std::sscanf(e.payload.c_str(), "ME1 FILL %15s %lu %lu %lu %lu", sym, &maker,
                           &taker, &px, &qty) == 5) {
      filled_twice += 2 * qty;
    } else if (std::sscanf(e.payload.c_str(), "ME1 CANCELLED %lu %lu", &id, &qty) == 2) {
      cancelled += qty;
    }
  }
  std::uint64_t open = 0;
  for (std::uint64_t id = 1; id <= cmds.size(); ++id) open += book.open_qty(id).value_or(0);
  CHECK(accepted == filled_twice + open + cancelled);
}

namespace {

class RecordingEgress final : public rlr::Egress {
 public:
  void emit(std::string_view topic, rlr::Bytes payload) override {
    lines.push_back(fmt::format("{}: {}", topic, payload.as_string_view()));
  }
  std::vector<std::string> lines;
};

}  // namespace

TEST_CASE("the state machine emits the book's outputs through the egress, in order", "[me][sm]") {
  int observed = 0;
  rlr::me::MatchingEngine sm([&](const rlr::ApplyContext&, const std::vector<Event>& ev) {
    observed += static_cast<int>(ev.size());
  });
  RecordingEgress egress;
  rlr::ApplyContext ctx;
  const std::vector<std::string> cmds = {order(1, "SELL", 100, 5), order(2, "BUY", 100, 5)};
  std::uint64_t index = 10;
  for (const auto& c : cmds) {
    ctx.index = rlr::LogIndex{index};
    sm.apply(rlr::Entry{rlr::LogIndex{index}, rlr::Term{1}, rlr::EntryKind::Normal,
                        rlr::Bytes::copy_of(c)},
             ctx, egress);
    ++index;
  }
  CHECK(egress.lines == Lines{
                            "order_event: ME1 ACCEPTED 1 SELL XYZ 100 5",
                            "order_event: ME1 ACCEPTED 2 BUY XYZ 100 5",
                            "match_result: ME1 FILL XYZ 1 2 100 5",
                            "order_event: ME1 DONE 1",
                            "order_event: ME1 DONE 2",
                        });
  CHECK(observed == 5);
  CHECK(sm.last_applied() == rlr::LogIndex{11});
  CHECK(sm.live_orders() == 0);
}
