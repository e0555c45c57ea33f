#include "matching_engine/order_book.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace rlr::me {
namespace {

constexpr std::string_view kVersion = "ME1";

/// Splits on single spaces; an empty token (double, leading or trailing space) is kept
/// as empty so the caller rejects it.
std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t sp = s.find(' ', start);
    if (sp == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, sp - start));
    start = sp + 1;
  }
}

/// A plain positive decimal in [1, max]: digits only, no sign, no leading zero.
/// 0 when `t` is not one.
std::uint64_t parse_positive(std::string_view t, std::uint64_t max) {
  if (t.empty() || t.size() > 19 || t.front() == '0') return 0;
  if (!std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) return 0;
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc{} || ptr != t.data() + t.size() || v > max) return 0;
  return v;
}

bool valid_symbol(std::string_view s) {
  if (s.empty() || s.size() > kSymbolBytesMax) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); });
}

Event order_event(std::string payload) { return Event{kTopicOrderEvent, std::move(payload)}; }

Event rejected(std::uint64_t id, std::string_view reason) {
  return order_event(fmt::format("{} REJECTED {} {}", kVersion, id, reason));
}

}  // namespace

std::string_view to_string(Side s) noexcept { return s == Side::Buy ? "BUY" : "SELL"; }

std::string encode(const Command& c) {
  if (const auto* n = std::get_if<NewOrder>(&c)) {
    return fmt::format("{} NEW {} {} {} {} {}", kVersion, n->id, to_string(n->side), n->symbol,
                       n->price_ticks, n->qty);
  }
  return fmt::format("{} CXL {}", kVersion, std::get<CancelOrder>(c).id);
}

std::variant<Command, ParseError> parse(std::string_view line) {
  if (line.size() > kCommandBytesMax) return ParseError{0, "too-long"};
  const auto t = split(line);
  if (t[0] != kVersion) return ParseError{0, "bad-version"};
  if (t.size() < 2) return ParseError{0, "bad-verb"};
  // The id, when readable, goes into the rejection so the sender can match it.
  const std::uint64_t id = t.size() >= 3 ? parse_positive(t[2], kOrderIdMax) : 0;
  if (t[1] == "NEW") {
    if (t.size() != 7) return ParseError{id, "bad-field-count"};
    if (id == 0) return ParseError{0, "bad-id"};
    NewOrder o;
    o.id = id;
    if (t[3] == "BUY") {
      o.side = Side::Buy;
    } else if (t[3] == "SELL") {
      o.side = Side::Sell;
    } else {
      return ParseError{o.id, "bad-side"};
    }
    if (!valid_symbol(t[4])) return ParseError{o.id, "bad-symbol"};
    o.symbol = std::string(t[4]);
    o.price_ticks = parse_positive(t[5], kPriceTicksMax);
    if (o.price_ticks == 0) return ParseError{o.id, "bad-price"};
    o.qty = parse_positive(t[6], kQtyMax);
    if (o.qty == 0) return ParseError{o.id, "bad-qty"};
    return Command{std::move(o)};
  }
  if (t[1] == "CXL") {
    if (t.size() != 3) return ParseError{id, "bad-field-count"};
    if (id == 0) return ParseError{0, "bad-id"};
    return Command{CancelOrder{id}};
  }
  return ParseError{0, "bad-verb"};
}

void OrderBook::execute(std::string_view line, std::vector<Event>& out) {
  auto parsed = parse(line);
  if (auto* err = std::get_if<ParseError>(&parsed)) {
    out.push_back(rejected(err->id, err->reason));
    return;
  }
  execute(std::get<Command>(parsed), out);
}

void OrderBook::execute(const Command& c, std::vector<Event>& out) {
  if (const auto* n = std::get_if<NewOrder>(&c)) {
    add(*n, out);
  } else {
    cancel(std::get<CancelOrder>(c), out);
  }
}

template <class Levels>
std::uint64_t OrderBook::match(Levels& levels, const NewOrder& taker, std::uint64_t qty,
                               std::vector<Event>& out) {
  const auto crosses = [&](std::uint64_t maker_price) {
    return taker.side == Side::Buy ? maker_price <= taker.price_ticks
                                   : maker_price >= taker.price_ticks;
  };
  while (qty > 0 && !levels.empty() && crosses(levels.begin()->first)) {
    auto level = levels.begin();
    Queue& queue = level->second;
    while (qty > 0 && !queue.empty()) {
      Resting& maker = queue.front();
      const std::uint64_t fill = std::min(qty, maker.qty);
      out.push_back(Event{kTopicMatchResult,
                          fmt::format("{} FILL {} {} {} {} {}", kVersion, taker.symbol, maker.id,
                                      taker.id, level->first, fill)});
      qty -= fill;
      maker.qty -= fill;
      if (maker.qty == 0) {
        out.push_back(order_event(fmt::format("{} DONE {}", kVersion, maker.id)));
        locator_.erase(maker.id);
        queue.pop_front();
      }
    }
    if (queue.empty()) levels.erase(level);
  }
  return qty;
}

void OrderBook::add(const NewOrder& o, std::vector<Event>& out) {
  if (locator_.contains(o.id)) {
    out.push_back(rejected(o.id, "duplicate-id"));
    return;
  }
  if (locator_.size() >= kLiveOrdersMax) {
    out.push_back(rejected(o.id, "book-full"));
    return;
  }
  auto book_it = books_.find(o.symbol);
  if (book_it == books_.end()) {
    if (books_.size() >= kSymbolsMax) {
      out.push_back(rejected(o.id, "too-many-symbols"));
      return;
    }
    book_it = books_.emplace(o.symbol, SymbolBook{}).first;
  }
  SymbolBook& book = book_it->second;
  out.push_back(order_event(fmt::format("{} ACCEPTED {} {} {} {} {}", kVersion, o.id,
                                        to_string(o.side), o.symbol, o.price_ticks, o.qty)));
  const std::uint64_t left = o.side == Side::Buy ? match(book.asks, o, o.qty, out)
                                                 : match(book.bids, o, o.qty, out);
  if (left == 0) {
    out.push_back(order_event(fmt::format("{} DONE {}", kVersion, o.id)));
    return;
  }
  Queue& queue = o.side == Side::Buy ? book.bids[o.price_ticks] : book.asks[o.price_ticks];
  queue.push_back(Resting{o.id, left});
  locator_.emplace(o.id, Locator{&book, o.side, o.price_ticks, std::prev(queue.end())});
}

void OrderBook::cancel(const CancelOrder& c, std::vector<Event>& out) {
  auto it = locator_.find(c.id);
  if (it == locator_.end()) {
    out.push_back(rejected(c.id, "unknown-order"));
    return;
  }
  const Locator loc = it->second;
  const std::uint64_t open = loc.it->qty;
  const auto erase_from = [&](auto& levels) {
    auto level = levels.find(loc.price);
    level->second.erase(loc.it);
    if (level->second.empty()) levels.erase(level);
  };
  if (loc.side == Side::Buy) {
    erase_from(loc.book->bids);
  } else {
    erase_from(loc.book->asks);
  }
  locator_.erase(it);
  out.push_back(order_event(fmt::format("{} CANCELLED {} {}", kVersion, c.id, open)));
}

std::optional<std::uint64_t> OrderBook::best_bid(std::string_view symbol) const {
  auto it = books_.find(symbol);
  if (it == books_.end() || it->second.bids.empty()) return std::nullopt;
  return it->second.bids.begin()->first;
}

std::optional<std::uint64_t> OrderBook::best_ask(std::string_view symbol) const {
  auto it = books_.find(symbol);
  if (it == books_.end() || it->second.asks.empty()) return std::nullopt;
  return it->second.asks.begin()->first;
}

std::optional<std::uint64_t> OrderBook::open_qty(std::uint64_t id) const {
  auto it = locator_.find(id);
  if (it == locator_.end()) return std::nullopt;
  return it->second.it->qty;
}

std::string OrderBook::dump() const {
  std::string s;
  const auto levels = [&s](std::string_view sym, Side side, const auto& side_levels) {
    for (const auto& [price, queue] : side_levels) {
      s += fmt::format("{} {} {} [", sym, to_string(side), price);
      bool first = true;
      for (const Resting& r : queue) {
        s += fmt::format("{}{}:{}", first ? "" : " ", r.id, r.qty);
        first = false;
      }
      s += "]\n";
    }
  };
  for (const auto& [sym, book] : books_) {
    levels(sym, Side::Buy, book.bids);
    levels(sym, Side::Sell, book.asks);
  }
  return s;
}

}  // namespace rlr::me
