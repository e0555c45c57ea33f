#include "storage_test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <limits>

namespace Catch {
std::string StringMaker<rlr::Entry>::convert(const rlr::Entry& e) {
  return "{index " + std::to_string(e.index.value()) + ", term " +
         std::to_string(e.term.value()) + ", " + std::string(rlr::to_string(e.kind)) + ", " +
         std::to_string(e.payload.size()) + " bytes}";
}
}  // namespace Catch

namespace rlr::storage::test {

TempDir::TempDir(const std::string& tag, const std::string& base) {
  std::string tmpl = base + "/" + tag + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) FAIL("mkdtemp failed for " << tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(path_, ec);
}

std::string memory_backed_base() {
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) {
    return "/dev/shm";
  }
  return "/tmp";
}

Bytes payload_for(std::uint64_t index, std::size_t size) {
  std::vector<std::uint8_t> b(size);
  std::uint64_t x = index * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
  for (std::size_t i = 0; i < size; ++i) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    b[i] = static_cast<std::uint8_t>(x >> 56);
  }
  return Bytes(std::move(b));
}

Entry make_entry(std::uint64_t index, std::uint64_t term, std::size_t payload_size,
                 EntryKind kind) {
  Entry e;
  e.index = LogIndex{index};
  e.term = Term{term};
  e.kind = kind;
  e.payload = payload_for(index, payload_size);
  return e;
}

std::vector<Entry> make_entries(std::uint64_t first, std::uint64_t last, std::uint64_t term,
                                std::size_t payload_size) {
  std::vector<Entry> out;
  for (std::uint64_t i = first; i <= last; ++i) out.push_back(make_entry(i, term, payload_size));
  return out;
}

core::Configuration config_of(std::vector<std::uint64_t> voters) {
  core::Configuration c;
  for (std::uint64_t v : voters) c.voters.push_back(NodeId{v});
  c.normalize();
  return c;
}

Status append(Storage& s, const std::vector<Entry>& entries, std::optional<HardState> hs) {
  PersistRequest req;
  req.entries = entries;
  req.hard_state = hs;
  return s.persist(req);
}

std::vector<Entry> read_all(const Storage& s) {
  if (s.last_index() < s.first_index()) return {};
  auto r = s.read(s.first_index(), s.last_index(), std::numeric_limits<std::size_t>::max(),
                  std::numeric_limits<std::size_t>::max());
  RLR_REQUIRE_OK(r);
  return std::move(r).value();
}

std::size_t payload_bytes(const std::vector<Entry>& entries) {
  std::size_t n = 0;
  for (const Entry& e : entries) n += e.payload.size();
  return n;
}

}  // namespace rlr::storage::test
