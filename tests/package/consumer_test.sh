#!/usr/bin/env bash
# Installs librlr from the build tree into a temporary prefix, as a user would, and
# builds examples/embed against it three ways: find_package with the shared library,
# find_package with the static one, and pkg-config. Each binary then runs a 3-node
# cluster. Only the installed tree is on the include and library paths, so a public
# header that includes a private one, a symbol the shared library does not export, or
# a dependency the package does not name fails this test.
#   consumer_test.sh BUILD_DIR SOURCE_DIR BASE_PORT
set -euo pipefail
build=$1 src=$2 port=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

echo "== install (components lib and dev) into $prefix"
for component in lib dev; do
  cmake --install "$build" --prefix "$prefix" --component "$component" >/dev/null
done
(cd "$prefix" && find . -type f -o -type l | sort)
libdir=$(dirname "$(find "$prefix" -name 'librlr.so' | head -1)")

echo "== the shared library exports the public API only"
# (A symbol is internal by its own name; a library template instantiated with an internal
# type, e.g. a Boost.Asio handler, names internal types only in its arguments.)
internal=$(nm -DC --defined-only "$libdir/librlr.so" | cut -d' ' -f3- |
           grep -E '^((vtable|typeinfo|typeinfo name|guard variable) for )?rlr::(core|node|wire|storage|transport|util|client|sim|testing::detail)::' || true)
if [[ -n $internal ]]; then
  echo "internal symbols exported from librlr.so:"; echo "$internal" | head -20; exit 1
fi
nm -DC --defined-only "$libdir/librlr.so" >"$tmp/exported"
grep -q ' rlr::NodeBuilder::build() const' "$tmp/exported" || { echo "rlr::NodeBuilder::build is not exported"; exit 1; }
echo "$(grep -c ' rlr::' "$tmp/exported") symbols of rlr:: exported, none internal"

run() {  # run NAME BINARY
  echo "== run $1"
  "$2" "$tmp/data-$1" "$port"
}

echo "== find_package(rlr), shared"
cmake -S "$src/examples/embed" -B "$tmp/shared" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/shared"
ldd "$tmp/shared/embed" >"$tmp/ldd"
grep -q "librlr.so.0 => $libdir" "$tmp/ldd" || { cat "$tmp/ldd"; echo "embed does not use the installed librlr.so"; exit 1; }
run shared "$tmp/shared/embed"

echo "== find_package(rlr), static"
cmake -S "$src/examples/embed" -B "$tmp/static" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DEMBED_STATIC=ON >/dev/null
cmake --build "$tmp/static"
ldd "$tmp/static/embed" >"$tmp/ldd"
if grep -q librlr "$tmp/ldd"; then echo "the static build links librlr.so"; exit 1; fi
run static "$tmp/static/embed"

echo "== pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
echo "rlr $(pkg-config --modversion rlr): $(pkg-config --cflags --libs rlr)"
mkdir -p "$tmp/pc" && cp "$src/examples/embed/main.cpp" "$src/examples/embed/Makefile" "$tmp/pc/"
make -C "$tmp/pc" CXX="${CXX:-c++}" LDFLAGS="-Wl,-rpath,$libdir"
run pkg-config "$tmp/pc/embed"
echo "consumer test: ok"
