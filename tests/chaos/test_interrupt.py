#!/usr/bin/env python3
"""An interrupted chaos run leaves no process behind.

Starts a chaos run, sends it SIGTERM (or SIGINT) once its cluster is up and the nemesis
may be in the middle of a fault (a node paused or a link cut), and requires that it exits
at once with status 130 and that no process started for its work directory is left.

  python3 tests/chaos/test_interrupt.py --bin-dir build/bin
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def processes_mentioning(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and "test_interrupt.py" not in cmd:
            found.append((int(pid), cmd))
    return found


def interrupt_once(bin_dir, sig, workload):
    workdir = tempfile.mkdtemp(prefix="rlr-chaos-interrupt-")
    try:
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "chaos.py"), "--workload", workload,
                              "--seconds", "60", "--seed", "5", "--bin-dir", bin_dir, "--workdir", workdir],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        seen = ""
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            seen += line
            if "nemesis:" in line or not line:
                break
        if "nemesis:" not in seen:
            p.kill()
            return "the run never reached its first fault:\n" + seen
        running = processes_mentioning(workdir)
        if not any("rlr-node" in cmd for _, cmd in running):
            p.kill()
            return "no rlr-node was running for %s before the interrupt" % workdir
        p.send_signal(sig)
        try:
            code = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            return "the run did not exit within 30 s of %s" % signal.Signals(sig).name
        rest = p.stdout.read()
        if code != 130:
            return "exit status %d after %s (want 130):\n%s" % (code, signal.Signals(sig).name, rest[-2000:])
        time.sleep(0.5)
        left = processes_mentioning(workdir)
        if left:
            for pid, _ in left:
                os.kill(pid, signal.SIGKILL)
            return "processes left after %s: %s" % (signal.Signals(sig).name, left)
        return None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "../../build/bin"))
    args = ap.parse_args()
    failures = []
    for sig, workload in ((signal.SIGTERM, "kv"), (signal.SIGINT, "sequencer")):
        err = interrupt_once(os.path.abspath(args.bin_dir), sig, workload)
        print("%s during a %s run: %s" % (signal.Signals(sig).name, workload, err or "clean exit, nothing left"))
        if err:
            failures.append(err)
    print("%d passed, %d failed" % (2 - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
