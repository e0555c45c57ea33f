#!/usr/bin/env python3
"""The tools the chaos checkers read through (`rlr-ctl dump`, `me-replay`) and the
proxies' identification of the node that dialed a connection.

  python3 tests/chaos/test_tools.py --bin-dir build/bin
"""

import argparse
import asyncio
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import checkers as ck  # noqa: E402
import cluster as cl  # noqa: E402
import netproxy  # noqa: E402

BIN = os.path.join(HERE, "../../build/bin")


def run(*argv, timeout=60):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)


class Dump(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rlr-tools-")
        cls.data = os.path.join(cls.tmp, "n1")
        port = cl.free_ports(1)[0]
        cls.addr = "127.0.0.1:%d" % port
        cls.node = subprocess.Popen([os.path.join(BIN, "rlr-node"), "--cluster-id", "tools", "--id", "1",
                                     "--peer", "1=" + cls.addr, "--data-dir", cls.data, "--app", "none"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.proposed = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(cls.proposed) < 3:
            text = "ME1 NEW %d BUY XYZ 100 10" % (len(cls.proposed) + 1)
            r = run(os.path.join(BIN, "rlr-ctl"), "--cluster", "tools", "--bootstrap", cls.addr, "propose", text)
            if r.returncode == 0:
                index = int(r.stdout.split("index=")[1].split()[0])
                cls.proposed.append((index, text))
            else:
                time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        if cls.node.poll() is None:
            cls.node.kill()
            cls.node.wait()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def dump(self, cluster="tools", node_id=1, data=None):
        return run(os.path.join(BIN, "rlr-ctl"), "--cluster", cluster, "dump", "--data-dir", data or self.data,
                   "--id", node_id)

    def stop_node(self):
        if self.node.poll() is None:
            self.node.send_signal(signal.SIGTERM)
            self.assertEqual(self.node.wait(timeout=30), 0)

    def test_1_a_running_node_is_refused(self):
        self.assertEqual(len(self.proposed), 3, "the node never took the proposals")
        r = self.dump()
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot open", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_2_dump_shows_every_proposal_at_its_index(self):
        self.stop_node()
        r = self.dump()
        self.assertEqual(r.returncode, 0, r.stderr)
        d = ck.Dump(1, r.stdout)
        # The stored commit index may lag (Raft keeps it volatile); the entries may not.
        self.assertGreaterEqual(d.last, self.proposed[-1][0])
        self.assertLessEqual(d.commit, d.last)
        self.assertEqual(d.first, 1)
        for index, text in self.proposed:
            term, kind, client, seq, payload = d.entries[index]
            self.assertEqual(payload.decode(), text)
            self.assertIn(kind, ("normal", "session"))
        self.assertEqual(d.entries[1][1], "noop")
        self.assertTrue(r.stdout.rstrip().endswith("end entries=%d" % len(d.entries)))

    def test_3_wrong_identity_and_missing_dir_are_refused(self):
        self.stop_node()
        for args, why in ((dict(cluster="other"), "WrongCluster"), (dict(node_id=2), "WrongCluster"),
                          (dict(data=os.path.join(self.tmp, "nothing")), "NotFound")):
            r = self.dump(**args)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn(why, r.stderr, args)

    def test_4_me_replay_recomputes_the_outputs(self):
        self.stop_node()
        path = os.path.join(self.tmp, "n1.dump")
        with open(path, "w") as f:
            f.write(self.dump().stdout)
        r = run(os.path.join(BIN, "me-replay"), path)
        self.assertEqual(r.returncode, 0, r.stderr)
        outs = ck.parse_outputs(r.stdout)
        # Three buy orders that rest: one order_event each, at the proposals' indexes.
        self.assertEqual([k for k, _, _ in outs], [(i, 0) for i, _ in self.proposed])
        self.assertTrue(all(t == "order_event" for _, t, _ in outs))
        r = run(os.path.join(BIN, "me-replay"), path, "--through", self.proposed[0][0])
        self.assertEqual(len(ck.parse_outputs(r.stdout)), 1)

    def test_5_me_replay_skips_session_retries_and_refuses_garbage(self):
        path = os.path.join(self.tmp, "retry.dump")
        cmd = b"ME1 NEW 5 SELL XYZ 10 7".hex()
        with open(path, "w") as f:
            f.write("entry 1 1 noop 0 0 -\nentry 2 1 session 9 1 %s\nentry 3 2 session 9 1 %s\n" % (cmd, cmd))
        r = run(os.path.join(BIN, "me-replay"), path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([k for k, _, _ in ck.parse_outputs(r.stdout)], [(2, 0)])
        with open(path, "w") as f:
            f.write("entry 1 1 noop 0 0 -\nentry 3 1 normal 0 0 %s\n" % cmd)
        self.assertEqual(run(os.path.join(BIN, "me-replay"), path).returncode, 1)
        with open(path, "w") as f:
            f.write("entry 1 1 normal 0 0 zz\n")
        self.assertEqual(run(os.path.join(BIN, "me-replay"), path).returncode, 1)


# A process that stands for a node: once it reads a line, it dials argv[1] times
# 127.0.0.1:argv[2], prints its local ports, and holds the connections until its stdin closes.
DIALER = """
import socket, sys
sys.stdin.readline()
conns = [socket.create_connection(("127.0.0.1", int(sys.argv[2]))) for _ in range(int(sys.argv[1]))]
print(" ".join(str(c.getsockname()[1]) for c in conns), flush=True)
sys.stdin.read()
"""


class ProxyIdentify(unittest.TestCase):
    """The proxy learns who dialed each connection from the kernel, and it does so without
    stalling the links it carries however many sockets the machine holds: the nodes close
    a link silent for 150 ms, and redials make more sockets."""

    def setUp(self):
        self.net = netproxy.Net()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self.listener.getsockname()[1]
        self.dialers = []

    def tearDown(self):
        for p in self.dialers:
            p.stdin.close()
            p.wait(timeout=30)
            p.stdout.close()
        self.net.close()
        self.listener.close()

    def dial(self, node_id, count, port):
        """Node node_id's process (known to the proxies before it dials, as a node's pid is)
        with `count` connections to `port`; returns (process, its ports)."""
        p = subprocess.Popen([sys.executable, "-c", DIALER, str(count), str(port)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        self.dialers.append(p)
        self.net.set_pid(node_id, p.pid)
        p.stdin.write("dial\n")
        p.stdin.flush()
        return p, [int(x) for x in p.stdout.readline().split()]

    def test_identify_names_the_node_that_dialed(self):
        node, (node_port,) = self.dial(2, 1, self.port)
        own = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(own.close)
        self.assertEqual(self.net.identify(node_port, self.port), (True, 2))
        self.assertEqual(self.net.identify(own.getsockname()[1], self.port), (True, None))  # not a node
        self.assertEqual(self.net.identify(node_port, self.port + 1), (False, None))  # no such socket
        self.net.set_pid(2, None)
        self.assertEqual(self.net.identify(node_port, self.port), (True, None))
        self.dialers.remove(node)
        node.stdin.close()
        node.wait(timeout=30)
        node.stdout.close()
        self.assertEqual(self.net.identify(node_port, self.port), (False, None))  # closed: nobody owns it

    def crowd(self, pairs=2500):
        """Thousands of sockets on the machine, as a redial spiral leaves behind."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < 2 * pairs + 512:
            if hard != resource.RLIM_INFINITY and hard < 2 * pairs + 512:
                self.skipTest("needs %d open files, the hard limit is %d" % (2 * pairs + 512, hard))
            resource.setrlimit(resource.RLIMIT_NOFILE, (2 * pairs + 512, hard))
        background = []
        self.addCleanup(lambda: [s.close() for s in background])
        for _ in range(pairs):
            s = socket.create_connection(("127.0.0.1", self.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # no TIME_WAIT left behind
            background.append(s)
            background.append(self.listener.accept()[0])

    def test_identifying_a_dialer_costs_the_same_among_thousands_of_sockets(self):
        # CPU time, not wall time: on any thread, it is taken from the loop's share of the
        # interpreter and of the machine.
        self.crowd()
        _, (node_port,) = self.dial(2, 1, self.port)
        calls = 50
        start = time.thread_time()
        for _ in range(calls):
            self.assertEqual(self.net.identify(node_port, self.port), (True, 2))
        cost = (time.thread_time() - start) / calls
        self.assertLess(cost, 0.002, "identifying a dialer took %.1f ms of CPU" % (cost * 1000))

    def test_the_loop_stays_responsive_under_thousands_of_sockets(self):
        self.crowd()
        # Node 1 is the listener behind a proxy; node 2 dials it while the pair is cut, so
        # each of its connections is held, which only an identification as node 2 does.
        proxy_port = self.net.add_proxy(1, self.port)
        self.net.block([(2, 1)], "drop")
        loop = self.net.loop
        beating = [True]
        gaps = []

        async def heartbeat():
            last = loop.time()
            while beating[0]:
                await asyncio.sleep(0.002)
                now = loop.time()
                gaps.append(now - last - 0.002)
                last = now

        beat = asyncio.run_coroutine_threadsafe(heartbeat(), loop)
        time.sleep(0.2)
        dials = 100
        _, ports = self.dial(2, dials, proxy_port)
        deadline = time.monotonic() + 60
        while self.net.connections_identified + self.net.connections_unidentified < dials:
            self.assertLess(time.monotonic(), deadline, "the proxy never took the connections")
            time.sleep(0.05)
        time.sleep(0.2)
        beating[0] = False
        beat.result(timeout=10)
        self.assertEqual(len(ports), dials)
        self.assertEqual((self.net.connections_identified, self.net.connections_held,
                          self.net.connections_unidentified), (dials, dials, 0))
        # Well under the nodes' 150 ms silence bound, with room for a loaded machine's
        # scheduling.
        self.assertLess(max(gaps), 0.100, "the proxy's loop stalled for %.0f ms" % (max(gaps) * 1000))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=BIN)
    args, rest = ap.parse_known_args()
    BIN = os.path.abspath(args.bin_dir)
    unittest.main(argv=[sys.argv[0], "-v"] + rest)
