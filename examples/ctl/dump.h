// rlr-ctl dump: prints a stopped node's stored log and hard state from its data
// directory, without any librlr node running. The chaos suite's log-agreement checker
// reads this output; its format is a contract (see dump.cpp's comment).
#pragma once

#include <cstdint>
#include <string>

namespace rlr::ctl {

struct DumpOptions {
  std::string data_dir;
  std::string cluster_id;
  std::uint64_t node_id = 0;
  std::uint64_t from = 0;  ///< first index to print; 0: the first stored one
  std::uint64_t to = 0;    ///< last index to print; 0: the last stored one
};

/// Prints the dump on stdout. Returns rlr-ctl's exit code: 0 on success, 1 when the store
/// cannot be opened or read (the reason on stderr).
[[nodiscard]] int dump_data_dir(const DumpOptions& o);

}  // namespace rlr::ctl
