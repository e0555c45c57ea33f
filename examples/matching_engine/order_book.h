// A price-time-priority limit order book: the matching engine's deterministic core.
//
// Commands are short versioned text lines (so an operator can propose one by hand with
// `rlr-ctl propose`):
//
//   ME1 NEW <id> <BUY|SELL> <SYMBOL> <price_ticks> <qty>
//   ME1 CXL <id>
//
// Tokens are separated by exactly one space; numbers are plain decimal without sign or
// leading zero; <SYMBOL> is 1..12 characters of [A-Z0-9]. Anything else is rejected, the
// same way on every replica, with an `order_event` "REJECTED" output.
//
// Outputs (one text line each, also versioned):
//   order_event   ME1 ACCEPTED <id> <BUY|SELL> <SYMBOL> <price> <qty>
//                 ME1 REJECTED <id> <reason>          (id 0 when it could not be read)
//                 ME1 CANCELLED <id> <open_qty>
//                 ME1 DONE <id>                        (fully filled)
//   match_result  ME1 FILL <SYMBOL> <maker_id> <taker_id> <price> <qty>
//
// Matching: an incoming order trades against the best opposite price while the prices
// cross, oldest order first within a price level, always at the resting (maker) order's
// price; what is left rests in the book. The outputs of one command come in this order:
// ACCEPTED, then for each trade FILL followed by the maker's DONE when it is used up,
// then the taker's DONE when it is used up.
//
// Determinism: no clock, no floating point, no iteration over unordered containers, and
// every limit (live orders, symbols, sizes) is a constant shared by all replicas.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace rlr::me {

inline constexpr std::string_view kTopicOrderEvent = "order_event";
inline constexpr std::string_view kTopicMatchResult = "match_result";

inline constexpr std::size_t kCommandBytesMax = 128;
inline constexpr std::size_t kSymbolBytesMax = 12;
inline constexpr std::uint64_t kPriceTicksMax = 1'000'000'000'000ULL;  // 1e12
inline constexpr std::uint64_t kQtyMax = 1'000'000'000'000ULL;
inline constexpr std::uint64_t kOrderIdMax = 1'000'000'000'000'000'000ULL;  // 1e18
inline constexpr std::size_t kLiveOrdersMax = 1'000'000;
inline constexpr std::size_t kSymbolsMax = 10'000;

enum class Side : std::uint8_t { Buy, Sell };
[[nodiscard]] std::string_view to_string(Side s) noexcept;

struct NewOrder {
  std::uint64_t id = 0;
  Side side = Side::Buy;
  std::string symbol;
  std::uint64_t price_ticks = 0;
  std::uint64_t qty = 0;
  friend bool operator==(const NewOrder&, const NewOrder&) = default;
};

struct CancelOrder {
  std::uint64_t id = 0;
  friend bool operator==(const CancelOrder&, const CancelOrder&) = default;
};

using Command = std::variant<NewOrder, CancelOrder>;

/// Why a command could not be read: the order id when it was readable (0 otherwise) and
/// a short reason ("bad-price", ...).
struct ParseError {
  std::uint64_t id = 0;
  std::string reason;
};

/// The command's text line.
[[nodiscard]] std::string encode(const Command& c);
/// Parses a command line. Never throws; every malformed input gives a ParseError.
[[nodiscard]] std::variant<Command, ParseError> parse(std::string_view line);

/// One output of the book: its topic (kTopicOrderEvent / kTopicMatchResult) and text.
struct Event {
  std::string_view topic;
  std::string payload;
  friend bool operator==(const Event&, const Event&) = default;
};

class OrderBook {
 public:
  OrderBook() = default;
  OrderBook(const OrderBook&) = delete;  // the locator holds iterators into the levels
  OrderBook& operator=(const OrderBook&) = delete;

  /// Parses and executes one command line, appending its outputs to `out`.
  void execute(std::string_view line, std::vector<Event>& out);
  /// Executes a parsed command, appending its outputs to `out`.
  void execute(const Command& c, std::vector<Event>& out);

  // Introspection (tests, tools).
  [[nodiscard]] std::optional<std::uint64_t> best_bid(std::string_view symbol) const;
  [[nodiscard]] std::optional<std::uint64_t> best_ask(std::string_view symbol) const;
  /// Open quantity of a live order; nullopt when it is not in the book.
  [[nodiscard]] std::optional<std::uint64_t> open_qty(std::uint64_t id) const;
  [[nodiscard]] std::size_t live_orders() const { return locator_.size(); }
  /// The whole book as text, symbols and prices in order, orders in time priority:
  /// "XYZ BUY 100 [7:10 9:5]\n...". Equal books give equal dumps.
  [[nodiscard]] std::string dump() const;

 private:
  struct Resting {
    std::uint64_t id;
    std::uint64_t qty;
  };
  using Queue = std::list<Resting>;
  using Bids = std::map<std::uint64_t, Queue, std::greater<>>;
  using Asks = std::map<std::uint64_t, Queue, std::less<>>;
  struct SymbolBook {
    Bids bids;
    Asks asks;
  };
  struct Locator {
    SymbolBook* book;
    Side side;
    std::uint64_t price;
    Queue::iterator it;
  };

  void add(const NewOrder& o, std::vector<Event>& out);
  void cancel(const CancelOrder& c, std::vector<Event>& out);
  template <class Levels>
  std::uint64_t match(Levels& levels, const NewOrder& taker, std::uint64_t qty,
                      std::vector<Event>& out);

  std::map<std::string, SymbolBook, std::less<>> books_;
  // Looked up by id only; never iterated, so its order cannot reach an output.
  std::unordered_map<std::uint64_t, Locator> locator_;
};

}  // namespace rlr::me
