#!/usr/bin/env bash
# Installs the Debian packages librlr builds with, when any is missing, and configures
# and builds the tree in ./build with Ninja. Sourced by tests/run.sh and examples/demo.sh.
set -euo pipefail

RLR_PACKAGES=(cmake ninja-build g++ pkg-config libboost-dev librocksdb-dev libflatbuffers-dev
  prometheus-cpp-dev prometheus chromium curl
  flatbuffers-compiler libfmt-dev catch2 librapidcheck-dev clang libclang-rt-14-dev
  libtomlplusplus-dev libcli11-dev libsqlite3-dev redis-tools python3
  make doxygen dpkg-dev lintian help2man file)

rlr_install_deps() {
  local missing=()
  for p in "${RLR_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "== installing: ${missing[*]}"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# rlr_build [targets...]: configure ./build (RelWithDebInfo, Ninja) and build.
rlr_build() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE="${RLR_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
  cmake --build "$root/build" ${1:+--target "$@"}
}
