"""rlr-node processes for the chaos suite: start, kill -9, pause, restart, stop, and the
rlr-ctl calls the nemesis and the checkers make.

Every process this module starts is recorded in a registry and killed (SIGKILL, after a
SIGCONT for a paused one) by `Registry.kill_all`, which the suite runs on every way out:
normal end, a failed check, an exception, SIGINT or SIGTERM; once it ran, the registry
starts nothing more. Children also get PR_SET_PDEATHSIG so that they die with the suite
even if it is killed with SIGKILL. The kernel sends that signal when the *thread* that
forked the child ends, so every child is forked by one spawner thread that lives as long
as the process, whichever thread asked for it.
"""

import ctypes
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Registry:
    """Every child process of the suite, so that none outlives it."""

    def __init__(self):
        self.procs = set()
        self._lock = threading.Lock()
        self._closed = False
        self._requests = queue.Queue()
        threading.Thread(target=self._spawner, name="chaos-spawner", daemon=True).start()

    def _spawner(self):
        while True:
            argv, log_path, reply = self._requests.get()
            try:
                with open(log_path, "ab") as log:
                    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
                reply.put(p)
            except Exception as e:  # noqa: BLE001 - handed to the caller
                reply.put(e)

    def spawn(self, argv, log_path):
        reply = queue.Queue()
        with self._lock:
            if self._closed:
                raise RuntimeError("the suite is stopping: not starting %s" % os.path.basename(argv[0]))
            self._requests.put((argv, log_path, reply))
            p = reply.get()
            if isinstance(p, Exception):
                raise p
            self.procs.add(p)
        return p

    def reopen(self):
        with self._lock:
            self._closed = False

    def kill_all(self):
        with self._lock:
            self._closed = True
        for p in list(self.procs):
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.kill()
                except OSError:
                    pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()


class Node:
    def __init__(self, node_id, port, proxy_port, data_dir, log_path, app_port=None):
        self.id = node_id
        self.port = port              # real listen port (clients, and the node itself)
        self.proxy_port = proxy_port  # where peers reach it
        self.app_port = app_port      # the kv app's RESP port
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None
        self.paused = False
        self.role = "voter"           # voter | join
        self.member = True            # in the cluster configuration, as far as the suite knows

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    @property
    def peer_addr(self):
        return "127.0.0.1:%d" % self.proxy_port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """N founding voters (ids 1..N) plus optional joiners, every one behind a proxy."""

    def __init__(self, bins, workdir, registry, net, cluster_id, n, app, app_settings=None,
                 log=print):
        self.bins = bins
        self.workdir = workdir
        self.registry = registry
        self.net = net
        self.cluster_id = cluster_id
        self.app = app
        self.app_settings = app_settings or (lambda node: {})
        self.log = log
        self.nodes = {}
        self.founders = list(range(1, n + 1))
        for i in self.founders:
            self._new_node(i)

    def _new_node(self, i):
        port, app_port = free_ports(2)
        node = Node(i, port, 0, os.path.join(self.workdir, "n%d" % i),
                    os.path.join(self.workdir, "n%d.log" % i), app_port)
        node.proxy_port = self.net.add_proxy(i, port)
        self.nodes[i] = node
        return node

    def add_joiner(self, i):
        node = self._new_node(i)
        node.role = "join"
        node.member = False
        return node

    # -- processes ------------------------------------------------------------------
    def argv(self, node):
        a = [self.bins["rlr-node"], "--cluster-id", self.cluster_id, "--id", str(node.id),
             "--listen", node.addr, "--data-dir", node.data_dir, "--log-level", "info"]
        if node.role == "join":
            a += ["--role", "join"]
        else:
            for j in self.founders:
                other = self.nodes[j]
                # Itself included at its proxy address: a configuration this node
                # replicates as leader names every member at its proxy, never at a port
                # that bypasses the faults.
                a += ["--peer", "%d=%s" % (j, other.peer_addr)]
        settings = self.app_settings(node)
        app = settings.pop("__app__", self.app)
        egress = settings.pop("__egress__", None)
        a += ["--app", app]
        if egress:
            a += ["--egress", egress]
        for k, v in settings.items():
            a += ["--app-set", "%s=%s" % (k, v)]
        return a

    def start(self, i):
        node = self.nodes[i]
        assert not node.alive(), "node %d is already running" % i
        with open(node.log_path, "ab") as f:
            f.write(("--- chaos: starting node %d at %.3f\n" % (i, time.monotonic())).encode())
        node.proc = self.registry.spawn(self.argv(node), node.log_path)
        node.paused = False
        self.net.set_pid(i, node.proc.pid)

    def kill9(self, i):
        node = self.nodes[i]
        if node.alive():
            node.proc.send_signal(signal.SIGCONT)
            node.proc.kill()
            node.proc.wait(timeout=10)
        node.paused = False
        self.net.set_pid(i, None)

    def pause(self, i):
        node = self.nodes[i]
        if node.alive():
            node.proc.send_signal(signal.SIGSTOP)
            node.paused = True

    def resume(self, i):
        node = self.nodes[i]
        if node.alive():
            node.proc.send_signal(signal.SIGCONT)
        node.paused = False

    def stop(self, i, timeout=20):
        """SIGTERM (a clean stop); SIGKILL if it does not exit in time. Returns the code."""
        node = self.nodes[i]
        if not node.alive():
            return None
        if node.paused:
            self.resume(i)
        node.proc.send_signal(signal.SIGTERM)
        try:
            code = node.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            code = node.proc.wait(timeout=10)
        self.net.set_pid(i, None)
        return code

    def wipe(self, i):
        shutil.rmtree(self.nodes[i].data_dir, ignore_errors=True)

    # -- rlr-ctl ----------------------------------------------------------------------
    def bootstrap(self):
        return ",".join(n.addr for n in self.nodes.values())

    def ctl(self, *args, timeout_ms=3000):
        argv = [self.bins["rlr-ctl"], "--cluster", self.cluster_id, "--bootstrap", self.bootstrap(),
                "--timeout-ms", str(timeout_ms)] + [str(a) for a in args]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_ms / 1000 + 15)
        except subprocess.TimeoutExpired:
            return 124, "", "rlr-ctl timed out"
        return r.returncode, r.stdout, r.stderr

    def leader(self, timeout_ms=2000):
        code, out, _ = self.ctl("leader", timeout_ms=timeout_ms)
        lines = out.strip().splitlines()
        if code == 0 and lines and lines[-1].isdigit() and int(lines[-1]) != 0:
            return int(lines[-1])
        return None

    def wait_leader(self, seconds=30, exclude=()):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader not in exclude:
                return leader
            time.sleep(0.2)
        return None

    def status(self):
        import json
        code, out, _ = self.ctl("status", "--json", timeout_ms=3000)
        if code not in (0, 1):
            return None
        try:
            return json.loads(out)
        except ValueError:
            return None

    def dump(self, i, out_path):
        node = self.nodes[i]
        with open(out_path, "w") as f:
            r = subprocess.run([self.bins["rlr-ctl"], "--cluster", self.cluster_id, "dump", "--data-dir",
                                node.data_dir, "--id", str(i)], stdout=f, stderr=subprocess.PIPE, text=True,
                               timeout=300)
        if r.returncode != 0:
            raise RuntimeError("rlr-ctl dump of node %d failed: %s" % (i, r.stderr.strip()))
        return out_path
