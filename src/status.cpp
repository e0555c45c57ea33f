#include "rlr/status.h"

#include <cstring>

#include <fmt/format.h>

namespace rlr {

Bytes::Bytes(std::vector<std::uint8_t> data) {
  auto owned = std::make_shared<const std::vector<std::uint8_t>>(std::move(data));
  data_ = owned->data();
  size_ = owned->size();
  owner_ = std::move(owned);
}

Bytes Bytes::copy_of(std::span<const std::uint8_t> s) {
  if (s.empty()) return Bytes{};
  // One allocation holds the reference count and the bytes (a vector would be a second
  // one): proposals are copied here one by one, and their memory is freed on another
  // thread, so each allocation saved counts twice.
  std::shared_ptr<std::uint8_t[]> buf = std::make_shared_for_overwrite<std::uint8_t[]>(s.size());
  std::memcpy(buf.get(), s.data(), s.size());
  const std::uint8_t* data = buf.get();
  return Bytes(std::shared_ptr<const void>(std::move(buf), data), data, s.size());
}

Bytes Bytes::copy_of(std::string_view s) {
  return copy_of(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()),  // NOLINT: bytes of a string
                                               s.size()));
}

std::string_view Bytes::as_string_view() const noexcept {
  if (size_ == 0) return {};
  return {reinterpret_cast<const char*>(data_), size_};  // NOLINT: byte view of owned memory
}

bool operator==(const Bytes& a, const Bytes& b) noexcept {
  return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data_, b.data_, a.size_) == 0);
}

std::string_view to_string(Role r) noexcept {
  switch (r) {
    case Role::Follower: return "follower";
    case Role::PreCandidate: return "pre-candidate";
    case Role::Candidate: return "candidate";
    case Role::Leader: return "leader";
    case Role::Learner: return "learner";
  }
  return "?";
}

std::string_view to_string(EntryKind k) noexcept {
  switch (k) {
    case EntryKind::Normal: return "normal";
    case EntryKind::Config: return "config";
    case EntryKind::Noop: return "noop";
    case EntryKind::Session: return "session";
    case EntryKind::Watermark: return "watermark";
  }
  return "?";
}

std::string_view to_string(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::Ok: return "Ok";
    case ErrorCode::NotLeader: return "NotLeader";
    case ErrorCode::Timeout: return "Timeout";
    case ErrorCode::ShuttingDown: return "ShuttingDown";
    case ErrorCode::InvalidArgument: return "InvalidArgument";
    case ErrorCode::ChangeInProgress: return "ChangeInProgress";
    case ErrorCode::TransferInProgress: return "TransferInProgress";
    case ErrorCode::Compacted: return "Compacted";
    case ErrorCode::Corruption: return "Corruption";
    case ErrorCode::IoError: return "IoError";
    case ErrorCode::NotFound: return "NotFound";
    case ErrorCode::Busy: return "Busy";
    case ErrorCode::Unavailable: return "Unavailable";
    case ErrorCode::WrongCluster: return "WrongCluster";
  }
  return "?";
}

std::string Status::to_string() const {
  if (is_ok()) return "Ok";
  if (code_ == ErrorCode::NotLeader) {
    return fmt::format("{}: {} (leader={})", rlr::to_string(code_), message_, leader_hint_.value());
  }
  return fmt::format("{}: {}", rlr::to_string(code_), message_);
}

}  // namespace rlr
