#!/usr/bin/env bash
# Builds the Debian packages with CPack, installs them with apt-get as a user would,
# checks what they installed, runs lintian on them, and removes them again.
#   deb_test.sh BUILD_DIR SOURCE_DIR
# Needs root (or passwordless sudo): it installs into /usr. Elsewhere it exits 77, which
# CTest reports as skipped; under CI=true it fails instead, so CI never skips it.
set -euo pipefail
build=$1 src=$2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  elif [[ ${CI:-} == true ]]; then
    echo "FAIL: installing the packages needs root or passwordless sudo"; exit 1
  else
    echo "skipped: installing the packages needs root or passwordless sudo"; exit 77
  fi
fi
tmp=$(mktemp -d)
installed=0
had_user=0; getent passwd rlr >/dev/null && had_user=1
had_state=0; [[ -e /var/lib/rlr ]] && had_state=1
# Leaves the machine as it found it: the packages purged, and what they keep on purge
# (the user rlr, /var/lib/rlr) removed when this test made them.
cleanup() {
  if ((installed)); then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq rlr-node librlr-dev librlr >/dev/null || true
    $sudo rm -rf /var/lib/rlr/n1 /etc/rlr
    ((had_state)) || $sudo rm -rf /var/lib/rlr
    ((had_user)) || $sudo userdel rlr 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

echo "== cpack -G DEB"
(cd "$tmp" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/out" >/dev/null)
ls -l "$tmp"/out/*.deb
version=$(sed -n 's/^#define RLR_VERSION_STRING "\(.*\)"/\1/p' "$build/include/rlr/version.h")
for p in librlr librlr-dev rlr-node; do
  [[ -f $tmp/out/${p}_${version}_amd64.deb ]] || fail "no package $p"
done

echo "== contents"
for deb in "$tmp"/out/*.deb; do
  echo "-- $(basename "$deb")"; dpkg-deb --info "$deb" | sed -n '/Package:/,$p' | grep -E '^ (Package|Depends|Section)'
  dpkg-deb --contents "$deb" | awk '{print $6}' | grep -v '/$'
done >"$tmp/contents"
cat "$tmp/contents"
for want in ./usr/lib/librlr.so.0 ./usr/include/rlr/node.h ./usr/include/rlr/version.h ./usr/lib/librlr.a \
            ./usr/lib/cmake/rlr/rlrConfig.cmake ./usr/lib/pkgconfig/rlr.pc ./usr/bin/rlr-node ./usr/bin/rlr-ctl \
            ./usr/lib/systemd/system/rlr-node@.service ./usr/share/doc/rlr-node/examples/voter.toml \
            ./usr/share/doc/rlr-node/operations.md ./usr/share/doc/rlr-node/metrics.md \
            ./usr/share/doc/rlr-node/examples/grafana/rlr.json ./usr/share/man/man1/rlr-node.1.gz ./usr/share/man/man1/rlr-ctl.1.gz; do
  grep -q "^$want" "$tmp/contents" || fail "$want is in no package"
done
dpkg-deb --fsys-tarfile "$tmp/out/librlr_${version}_amd64.deb" | tar -xOf - ./usr/share/doc/librlr/changelog.gz |
  gzip -dc | head -1 >"$tmp/changelog-head"
grep -q "^librlr ($version) " "$tmp/changelog-head" ||
  fail "packaging/debian/changelog has no entry for $version: $(cat "$tmp/changelog-head")"
dpkg-deb --info "$tmp/out/librlr-dev_${version}_amd64.deb" >"$tmp/dev-info"
grep -q "librlr (= $version)" "$tmp/dev-info" || fail "librlr-dev does not depend on librlr of its version"

echo "== lintian"
# The tags the packages carry on purpose are overridden inside them, each with its reason
# (packaging/debian/*.lintian-overrides); any other error or warning fails.
lintian --tag-display-limit 0 --show-overrides "$tmp"/out/*.deb >"$tmp/lintian" 2>&1 || true
grep -v "running with root privileges" "$tmp/lintian" || true
if grep -E '^[EW]: ' "$tmp/lintian" >/dev/null; then fail "lintian errors or warnings (above)"; fi

echo "== apt-get install ./*.deb"
installed=1
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "$tmp"/out/librlr_*.deb "$tmp"/out/librlr-dev_*.deb "$tmp"/out/rlr-node_*.deb >/dev/null

echo "== the installed files work"
/usr/bin/rlr-ctl --help >"$tmp/help" && head -2 "$tmp/help"
/usr/bin/rlr-node --version >"$tmp/node-version"
grep -q "^rlr-node $version (storage format" "$tmp/node-version" || fail "rlr-node --version: $(cat "$tmp/node-version")"
/usr/bin/rlr-node --check --config /usr/share/doc/rlr-node/examples/voter.toml >"$tmp/check" && head -1 "$tmp/check"
for f in /usr/share/doc/rlr-node/examples/*.toml; do
  /usr/bin/rlr-node --check --config "$f" --data-dir "$tmp/check-data" >/dev/null || fail "$f fails --check"
done
getent passwd rlr >/dev/null || fail "the package did not create the user rlr"
[[ $(stat -c %U /var/lib/rlr) == rlr ]] || fail "/var/lib/rlr is not owned by rlr"
[[ -d /etc/rlr ]] || fail "/etc/rlr is missing"
grep -q '^ExecStart=/usr/bin/rlr-node --config /etc/rlr/%i.toml$' /usr/lib/systemd/system/rlr-node@.service ||
  fail "the unit does not run /usr/bin/rlr-node"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /usr/lib/systemd/system/rlr-node@.service
fi
[[ $(pkg-config --modversion rlr) == "$version" ]] || fail "pkg-config does not find rlr $version"
printf '#include <rlr/version.h>\n#include <cstdio>\nint main() { std::puts(rlr::version()); }\n' >"$tmp/v.cpp"
"${CXX:-c++}" $(pkg-config --cflags rlr) -o "$tmp/v" "$tmp/v.cpp" $(pkg-config --libs rlr)
[[ $("$tmp/v") == "$version" ]] || fail "a program linked with -lrlr does not report $version"
echo "deb test: ok ($version)"
