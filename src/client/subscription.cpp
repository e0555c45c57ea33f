// Client::subscribe's Subscription: one connection streaming committed entries,
// resubscribing on any reachable node from the index after the last one received when it
// breaks. Nodes send entries as they are in the log; next() makes of them what the
// subscriber asked for (core/subscriber_view.h).
//
// The io thread owns the connection and `fetched_` (the index the network should deliver
// next); the consumer owns `position_` (the index next() returns next). The bounded
// queue between them is guarded by mu_; when it is full the connection stops reading.
// With keepalives (ClientOptions::keepalive_interval) a stream that hears nothing for the
// silence timeout breaks like a closed one and resubscribes elsewhere from `fetched_`;
// a stream that stopped reading is not judged meanwhile.
#include "client/subscription.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <set>

#include <fmt/format.h>

#include "client/backoff.h"
#include "client/connection.h"
#include "client/io_thread.h"
#include "core/subscriber_view.h"

namespace rlr::client {
namespace {

using Clock = std::chrono::steady_clock;

class SubscriptionImpl final : public Subscription {
 public:
  SubscriptionImpl(const ClientOptions& o, std::vector<std::string> candidates, LogIndex from,
                   SubscribeOptions options)
      : o_(o),
        options_(options),
        candidates_(std::move(candidates)),
        position_(from.is_zero() ? LogIndex{1} : from),
        broken_since_(Clock::now()),
        rng_(std::random_device{}()),
        fetched_(position_),
        timer_(io_.io()),
        settings_(settings_for(o)) {
    io_.post([this] { connect_next(); });
  }

  ~SubscriptionImpl() override {
    io_.run_and_wait([this] {
      stopping_ = true;
      timer_.cancel();
      if (conn_) conn_->close();
      conn_.reset();
    });
    io_.stop();
  }
  SubscriptionImpl(const SubscriptionImpl&) = delete;
  SubscriptionImpl& operator=(const SubscriptionImpl&) = delete;

  Result<SubscriptionBatch> next(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    const auto deadline = Clock::now() + timeout;
    while (queue_.empty() && error_.is_ok()) {
      const auto now = Clock::now();
      if (broken_since_ && now - *broken_since_ >= o_.total_timeout) {
        broken_since_ = now;  // keep trying; report once per total timeout
        return Status{ErrorCode::Unavailable,
                      fmt::format("no node served the subscription within {} ms (last: {})",
                                  o_.total_timeout.count(),
                                  last_error_.is_ok() ? "no answer" : last_error_.message())};
      }
      if (now >= deadline) break;
      auto until = deadline;
      if (broken_since_) until = std::min(until, *broken_since_ + o_.total_timeout);
      cv_.wait_until(lock, until);
    }
    std::vector<Entry> out;
    if (queue_.empty()) {
      if (!error_.is_ok()) return error_;
      return core::subscriber_batch(std::move(out), position_, options_);
    }
    const std::size_t n = std::min(queue_.size(), kSubscriptionBatchEntries);
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      out.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    const LogIndex from = position_;
    position_ = out.back().index.next();
    if (paused_ && queue_.size() < kSubscriptionBufferEntries / 2) {
      paused_ = false;
      io_.post([this] {
        if (conn_) conn_->resume_reading();
      });
    }
    lock.unlock();
    return core::subscriber_batch(std::move(out), from, options_);
  }

  LogIndex position() const override {
    std::lock_guard lock(mu_);
    return position_;
  }

 private:
  // ---- io thread ------------------------------------------------------------------
  void connect_next() {
    if (stopping_) return;
    const std::string& addr = candidates_[cursor_ % candidates_.size()];
    Connection::Handlers h;
    h.on_ready = [this](Connection& c) { on_ready(c); };
    h.on_reply = [this](Connection& c, wire::ClientReply r) { on_reply(c, std::move(r)); };
    h.on_closed = [this](Connection& c, const Status& s) {
      if (&c == conn_.get()) broken(s, true);
    };
    conn_ = Connection::create(io_.io(), settings_, addr, std::move(h));
    conn_->start();
  }

  void on_ready(Connection& c) {
    if (&c != conn_.get()) return;
    wire::ClientRequest req;
    req.request_id = ++request_id_;
    req.body = wire::SubscribeRequest{fetched_};
    if (Status s = c.send(req); !s) {
      broken(s, true);
      return;
    }
    std::lock_guard lock(mu_);
    broken_since_.reset();
  }

  void on_reply(Connection& c, wire::ClientReply r) {
    if (&c != conn_.get() || r.request_id != request_id_) return;
    if (!r.status.is_ok()) {
      if (r.status.code() == ErrorCode::Compacted) {
        compacted_at_.insert(c.address());
        if (compacted_at_.size() >= candidates_.size()) {
          c.close();
          conn_.reset();
          std::lock_guard lock(mu_);
          error_ = Status{ErrorCode::Compacted,
                          fmt::format("index {} is no longer retained by any node asked ({})",
                                      fetched_.value(), r.status.message())};
          cv_.notify_all();
          return;
        }
      }
      // Busy: this node cut us off (we fell behind) or serves too many subscribers.
      broken(r.status, r.status.code() != ErrorCode::Busy || failures_ > 0);
      return;
    }
    if (r.entries.empty()) return;
    failures_ = 0;
    compacted_at_.clear();
    std::size_t queued = 0;
    {
      std::lock_guard lock(mu_);
      for (Entry& e : r.entries) {
        if (e.index < fetched_) continue;  // already delivered (an overlap after resubscribing)
        if (e.index != fetched_) break;    // a gap: never trust it; resubscribe below
        fetched_ = e.index.next();
        queue_.push_back(std::move(e));
      }
      queued = queue_.size();
      cv_.notify_all();
      if (queued >= kSubscriptionBufferEntries) paused_ = true;
    }
    if (r.entries.back().index >= fetched_) {  // the batch skipped an index
      broken(Status{ErrorCode::Corruption,
                    fmt::format("{} sent a gap before index {}", c.address(), fetched_.value())},
             false);
      return;
    }
    if (queued >= kSubscriptionBufferEntries) c.pause_reading();
  }

  /// The stream broke: close, then resubscribe (on the next node when `rotate`) from
  /// the index after the last one received, after a backoff.
  void broken(Status why, bool rotate) {
    if (conn_) {
      conn_->close();
      conn_.reset();
    }
    {
      std::lock_guard lock(mu_);
      last_error_ = std::move(why);
      if (!broken_since_) broken_since_ = Clock::now();
      if (paused_) paused_ = false;  // a fresh connection starts reading
    }
    if (stopping_) return;
    if (rotate) ++cursor_;
    ++failures_;
    timer_.expires_after(backoff_delay(failures_, o_.backoff_min, o_.backoff_max, rng_));
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) connect_next();
    });
  }

  const ClientOptions o_;
  const SubscribeOptions options_;
  const std::vector<std::string> candidates_;

  // shared with the consumer
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> queue_;
  LogIndex position_;
  Status error_;       ///< sticky (Compacted)
  Status last_error_;  ///< why the stream last broke
  std::optional<Clock::time_point> broken_since_;
  bool paused_ = false;

  IoThread io_;

  // io thread only
  std::mt19937_64 rng_;
  bool stopping_ = false;
  LogIndex fetched_;
  std::shared_ptr<Connection> conn_;
  std::uint64_t request_id_ = 0;
  std::size_t cursor_ = 0;
  std::uint32_t failures_ = 0;
  std::set<std::string> compacted_at_;
  asio::steady_timer timer_;
  const ConnectionSettings settings_;  // keepalives on: a silent stream breaks and resubscribes
};

}  // namespace

std::unique_ptr<Subscription> make_subscription(const ClientOptions& options,
                                                std::vector<std::string> candidates, LogIndex from,
                                                SubscribeOptions subscribe_options) {
  return std::make_unique<SubscriptionImpl>(options, std::move(candidates), from, subscribe_options);
}

}  // namespace rlr::client
