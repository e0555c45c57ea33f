#!/usr/bin/env python3
"""Runs every command of an operator guide (docs/operations.md) on loopback.

    python3 tests/docs/run_guide.py --bin build/bin docs/operations.md

The guide is written for real hosts with the Debian packages and systemd. This runner
takes its fenced ```sh blocks in order and runs each one with bash (set -e, pipefail),
after a substitution table has made it run on one machine, as an unprivileged user:

  host names      nodeN.example.net and its address 192.0.2.(10+N), with a port ->
                  127.0.0.1 and a free port chosen at run time (one per host and port)
  paths           /etc/rlr, /var/lib/rlr, /var/backups/rlr, /etc/systemd/system ->
                  directories in a fresh temporary directory; /usr/bin/ -> --bin
  privileges      "sudo " and "sudo -u rlr " dropped; the owners root:rlr, rlr:rlr, "-o root -g rlr" and
                  "chgrp rlr" -> the user and group running the test
  systemd         systemctl enable --now | start | stop | restart | disable --now |
                  status | is-active  rlr-node@NAME  ->  rlr-node --config <etc>/NAME.toml
                  in the background (stdout and stderr in a log file), SIGTERM and wait
                  for its exit (0 expected), a status report from that log;
                  systemctl enable | disable | daemon-reload -> nothing to do;
                  journalctl -u rlr-node@NAME [-n N] [--no-pager] -> the log's tail
  packages        apt-get install ... / apt install ... -> skipped, and said so (the
                  binaries under test are --bin)

Exported environment variables and the working directory carry over from one block to
the next, as in the terminal of someone following the guide.

Rules the runner enforces, so that the guide cannot rot silently:
  * a block fails -> the run fails, naming the block, its line in the .md, the command
    (as written in the guide and as run), its exit status and the block's output, plus
    the tail of every node's log;
  * a line the table cannot map (an unknown systemctl verb, journalctl -f, a system path
    outside the mapped ones, a while/until loop without a `timeout N` bound) fails the
    run before anything starts;
  * fences other than ```sh must say what they are (```text, ```toml, ```ini, ```json):
    a fence without an info string, or with bash/shell/console, is an error, so no
    command hides in a block that is never run;
  * every process it started is stopped when it exits (also on SIGINT/SIGTERM, a
    failure or its global timeout): nodes with SIGTERM, then SIGKILL; each block and
    each node runs in a session of its own, and a watchdog in each ends it if the runner
    itself is SIGKILLed (only the temporary directory is then left behind).

Only the Python standard library is used.
"""

import argparse
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

RUN_INFO = "sh"
QUIET_INFOS = {"text", "toml", "ini", "json"}

# Hosts of the guide: nodeN.example.net, whose address is 192.0.2.(10 + N).
HOST_RE = re.compile(r"\bnode(\d+)\.example\.net(?::(\d+))?\b")
IP_RE = re.compile(r"(?<![\d.])192\.0\.2\.(\d+)(?::(\d+))?(?![\d.])")
OTHER_EXAMPLE_RE = re.compile(r"\b[\w.-]*example\.(?:net|com|org)\b")

# Mapped path prefixes, longest first; values are keys of Runner.dirs.
PATHS = [
    ("/etc/systemd/system", "systemd"),
    ("/var/backups/rlr", "backups"),
    ("/var/lib/rlr", "state"),
    ("/etc/rlr", "etc"),
]
# Absolute paths under these roots that are not mapped are refused.
SYSTEM_PATH_RE = re.compile(r"(?<![\w.~$/-])/(?:etc|var|usr|lib|lib64|srv|opt|home|root|boot|mnt|run|bin|sbin)(?:/|\b)")

SYSTEMCTL_RE = re.compile(
    r"^(?P<indent>\s*)(?:sudo\s+)?systemctl(?:\s+--no-pager)?\s+(?P<verb>[a-z-]+)"
    r"(?P<flags>(?:\s+--[a-z-]+)*)(?:\s+rlr-node@(?P<name>[A-Za-z0-9_-]+)(?:\.service)?)?"
    r"(?:\s+--no-pager)?\s*$")
JOURNALCTL_RE = re.compile(
    r"^(?P<indent>\s*)(?:sudo\s+)?journalctl(?P<opts>(?:\s+(?:--no-pager|-b|-n\s+\d+|--lines=\d+))*)"
    r"\s+-u\s+rlr-node@(?P<name>[A-Za-z0-9_-]+)(?:\.service)?"
    r"(?P<opts2>(?:\s+(?:--no-pager|-b|-n\s+\d+|--lines=\d+))*)\s*$")
PACKAGE_RE = re.compile(r"^(?P<indent>\s*)(?:sudo\s+)?(?:apt-get|apt)\s+(?:-y\s+)?install\b[^|;&<>]*$")
LOOP_RE = re.compile(r"\b(?:while|until)\b")

# The shell functions the systemd lines are mapped to. Node processes run in a session
# of their own (setsid), outside the block's process group, with a watchdog that kills
# the node if the runner itself disappears (a SIGKILLed runner cannot clean up).
LIB_SH = r'''
rlr_guide_say() { printf '[run_guide] %s\n' "$*"; }
rlr_guide_running() {
  local pid
  [ -f "$RLR_GUIDE_RUN/$1.pid" ] || return 1
  pid=$(cat "$RLR_GUIDE_RUN/$1.pid")
  [ -n "$pid" ] && [ ! -f "$RLR_GUIDE_RUN/$1.rc" ] && kill -0 "$pid" 2>/dev/null
}
rlr_guide_start() {
  local name=$1 config="$RLR_GUIDE_ETC/$1.toml" log="$RLR_GUIDE_LOGS/$1.log" i
  if rlr_guide_running "$name"; then return 0; fi
  if [ ! -f "$config" ]; then
    echo "rlr-node@$name: no configuration $config" | tee -a "$log" >&2
    return 1
  fi
  rm -f "$RLR_GUIDE_RUN/$name.pid" "$RLR_GUIDE_RUN/$name.rc"
  echo "-- rlr-node@$name started by run_guide at $(date -u +%FT%TZ) --" >>"$log"
  setsid bash -c '
    "$1" --config "$2" </dev/null >>"$3" 2>&1 &
    node=$!
    echo "$node" >"$4.pid"
    ( while kill -0 "$5" 2>/dev/null; do sleep 1; done; kill -KILL "$node" 2>/dev/null ) &
    watchdog=$!
    wait "$node"
    rc=$?
    kill "$watchdog" 2>/dev/null
    echo "$rc" >"$4.rc"
  ' rlr-node@"$name" "$RLR_GUIDE_BIN/rlr-node" "$config" "$log" "$RLR_GUIDE_RUN/$name" "$RLR_GUIDE_RUNNER_PID" \
    </dev/null >/dev/null 2>&1 &
  echo "$!" >>"$RLR_GUIDE_RUN/sessions"
  for i in $(seq 50); do [ -s "$RLR_GUIDE_RUN/$name.pid" ] && break; sleep 0.02; done
  # systemd would report a unit that dies at once as failed; so does this.
  sleep 0.3
  if ! rlr_guide_running "$name"; then
    echo "rlr-node@$name exited at once (status $(cat "$RLR_GUIDE_RUN/$name.rc" 2>/dev/null)):" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
}
rlr_guide_stop() {
  local name=$1 pid i rc
  rlr_guide_running "$name" || return 0
  pid=$(cat "$RLR_GUIDE_RUN/$name.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 300); do [ -f "$RLR_GUIDE_RUN/$name.rc" ] && break; sleep 0.1; done
  if [ ! -f "$RLR_GUIDE_RUN/$name.rc" ]; then
    echo "rlr-node@$name did not stop within 30 s of SIGTERM" >&2
    kill -KILL "$pid" 2>/dev/null
    return 1
  fi
  rc=$(cat "$RLR_GUIDE_RUN/$name.rc")
  if [ "$rc" != 0 ]; then
    echo "rlr-node@$name exited with status $rc after SIGTERM (expected 0):" >&2
    tail -n 20 "$RLR_GUIDE_LOGS/$name.log" >&2
    return 1
  fi
}
rlr_guide_systemctl() {
  local verb=$1 name=$2 now=$3
  case "$verb" in
    start) rlr_guide_start "$name" ;;
    stop) rlr_guide_stop "$name" ;;
    restart) rlr_guide_stop "$name" && rlr_guide_start "$name" ;;
    enable) if [ "$now" = now ]; then rlr_guide_start "$name"; fi ;;
    disable) if [ "$now" = now ]; then rlr_guide_stop "$name"; fi ;;
    daemon-reload) return 0 ;;
    is-active)
      if rlr_guide_running "$name"; then echo active; return 0; fi
      if [ -f "$RLR_GUIDE_RUN/$name.rc" ] && [ "$(cat "$RLR_GUIDE_RUN/$name.rc")" != 0 ]; then echo failed; else echo inactive; fi
      return 3 ;;
    status)
      if rlr_guide_running "$name"; then
        echo "* rlr-node@$name.service - (run_guide) Active: active (running), Main PID: $(cat "$RLR_GUIDE_RUN/$name.pid")"
      else
        echo "* rlr-node@$name.service - (run_guide) Active: inactive (dead), last status $(cat "$RLR_GUIDE_RUN/$name.rc" 2>/dev/null || echo -)"
      fi
      tail -n 10 "$RLR_GUIDE_LOGS/$name.log" 2>/dev/null
      rlr_guide_running "$name" || return 3 ;;
    *) echo "run_guide: systemctl $verb is not mapped" >&2; return 1 ;;
  esac
}
rlr_guide_journal() { tail -n "$2" "$RLR_GUIDE_LOGS/$1.log"; }
rlr_guide_watch_block() {
  local sid=$$
  ( while kill -0 "$RLR_GUIDE_RUNNER_PID" 2>/dev/null; do sleep 1; done
    pkill -KILL -s "$sid" 2>/dev/null || kill -KILL -- "-$sid" ) </dev/null >/dev/null 2>&1 &
  rlr_guide_watchdog=$!
}
'''

# Line 1 of every block's script (block line N is script line N + 1). The watchdog ends the
# block's whole session (GNU timeout moves itself to a process group of its own) if the
# runner disappears without cleaning up.
PREAMBLE = ('source "$RLR_GUIDE_RUN/lib.sh"; rlr_guide_watch_block; set -eo pipefail; '
            'trap \'rlr_guide_rc=$?; printf "%s\\t%s\\t%s\\n" "$LINENO" "$rlr_guide_rc" "$BASH_COMMAND" '
            '>"$RLR_GUIDE_RUN/failed"\' ERR')
POSTAMBLE = ('kill "$rlr_guide_watchdog" 2>/dev/null; '
             'env -0 >"$RLR_GUIDE_RUN/env.out"; pwd >"$RLR_GUIDE_RUN/cwd.out"')
INTERNAL_ENV = {"_", "SHLVL", "PWD", "OLDPWD"}


class GuideError(Exception):
    pass


class Block:
    def __init__(self, index, info, fence_line, lines):
        self.index = index          # 1-based among the runnable blocks
        self.info = info
        self.fence_line = fence_line  # line of the opening fence in the .md (1-based)
        self.lines = lines          # the block's lines as written
        self.script = []            # the lines as run

    def md_line(self, i):
        """The .md line of the block's line i (0-based)."""
        return self.fence_line + 1 + i


def parse_blocks(path):
    text = pathlib.Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    blocks, errors = [], []
    i, runnable = 0, 0
    fence_re = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
    while i < len(lines):
        m = fence_re.match(lines[i])
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            i += 1  # not a fence (CommonMark: a backtick fence's info has no backtick)
            continue
        fence, info = m.group(2), m.group(3).strip()
        start = i
        body = []
        i += 1
        while i < len(lines):
            close = fence_re.match(lines[i])
            if close and close.group(2)[0] == fence[0] and len(close.group(2)) >= len(fence) and not close.group(3).strip():
                break
            body.append(lines[i][len(m.group(1)):] if lines[i].startswith(m.group(1)) else lines[i])
            i += 1
        else:
            errors.append(f"{path}:{start + 1}: the fence opened here is never closed")
        i += 1
        word = info.split()[0] if info else ""
        if word == RUN_INFO:
            runnable += 1
            blocks.append(Block(runnable, word, start + 1, body))
        elif word not in QUIET_INFOS:
            errors.append(f"{path}:{start + 1}: fence info '{info}' is neither '{RUN_INFO}' (run) nor one of "
                          f"{', '.join(sorted(QUIET_INFOS))} (not run)")
    return blocks, errors


def kill_session(sid, marker):
    """SIGKILLs every process of session `sid` (a block or a node: each runs in a session
    of its own), if one of them has `marker` (the run's directory) on its command line: a
    session id reused by someone else's process is left alone."""
    members, ours = [], False
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid, session = int(stat.parent.name), int(fields[3])
            if session != sid or pid == os.getpid():
                continue
            members.append(pid)
            ours = ours or marker.encode() in (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
    for pid in members if ours else []:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Runner:
    def __init__(self, args):
        self.guide = os.path.abspath(args.guide)
        self.bin = os.path.abspath(args.bin)
        self.keep = args.keep
        self.deadline = time.monotonic() + args.timeout
        self.block_timeout = args.block_timeout
        self.root = tempfile.mkdtemp(prefix="rlr-guide-")
        self.dirs = {}
        for key in ("etc", "state", "backups", "systemd", "logs", "run", "home"):
            d = os.path.join(self.root, key)
            os.makedirs(d)
            self.dirs[key] = d
        self.ports = {}
        self.rng = random.Random()
        self.uid, self.gid = os.getuid(), os.getgid()
        self.current = None  # the block running now
        self.blocks_started = []  # the pid (and session id) of every block run

    # ---- substitution ---------------------------------------------------------------
    def port_for(self, host, port):
        key = (host, port)
        if key not in self.ports:
            taken = set(self.ports.values())
            for _ in range(1000):
                # Below the usual ephemeral range (32768+), where other tests' sockets
                # and outgoing connections take their ports.
                p = self.rng.randrange(20000, 32000)
                if p not in taken and port_free(p):
                    self.ports[key] = p
                    break
            else:
                raise GuideError("cannot find a free loopback port")
        return self.ports[key]

    def map_hosts(self, line):
        def host(m):
            n, port = int(m.group(1)), m.group(2)
            return "127.0.0.1" if port is None else f"127.0.0.1:{self.port_for(n, port)}"

        def ip(m):
            n, port = int(m.group(1)) - 10, m.group(2)
            if n < 1:
                raise GuideError(f"address 192.0.2.{m.group(1)} is not one of the guide's hosts (192.0.2.11 and up)")
            return "127.0.0.1" if port is None else f"127.0.0.1:{self.port_for(n, port)}"

        line = HOST_RE.sub(host, line)
        return IP_RE.sub(ip, line)

    def map_data(self, line):
        """Paths and hosts: what is mapped in every line, heredoc bodies (data) included."""
        placeholders = {}
        for prefix, key in PATHS:
            token = f"\x00{key}\x00"
            line = re.sub(r"(?<![\w.-])" + re.escape(prefix) + r"(?=/|\b|$)", token, line)
            placeholders[token] = self.dirs[key]
        line = re.sub(r"(?<![\w.-])/usr/bin/", self.bin + "/", line)
        stray = SYSTEM_PATH_RE.search(line.replace(self.bin, ""))
        if stray:
            raise GuideError(f"path {stray.group(0)}... is outside the mapped ones "
                             f"({', '.join(p for p, _ in PATHS)}, /usr/bin/)")
        for token, d in placeholders.items():
            line = line.replace(token, d)
        line = self.map_hosts(line)
        other = OTHER_EXAMPLE_RE.search(line)
        if other:
            raise GuideError(f"host {other.group(0)} is not one of nodeN.example.net")
        return line

    def map_line(self, line):
        """One line of a block as run, or GuideError saying why it cannot be mapped."""
        m = SYSTEMCTL_RE.match(line)
        if m:
            verb, flags, name = m.group("verb"), m.group("flags").split(), m.group("name")
            now = "--now" in flags
            if set(flags) - {"--now"}:
                raise GuideError(f"systemctl flags {' '.join(flags)} are not mapped")
            if verb == "daemon-reload" and name is None and not flags:
                return f"{m.group('indent')}rlr_guide_systemctl daemon-reload -"
            if name is None:
                raise GuideError(f"systemctl {verb} without an rlr-node@NAME unit is not mapped")
            if verb in ("enable", "disable"):
                pass
            elif now:
                raise GuideError(f"systemctl {verb} --now is not mapped")
            elif verb not in ("start", "stop", "restart", "status", "is-active"):
                raise GuideError(f"systemctl {verb} is not mapped (start, stop, restart, status, is-active, "
                                 "enable [--now], disable [--now], daemon-reload are)")
            return f"{m.group('indent')}rlr_guide_systemctl {verb} {name} {'now' if now else '-'}"
        if re.search(r"\bsystemctl\b", line):
            raise GuideError("systemctl must stand alone on its line as "
                             "'[sudo] systemctl VERB [--now] rlr-node@NAME'")
        m = JOURNALCTL_RE.match(line)
        if m:
            opts = (m.group("opts") or "") + " " + (m.group("opts2") or "")
            n = 10
            for found in re.finditer(r"(?:-n\s+|--lines=)(\d+)", opts):
                n = int(found.group(1))
            return f"{m.group('indent')}rlr_guide_journal {m.group('name')} {n}"
        if re.search(r"\bjournalctl\b", line):
            raise GuideError("journalctl is mapped only as 'journalctl -u rlr-node@NAME [-n N] [--no-pager] [-b]'")
        m = PACKAGE_RE.match(line)
        if m:
            said = line.strip().replace("'", "")
            return f"{m.group('indent')}rlr_guide_say 'skipped: {said} (the binaries under test are {self.bin})'"
        if re.search(r"\b(?:apt-get|apt|dpkg)\b", line):
            raise GuideError("package commands are mapped only as '[sudo] apt-get install PACKAGES' on a line of its own")
        if LOOP_RE.search(line) and not re.search(r"\btimeout\s+\d+", line):
            raise GuideError("a while/until loop must be bounded: run it under 'timeout N sh -c ...' on the same line")

        line = self.map_data(line)
        line = re.sub(r"(?<![\w-])sudo\s+(?:-u\s+rlr\s+)?", "", line)
        line = re.sub(r"\b(root|rlr):rlr\b", f"{self.uid}:{self.gid}", line)
        line = re.sub(r"-o\s+root\s+-g\s+rlr\b", f"-o {self.uid} -g {self.gid}", line)
        line = re.sub(r"\bchgrp\s+rlr\b", f"chgrp {self.gid}", line)
        return line

    def prepare(self, blocks):
        errors = []
        heredoc_re = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
        for b in blocks:
            heredoc = None  # (delimiter, strip_tabs) while inside a heredoc body
            for i, line in enumerate(b.lines):
                try:
                    if heredoc is not None:
                        body = line.lstrip("\t") if heredoc[1] else line
                        if body == heredoc[0]:
                            heredoc = None
                            b.script.append(line)
                        else:
                            b.script.append(self.map_data(line))
                        continue
                    b.script.append(self.map_line(line))
                    m = heredoc_re.search(line)
                    if m:
                        heredoc = (m.group(3), m.group(1) == "-")
                except GuideError as e:
                    errors.append(f"{self.guide}:{b.md_line(i)}: block {b.index}: cannot map: {line.strip()}\n    {e}")
                    b.script.append(line)
            if heredoc is not None:
                errors.append(f"{self.guide}:{b.fence_line}: block {b.index}: heredoc {heredoc[0]} is never closed")
        return errors

    # ---- running --------------------------------------------------------------------
    def initial_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLR_")}
        env["PATH"] = self.bin + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        env["HOME"] = self.dirs["home"]
        env["LC_ALL"] = "C"
        env.update({
            "RLR_GUIDE_RUN": self.dirs["run"],
            "RLR_GUIDE_ETC": self.dirs["etc"],
            "RLR_GUIDE_LOGS": self.dirs["logs"],
            "RLR_GUIDE_BIN": self.bin,
            "RLR_GUIDE_RUNNER_PID": str(os.getpid()),
        })
        return env

    def run(self, blocks):
        with open(os.path.join(self.dirs["run"], "lib.sh"), "w") as f:
            f.write(LIB_SH)
        env = self.initial_env()
        cwd = self.dirs["home"]
        started = time.monotonic()
        for b in blocks:
            script = "\n".join([PREAMBLE] + b.script + [POSTAMBLE]) + "\n"
            path = os.path.join(self.dirs["run"], f"block{b.index:02d}.sh")
            with open(path, "w") as f:
                f.write(script)
            for leftover in ("failed", "env.out", "cwd.out"):
                try:
                    os.unlink(os.path.join(self.dirs["run"], leftover))
                except FileNotFoundError:
                    pass
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise GuideError(f"the global timeout ran out before block {b.index} (line {b.fence_line})")
            limit = min(self.block_timeout, remaining)
            t0 = time.monotonic()
            print(f"== block {b.index} ({os.path.basename(self.guide)}:{b.fence_line})", flush=True)
            proc = subprocess.Popen(["bash", path], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            self.current = proc
            self.blocks_started.append(proc.pid)
            try:
                out, _ = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                kill_session(proc.pid, self.root)
                out, _ = proc.communicate()
                self.fail(b, None, f"timed out after {limit:.0f} s", out)
            text = out.decode("utf-8", "replace")
            for line in text.splitlines():
                print(f"   | {line}")
            print(f"   ({time.monotonic() - t0:.1f} s)", flush=True)
            if proc.returncode != 0:
                self.fail(b, proc.returncode, None, out)
            env = self.read_env(env)
            try:
                cwd = pathlib.Path(self.dirs["run"], "cwd.out").read_text().strip() or cwd
            except FileNotFoundError:
                pass
        print(f"run_guide: OK: {len(blocks)} blocks of {self.guide} ran in {time.monotonic() - started:.1f} s",
              flush=True)

    def read_env(self, previous):
        try:
            raw = pathlib.Path(self.dirs["run"], "env.out").read_bytes()
        except FileNotFoundError:
            return previous
        env = {}
        for item in raw.split(b"\0"):
            if not item or b"=" not in item:
                continue
            k, v = item.split(b"=", 1)
            k = k.decode("utf-8", "replace")
            if k in INTERNAL_ENV or k.startswith("BASH_FUNC_"):
                continue
            env[k] = v.decode("utf-8", "replace")
        return env

    def fail(self, b, rc, why, out):
        lines = [f"run_guide: FAILED: block {b.index} at {self.guide}:{b.fence_line}"]
        failed = pathlib.Path(self.dirs["run"], "failed")
        if failed.exists():
            lineno, status, command = (failed.read_text().rstrip("\n").split("\t", 2) + ["", ""])[:3]
            i = int(lineno) - 2  # script line 1 is the preamble
            if 0 <= i < len(b.lines):
                lines.append(f"  line {b.md_line(i)}: {b.lines[i].strip()}")
                if b.script[i].strip() != b.lines[i].strip():
                    lines.append(f"  as run: {b.script[i].strip()}")
            if command and not command.startswith("return") and command.strip() != b.script[max(i, 0)].strip():
                lines.append(f"  failing command: {command}")
            lines.append(f"  exit status: {status}")
        elif why:
            lines.append(f"  {why}")
        else:
            lines.append(f"  the block exited with status {rc}")
        lines.append("  the block:")
        lines += [f"    {b.md_line(i)}: {line}" for i, line in enumerate(b.lines)]
        lines.append("  its output:")
        lines += [f"    | {line}" for line in out.decode("utf-8", "replace").splitlines()[-60:]]
        for log in sorted(pathlib.Path(self.dirs["logs"]).glob("*.log")):
            lines.append(f"  last lines of rlr-node@{log.stem}'s log:")
            lines += [f"    | {line}" for line in log.read_text(errors="replace").splitlines()[-15:]]
        raise GuideError("\n".join(lines))

    # ---- cleanup --------------------------------------------------------------------
    def ours(self, pid):
        try:
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return self.root.encode() in cmdline

    def cleanup(self):
        for pid in self.blocks_started:
            kill_session(pid, self.root)  # a block still running, or what one left behind
        if self.current is not None:
            self.current.wait()
        run = pathlib.Path(self.dirs["run"])
        nodes = []
        for f in run.glob("*.pid"):
            try:
                pid = int(f.read_text().strip())
            except ValueError:
                continue
            if self.ours(pid):
                nodes.append(pid)
        for pid in nodes:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(self.ours(p) for p in nodes):
            time.sleep(0.1)
        sessions = []
        try:
            sessions = [int(s) for s in (run / "sessions").read_text().split()]
        except (FileNotFoundError, ValueError):
            pass
        for pid in sessions:
            if self.ours(pid):
                kill_session(pid, self.root)  # the node's session: wrapper, node, watchdog
        for pid in nodes:
            if self.ours(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.keep:
            print(f"run_guide: kept {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description="Run every ```sh block of an operator guide on loopback.")
    here = pathlib.Path(__file__).resolve().parent
    p.add_argument("--bin", default=str(here.parent.parent / "build" / "bin"),
                   help="directory holding rlr-node and rlr-ctl (default: build/bin)")
    p.add_argument("--timeout", type=float, default=240, help="global timeout in seconds (default 240)")
    p.add_argument("--block-timeout", type=float, default=120, help="per-block timeout in seconds (default 120)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, data, logs)")
    p.add_argument("--list", action="store_true", help="print the blocks as they would run, and exit")
    p.add_argument("guide", help="the guide, e.g. docs/operations.md")
    args = p.parse_args()

    blocks, errors = parse_blocks(os.path.abspath(args.guide))
    for tool in ("rlr-node", "rlr-ctl"):
        if not os.access(os.path.join(args.bin, tool), os.X_OK):
            errors.append(f"{tool} is not in {os.path.abspath(args.bin)} (--bin)")
    if not blocks and not errors:
        errors.append(f"{args.guide}: no ```{RUN_INFO} block to run")
    runner = Runner(args)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        errors += runner.prepare(blocks)
        if errors:
            print("run_guide: FAILED before running anything:\n" + "\n".join(errors), file=sys.stderr)
            return 1
        if args.list:
            for b in blocks:
                print(f"== block {b.index} (line {b.fence_line})")
                print("\n".join(b.script))
            return 0
        runner.run(blocks)
        return 0
    except GuideError as e:
        print(str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"run_guide: interrupted ({e}); stopping what it started", file=sys.stderr)
        return 1
    finally:
        runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
