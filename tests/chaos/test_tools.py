#!/usr/bin/env python3
"""The tools the chaos checkers read through: `rlr-ctl dump` and `me-replay`.

  python3 tests/chaos/test_tools.py --bin-dir build/bin
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import checkers as ck  # noqa: E402
import cluster as cl  # noqa: E402

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


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=BIN)
    args, rest = ap.parse_known_args()
    BIN = os.path.abspath(args.bin_dir)
    unittest.main(argv=[sys.argv[0], "-v"] + rest)
