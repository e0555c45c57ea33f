#include "kv/kv_store.h"

#include <fmt/format.h>

namespace rlr::kv {
namespace {

constexpr std::uint8_t kMagic0 = 'K';
constexpr std::uint8_t kMagic1 = 'V';
constexpr std::uint8_t kVersion = 1;

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

bool take_u32(std::span<const std::uint8_t>& in, std::uint32_t& v) {
  if (in.size() < 4) return false;
  v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | in[static_cast<std::size_t>(i)];
  in = in.subspan(4);
  return true;
}

Status bad(std::string_view what) {
  return {ErrorCode::InvalidArgument, fmt::format("malformed kv command: {}", what)};
}

}  // namespace

Bytes encode(const KvCommand& c) {
  std::vector<std::uint8_t> out{kMagic0, kMagic1, kVersion, static_cast<std::uint8_t>(c.op)};
  put_u32(out, static_cast<std::uint32_t>(c.args.size()));
  for (const auto& a : c.args) {
    put_u32(out, static_cast<std::uint32_t>(a.size()));
    out.insert(out.end(), a.begin(), a.end());
  }
  return Bytes(std::move(out));
}

Result<KvCommand> decode(std::span<const std::uint8_t> in) {
  if (in.size() < 4 || in[0] != kMagic0 || in[1] != kMagic1) return bad("bad magic");
  if (in[2] != kVersion) return bad("unknown version");
  KvCommand c;
  if (in[3] == static_cast<std::uint8_t>(Op::Put)) {
    c.op = Op::Put;
  } else if (in[3] == static_cast<std::uint8_t>(Op::Delete)) {
    c.op = Op::Delete;
  } else {
    return bad("unknown operation");
  }
  in = in.subspan(4);
  std::uint32_t n = 0;
  if (!take_u32(in, n)) return bad("truncated");
  if (c.op == Op::Put && n != 2) return bad("put takes a key and a value");
  if (c.op == Op::Delete && (n == 0 || n > kDeleteKeysMax)) return bad("delete takes 1..1024 keys");
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint32_t len = 0;
    if (!take_u32(in, len) || in.size() < len) return bad("truncated");
    const bool is_value = c.op == Op::Put && i == 1;
    if (len > (is_value ? kValueBytesMax : kKeyBytesMax)) return bad("too large");
    c.args.emplace_back(in.begin(), in.begin() + len);
    in = in.subspan(len);
  }
  if (!in.empty()) return bad("trailing bytes");
  return c;
}

KvResult KvStore::execute(const Entry& entry) {
  auto cmd = decode(entry.payload.span());
  if (!cmd) return KvResult{false, 0, cmd.status().message()};
  KvCommand& c = cmd.value();
  KvResult r;
  if (c.op == Op::Put) {
    map_.insert_or_assign(std::move(c.args[0]), std::move(c.args[1]));
  } else {
    for (const auto& key : c.args) r.deleted += static_cast<std::int64_t>(map_.erase(key));
  }
  return r;
}

void KvStore::apply(const Entry& entry, const ApplyContext& ctx, Egress& /*egress*/) {
  std::vector<std::function<void(std::optional<KvResult>)>> ready;
  std::vector<std::optional<KvResult>> results;
  {
    std::lock_guard lock(mu_);
    KvResult r = execute(entry);
    const std::uint64_t index = ctx.index.value();
    results_.emplace(index, std::move(r));
    while (results_.size() > kResultsKept) results_.erase(results_.begin());
    applied_.store(index);
    while (!waiters_.empty() && waiters_.begin()->first <= index) {
      auto it = waiters_.begin();
      auto found = results_.find(it->first);
      results.push_back(found == results_.end() ? std::nullopt
                                                : std::optional<KvResult>(found->second));
      ready.push_back(std::move(it->second));
      waiters_.erase(it);
    }
  }
  applied_cv_.notify_all();
  for (std::size_t i = 0; i < ready.size(); ++i) ready[i](std::move(results[i]));
}

std::optional<std::string> KvStore::get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

bool KvStore::exists(const std::string& key) const {
  std::lock_guard lock(mu_);
  return map_.contains(key);
}

std::size_t KvStore::size() const {
  std::lock_guard lock(mu_);
  return map_.size();
}

void KvStore::when_applied(LogIndex index, std::function<void(std::optional<KvResult>)> done) {
  std::optional<KvResult> result;
  {
    std::lock_guard lock(mu_);
    if (applied_.load() < index.value()) {
      waiters_.emplace(index.value(), std::move(done));
      return;
    }
    auto found = results_.find(index.value());
    if (found != results_.end()) result = found->second;
  }
  done(std::move(result));
}

bool KvStore::wait_applied(LogIndex index, const std::function<LogIndex()>& progress,
                           std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mu_);
  while (true) {
    if (applied_.load() >= index.value() || (progress && progress() >= index)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    // Internal entries (no-ops, watermarks) move the runner but never reach apply(): poll.
    applied_cv_.wait_for(lock, std::chrono::milliseconds(1));
  }
}

}  // namespace rlr::kv
