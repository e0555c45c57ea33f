#!/usr/bin/env bash
# The configuration people start from cannot drift from the code:
#  - examples/config/voter.toml is exactly what `rlr-node --print-default-config` prints;
#  - docs/configuration.md is exactly what `rlr-node --print-config-reference` prints;
#  - every sample config passes `rlr-node --check`;
#  - the defaults written in the default config are the code's defaults: the effective
#    configuration --check prints for it equals the one for a minimal config that sets
#    only the required values;
#  - a key that is not in the reference is refused.
#   config_test.sh RLR_NODE SOURCE_DIR
set -euo pipefail
node=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$node" --print-default-config >"$tmp/default.toml"
diff -u "$src/examples/config/voter.toml" "$tmp/default.toml" ||
  fail "examples/config/voter.toml differs from rlr-node --print-default-config (regenerate it)"
"$node" --print-config-reference >"$tmp/configuration.md"
diff -u "$src/docs/configuration.md" "$tmp/configuration.md" ||
  fail "docs/configuration.md differs from rlr-node --print-config-reference (regenerate it)"

for f in "$src"/examples/config/*.toml; do
  "$node" --check --config "$f" --data-dir "$tmp/data-$(basename "$f" .toml)" >"$tmp/check.out" ||
    { cat "$tmp/check.out"; fail "$f does not pass --check"; }
  echo "ok: $(basename "$f") passes --check"
done

effective() { "$node" --check "$@" --data-dir "$tmp/data" | sed -n '/^# the configuration/,$p'; }
effective --config "$tmp/default.toml" >"$tmp/from-default"
effective --cluster-id venue-a --id 1 --peer 1=10.0.0.1:7001 --peer 2=10.0.0.2:7001 \
          --peer 3=10.0.0.3:7001 >"$tmp/from-minimal"
[[ -s $tmp/from-minimal ]] || fail "--check printed no effective configuration"
diff -u "$tmp/from-minimal" "$tmp/from-default" ||
  fail "a default written in the default config is not the code's default"
echo "ok: the default config's values are the code's defaults"

printf 'undocumented_option = 1\n' >>"$tmp/default.toml"
if "$node" --check --config "$tmp/default.toml" --data-dir "$tmp/data" >"$tmp/out" 2>&1; then
  fail "a key missing from the reference was accepted"
fi
grep -q "unknown key 'undocumented_option'" "$tmp/out" || { cat "$tmp/out"; fail "no clear error"; }
echo "ok: an unknown key is refused"
