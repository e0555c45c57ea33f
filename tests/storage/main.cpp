// Test runner of rlr-storage-tests. Besides the Catch2 session it has one hidden mode,
// `--crash-child DIR SEED FD`, used by the crash test: the test forks and re-executes
// this binary in that mode, so the child starts with a clean RocksDB runtime (no
// background threads inherited half-alive from the parent), then kills it.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <string_view>

namespace rlr::storage::test {
int crash_child_main(int argc, char** argv);
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--crash-child") {
    return rlr::storage::test::crash_child_main(argc, argv);
  }
  return Catch::Session().run(argc, argv);
}
