#!/usr/bin/env python3
"""rlr chaos: real rlr-node processes under a seeded fault schedule, with independent checkers.

  python3 tests/chaos/chaos.py --workload kv --seconds 60 --seed 1
  python3 tests/chaos/chaos.py --workload sequencer --minutes 10 --seed 7 --nodes 5

See tests/chaos/README.md for what it runs, what it checks and how to read a failure.
Exit status: 0 every checker passed, 1 a checker failed, 2 bad usage or the cluster could
not be set up.
"""

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checkers  # noqa: E402
import cluster as cl  # noqa: E402
import kv_workload as kvw  # noqa: E402
import nemesis as nm  # noqa: E402
import netproxy  # noqa: E402

QUIET_S = 3.0       # load keeps running this long after the last fault healed
CONVERGE_S = 90.0   # how long the healed cluster may take to apply everything


class Run:
    """One workload's run: cluster, nemesis, history, verdicts."""

    def __init__(self, args, workload, workdir, registry, net):
        self.args = args
        self.workload = workload
        self.workdir = workdir
        self.registry = registry
        self.net = net
        self.t0 = time.monotonic()
        self.verdicts = []
        self.history = []
        self.nemesis = None
        self.cluster = None
        self.stats = {}

    def log(self, text):
        line = "[%8.3f] %s" % (time.monotonic() - self.t0, text)
        print(line, flush=True)
        with open(os.path.join(self.workdir, "chaos.log"), "a") as f:
            f.write(line + "\n")

    # -- shared steps ---------------------------------------------------------------
    def start_cluster(self, cluster_id, app, settings):
        """The founding voters, started, with a leader elected."""
        cluster = cl.Cluster(self.bins, self.workdir, self.registry, self.net, cluster_id, self.args.nodes, app,
                             settings, self.log)
        self.cluster = cluster  # before any node starts: `settings` may read the others' ports
        for i in cluster.founders:
            cluster.start(i)
        leader = cluster.wait_leader(60)
        if leader is None:
            raise SetupError("no leader elected")
        self.log("cluster up: %d nodes, leader %d" % (self.args.nodes, leader))
        return cluster

    def fault_period(self, cluster, voters, extra_stop=None):
        plan = nm.schedule(self.args.seed, self.args.seconds)
        with open(os.path.join(self.workdir, "schedule.json"), "w") as f:
            json.dump(plan, f, indent=1)
        self.nemesis = nm.Nemesis(cluster, self.log, voters)
        stop = threading.Event()
        start = time.monotonic()
        self.fault_start_ns = time.monotonic_ns()
        t = threading.Thread(target=self.nemesis.run, args=(plan, start, stop), daemon=True)
        t.start()
        while t.is_alive() and time.monotonic() < start + self.args.seconds:
            time.sleep(0.1)
        stop.set()
        t.join(timeout=120)
        self.fault_end_ns = time.monotonic_ns()
        self.heal_all(cluster)

    def heal_all(self, cluster):
        cluster.net.heal()
        for i, node in cluster.nodes.items():
            if node.paused:
                cluster.resume(i)
            if node.member and not node.alive():
                cluster.start(i)
        self.log("healed: every fault lifted, every member running")

    def converge(self, cluster):
        """Waits until a leader is known and every member applied its commit index.
        Returns the commit index, or None."""
        deadline = time.monotonic() + CONVERGE_S
        last = None
        while time.monotonic() < deadline:
            st = cluster.status()
            if st and st.get("leader"):
                commit = st["commit"]
                members = st.get("members", [])
                lagging = [m["id"] for m in members if m.get("applied", -1) < commit]
                last = (commit, lagging)
                if not lagging:
                    self.log("converged: every member applied through %d" % commit)
                    return commit
            time.sleep(0.5)
        self.log("did not converge within %.0f s: %s" % (CONVERGE_S, last))
        return None

    def stop_and_dump(self, cluster):
        dumps = []
        for i, node in sorted(cluster.nodes.items()):
            if not node.member:
                continue
            code = cluster.stop(i)
            if code not in (0, None):
                self.log("node %d exited with %s on SIGTERM" % (i, code))
            path = cluster.dump(i, os.path.join(self.workdir, "n%d.dump" % i))
            with open(path) as f:
                dumps.append(checkers.Dump(i, f.read()))
        return dumps

    def add_disk_full(self):
        """Every node whose disk filled stopped with the storage status, none otherwise."""
        exits = self.nemesis.disk_exits
        if not exits:
            return
        bad = [(i, code) for i, code in exits if code != nm.EXIT_STORAGE]
        self.verdicts.append(checkers.Verdict(
            "disk-full", not bad,
            "%d node(s) stopped with status %d when their disk filled" % (len(exits), nm.EXIT_STORAGE) if not bad
            else "exit statuses %s, expected %d" % (bad, nm.EXIT_STORAGE)))

    def add_availability(self, history):
        gap, rate = checkers.availability(history, self.fault_start_ns, self.fault_end_ns)
        self.stats["longest_gap_s"] = round(gap, 2)
        self.stats["ok_per_s"] = round(rate, 1)
        self.verdicts.append(checkers.Verdict("availability", True,
                                              "longest gap without a successful op %.2f s; %.1f ok ops/s" % (gap, rate)))

    # -- kv -------------------------------------------------------------------------
    def run_kv(self):
        a = self.args
        cluster = None

        def settings(node):
            return {"listen": "127.0.0.1:%d" % node.app_port,
                    "resp_peers": ",".join("%d=127.0.0.1:%d" % (n.id, n.app_port) for n in self.cluster.nodes.values())}

        cluster = self.start_cluster("chaos-kv-%d" % a.seed, "kv", settings)
        rng = random.Random(a.seed)
        keys = kvw.KeyPool(a.keys, a.ops_per_key, random.Random(a.seed + 1))
        hist = kvw.History()
        stop = threading.Event()
        endpoints = lambda: [("127.0.0.1", n.app_port) for n in cluster.nodes.values()]  # noqa: E731
        clients = [kvw.KvClient(c, endpoints, keys, hist, rng.getrandbits(32), stop, pause=a.client_pause)
                   for c in range(1, a.clients + 1)]
        for c in clients:
            c.start()
        self.fault_period(cluster, list(cluster.founders))
        time.sleep(QUIET_S)
        stop.set()
        for c in clients:
            c.join(timeout=30)
        if cluster.wait_leader(60) is None:
            self.verdicts.append(checkers.Verdict("recovery", False, "no leader after healing"))
            return
        # Final reads: each key's value once the cluster healed, with retries; they join
        # the history and so are checked for linearizability like any other read.
        reader = kvw.KvClient(0, endpoints, keys, hist, 0, stop, op_timeout=5.0)
        unread = []
        for key in keys.all_keys():
            for _ in range(50):
                op = reader.step({"f": "get", "key": key})
                if op["type"] == "ok":
                    break
                time.sleep(0.1)
            else:
                unread.append(key)
        self.history = hist.ops
        self.log("workload done: %d operations" % len(self.history))
        committed = self.converge(cluster)
        self.verdicts.append(checkers.Verdict("recovery", committed is not None and not unread,
                                              "converged at %s; %d keys unreadable after healing" % (committed, len(unread)),
                                              unread[:10]))
        if committed is None:
            return
        dumps = self.stop_and_dump(cluster)
        self.verdicts.append(checkers.check_log_agreement(dumps, committed))
        ref = max(dumps, key=lambda d: (d.last, -d.first))
        self.verdicts.append(checkers.check_kv_writes(self.history, ref, committed))
        self.verdicts.append(checkers.check_linearizable(self.history))
        self.add_availability(self.history)
        self.add_disk_full()

    # -- sequencer --------------------------------------------------------------------
    def run_sequencer(self):
        a = self.args
        learner_id = a.nodes + 1

        def settings(node):
            if node.id == learner_id:
                return {"__app__": "audit", "__egress__": "persist",
                        "db": os.path.join(node.data_dir, "audit.sqlite"),
                        "report": os.path.join(self.workdir, "audit-verify.txt"), "digest_interval": 100}
            return {"output_log": os.path.join(self.workdir, "n%d.outputs" % node.id), "digest_interval": 100}

        cluster = self.start_cluster("chaos-seq-%d" % a.seed, "matching-engine", settings)
        drivers = []
        duration = int(a.seconds + QUIET_S + 2)
        bootstrap = ",".join(n.addr for n in cluster.nodes.values())
        for d in range(a.drivers):
            hist = os.path.join(self.workdir, "driver%d.history" % d)
            argv = [self.bins["me-driver"], "--cluster", cluster.cluster_id, "--bootstrap", bootstrap,
                    "--orders", "0", "--duration-s", str(duration), "--rate", str(a.driver_rate),
                    "--seed", str(a.seed * 100 + d), "--first-id", str(1 + d * 10_000_000),
                    "--timeout-ms", "10000", "--history", hist, "--quiet"]
            drivers.append((self.registry.spawn(argv, os.path.join(self.workdir, "driver%d.log" % d)), hist))
        # The audit learner joins under load.
        time.sleep(2)
        learner = cluster.add_joiner(learner_id)
        cluster.start(learner_id)
        for _ in range(40):
            code, out, err = cluster.ctl("add-learner", learner_id, learner.peer_addr, timeout_ms=5000)
            if code == 0:
                break
            time.sleep(0.5)
        else:
            raise SetupError("could not add the audit learner: %s" % (out + err).strip())
        learner.member = True
        self.log("audit learner %d added under load" % learner_id)
        self.fault_period(cluster, list(cluster.founders))
        for p, _ in drivers:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        history = []
        for _, path in drivers:
            if os.path.exists(path):
                with open(path) as f:
                    for line in f:
                        fs = line.split()
                        if len(fs) == 6:
                            history.append({"f": "order", "invoke": int(fs[0]), "complete": int(fs[1]),
                                            "type": fs[2], "index": int(fs[3]), "term": int(fs[4]),
                                            "command": bytes.fromhex(fs[5]).decode(errors="replace")})
        self.history = history
        self.log("workload done: %d commands" % len(history))
        committed = self.converge(cluster)
        if committed is None:
            self.verdicts.append(checkers.Verdict("recovery", False, "did not converge after healing"))
            return
        self.verdicts.append(checkers.Verdict("recovery", True, "converged at %d" % committed))
        code, out, err = cluster.ctl("verify", timeout_ms=5000)
        self.verdicts.append(checkers.Verdict("digests", code == 0, (out + err).strip().splitlines()[-1] if (out + err).strip() else "rlr-ctl verify exit %d" % code,
                                              (out + err).strip().splitlines()[-8:] if code != 0 else None))
        dumps = self.stop_and_dump(cluster)
        self.verdicts.append(checkers.check_log_agreement(dumps, committed))
        ref = max(dumps, key=lambda d: (d.last, -d.first))
        self.verdicts.append(checkers.check_sequencer_acks(history, ref, committed))
        if ref.first > 1:
            self.verdicts.append(checkers.Verdict("exactly-once", False, "the log was compacted: cannot replay it"))
            return
        r = subprocess.run([self.bins["me-replay"], os.path.join(self.workdir, "n%d.dump" % ref.node),
                            "--through", str(committed)], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise SetupError("me-replay failed: %s" % r.stderr.strip())
        expected = checkers.parse_outputs(r.stdout)
        delivered = {}
        for i in cluster.nodes:
            path = os.path.join(self.workdir, "n%d.outputs" % i)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    delivered["node %d" % i] = checkers.parse_outputs(f.read())
        self.verdicts.append(checkers.check_exactly_once(expected, delivered, committed))
        self.verdicts.append(checkers.check_audit(expected, os.path.join(learner.data_dir, "audit.sqlite"),
                                                  committed))
        self.add_availability(history)
        self.add_disk_full()


class SetupError(Exception):
    pass


def find_bins(bin_dir):
    bins = {}
    for name in ("rlr-node", "rlr-ctl", "me-driver", "me-replay"):
        path = os.path.join(bin_dir, name)
        if not os.access(path, os.X_OK):
            raise SetupError("%s not found in %s (build it first: bash tests/run.sh or cmake --build build)" % (name, bin_dir))
        bins[name] = path
    return bins


def outcome_table(run):
    rows = {}
    for op in run.history:
        rows.setdefault(op["f"], {}).setdefault(op["type"], 0)
        rows[op["f"]][op["type"]] += 1
    return rows


def print_summary(runs, args, kept):
    print()
    print("=" * 78)
    print("rlr chaos summary: seed %d, %d nodes, %.0f s of faults per workload" % (args.seed, args.nodes, args.seconds))
    for run in runs:
        print("-" * 78)
        print("workload %s" % run.workload)
        if run.nemesis:
            faults = ", ".join("%s %d" % (k, v) for k, v in sorted(run.nemesis.counts.items()))
            print("  faults:     %s (skipped %d)" % (faults or "none", run.nemesis.skipped))
        print("  network:    %d peer connections, %d dialed across a cut (held), %d unidentified (refused)" %
              (run.net.connections_identified, run.net.connections_held, run.net.connections_unidentified))
        for f, outcomes in sorted(outcome_table(run).items()):
            print("  ops %-6s  %s" % (f, ", ".join("%s %d" % kv for kv in sorted(outcomes.items()))))
        for v in run.verdicts:
            print("  %-16s %s  %s" % (v.name, "ok  " if v.ok else "FAIL", v.summary))
            if not v.ok:
                for e in v.evidence:
                    print("      evidence: %s" % (json.dumps(e, default=str) if not isinstance(e, str) else e))
    print("-" * 78)
    ok = all(v.ok for r in runs for v in r.verdicts) and runs
    print("verdict: %s" % ("PASS" if ok else "FAIL (replay with --seed %d; node logs in %s)" % (args.seed, kept)))
    print("=" * 78)
    return ok


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=["kv", "sequencer", "both"], default="both")
    p.add_argument("--seconds", type=float, default=None, help="seconds of faults per workload (default 60)")
    p.add_argument("--minutes", type=float, default=None, help="minutes of faults per workload (long mode)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nodes", type=int, default=3, choices=[3, 5])
    p.add_argument("--clients", type=int, default=10, help="kv clients")
    p.add_argument("--keys", type=int, default=5, help="kv keys in use at once")
    p.add_argument("--ops-per-key", type=int, default=120, help="kv operations before a key is retired")
    p.add_argument("--client-pause", type=float, default=0.002, help="kv client pause between operations (s)")
    p.add_argument("--drivers", type=int, default=3, help="sequencer driver processes (rlr::Client)")
    p.add_argument("--driver-rate", type=int, default=50, help="commands per second per driver")
    p.add_argument("--bin-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build/bin"))
    p.add_argument("--workdir", default=None, help="where node data and logs go (default: a temporary dir)")
    p.add_argument("--keep", action="store_true", help="keep the work directory even when every check passed")
    args = p.parse_args(argv)
    if args.seconds is None:
        args.seconds = args.minutes * 60 if args.minutes is not None else 60.0

    # The proxy holds two sockets per proxied connection; reconnect bursts after a heal
    # must not run it out of descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536), hard))
    workdir = args.workdir or tempfile.mkdtemp(prefix="rlr-chaos-")
    os.makedirs(workdir, exist_ok=True)
    registry = cl.Registry()
    net = None
    runs = []
    ok = False

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        bins = find_bins(os.path.abspath(args.bin_dir))
        workloads = ["kv", "sequencer"] if args.workload == "both" else [args.workload]
        for w in workloads:
            wdir = os.path.join(workdir, w)
            os.makedirs(wdir, exist_ok=True)
            registry.reopen()
            net = netproxy.Net()
            run = Run(args, w, wdir, registry, net)
            run.bins = bins
            runs.append(run)
            run.log("chaos %s: seed %d, %d nodes, %.0f s of faults, work dir %s" % (w, args.seed, args.nodes,
                                                                                     args.seconds, wdir))
            try:
                run.run_kv() if w == "kv" else run.run_sequencer()
            finally:
                registry.kill_all()
                net.close()
                net = None
        ok = print_summary(runs, args, workdir)
        return 0 if ok else 1
    except SetupError as e:
        print("rlr chaos: setup failed: %s (work dir %s)" % (e, workdir), file=sys.stderr)
        ok = False
        return 2
    except KeyboardInterrupt as e:
        print("rlr chaos: interrupted (%s); every process stopped" % e, file=sys.stderr)
        ok = False
        return 130
    finally:
        registry.kill_all()
        if net is not None:
            net.close()
        if ok and not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print("rlr chaos: node logs and histories kept in %s" % workdir, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
