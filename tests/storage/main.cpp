// Test runner of rlr-storage-tests. Besides the Catch2 session it has two hidden modes,
// each the child of one test, which forks and re-executes this binary in it so that the
// child starts with a clean RocksDB runtime (no background threads inherited half-alive
// from the parent): `--crash-child DIR SEED FD` (the crash test kills it) and
// `--full-disk-child DIR` (closing a store on a full disk).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace rlr::storage::test {
int crash_child_main(int argc, char** argv);
int full_disk_child_main(const std::string& dir);
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--crash-child") {
    return rlr::storage::test::crash_child_main(argc, argv);
  }
  if (argc == 3 && std::string_view(argv[1]) == "--full-disk-child") {
    return rlr::storage::test::full_disk_child_main(argv[2]);
  }
  return Catch::Session().run(argc, argv);
}
