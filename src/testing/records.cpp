#include "testing/records.h"

#include <fmt/format.h>

namespace rlr::testing {

void LineSink::write(const LogRecord& record) noexcept {
  try {
    std::string line = format_log_record(record, LogFormat::Text);
    std::lock_guard lock(mu_);
    lines_.push_back(std::move(line));
    while (lines_.size() > kMaxLines) lines_.pop_front();
  } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory drops the line
  }
}

std::vector<std::string> LineSink::lines() const {
  std::lock_guard lock(mu_);
  return {lines_.begin(), lines_.end()};
}

void Records::delivered(NodeId node, const Output& output, bool not_leader) {
  std::lock_guard lock(mu_);
  outputs_[node].push_back(output);
  if (not_leader) ++not_leader_;
}

void Records::checkpoint(NodeId node, std::size_t attachment, const DigestCheckpoint& cp) {
  std::lock_guard lock(mu_);
  digests_[{attachment, cp.index}][node] = cp.digest;
}

std::vector<Output> Records::emitted(NodeId node) const {
  std::lock_guard lock(mu_);
  const auto it = outputs_.find(node);
  return it == outputs_.end() ? std::vector<Output>{} : it->second;
}

Downstream Records::downstream() const {
  std::lock_guard lock(mu_);
  Downstream d;
  d.not_leader = not_leader_;
  for (const auto& [node, outputs] : outputs_) {
    for (const Output& o : outputs) {
      const auto [it, fresh] = d.outputs.try_emplace(o.key, o);
      if (fresh) continue;
      ++d.redelivered;
      if (it->second.topic != o.topic || it->second.payload != o.payload) d.conflicts.push_back(o.key);
    }
  }
  return d;
}

Status Records::digests_agree() const {
  std::lock_guard lock(mu_);
  for (const auto& [at, by_node] : digests_) {
    const auto& [first_node, first_digest] = *by_node.begin();
    for (const auto& [node, digest] : by_node) {
      if (digest == first_digest) continue;
      return Status{ErrorCode::Corruption,
                    fmt::format("attachment {}: at index {} node {} has digest {:016x}, node {} has "
                                "{:016x}",
                                at.first, at.second.value(), first_node.value(), first_digest,
                                node.value(), digest)};
    }
  }
  return Status::ok();
}

void RecordingSink::deliver(const Output& output) {
  records_->delivered(node_, output, leader_only_ && !leads_now_());
  {
    std::lock_guard lock(mu_);
    if (output.key.index.value() > 0 && output.key.index.prev() > acked_) acked_ = output.key.index.prev();
  }
  if (user_) user_->deliver(output);
}

LogIndex RecordingSink::acknowledged() const {
  if (user_) return user_->acknowledged();
  std::lock_guard lock(mu_);
  return acked_;
}

}  // namespace rlr::testing
