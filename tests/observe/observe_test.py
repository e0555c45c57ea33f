#!/usr/bin/env python3
"""The admin server against the real tools: a 3-node rlr-node cluster on loopback with
admin addresses, hosting the matching engine, under a trickle of proposals.

  - promtool (Debian `prometheus`) checks a scrape of every node;
  - a real Prometheus server scrapes the cluster once a second, and queries over its HTTP
    API return the leader's commit rate and its followers' lag;
  - headless Chromium loads the status page, saves a screenshot under the build tree,
    and its DOM holds the cluster table, the leader and the charts;
  - every metric the Grafana dashboard (examples/grafana/rlr.json) queries exists;
  - /healthz and /readyz answer 200, and /readyz 503 (with the banner on the status
    page) once the surviving node knows no leader.

Exit 77 (skipped) when promtool, prometheus or chromium is missing, except under CI=true,
where a missing tool is a failure: tests/run.sh installs them (cmake/deps.sh).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    """(status, body) of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""  # not listening (yet, or any more)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what, flush=True)


def wait_for(what, fn, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


class Cluster:
    def __init__(self, bindir, work):
        self.bindir = bindir
        self.work = work
        self.peer_ports = [free_port() for _ in range(3)]
        self.admin_ports = [free_port() for _ in range(3)]
        self.procs = {}
        self.failed_stop = False

    def peers(self):
        out = []
        for i, p in enumerate(self.peer_ports, start=1):
            out += ["--peer", f"{i}=127.0.0.1:{p}"]
        return out

    def start(self):
        for i in (1, 2, 3):
            log = open(os.path.join(self.work, f"n{i}.log"), "w")
            self.procs[i] = subprocess.Popen(
                [os.path.join(self.bindir, "rlr-node"), "--cluster-id", "observe", "--id", str(i),
                 *self.peers(), "--data-dir", os.path.join(self.work, f"n{i}"),
                 "--admin-listen", f"127.0.0.1:{self.admin_ports[i - 1]}", "--log-level", "warn",
                 "--app", "matching-engine"],
                stdout=log, stderr=subprocess.STDOUT)

    def admin(self, i):
        return f"http://127.0.0.1:{self.admin_ports[i - 1]}"

    def bootstrap(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.peer_ports)

    def ctl(self, *args):
        return subprocess.run([os.path.join(self.bindir, "rlr-ctl"), "--cluster", "observe", "--bootstrap",
                               self.bootstrap(), "--timeout-ms", "3000", *args],
                              capture_output=True, text=True, timeout=20)

    def leader(self):
        for i in (1, 2, 3):
            if i not in self.procs:
                continue
            status, body = get(self.admin(i) + "/metrics")
            if status != 200:
                continue
            m = re.search(r'^rlr_role\{[^}]*role="leader"\} 1$', body, re.M)
            if m:
                return i
        return None

    def kill(self, i):
        """Stops node i with SIGTERM; a clean stop exits 0 (a sanitizer report does not)."""
        p = self.procs.pop(i)
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=20)
        if code != 0:
            with open(os.path.join(self.work, f"n{i}.log")) as f:
                tail = f.read()[-3000:]
            raise AssertionError(f"node {i} exited {code} on SIGTERM; its log ends:\n{tail}")

    def stop(self):
        for i in list(self.procs):
            try:
                self.kill(i)
            except AssertionError as e:
                print(e)
                self.failed_stop = True


def metric_names(text):
    return set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", text, re.M))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True, help="where the screenshot and scrapes are kept")
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--metrics-doc", required=True)
    a = ap.parse_args()

    tools = {t: shutil.which(t) for t in ("promtool", "prometheus", "chromium")}
    missing = [t for t, p in tools.items() if p is None]
    if missing:
        msg = f"missing {', '.join(missing)} (Debian packages prometheus, chromium; cmake/deps.sh installs them)"
        if os.environ.get("CI") == "true":
            print("FAIL: " + msg)
            return 1
        print("skipped: " + msg)
        return 77

    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="rlr-observe-")
    cluster = Cluster(a.bin, work)
    prom = None
    stop_load = threading.Event()
    try:
        cluster.start()
        leader = wait_for("a leader", cluster.leader)
        print("leader:", leader, flush=True)

        proposed = []

        def load():
            k = 0
            while not stop_load.is_set():
                r = cluster.ctl("propose", f"order-{k}")
                if r.returncode == 0:
                    proposed.append(k)
                k += 1
                time.sleep(0.02)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        wait_for("some commits", lambda: len(proposed) >= 20)

        # promtool on a scrape of every node.
        for i in (1, 2, 3):
            status, text = get(cluster.admin(i) + "/metrics")
            check(status == 200, f"node {i}: /metrics answers 200")
            path = os.path.join(a.out, f"metrics-node{i}.txt")
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([tools["promtool"], "check", "metrics"], input=text, capture_output=True, text=True)
            print(r.stdout + r.stderr, end="")
            check(r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "",
                  f"node {i}: promtool check metrics passes without a lint finding")
            check(f'rlr_build_info{{cluster="observe",node="{i}"' in text, f"node {i}: samples carry cluster and node")

        # docs/metrics.md lists every metric a node exports.
        with open(a.metrics_doc) as f:
            doc = f.read()
        exported = set()
        for i in (1, 2, 3):
            with open(os.path.join(a.out, f"metrics-node{i}.txt")) as f:
                exported |= set(re.findall(r"^# TYPE (\S+) ", f.read(), re.M))
        undocumented = sorted(n for n in exported if f"| `{n}` |" not in doc)
        check(not undocumented, f"docs/metrics.md lists all {len(exported)} exported metrics (missing: {undocumented})")

        # The Grafana dashboard only asks for metrics that exist.
        with open(a.dashboard) as f:
            dash = json.load(f)
        exprs = []

        def walk(o):
            if isinstance(o, dict):
                for k, v in o.items():
                    if k == "expr" and isinstance(v, str):
                        exprs.append(v)
                    else:
                        walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)

        walk(dash)
        check(len(exprs) >= 8, f"the dashboard has {len(exprs)} queries")
        _, leader_text = get(cluster.admin(leader) + "/metrics")
        exposed = metric_names(leader_text)
        asked = set()
        for e in exprs:
            asked |= set(re.findall(r"\b(rlr_[a-z0-9_]+)", e))
        unknown = sorted(n for n in asked if n not in exposed)
        check(not unknown, f"every metric the dashboard queries is exposed ({len(asked)} names; unknown: {unknown})")

        # A real Prometheus server scrapes the cluster.
        prom_port = free_port()
        prom_dir = os.path.join(work, "prometheus")
        os.makedirs(prom_dir)
        targets = ", ".join(f"'127.0.0.1:{p}'" for p in cluster.admin_ports)
        with open(os.path.join(prom_dir, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    f"scrape_configs:\n  - job_name: rlr\n    static_configs:\n      - targets: [{targets}]\n")
        prom_log = open(os.path.join(a.out, "prometheus.log"), "w")
        prom = subprocess.Popen([tools["prometheus"], f"--config.file={prom_dir}/prometheus.yml",
                                 f"--storage.tsdb.path={prom_dir}/data", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=prom_log, stderr=subprocess.STDOUT)
        papi = f"http://127.0.0.1:{prom_port}"
        wait_for("prometheus ready", lambda: get(papi + "/-/ready")[0] == 200, timeout=60)

        def query(q):
            status, body = get(papi + "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
            if status != 200:
                return []
            return json.loads(body)["data"]["result"]

        up = wait_for("3 targets up", lambda: (lambda r: r if len(r) == 3 and all(x["value"][1] == "1" for x in r) else None)(query("up")), timeout=60)
        check(len(up) == 3, "prometheus scrapes all three nodes")
        rate = wait_for("a commit rate", lambda: (lambda r: r if r and float(r[0]["value"][1]) > 0 else None)(
            query(f'rate(rlr_entries_committed_total{{node="{leader}"}}[5s])')), timeout=60)
        print("commit rate:", rate[0]["value"][1], "entries/s", flush=True)
        check(float(rate[0]["value"][1]) > 0, "prometheus: the leader's commit rate is positive")
        lag = wait_for("follower lag", lambda: (lambda r: r if len(r) == 2 else None)(
            query(f'rlr_follower_lag_entries{{node="{leader}"}}')), timeout=30)
        check(sorted(x["metric"]["peer"] for x in lag) == sorted(str(i) for i in (1, 2, 3) if i != leader),
              "prometheus: the leader reports each follower's lag")
        p99 = query(f'histogram_quantile(0.99, rate(rlr_proposal_commit_duration_seconds_bucket{{node="{leader}"}}[10s]))')
        check(p99 and float(p99[0]["value"][1]) > 0, f"prometheus: a commit latency p99 ({p99[0]['value'][1] if p99 else '-'} s)")

        # Every query of the dashboard is valid PromQL that Prometheus evaluates.
        bad = []
        for e in exprs:
            q = e.replace("$cluster", "observe")
            status, body = get(papi + "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
            if status != 200 or json.loads(body).get("status") != "success":
                bad.append((e, status, body[:200]))
        check(not bad, f"prometheus evaluates all {len(exprs)} dashboard queries (failed: {bad})")

        # The status page in a real browser.
        time.sleep(3)  # a few history samples for the charts
        chrome = [tools["chromium"], "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--hide-scrollbars", "--window-size=1200,1000"]
        shot = os.path.join(a.out, "status.png")
        if os.path.exists(shot):
            os.remove(shot)
        subprocess.run(chrome + [f"--screenshot={shot}", cluster.admin(leader) + "/"], capture_output=True, timeout=120)
        check(os.path.exists(shot) and os.path.getsize(shot) > 10000, f"screenshot saved: {shot}")
        dom = subprocess.run(chrome + ["--dump-dom", cluster.admin(leader) + "/"], capture_output=True, text=True,
                             timeout=120).stdout
        with open(os.path.join(a.out, "status.html"), "w") as f:
            f.write(dom)
        check('id="cluster-table"' in dom and dom.count('data-node="') == 3, "DOM: the cluster table lists 3 nodes")
        check(re.search(r'id="leader">%d<' % leader, dom) is not None, f"DOM: the leader is node {leader}")
        for chart_id in ("chart-commit-rate", "chart-commit-latency"):
            m = re.search(r'id="%s".*?</figure>' % chart_id, dom, re.S)
            check(m is not None and "<polyline" in m.group(0), f"DOM: chart {chart_id} has a line")
        check('id="role-changes"' in dom and "election_won" in dom, "DOM: role changes with their reasons")
        check('id="no-warnings"' in dom, "DOM: no warning on a healthy cluster")

        # Health checks.
        for i in (1, 2, 3):
            check(get(cluster.admin(i) + "/healthz")[0] == 200, f"node {i}: /healthz 200")
            check(get(cluster.admin(i) + "/readyz")[0] == 200, f"node {i}: /readyz 200")
        check(get(cluster.admin(1) + "/nope")[0] == 404, "an unknown path: 404")
        req = urllib.request.Request(cluster.admin(1) + "/metrics", method="POST", data=b"x")
        try:
            urllib.request.urlopen(req, timeout=5)
            status = 200
        except urllib.error.HTTPError as e:
            status = e.code
        check(status == 405, f"POST is refused ({status})")

        stop_load.set()
        loader.join()
        survivor = next(i for i in (1, 2, 3) if i != leader)
        for i in (1, 2, 3):
            if i != survivor:
                cluster.kill(i)
        status, body = wait_for("/readyz 503 without a leader",
                                lambda: (lambda r: r if r[0] == 503 else None)(get(cluster.admin(survivor) + "/readyz")),
                                timeout=30)
        check("no leader known" in body, f"node {survivor}: /readyz 503 says why")
        check(get(cluster.admin(survivor) + "/healthz")[0] == 200, f"node {survivor}: still healthy (/healthz 200)")
        _, page = get(cluster.admin(survivor) + "/")
        check('id="warnings"' in page and "no leader known" in page, "the status page shows the warning banner")
        cluster.stop()
        check(not cluster.failed_stop, "every node stopped cleanly (exit 0)")
        print("PASS")
        return 0
    finally:
        stop_load.set()
        if prom:
            prom.terminate()
            try:
                prom.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prom.kill()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
