#!/usr/bin/env bash
# The demo: librlr as the ordering authority of a matching engine, as real processes.
#
#   1. builds rlr-node, rlr-ctl, me-driver and rlr-audit (installing what is missing);
#   2. starts a 3-node cluster on loopback, each node hosting the matching engine;
#   3. sequences orders through the client library (me-driver) and shows where each landed;
#   4. kills the leader with kill -9 in the middle of the stream: a new leader is elected,
#      the client follows it, sequencing continues; the old leader restarts and catches up;
#   5. adds a 4th node as an audit learner (egress "persist" into SQLite), waits for it to
#      catch up, compares the replicas' output digests (rlr-ctl verify) and checks the
#      audit table against the log (rlr-audit check);
#   6. shows the egress matrix: only the leader's copy of each output left the cluster.
#
# Unattended (no terminal needed), cleans up its processes and temporary files on any
# exit, and exits non-zero when a step fails. RLR_DEMO_KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source cmake/deps.sh

STEP="setup"
WORK=""
declare -A NODE_PID=()
DRIVER_PID=""

bold() { if [[ -t 1 ]]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() {
  STEP="$*"
  echo
  bold "== $*"
}
say() { printf '   %s\n' "$*"; }
indent() { sed -u 's/^/   | /'; }
fail() {
  echo "demo: FAILED: $*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  [[ -n "$DRIVER_PID" ]] && kill "$DRIVER_PID" 2>/dev/null
  for id in "${!NODE_PID[@]}"; do kill -TERM "${NODE_PID[$id]}" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for id in "${!NODE_PID[@]}"; do kill -0 "${NODE_PID[$id]}" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for id in "${!NODE_PID[@]}"; do kill -KILL "${NODE_PID[$id]}" 2>/dev/null; done
  wait 2>/dev/null
  if ((rc != 0)); then
    echo
    echo "demo: FAILED during: $STEP (exit status $rc)" >&2
    if [[ -n "$WORK" ]]; then
      for log in "$WORK"/n*.log; do
        [[ -f "$log" ]] || continue
        echo "--- last lines of $(basename "$log") ---" >&2
        tail -n 15 "$log" >&2
      done
    fi
  fi
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    if [[ "${RLR_DEMO_KEEP:-0}" == 1 ]]; then
      echo "demo: work directory kept: $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------------------------
step "building rlr-node, rlr-ctl, me-driver and rlr-audit"
rlr_install_deps
BUILD_LOG=$(mktemp "${TMPDIR:-/tmp}/rlr-demo-build.XXXXXX")
if ! rlr_build rlr-node rlr-ctl me-driver rlr-audit >"$BUILD_LOG" 2>&1; then
  tail -n 40 "$BUILD_LOG" >&2
  rm -f "$BUILD_LOG"
  fail "the build failed"
fi
rm -f "$BUILD_LOG"
BIN=$ROOT/build/bin
say "built into $BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rlr-demo.XXXXXX")
CLUSTER=rlr-demo

# Four free loopback ports, one per node.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORTS=()
candidate=$((20000 + (RANDOM % 20000)))
while ((${#PORTS[@]} < 4)); do
  port_in_use "$candidate" || PORTS+=("$candidate")
  candidate=$((candidate + 1))
done
addr() { echo "127.0.0.1:${PORTS[$(($1 - 1))]}"; }
VOTERS="$(addr 1),$(addr 2),$(addr 3)"
ALL="$VOTERS,$(addr 4)"

ctl() { "$BIN/rlr-ctl" --cluster "$CLUSTER" --bootstrap "$ALL" "$@"; }

write_voter_config() {
  local id=$1
  cat >"$WORK/n$id.toml" <<EOF
# Node $id of the demo cluster: a founding voter hosting the matching engine.
cluster_id = "$CLUSTER"
id = $id
listen = "$(addr "$id")"
data_dir = "$WORK/n$id"
egress = "leader-only"

[timeouts]
tick_ms = 10
election_ticks = 30
heartbeat_ticks = 3

[app]
name = "matching-engine"
output_log = "$WORK/n$id.outputs"
digest_interval = 10

[[peers]]
id = 1
address = "$(addr 1)"
[[peers]]
id = 2
address = "$(addr 2)"
[[peers]]
id = 3
address = "$(addr 3)"
EOF
}

write_learner_config() {
  cat >"$WORK/n4.toml" <<EOF
# Node 4: joins later as a learner; its egress is "persist": it writes every order event
# to SQLite and keeps verifying that table against the log.
cluster_id = "$CLUSTER"
id = 4
listen = "$(addr 4)"
data_dir = "$WORK/n4"
role = "join"
egress = "persist"

[app]
name = "audit"
db = "$WORK/n4/audit.sqlite"
report = "$WORK/n4/audit-verify.txt"
verify_interval_ms = 500
digest_interval = 10
EOF
}

start_node() {
  local id=$1
  "$BIN/rlr-node" --config "$WORK/n$id.toml" >>"$WORK/n$id.log" 2>&1 &
  NODE_PID[$id]=$!
  say "node $id: pid ${NODE_PID[$id]}, listening on $(addr "$id")"
}

leader_id() { ctl --timeout-ms 2000 leader 2>/dev/null | tail -n 1; }

wait_for_leader() {
  local not=${1:-0}
  for _ in $(seq 100); do
    local l
    l=$(leader_id || true)
    if [[ "$l" =~ ^[0-9]+$ && "$l" != 0 && "$l" != "$not" ]]; then
      echo "$l"
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# "me-driver: 20 of 20 commands sequenced (indexes 3..41), 0 failed" -> 41
last_index_of() { sed -n 's/.*(indexes [0-9]*\.\.\([0-9]*\)).*/\1/p' "$1" | tail -n 1; }

# ------------------------------------------------------------------------------------
step "starting a 3-node cluster on loopback (separate rlr-node processes)"
for id in 1 2 3; do
  write_voter_config "$id"
  start_node "$id"
done
LEADER=$(wait_for_leader) || fail "no leader was elected"
say "node $LEADER was elected leader"
ctl status | indent

# ------------------------------------------------------------------------------------
step "sequencing orders through the client library (me-driver -> rlr::Client -> leader)"
say "each line: the command, then the log index and term the cluster gave it"
"$BIN/me-driver" --cluster "$CLUSTER" --bootstrap "$VOTERS" --orders 12 --rate 20 --seed 1 \
  --first-id 1 | tee "$WORK/driver1.out" | indent
say "a malformed command is sequenced too, and every replica rejects it the same way:"
ctl propose "ME1 NEW 77 BUY XYZ ten 5" | indent

# ------------------------------------------------------------------------------------
step "kill -9 the leader (node $LEADER) while orders keep coming"
"$BIN/me-driver" --cluster "$CLUSTER" --bootstrap "$VOTERS" --orders 24 --rate 10 --seed 2 \
  --first-id 1001 > >(tee "$WORK/driver2.out" | indent) 2>&1 &
DRIVER_PID=$!
sleep 1.1
OLD_LEADER=$LEADER
kill -9 "${NODE_PID[$OLD_LEADER]}"
wait "${NODE_PID[$OLD_LEADER]}" 2>/dev/null || true
unset "NODE_PID[$OLD_LEADER]"
say ">>> killed node $OLD_LEADER (kill -9) -- the client retries, finds the new leader, and goes on"
if ! wait "$DRIVER_PID"; then
  DRIVER_PID=""
  fail "me-driver could not sequence every command across the failover"
fi
DRIVER_PID=""
sleep 0.2
LEADER=$(wait_for_leader "$OLD_LEADER") || fail "no new leader"
say "node $LEADER leads now; node $OLD_LEADER is down:"
ctl status | indent || true

# ------------------------------------------------------------------------------------
step "restarting node $OLD_LEADER: it recovers its log from disk and catches up as a follower"
start_node "$OLD_LEADER"
"$BIN/me-driver" --cluster "$CLUSTER" --bootstrap "$VOTERS" --orders 6 --rate 20 --seed 3 \
  --first-id 2001 | tee "$WORK/driver3.out" | indent
LAST=$(last_index_of "$WORK/driver3.out")
[[ -n "$LAST" ]] || fail "me-driver did not report its last index"
for _ in $(seq 100); do
  if ctl status --json 2>/dev/null | grep -q "\"id\":$OLD_LEADER,[^}]*\"catch_up\":\"100%\""; then break; fi
  sleep 0.1
done
ctl status | indent

# ------------------------------------------------------------------------------------
step "adding node 4 as an audit learner (egress \"persist\" into SQLite)"
write_learner_config
start_node 4
ctl add-learner 4 "$(addr 4)" | indent
say "waiting for node 4 to replay the log and persist every order event up to index $LAST ..."
"$BIN/rlr-audit" check --report "$WORK/n4/audit-verify.txt" --through "$LAST" --wait-s 60 >"$WORK/audit.out" ||
  { cat "$WORK/audit.out"; fail "the audit learner did not verify its table through index $LAST"; }
ctl status | indent

# ------------------------------------------------------------------------------------
step "rlr-ctl verify: do the replicas' output digests agree?"
ctl verify | indent || fail "the replicas' output digests diverge"

step "audit check: the learner's SQLite table against a replay of the log"
indent <"$WORK/audit.out"
"$BIN/rlr-audit" summary --db "$WORK/n4/audit.sqlite" | indent

# ------------------------------------------------------------------------------------
step "egress: which outputs left the cluster, and from where"
for id in 1 2 3; do
  n=$(wc -l <"$WORK/n$id.outputs" 2>/dev/null || echo 0)
  say "node $id emitted $n outputs (order_event, match_result) through its egress"
done
total=$(cat "$WORK"/n{1,2,3}.outputs | wc -l)
distinct=$(cat "$WORK"/n{1,2,3}.outputs | cut -d' ' -f1 | sort -u | wc -l)
say "$total emitted in all, $distinct distinct output keys (index.position)."
say "Only the leader of an entry's term emits it. A new leader re-emits what lies above the"
say "replicated egress watermark, and downstream drops a key it has seen: exactly once."
repeated=$(cat "$WORK"/n{1,2,3}.outputs | cut -d' ' -f1 | sort | uniq -d | sort -t. -k1,1n -k2,2n | tr '\n' ' ')
if [[ -n "$repeated" ]]; then
  say "emitted by both the old and the new leader (re-emitted after the failover): $repeated"
fi
say "the first lines of the new leader's (node $LEADER) egress:"
head -n 4 "$WORK/n$LEADER.outputs" | indent
rejected=$(grep -h "REJECTED 77" "$WORK/n$OLD_LEADER.outputs" "$WORK/n$LEADER.outputs" | head -n 1 || true)
[[ -n "$rejected" ]] && say "the malformed command's output: $rejected"

echo
bold "== demo OK: orders sequenced across a leader failure, replicas agree, the audit table matches the log"
