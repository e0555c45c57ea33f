// Shared helpers of the storage tests: temporary directories, entry builders with
// payloads derived from the index (so any read can be verified without a copy), and
// status assertions that print the error message on failure.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/configuration.h"
#include "storage/storage.h"
#include "rlr/status.h"
#include "rlr/types.h"

namespace Catch {
template <>
struct StringMaker<rlr::ErrorCode> {
  static std::string convert(rlr::ErrorCode c) { return std::string(rlr::to_string(c)); }
};
template <>
struct StringMaker<rlr::LogIndex> {
  static std::string convert(rlr::LogIndex i) { return "index " + std::to_string(i.value()); }
};
template <>
struct StringMaker<rlr::NodeId> {
  static std::string convert(rlr::NodeId n) { return "node " + std::to_string(n.value()); }
};
template <>
struct StringMaker<rlr::Term> {
  static std::string convert(rlr::Term t) { return "term " + std::to_string(t.value()); }
};
template <>
struct StringMaker<rlr::Entry> {
  static std::string convert(const rlr::Entry& e);
};
}  // namespace Catch

namespace rlr::storage::test {

/// A fresh directory under `base`, removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "rlr-storage-test", const std::string& base = "/tmp");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  /// A path inside the directory (not created).
  [[nodiscard]] std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline Status status_of(const Status& s) { return s; }
template <class T>
Status status_of(const Result<T>& r) {
  return r.status();
}

/// A RAM-backed base directory (/dev/shm) when there is one, else /tmp: for tests of
/// logic rather than durability, where fsync latency would only slow them down.
std::string memory_backed_base();

/// Deterministic payload of `size` bytes for the entry at `index` (varies with both).
Bytes payload_for(std::uint64_t index, std::size_t size);
/// An entry whose payload is payload_for(index, payload_size).
Entry make_entry(std::uint64_t index, std::uint64_t term, std::size_t payload_size = 16,
                 EntryKind kind = EntryKind::Normal);
/// Entries [first, last], all with `term`.
std::vector<Entry> make_entries(std::uint64_t first, std::uint64_t last, std::uint64_t term,
                                std::size_t payload_size = 16);

core::Configuration config_of(std::vector<std::uint64_t> voters);

/// Appends `entries` (and optionally a hard state) in one request.
Status append(Storage& s, const std::vector<Entry>& entries,
              std::optional<HardState> hs = std::nullopt);
/// Every retained entry, REQUIREd to succeed.
std::vector<Entry> read_all(const Storage& s);
/// Total payload bytes of `entries`.
std::size_t payload_bytes(const std::vector<Entry>& entries);

}  // namespace rlr::storage::test

/// REQUIREs that a Status or Result is ok, printing its error otherwise.
#define RLR_REQUIRE_OK(expr)                                                  \
  do {                                                                        \
    const ::rlr::Status rlr_status_ = ::rlr::storage::test::status_of(expr); \
    INFO("status: " << rlr_status_.to_string());                              \
    REQUIRE(rlr_status_.is_ok());                                             \
  } while (false)

/// REQUIREs that a Status or Result failed with `expected_code`.
#define RLR_REQUIRE_CODE(expr, expected_code)                                          \
  do {                                                                        \
    const ::rlr::Status rlr_status_ = ::rlr::storage::test::status_of(expr); \
    INFO("status: " << rlr_status_.to_string());                              \
    REQUIRE(rlr_status_.code() == (expected_code));                                    \
  } while (false)
