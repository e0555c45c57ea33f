#include "load.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>
#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "stats.h"
#include "util/thread_name.h"

namespace rlrbench {

using namespace std::chrono_literals;

namespace {
/// Distinct payloads per client, so that storage and compression see varied data.
constexpr std::size_t kPayloadsPerClient = 64;
}  // namespace

// ---------------------------------------------------------------------------------
// Window
// ---------------------------------------------------------------------------------

namespace {

long futex(std::atomic<int>* addr, int op, int val, const timespec* timeout) {
  static_assert(sizeof(std::atomic<int>) == sizeof(int));
  return ::syscall(SYS_futex, reinterpret_cast<int*>(addr), op, val, timeout, nullptr, 0);
}

}  // namespace

int Window::take() {
  for (;;) {
    if (interrupted_.load()) return 0;
    int v = permits_.load();
    while (v > 0) {
      if (permits_.compare_exchange_weak(v, 0)) return v;
    }
    waiters_.fetch_add(1);
    v = permits_.load();
    if (v < wake_at_ && !interrupted_.load()) futex(&permits_, FUTEX_WAIT_PRIVATE, v, nullptr);
    waiters_.fetch_sub(1);
  }
}

void Window::release(int n) {
  const int before = permits_.fetch_add(n);
  if (before < wake_at_ && before + n >= wake_at_ && waiters_.load() > 0) {
    futex(&permits_, FUTEX_WAKE_PRIVATE, 1, nullptr);
  }
}

void Window::interrupt() {
  interrupted_ = true;
  permits_.fetch_add(0);
  futex(&permits_, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
}

// ---------------------------------------------------------------------------------
// NullTarget
// ---------------------------------------------------------------------------------

NullTarget::NullTarget() : thread_([this] { run(); }) {}

NullTarget::~NullTarget() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void NullTarget::propose(rlr::Bytes /*command*/, rlr::ProposeCallback done) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    wake = queue_.empty();
    queue_.push_back(std::move(done));
  }
  if (wake) cv_.notify_one();
}

void NullTarget::run() {
  std::vector<rlr::ProposeCallback> batch;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) return;
    batch.swap(queue_);
    lock.unlock();
    for (auto& done : batch) done(rlr::ProposeResult{rlr::LogIndex{next_index_++}, rlr::Term{1}});
    batch.clear();
    lock.lock();
  }
}

// ---------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------

Load::Load(LoadOptions options, std::vector<Target*> targets) : options_(options) {
  std::mt19937_64 rng(12345);
  for (int i = 0; i < options_.clients; ++i) {
    // A deep pipeline refills in batches (an eighth of the window); a closed loop at once.
    auto st = std::make_unique<ClientState>(options_.outstanding, std::max(1, options_.outstanding / 8));
    st->load = this;
    st->target = targets.at(static_cast<std::size_t>(i));
    for (std::size_t k = 0; k < kPayloadsPerClient; ++k) {
      std::vector<std::uint8_t> bytes(options_.payload_bytes);
      for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
      st->payloads.emplace_back(std::move(bytes));
    }
    clients_.push_back(std::move(st));
  }
}

Load::~Load() {
  stop_ = true;
  for (auto& c : clients_) {
    c->window.interrupt();
    if (c->thread.joinable()) c->thread.join();
  }
}

void Load::set_window(std::int64_t window_begin_ns, std::int64_t window_end_ns) {
  // The end first: a callback that sees the new begin never pairs it with the old end.
  end_ns_.store(window_end_ns, std::memory_order_relaxed);
  begin_ns_.store(window_begin_ns, std::memory_order_release);
}

void Load::start(std::int64_t window_begin_ns, std::int64_t window_end_ns) {
  set_window(window_begin_ns, window_end_ns);
  for (auto& c : clients_) {
    ClientState* st = c.get();
    st->thread = std::thread([this, st] {
      rlr::util::set_thread_name("bench-client");
      run(*st);
    });
  }
}

void Load::run(ClientState& st) {
  std::size_t next = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    int n = st.window.take();
    if (n == 0) break;  // interrupted
    if (st.backoff.exchange(false, std::memory_order_relaxed)) std::this_thread::sleep_for(1ms);
    for (; n > 0; --n) {
      if (stop_.load(std::memory_order_relaxed)) {
        st.window.release(n);
        return;
      }
      const std::int64_t t0 = now_ns();
      ClientState* s = &st;
      // Two words of capture: std::function keeps it inline (no allocation in the harness).
      const rlr::Bytes& model = st.payloads[next++ % st.payloads.size()];
      st.target->propose(options_.shared_payloads ? model : rlr::Bytes::copy_of(model.span()),
                         [s, t0](rlr::Result<rlr::ProposeResult> r) {
                           s->load->on_outcome(*s, t0, r);
                           s->window.release();
                         });
    }
  }
}

void Load::on_outcome(ClientState& st, std::int64_t t0, const rlr::Result<rlr::ProposeResult>& r) {
  const std::int64_t t1 = now_ns();
  if (!r) {
    st.errors.fetch_add(1, std::memory_order_relaxed);
    st.backoff.store(true, std::memory_order_relaxed);
    std::lock_guard lock(err_mu_);
    if (first_error_.empty()) first_error_ = r.status().to_string();
    return;
  }
  st.acked.fetch_add(1, std::memory_order_relaxed);
  if (t1 >= begin_ns_.load(std::memory_order_acquire) && t1 < end_ns_.load(std::memory_order_relaxed)) {
    st.in_window.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(st.mu);
    st.samples.push_back(t1 - t0);
    if (options_.trace) st.ops.push_back(OpTrace{r.value().index.value(), r.value().term.value(), t0, t1});
  }
  if (FailoverWatch* w = options_.watch) {
    const std::uint64_t after = w->after_term.load(std::memory_order_acquire);
    if (after != 0 && r.value().term.value() > after) {
      std::int64_t none = 0;
      w->first_ack_ns.compare_exchange_strong(none, t1);
    }
  }
}

bool Load::stop(std::chrono::milliseconds timeout) {
  stop_ = true;
  for (auto& c : clients_) {
    c->window.interrupt();  // wakes a client blocked on a full window
    if (c->thread.joinable()) c->thread.join();
  }
  // Every permit back: no proposal of ours is outstanding any more.
  const auto deadline = Clock::now() + timeout;
  for (auto& c : clients_) {
    while (c->window.available() < options_.outstanding) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
  }
  return true;
}

std::uint64_t Load::acked_total() const {
  std::uint64_t n = 0;
  for (const auto& c : clients_) n += c->acked.load(std::memory_order_relaxed);
  return n;
}

std::uint64_t Load::acked_in_window() const {
  std::uint64_t n = 0;
  for (const auto& c : clients_) n += c->in_window.load(std::memory_order_relaxed);
  return n;
}

std::uint64_t Load::errors() const {
  std::uint64_t n = 0;
  for (const auto& c : clients_) n += c->errors.load(std::memory_order_relaxed);
  return n;
}

std::string Load::first_error() const {
  std::lock_guard lock(err_mu_);
  return first_error_;
}

std::vector<OpTrace> Load::take_ops() {
  std::vector<OpTrace> all;
  for (auto& c : clients_) {
    std::lock_guard lock(c->mu);
    all.insert(all.end(), c->ops.begin(), c->ops.end());
    std::vector<OpTrace>().swap(c->ops);
  }
  return all;
}

std::vector<std::int64_t> Load::take_samples() {
  std::vector<std::int64_t> all;
  std::size_t n = 0;
  for (auto& c : clients_) {
    std::lock_guard lock(c->mu);
    n += c->samples.size();
  }
  all.reserve(n);
  for (auto& c : clients_) {
    std::lock_guard lock(c->mu);
    all.insert(all.end(), c->samples.begin(), c->samples.end());
    std::vector<std::int64_t>().swap(c->samples);
  }
  return all;
}

std::size_t Load::sample_bytes() const {
  std::size_t n = 0;
  for (const auto& c : clients_) {
    std::lock_guard lock(c->mu);
    n += c->samples.capacity() * sizeof(std::int64_t);
  }
  return n;
}

}  // namespace rlrbench
